package web

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"warren/alerts"
	"warren/store"
)

// alertsUIFixture is a server over a real store (acks, silences, delivery
// log) and a real dispatcher with two real receivers: one that accepts and
// one that answers 403.
func alertsUIFixture(t *testing.T) (*fixture, *store.Store, alerts.Alert) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "warren.db"), testLogger())
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(ok.Close)
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusForbidden) }))
	t.Cleanup(broken.Close)
	disp, err := alerts.NewDispatcher(st, []alerts.WebhookConfig{
		{Name: "ops", URL: ok.URL, Format: "generic"},
		{Name: "broken", URL: broken.URL, Format: "generic"},
	}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	a := alerts.Alert{ID: "alert-<1>", Rule: alerts.RuleQueueDepth, Severity: alerts.SeverityCritical, State: alerts.StateFiring,
		Vhost: "/", Queue: "orders.<b>x</b>", Value: 612, Threshold: 500, StartedAt: time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)}
	if err := st.RecordTransition(ctx, a, nil); err != nil {
		t.Fatal(err)
	}
	f := newFixtureWith(t, func(d *Deps) {
		d.Alerts, d.AlertActions, d.WebhookTester = st, st, disp
		d.Webhooks = []string{"ops", "broken"}
	})
	return f, st, a
}

func TestAlertsPageControls(t *testing.T) {
	f, st, a := alertsUIFixture(t)
	ctx := context.Background()
	c := f.client(t)
	tok := csrfToken(t, f, c)
	form := "application/x-www-form-urlencoded"
	post := func(path, body string, withToken bool) (int, *html.Node, string) {
		t.Helper()
		h := map[string]string{}
		if withToken {
			h["X-CSRF-Token"] = tok
		}
		code, hdr, resp := do(t, c, http.MethodPost, f.http.URL+path, form, body, h)
		if code != http.StatusForbidden && !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") {
			t.Fatalf("POST %s: %d %s, want an HTML fragment", path, code, hdr.Get("Content-Type"))
		}
		return code, parseHTML(t, resp), resp
	}
	ackURL := alertControlURL(a.ID, "ack")

	t.Run("page has the panels and controls", func(t *testing.T) {
		_, _, body := do(t, c, http.MethodGet, f.http.URL+"/alerts", "", "", nil)
		doc := parseHTML(t, body)
		for _, id := range []string{"alerts", "silences", "deliveries"} {
			sec := section(t, doc, id)
			if v, _ := attr(sec, "hx-sync"); v != "this:drop" {
				t.Errorf("#%s refreshes with hx-sync %q", id, v)
			}
		}
		forms := findAll(doc, func(n *html.Node) bool { v, _ := attr(n, "hx-post"); return n.Data == "form" && v != "" })
		var posts []string
		for _, n := range forms {
			v, _ := attr(n, "hx-post")
			posts = append(posts, v)
		}
		want := []string{ackURL, "/ui/silences", webhookTestURL("ops"), webhookTestURL("broken")}
		if strings.Join(posts, " ") != strings.Join(want, " ") {
			t.Errorf("forms post to %q, want %q", posts, want)
		}
		if n := len(findAll(doc, func(n *html.Node) bool { return n.Data == "b" })); n != 0 {
			t.Errorf("a queue name was rendered as markup (%d <b>)", n)
		}
		if !strings.Contains(body, "612 msgs") || !strings.Contains(body, "500 msgs") {
			t.Error("value and threshold without their unit")
		}
	})

	t.Run("ack without the CSRF token is refused and changes nothing", func(t *testing.T) {
		if code, _, _ := post(ackURL, "note=x", false); code != http.StatusForbidden {
			t.Fatalf("status %d, want 403", code)
		}
		if _, ok, _ := st.AlertAck(ctx, a.ID); ok {
			t.Fatal("a refused request stored an ack")
		}
	})

	t.Run("ack a missing alert", func(t *testing.T) {
		code, doc, _ := post(alertControlURL("nope", "ack"), "", true)
		if code != http.StatusNotFound {
			t.Fatalf("status %d, want 404", code)
		}
		if got := textOf(findAll(doc, func(n *html.Node) bool { return hasClass(n, "action-error") })[0]); !strings.Contains(got, "no longer exists") {
			t.Errorf("error %q", got)
		}
	})

	t.Run("a note that is too long is refused, the note kept", func(t *testing.T) {
		long := strings.Repeat("n", maxAckNote+1)
		code, doc, _ := post(ackURL, "note="+long, true)
		if code != http.StatusUnprocessableEntity {
			t.Fatalf("status %d, want 422", code)
		}
		row := findAll(doc, func(n *html.Node) bool { return n.Data == "tr" && hasClass(n, "alert") })
		if len(row) != 1 || !strings.Contains(textOf(row[0]), "at most 500 characters") {
			t.Fatal("no error next to the ack control")
		}
		if _, ok, _ := st.AlertAck(ctx, a.ID); ok {
			t.Fatal("a refused ack was stored")
		}
	})

	t.Run("ack moves the alert to Acknowledged", func(t *testing.T) {
		code, doc, _ := post(ackURL, "note="+url.QueryEscape("on it <i>"), true)
		if code != http.StatusOK {
			t.Fatalf("status %d", code)
		}
		acked := findAll(doc, func(n *html.Node) bool { return n.Data == "tr" && hasClass(n, "alert-acked") })
		if len(acked) != 1 || !strings.Contains(textOf(acked[0]), "by local") || !strings.Contains(textOf(acked[0]), "on it <i>") {
			t.Fatalf("acknowledged rows: %d", len(acked))
		}
		if n := len(findAll(doc, func(n *html.Node) bool { return n.Data == "tr" && hasClass(n, "alert") })); n != 0 {
			t.Errorf("%d rows still under Firing", n)
		}
		ack, ok, err := st.AlertAck(ctx, a.ID)
		if err != nil || !ok || ack.By != "local" || ack.Note != "on it <i>" {
			t.Errorf("stored ack %+v %v %v", ack, ok, err)
		}
	})

	t.Run("bad silence is refused with the form kept", func(t *testing.T) {
		code, doc, _ := post("/ui/silences", "rule=queue_depth&queue=orders.*&for=2h&owner=ana&reason=", true)
		if code != http.StatusUnprocessableEntity {
			t.Fatalf("status %d, want 422", code)
		}
		errs := findAll(doc, func(n *html.Node) bool { return hasClass(n, "control-error") })
		if len(errs) != 1 || !strings.Contains(textOf(errs[0]), "reason: is required") {
			t.Fatal("no error next to the silence form")
		}
		kept := findAll(doc, func(n *html.Node) bool { v, _ := attr(n, "name"); return n.Data == "input" && v == "queue" })
		if v, _ := attr(kept[0], "value"); v != "orders.*" {
			t.Errorf("queue field %q after a refused form, want what was typed", v)
		}
		for _, body := range []string{"for=-1h&owner=a&reason=r", "for=2h&owner=a&reason=r&rule=bogus", "for=2h&owner=a&reason=r&queue=%5B", "for=&owner=a&reason=r"} {
			if code, _, _ := post("/ui/silences", body, true); code != http.StatusUnprocessableEntity {
				t.Errorf("%s: %d, want 422", body, code)
			}
		}
		if list, _ := st.ActiveSilences(ctx, time.Now()); len(list) != 0 {
			t.Fatalf("refused forms stored %d silences", len(list))
		}
	})

	t.Run("silence is added and covers the alert", func(t *testing.T) {
		code, doc, _ := post("/ui/silences", "rule=queue_depth&queue="+url.QueryEscape(a.Queue)+"&for=2h&owner=ana&reason=deploy", true)
		if code != http.StatusOK {
			t.Fatalf("status %d", code)
		}
		if rows := findAll(doc, func(n *html.Node) bool { return n.Data == "tr" && hasClass(n, "silence") }); len(rows) != 1 || !strings.Contains(textOf(rows[0]), "deploy") {
			t.Fatal("silence not listed")
		}
		list, _ := st.ActiveSilences(ctx, time.Now())
		if len(list) != 1 || list[0].Owner != "ana" || list[0].Queue != a.Queue || time.Until(list[0].EndsAt) < 119*time.Minute {
			t.Fatalf("stored %+v", list)
		}
		_, _, body := do(t, c, http.MethodGet, f.http.URL+"/alerts", "", "", map[string]string{"HX-Request": "true"})
		if !strings.Contains(body, "silenced until") {
			t.Error("the firing alert does not say it is silenced")
		}
	})

	t.Run("test notification shows its outcome next to the target", func(t *testing.T) {
		code, doc, _ := post(webhookTestURL("ops"), "", true)
		if code != http.StatusOK {
			t.Fatalf("ops: %d", code)
		}
		if got := textOf(findAll(doc, func(n *html.Node) bool { v, _ := attr(n, "data-webhook"); return v == "ops" })[0]); !strings.Contains(got, "delivered in") {
			t.Errorf("ops target says %q", got)
		}
		code, doc, _ = post(webhookTestURL("broken"), "", true)
		if code != http.StatusBadGateway {
			t.Fatalf("broken: %d, want 502", code)
		}
		if got := textOf(findAll(doc, func(n *html.Node) bool { v, _ := attr(n, "data-webhook"); return v == "broken" })[0]); !strings.Contains(got, "not delivered") || !strings.Contains(got, "403") {
			t.Errorf("broken target says %q", got)
		}
		if code, _, _ := post(webhookTestURL("nope"), "", true); code != http.StatusNotFound {
			t.Errorf("unknown webhook: %d, want 404", code)
		}
	})
}

// Without the alert store the page still renders and the controls say why
// they do nothing.
func TestAlertsPageWithoutActions(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	tok := csrfToken(t, f, c)
	code, _, body := do(t, c, http.MethodGet, f.http.URL+"/alerts", "", "", nil)
	if code != http.StatusOK || strings.Contains(body, `class="control ack"`) || !strings.Contains(body, "Silences are not available") {
		t.Errorf("GET /alerts = %d, ack forms or silences shown without a store", code)
	}
	if code, _, body := do(t, c, http.MethodPost, f.http.URL+alertControlURL("a1", "ack"), "application/x-www-form-urlencoded", "",
		map[string]string{"X-CSRF-Token": tok}); code != http.StatusServiceUnavailable || !strings.Contains(body, "not available") {
		t.Errorf("ack = %d", code)
	}
}

func TestBuildHeader(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	_, hdr, body := do(t, c, http.MethodGet, f.http.URL+"/", "", "", nil)
	build := hdr.Get(buildHeader)
	if len(build) != 12 {
		t.Fatalf("%s = %q", buildHeader, build)
	}
	metas := findAll(parseHTML(t, body), func(n *html.Node) bool { v, _ := attr(n, "name"); return n.Data == "meta" && v == "warren-build" })
	if len(metas) != 1 {
		t.Fatal("no warren-build meta")
	}
	if v, _ := attr(metas[0], "content"); v != build {
		t.Errorf("meta %q, header %q", v, build)
	}
	for _, p := range []string{"/queues", "/alerts", "/api/queues", "/healthz", "/api/nope"} {
		_, hdr, _ := do(t, c, http.MethodGet, f.http.URL+p, "", "", map[string]string{"HX-Request": "true"})
		if got := hdr.Get(buildHeader); got != build {
			t.Errorf("%s: %s = %q, want %q", p, buildHeader, got, build)
		}
	}
	other := New(Deps{Version: "other", Logger: testLogger()})
	if other.buildID == f.server.buildID {
		t.Error("another version has the same build id")
	}
}

// Every element that polls, on every page, sends at most one request at a
// time (hx-sync this:drop) and can be paused by app.js (data-refresh).
func TestEveryPollingElementIsGuarded(t *testing.T) {
	f, _, _ := alertsUIFixture(t)
	c := f.client(t)
	for _, p := range []string{"/", "/queues", queueHref("/", "orders"), "/consumers", consumerHref("demo"), "/alerts", "/settings", "/audit"} {
		code, _, body := do(t, c, http.MethodGet, f.http.URL+p, "", "", nil)
		if code != http.StatusOK {
			t.Errorf("GET %s = %d", p, code)
			continue
		}
		for _, n := range findAll(parseHTML(t, body), func(n *html.Node) bool {
			v, _ := attr(n, "hx-trigger")
			return strings.Contains(v, "every ")
		}) {
			if v, _ := attr(n, "hx-sync"); v != "this:drop" {
				t.Errorf("%s: <%s> polls with hx-sync %q, want this:drop", p, n.Data, v)
			}
			if _, ok := attr(n, "data-refresh"); !ok {
				t.Errorf("%s: <%s> polls without data-refresh", p, n.Data)
			}
		}
	}
}
