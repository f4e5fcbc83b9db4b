package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"

	"warren/alerts"
	"warren/store"
)

// Fixes from a trial user's report: webhook URLs in answers and logs, who
// acks and owns silences under auth, the PATCH message, probes behind an
// orchestrator, and HTML error pages.

// lockedBuffer collects log output written from several goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func openTestStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "warren.db"), testLogger())
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// The test-send answers (API and UI), the delivery log and the alerts page
// never show a webhook URL's path, query, fragment or password: the
// receiver at a secret path answers 503 echoing its path, the other is down.
func TestWebhookSecretsNotShown(t *testing.T) {
	const password, token, pathSecret = "hunter2pw", "tok3nabc", "s3cretpath"
	ctx := context.Background()
	st := openTestStore(t)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintf(w, "unavailable: %s", r.URL.Path)
	}))
	t.Cleanup(failing.Close)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downAddr := closed.Addr().String()
	_ = closed.Close()
	secretURL := func(hostPort string) string {
		return "http://user:" + password + "@" + hostPort + "/hook/" + pathSecret + "?token=" + token
	}
	var logs lockedBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	disp, err := alerts.NewDispatcher(st, []alerts.WebhookConfig{
		{Name: "failing", URL: secretURL(strings.TrimPrefix(failing.URL, "http://")), Format: "slack"},
		{Name: "down", URL: secretURL(downAddr), Format: "generic"},
	}, logger)
	if err != nil {
		t.Fatalf("NewDispatcher: %v", err)
	}
	// One failed delivery of each in the delivery log, as the dispatcher
	// records it (the web layer shows what the store holds).
	a := alerts.Alert{ID: "alert-1", Rule: alerts.RuleQueueDepth, Severity: "warning", State: "firing", Vhost: "/", Queue: "orders",
		Value: 12, Threshold: 10, StartedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if err := st.RecordTransition(ctx, a, []alerts.Notification{
		{DeliveryID: "d-failing", Webhook: "failing", Status: "firing", Alert: a, CreatedAt: a.StartedAt},
		{DeliveryID: "d-down", Webhook: "down", Status: "firing", Alert: a, CreatedAt: a.StartedAt},
	}); err != nil {
		t.Fatalf("RecordTransition: %v", err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- disp.Run(runCtx) }()
	eventually(t, 10*time.Second, func() bool {
		rows, err := st.DeliveryLog(ctx, 10)
		seen := map[string]bool{}
		for _, r := range rows {
			seen[r.Webhook] = true
		}
		return err == nil && seen["failing"] && seen["down"]
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("dispatcher Run: %v", err)
	}

	f := newFixtureWith(t, func(d *Deps) {
		d.Alerts = st
		d.AlertActions = st
		d.WebhookTester = disp
		d.Webhooks = []string{"failing", "down"}
		d.Logger = logger
	})
	c := f.client(t)
	var answers []string
	for _, name := range []string{"failing", "down"} {
		code, _, body := do(t, c, http.MethodPost, f.http.URL+"/api/webhooks/"+name+"/test", "application/json", "", nil)
		if code != http.StatusBadGateway {
			t.Errorf("test %s = %d %s, want 502", name, code, body)
		}
		answers = append(answers, body)
	}
	if !strings.Contains(answers[0], "unavailable: ***") || !strings.Contains(answers[1], `at http://***@`+downAddr+`/***?***`) {
		t.Errorf("test answers %q and %q should show the receiver's scrubbed echo and the redacted URL", answers[0], answers[1])
	}
	tok := csrfToken(t, f, c)
	_, _, uiAnswer := do(t, c, http.MethodPost, f.http.URL+webhookTestURL("down"), "application/x-www-form-urlencoded", "",
		map[string]string{csrfHeader: tok, "HX-Request": "true"})
	_, _, deliveries := do(t, c, http.MethodGet, f.http.URL+"/api/deliveries", "", "", nil)
	_, _, alertsPage := do(t, c, http.MethodGet, f.http.URL+"/alerts", "", "", nil)
	if !strings.Contains(deliveries, "d-failing") || !strings.Contains(alertsPage, "503") {
		t.Errorf("the delivery log should hold the failed attempts:\n%s", deliveries)
	}
	for where, text := range map[string]string{
		"test answer (failing)": answers[0], "test answer (down)": answers[1], "ui test answer": uiAnswer,
		"delivery log": deliveries, "alerts page": alertsPage, "log output": logs.String(),
	} {
		for _, s := range []string{password, token, pathSecret, "user:"} {
			if strings.Contains(text, s) {
				t.Errorf("%s contains %q:\n%s", where, s, text)
			}
		}
	}
}

// With authentication an ack's "by" and a silence's "owner" are the
// signed-in user: another name is refused (400/422) and nothing is stored;
// left out, the user's name is recorded.
func TestAckByAndSilenceOwnerAreTheSignedInUser(t *testing.T) {
	ctx := context.Background()
	st := openTestStore(t)
	a := alerts.Alert{ID: "alert-1", Rule: alerts.RuleQueueDepth, Severity: "warning", State: "firing", Vhost: "/", Queue: "orders",
		Value: 12, Threshold: 10, StartedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if err := st.RecordTransition(ctx, a, nil); err != nil {
		t.Fatal(err)
	}
	f := newFixtureWith(t, func(d *Deps) {
		d.Auth = testAuth(t)
		d.Alerts = st
		d.AlertActions = st
	})
	op := basic("otto", operatorPassword)
	c := f.client(t)
	api := func(path, body string) (int, string) {
		code, _, resp := do(t, c, http.MethodPost, f.http.URL+path, "application/json", body, op)
		return code, resp
	}
	errorOf := func(body string) string {
		var e errorBody
		_ = json.Unmarshal([]byte(body), &e)
		return e.Error
	}

	code, body := api("/api/alerts/alert-1/ack", `{"by":"bob","note":"not me"}`)
	if want := `by: must be the signed-in user "otto" (or left out) when authentication is on, got "bob"`; code != 400 || errorOf(body) != want {
		t.Errorf("ack as bob = %d %s, want 400 %q", code, body, want)
	}
	if _, ok, err := st.AlertAck(ctx, "alert-1"); err != nil || ok {
		t.Fatalf("a refused ack was stored (%v, %v)", ok, err)
	}
	for _, in := range []string{`{"note":"mine"}`, `{"by":"otto","note":"mine"}`, `{"by":" otto ","note":"mine"}`} {
		code, body := api("/api/alerts/alert-1/ack", in)
		if code != 200 || !strings.Contains(body, `"acked_by":"otto"`) {
			t.Errorf("ack %s = %d %s, want 200 by otto", in, code, body)
		}
	}

	code, body = api("/api/silences", `{"queue":"orders","duration":"1h","owner":"bob","reason":"deploy"}`)
	if want := `owner: must be the signed-in user "otto" (or left out) when authentication is on, got "bob"`; code != 400 || errorOf(body) != want {
		t.Errorf("silence owned by bob = %d %s, want 400 %q", code, body, want)
	}
	code, body = api("/api/silences", `{"queue":"orders","duration":"1h","reason":"deploy"}`)
	if code != 201 || !strings.Contains(body, `"owner":"otto"`) {
		t.Errorf("silence without owner = %d %s, want 201 owned by otto", code, body)
	}

	// The page's form: the owner field is the user's and read-only; a
	// forged owner is refused next to the form.
	tok, _ := tokenAs(t, f, c, op)
	hx := withHeaders(op, map[string]string{csrfHeader: tok, "HX-Request": "true"})
	code, _, frag := do(t, c, http.MethodPost, f.http.URL+"/ui/silences", "application/x-www-form-urlencoded",
		"queue=other&for=2h&owner=bob&reason=deploy", hx)
	doc := parseHTML(t, frag)
	owner := findAll(doc, func(n *html.Node) bool { v, _ := attr(n, "name"); return n.Data == "input" && v == "owner" })
	errs := findAll(doc, func(n *html.Node) bool { return hasClass(n, "control-error") && textOf(n) != "" })
	if code != http.StatusUnprocessableEntity || len(errs) != 1 || !strings.Contains(textOf(errs[0]), `owner: must be the signed-in user "otto"`) {
		t.Errorf("ui silence owned by bob = %d, errors %d: %s", code, len(errs), frag)
	}
	if len(owner) != 1 {
		t.Fatalf("want one owner input, got %d", len(owner))
	}
	if v, _ := attr(owner[0], "value"); v != "otto" {
		t.Errorf("owner input value = %q, want otto", v)
	}
	if _, ro := attr(owner[0], "readonly"); !ro {
		t.Error("owner input should be read-only with authentication")
	}
	list, err := st.ActiveSilences(ctx, time.Now())
	if err != nil || len(list) != 1 || list[0].Owner != "otto" {
		t.Errorf("silences = %+v %v, want only otto's", list, err)
	}
}

// Without authentication (loopback only) the body names who acts, as
// before: by is required, any name is taken, the form's owner is editable.
func TestAckByWithoutAuthIsTheBodyValue(t *testing.T) {
	ctx := context.Background()
	st := openTestStore(t)
	a := alerts.Alert{ID: "alert-1", Rule: alerts.RuleQueueDepth, Severity: "warning", State: "firing", Vhost: "/", Queue: "orders",
		Value: 12, Threshold: 10, StartedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if err := st.RecordTransition(ctx, a, nil); err != nil {
		t.Fatal(err)
	}
	f := newFixtureWith(t, func(d *Deps) { d.Alerts = st; d.AlertActions = st })
	c := f.client(t)
	if code, _, body := do(t, c, http.MethodPost, f.http.URL+"/api/alerts/alert-1/ack", "application/json", `{"by":"bob"}`, nil); code != 200 || !strings.Contains(body, `"acked_by":"bob"`) {
		t.Errorf("ack by bob = %d %s", code, body)
	}
	if code, _, body := do(t, c, http.MethodPost, f.http.URL+"/api/alerts/alert-1/ack", "application/json", `{"note":"x"}`, nil); code != 400 || !strings.Contains(body, "by: is required") {
		t.Errorf("ack without by = %d %s, want 400", code, body)
	}
	// No body at all is an empty object, not a JSON syntax error (a trial
	// got "unexpected end of input" for a body-less ack).
	if code, _, body := do(t, c, http.MethodPost, f.http.URL+"/api/alerts/alert-1/ack", "application/json", "", nil); code != 400 || !strings.Contains(body, "by: is required") {
		t.Errorf("ack without a body = %d %s, want 400 naming by", code, body)
	}
	_, _, page := do(t, c, http.MethodGet, f.http.URL+"/alerts", "", "", nil)
	owner := findAll(parseHTML(t, page), func(n *html.Node) bool { v, _ := attr(n, "name"); return n.Data == "input" && v == "owner" })
	if len(owner) != 1 {
		t.Fatalf("want one owner input, got %d", len(owner))
	}
	if _, ro := attr(owner[0], "readonly"); ro {
		t.Error("owner input should be editable without authentication")
	}
}

// An empty or unknown PATCH body gets a plain message (it was escaped
// twice: `give one or more of \"concurrency\\\", ...`).
func TestPatchConsumerMessagesReadable(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	for body, want := range map[string]string{
		`{}`:         "nothing to change: give one or more of concurrency, prefetch, throttle_max_concurrent or throttle_delay_ms",
		`{"foo": 1}`: `unknown field "foo": only concurrency, prefetch, throttle_max_concurrent or throttle_delay_ms can be changed`,
	} {
		code, _, resp := do(t, c, http.MethodPatch, f.http.URL+"/api/consumers/demo", "application/json", body, nil)
		var e errorBody
		if err := json.Unmarshal([]byte(resp), &e); err != nil || code != 400 || e.Error != want {
			t.Errorf("PATCH %s = %d %s, want 400 %q", body, code, resp, want)
		}
		if strings.Contains(resp, `\\`) {
			t.Errorf("PATCH %s: answer has escaped backslashes: %s", body, resp)
		}
	}
}

// Orchestrator probes send the pod's IP as Host: /healthz and /readyz
// answer it; everything else still refuses a host it does not know.
func TestProbesAnswerAnyHost(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	get := func(path, host string) (int, string) {
		req, err := http.NewRequest(http.MethodGet, f.http.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	for _, host := range []string{"10.42.0.17:8080", "evil.example"} {
		for _, p := range []string{"/healthz", "/readyz"} {
			if code, body := get(p, host); code != http.StatusOK || !strings.Contains(body, `"status":"ok"`) {
				t.Errorf("GET %s with Host %s = %d %s, want 200", p, host, code, body)
			}
			// Some load balancers probe with HEAD (it was a 405).
			req, _ := http.NewRequest(http.MethodHead, f.http.URL+p, nil)
			req.Host = host
			if resp, err := c.Do(req); err != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("HEAD %s with Host %s: %v %v, want 200", p, host, err, resp)
			} else {
				resp.Body.Close()
			}
		}
		for _, p := range []string{"/", "/api/queues", "/metrics", "/healthz/", "/readyz/x"} {
			if code, _ := get(p, host); code != http.StatusMisdirectedRequest {
				t.Errorf("GET %s with Host %s = %d, want 421", p, host, code)
			}
		}
	}
}

// A page request's error is an HTML page in the layout; /api, htmx and
// control requests keep {"error"}.
func TestPageErrorsAreHTML(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	for _, tc := range []struct {
		path   string
		header map[string]string
		code   int
		html   bool
		want   string
	}{
		{"/queues/%2F/orders?range=x", nil, 400, true, "range"},
		{"/consumers/demo?range=2w", nil, 400, true, "range"},
		{"/no/such/page", nil, 404, true, "not found"},
		{"/queues/%2F/orders?range=x", map[string]string{"HX-Request": "true"}, 400, false, "range"},
		{"/queues/%2F/orders/charts?range=x", map[string]string{"HX-Request": "true"}, 400, false, "range"},
		{"/api/nope", nil, 404, false, "not found"},
		{"/ui/consumers/demo/pause", nil, 405, false, ""},
	} {
		code, hdr, body := do(t, c, http.MethodGet, f.http.URL+tc.path, "", "", tc.header)
		ct := hdr.Get("Content-Type")
		if code != tc.code {
			t.Errorf("GET %s = %d, want %d: %s", tc.path, code, tc.code, body)
			continue
		}
		if !tc.html {
			var e errorBody
			if !strings.HasPrefix(ct, "application/json") || json.Unmarshal([]byte(body), &e) != nil || !strings.Contains(e.Error, tc.want) {
				t.Errorf("GET %s: %s %s, want a JSON error naming %q", tc.path, ct, body, tc.want)
			}
			continue
		}
		if !strings.HasPrefix(ct, "text/html") {
			t.Errorf("GET %s: Content-Type %q, want text/html", tc.path, ct)
			continue
		}
		doc := parseHTML(t, body)
		panels := findAll(doc, func(n *html.Node) bool { return hasClass(n, "error-page") })
		titles := findAll(doc, func(n *html.Node) bool { return n.Data == "title" })
		if len(panels) != 1 || !strings.Contains(textOf(panels[0]), tc.want) || len(titles) != 1 ||
			!strings.HasPrefix(textOf(titles[0]), fmt.Sprint(tc.code)) {
			t.Errorf("GET %s: want an error page naming %q, got %s", tc.path, tc.want, body)
		}
	}
}

// Refused before sign-in, a browser gets the error page without the
// version or the broker's state.
func TestErrorPageBeforeSignInShowsNothing(t *testing.T) {
	f := newFixtureWith(t, func(d *Deps) { d.Auth = testAuth(t); d.Version = "v9.8.7-secret-build" })
	c := f.client(t)
	code, hdr, body := do(t, c, http.MethodGet, f.http.URL+"/queues", "", "", nil)
	if code != http.StatusUnauthorized || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") || hdr.Get("WWW-Authenticate") == "" {
		t.Fatalf("GET /queues without credentials = %d %q %q", code, hdr.Get("Content-Type"), hdr.Get("WWW-Authenticate"))
	}
	if !strings.Contains(body, "authentication required") || strings.Contains(body, "v9.8.7") || strings.Contains(body, "polled") {
		t.Errorf("error page before sign-in: %s", body)
	}
}
