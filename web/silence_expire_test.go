package web

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"warren/alerts"
	"warren/store"
)

// Silences are bounded (7 days, the form's largest choice) and can be
// ended through the API; ending one is audited with its end before and
// after. Real store, real audit log.
func TestSilenceLimitAndExpireAPI(t *testing.T) {
	st := openAuditStore(t)
	ctx := t.Context()
	f := newFixtureWith(t, func(d *Deps) {
		d.Auth = testAuth(t)
		d.Audit = st
		d.Alerts = st
		d.AlertActions = st
	})
	op := basic("otto", operatorPassword)
	c := f.client(t)
	call := func(method, path, contentType, body string) (int, string) {
		t.Helper()
		code, _, b := do(t, c, method, f.http.URL+path, contentType, body, op)
		return code, b
	}

	for _, tc := range []struct{ name, body, field string }{
		{"duration beyond the limit", `{"owner":"otto","reason":"r","duration":"100000h"}`, "duration: at most 168h (7 days)"},
		{"duration just beyond the limit", `{"owner":"otto","reason":"r","duration":"168h1m"}`, "duration: at most 168h"},
		{"ends_at beyond the limit", `{"owner":"otto","reason":"r","ends_at":"` + time.Now().Add(8*24*time.Hour).UTC().Format(time.RFC3339) + `"}`, "ends_at: at most 168h"},
		{"ends_at in the past", `{"owner":"otto","reason":"r","ends_at":"2000-01-01T00:00:00Z"}`, "ends_at: must be in the future"},
		{"no end at all", `{"owner":"otto","reason":"r"}`, "ends_at or duration"},
		{"zero duration", `{"owner":"otto","reason":"r","duration":"0s"}`, "duration: want a positive duration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := call(http.MethodPost, "/api/silences", "application/json", tc.body)
			if code != http.StatusBadRequest || !strings.Contains(body, tc.field) {
				t.Errorf("= %d %s, want 400 naming %q", code, body, tc.field)
			}
		})
	}
	if list, _ := st.ActiveSilences(ctx, time.Now()); len(list) != 0 {
		t.Fatalf("refused silences were stored: %+v", list)
	}

	code, body := call(http.MethodPost, "/api/silences", "application/json", `{"owner":"otto","reason":"the longest","duration":"168h"}`)
	var sl alerts.Silence
	if err := json.Unmarshal([]byte(body), &sl); code != http.StatusCreated || err != nil || sl.ID == 0 {
		t.Fatalf("a 168h silence = %d %s, want 201", code, body)
	}
	path := "/api/silences/" + strconv.FormatInt(sl.ID, 10)

	t.Run("DELETE without the JSON content type or a CSRF token is refused", func(t *testing.T) {
		if code, body := call(http.MethodDelete, path, "", ""); code != http.StatusForbidden {
			t.Errorf("= %d %s, want 403", code, body)
		}
		if list, _ := st.ActiveSilences(ctx, time.Now()); len(list) != 1 {
			t.Errorf("a refused request ended the silence")
		}
	})
	t.Run("DELETE ends it and is audited", func(t *testing.T) {
		if code, body := call(http.MethodDelete, path, "application/json", ""); code != http.StatusNoContent {
			t.Fatalf("= %d %s, want 204", code, body)
		}
		code, body := call(http.MethodGet, "/api/silences", "", "")
		if code != http.StatusOK || strings.Contains(body, "the longest") {
			t.Errorf("GET /api/silences = %d %s, want the silence gone", code, body)
		}
		got, err := st.AuditLog(ctx, store.AuditQuery{Limit: 1})
		if err != nil || len(got) != 1 {
			t.Fatalf("audit log: %v %+v", err, got)
		}
		e := got[0]
		wantTarget := "silence #" + strconv.FormatInt(sl.ID, 10) + " rule=* vhost=* queue=*"
		if e.Action != "silence.expire" || e.Target != wantTarget || e.Outcome != store.AuditOK || e.Actor != "otto" ||
			e.OldValue != "until "+dateTime(sl.EndsAt) || e.NewValue == "" || e.NewValue == e.OldValue {
			t.Errorf("audit entry %+v, want silence.expire of %q from its old end to now", e, wantTarget)
		}
	})
	for _, tc := range []struct {
		name, path string
		code       int
	}{
		{"DELETE of an ended silence", path, http.StatusConflict},
		{"DELETE of an unknown silence", "/api/silences/999999", http.StatusNotFound},
		{"DELETE of a bad id", "/api/silences/x1", http.StatusBadRequest},
		{"DELETE of id 0", "/api/silences/0", http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := call(http.MethodDelete, tc.path, "application/json", ""); code != tc.code || !strings.Contains(body, "silence") {
				t.Errorf("= %d %s, want %d naming the silence", code, body, tc.code)
			}
		})
	}
	got, err := st.AuditLog(ctx, store.AuditQuery{Action: "silence.expire", Limit: 10})
	if err != nil || len(got) != 3 || got[0].Outcome != store.AuditRejected || got[1].Outcome != store.AuditRejected {
		t.Errorf("audit of the refused expiries: %v %+v, want two rejected rows after the ok one", err, got)
	}
}

// The alerts page offers an "end" button per silence in force (operators
// only); it ends the silence and answers with the panel re-rendered.
func TestSilenceEndButton(t *testing.T) {
	f, st, a := alertsUIFixture(t)
	ctx := t.Context()
	c := f.client(t)
	tok := csrfToken(t, f, c)
	sl, err := st.CreateSilence(ctx, alerts.Silence{Queue: a.Queue, EndsAt: time.Now().Add(time.Hour), Owner: "ana", Reason: "deploy <b>"})
	if err != nil {
		t.Fatal(err)
	}
	expireURL := silenceExpireURL(sl.ID)
	post := func(path string, withToken bool) (int, *html.Node, string) {
		t.Helper()
		h := map[string]string{"HX-Request": "true"}
		if withToken {
			h["X-CSRF-Token"] = tok
		}
		code, _, body := do(t, c, http.MethodPost, f.http.URL+path, "application/x-www-form-urlencoded", "", h)
		return code, parseHTML(t, body), body
	}
	silenceRows := func(doc *html.Node) []*html.Node {
		return findAll(doc, func(n *html.Node) bool { return n.Data == "tr" && hasClass(n, "silence") })
	}

	_, _, page := do(t, c, http.MethodGet, f.http.URL+"/alerts", "", "", nil)
	doc := parseHTML(t, page)
	rows := silenceRows(section(t, doc, "silences"))
	if len(rows) != 1 {
		t.Fatalf("%d silence rows, want 1", len(rows))
	}
	forms := findAll(rows[0], func(n *html.Node) bool { v, _ := attr(n, "hx-post"); return n.Data == "form" && v == expireURL })
	if len(forms) != 1 {
		t.Fatalf("no end form posting to %s in the silence's row", expireURL)
	}
	if v, _ := attr(forms[0], "hx-target"); v != "closest section" {
		t.Errorf("end form targets %q, want its panel", v)
	}

	t.Run("without the CSRF token nothing ends", func(t *testing.T) {
		if code, _, _ := post(expireURL, false); code != http.StatusForbidden {
			t.Fatalf("status %d, want 403", code)
		}
		if list, _ := st.ActiveSilences(ctx, time.Now()); len(list) != 1 {
			t.Fatal("a refused request ended the silence")
		}
	})
	t.Run("end", func(t *testing.T) {
		code, doc, body := post(expireURL, true)
		if code != http.StatusOK {
			t.Fatalf("status %d: %s", code, body)
		}
		panel := section(t, doc, "silences")
		if n := len(silenceRows(panel)); n != 0 {
			t.Errorf("%d silence rows after ending it", n)
		}
		if !strings.Contains(textOf(doc), "silence "+strconv.FormatInt(sl.ID, 10)+" ended") {
			t.Error("the panel does not say the silence ended")
		}
		if list, _ := st.ActiveSilences(ctx, time.Now()); len(list) != 0 {
			t.Fatalf("still in force: %+v", list)
		}
		_, _, alertsPanel := do(t, c, http.MethodGet, f.http.URL+"/alerts", "", "", map[string]string{"HX-Request": "true"})
		if strings.Contains(alertsPanel, "silenced until") {
			t.Error("the firing alert still says it is silenced")
		}
	})
	t.Run("end again", func(t *testing.T) {
		code, doc, _ := post(expireURL, true)
		errs := findAll(doc, func(n *html.Node) bool { return hasClass(n, "action-error") })
		if code != http.StatusConflict || len(errs) != 1 || !strings.Contains(textOf(errs[0]), "already ended") {
			t.Errorf("status %d, errors %d; want 409 saying it already ended", code, len(errs))
		}
	})
	t.Run("unknown and bad ids", func(t *testing.T) {
		if code, _, _ := post(silenceExpireURL(999999), true); code != http.StatusNotFound {
			t.Errorf("unknown: %d, want 404", code)
		}
		if code, _, _ := post("/ui/silences/abc/expire", true); code != http.StatusBadRequest {
			t.Errorf("bad id: %d, want 400", code)
		}
	})
	t.Run("a form asking for longer than 7 days is refused", func(t *testing.T) {
		code, _, _ := do(t, c, http.MethodPost, f.http.URL+"/ui/silences", "application/x-www-form-urlencoded",
			"for=169h&owner=ana&reason=r", map[string]string{"X-CSRF-Token": tok})
		if code != http.StatusUnprocessableEntity {
			t.Errorf("status %d, want 422", code)
		}
		if list, _ := st.ActiveSilences(ctx, time.Now()); len(list) != 0 {
			t.Errorf("stored %+v", list)
		}
	})
}

// Viewers see the silences but no button to end them.
func TestViewerHasNoSilenceEndButton(t *testing.T) {
	st := openAuditStore(t)
	if _, err := st.CreateSilence(t.Context(), alerts.Silence{EndsAt: time.Now().Add(time.Hour), Owner: "ana", Reason: "r"}); err != nil {
		t.Fatal(err)
	}
	f := newFixtureWith(t, func(d *Deps) {
		d.Auth = testAuth(t)
		d.Alerts = st
		d.AlertActions = st
	})
	for _, tc := range []struct {
		who  map[string]string
		want int
	}{{basic("vera", viewerPassword), 0}, {basic("otto", operatorPassword), 1}} {
		_, _, page := do(t, f.client(t), http.MethodGet, f.http.URL+"/alerts", "", "", tc.who)
		doc := parseHTML(t, page)
		if n := len(findAll(doc, func(n *html.Node) bool { return n.Data == "tr" && hasClass(n, "silence") })); n != 1 {
			t.Fatalf("%d silence rows, want 1", n)
		}
		if n := len(findAll(doc, func(n *html.Node) bool { return n.Data == "form" && hasClass(n, "silence-expire") })); n != tc.want {
			t.Errorf("%v: %d end buttons, want %d", tc.who, n, tc.want)
		}
	}
}
