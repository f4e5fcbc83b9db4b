package web

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"warren/alerts"
	"warren/store"
)

func openAuditStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "warren.db"), testLogger())
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// TestEveryOperatorActionIsAudited drives each operator action through the
// UI and the API, against a real store, a real dispatcher and a real webhook
// receiver (the consumers are the package's fake controller), and checks the
// audit row of each: who, what, target, old -> new, outcome, from where.
func TestEveryOperatorActionIsAudited(t *testing.T) {
	st := openAuditStore(t)
	ctx := t.Context()
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(recv.Close)
	// A receiver that is gone: its test send is not accepted.
	gone := httptest.NewServer(http.NotFoundHandler())
	goneURL := gone.URL
	gone.Close()
	disp, err := alerts.NewDispatcher(st, []alerts.WebhookConfig{{Name: "ops", URL: recv.URL + "/hook", Format: "slack"},
		{Name: "down", URL: goneURL + "/hook", Format: "slack"}}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	a := alerts.Alert{ID: "alert-1", Rule: alerts.RuleQueueDepth, Severity: "warning", State: "firing", Vhost: "/", Queue: "orders",
		Value: 12, Threshold: 10, StartedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if err := st.RecordTransition(ctx, a, nil); err != nil {
		t.Fatal(err)
	}
	f := newFixtureWith(t, func(d *Deps) {
		d.Auth = testAuth(t)
		d.Audit = st
		d.Alerts = st
		d.AlertActions = st
		d.WebhookTester = disp
	})
	op := basic("otto", operatorPassword)
	c := f.client(t)
	tok, _ := tokenAs(t, f, c, op)
	form := func(path, body string) int {
		code, _, _ := do(t, c, http.MethodPost, f.http.URL+path, "application/x-www-form-urlencoded", body,
			withHeaders(op, map[string]string{csrfHeader: tok, "HX-Request": "true"}))
		return code
	}
	api := func(method, path, body string) int {
		code, _, _ := do(t, c, method, f.http.URL+path, "application/json", body, op)
		return code
	}

	steps := []struct {
		name string
		do   func() int
		code int
		want store.AuditEntry // ID, At and Actor/Role/RemoteAddr are checked apart
	}{
		{"ui concurrency +", func() int { return form("/ui/consumers/demo/concurrency", "op=inc") }, 200,
			store.AuditEntry{Action: auditConcurrency, Target: "demo", OldValue: "5", NewValue: "6", Outcome: store.AuditOK}},
		{"ui prefetch set", func() int { return form("/ui/consumers/demo/prefetch", "op=set&value=20") }, 200,
			store.AuditEntry{Action: auditPrefetch, Target: "demo", OldValue: "10", NewValue: "20", Outcome: store.AuditOK}},
		{"ui prefetch out of range", func() int { return form("/ui/consumers/demo/prefetch", "op=set&value=5000") }, 422,
			store.AuditEntry{Action: auditPrefetch, Target: "demo", OldValue: "20", NewValue: "5000", Outcome: store.AuditRejected}},
		{"ui pause", func() int { return form("/ui/consumers/demo/pause", "") }, 200,
			store.AuditEntry{Action: auditPause, Target: "demo", OldValue: "running", NewValue: "paused", Outcome: store.AuditOK}},
		{"ui resume", func() int { return form("/ui/consumers/demo/resume", "") }, 200,
			store.AuditEntry{Action: auditResume, Target: "demo", OldValue: "paused", NewValue: "running", Outcome: store.AuditOK}},
		{"api concurrency", func() int { return api(http.MethodPatch, "/api/consumers/demo", `{"concurrency": 7}`) }, 200,
			store.AuditEntry{Action: auditConcurrency, Target: "demo", OldValue: "6", NewValue: "7", Outcome: store.AuditOK}},
		{"api pause", func() int { return api(http.MethodPost, "/api/consumers/demo/pause", "") }, 200,
			store.AuditEntry{Action: auditPause, Target: "demo", OldValue: "running", NewValue: "paused", Outcome: store.AuditOK}},
		{"api resume", func() int { return api(http.MethodPost, "/api/consumers/demo/resume", "") }, 200,
			store.AuditEntry{Action: auditResume, Target: "demo", OldValue: "paused", NewValue: "running", Outcome: store.AuditOK}},
		{"api ack", func() int { return api(http.MethodPost, "/api/alerts/alert-1/ack", `{"by":"otto","note":"on it"}`) }, 200,
			store.AuditEntry{Action: auditAlertAck, Target: "alert-1", NewValue: "acknowledged by otto: on it", Outcome: store.AuditOK}},
		{"api ack again replaces", func() int { return api(http.MethodPost, "/api/alerts/alert-1/ack", `{"by":"otto","note":"fixed"}`) }, 200,
			store.AuditEntry{Action: auditAlertAck, Target: "alert-1", OldValue: "acknowledged by otto: on it", NewValue: "acknowledged by otto: fixed", Outcome: store.AuditOK}},
		{"api silence", func() int {
			return api(http.MethodPost, "/api/silences", `{"queue":"orders*","duration":"2h","owner":"otto","reason":"deploy"}`)
		}, 201, store.AuditEntry{Action: auditSilenceCreate, Target: "rule=* vhost=* queue=orders*", Outcome: store.AuditOK}},
		{"api webhook test", func() int { return api(http.MethodPost, "/api/webhooks/ops/test", "") }, 200,
			store.AuditEntry{Action: auditWebhookTest, Target: "ops", NewValue: "test notification delivered", Outcome: store.AuditOK}},
		{"ui ack", func() int { return form("/ui/alerts/alert-1/ack", "note=paged") }, 200,
			store.AuditEntry{Action: auditAlertAck, Target: "alert-1", OldValue: "acknowledged by otto: fixed", NewValue: "acknowledged by otto: paged", Outcome: store.AuditOK}},
		{"ui silence", func() int {
			return form("/ui/silences", "rule=&vhost=%2F&queue=orders&for=30m&owner=otto&reason=maintenance")
		}, 200,
			store.AuditEntry{Action: auditSilenceCreate, Target: "rule=* vhost=/ queue=orders", Outcome: store.AuditOK}},
		{"ui webhook test", func() int { return form("/ui/webhooks/ops/test", "") }, 200,
			store.AuditEntry{Action: auditWebhookTest, Target: "ops", NewValue: "test notification delivered", Outcome: store.AuditOK}},
		// Sent but not accepted is a failed action, not "ok" (a trial saw
		// abandoned tests audited as ok).
		{"api webhook test not accepted", func() int { return api(http.MethodPost, "/api/webhooks/down/test", "") }, 502,
			store.AuditEntry{Action: auditWebhookTest, Target: "down", Outcome: store.AuditFailed}},
		// Refused before anything changed, and still on the record (a
		// trial found these missing).
		{"api silence too long", func() int {
			return api(http.MethodPost, "/api/silences", `{"queue":"orders","duration":"100000h","reason":"r"}`)
		}, 400, store.AuditEntry{Action: auditSilenceCreate, Target: "rule=* vhost=* queue=orders", Outcome: store.AuditRejected}},
		{"api ack malformed", func() int { return api(http.MethodPost, "/api/alerts/alert-1/ack", `{"by":`) }, 400,
			store.AuditEntry{Action: auditAlertAck, Target: "alert-1", Outcome: store.AuditRejected}},
		{"api webhook test unknown", func() int { return api(http.MethodPost, "/api/webhooks/nope/test", "") }, 404,
			store.AuditEntry{Action: auditWebhookTest, Target: "nope", Outcome: store.AuditRejected}},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			if code := step.do(); code != step.code {
				t.Fatalf("status %d, want %d", code, step.code)
			}
			got, err := st.AuditLog(ctx, store.AuditQuery{Limit: 1})
			if err != nil || len(got) != 1 {
				t.Fatalf("reading the newest audit row: %v %+v", err, got)
			}
			e := got[0]
			if e.Actor != "otto" || e.Role != "operator" || e.RemoteAddr != "127.0.0.1" || e.At.IsZero() {
				t.Errorf("who/where/when: %+v", e)
			}
			w := step.want
			if e.Action != w.Action || e.Target != w.Target || e.OldValue != w.OldValue || e.Outcome != w.Outcome ||
				(w.NewValue != "" && e.NewValue != w.NewValue) {
				t.Errorf("entry:\n got %+v\nwant %+v", e, w)
			}
			if w.Outcome != store.AuditOK && e.Detail == "" {
				t.Errorf("a %s action carries no detail", e.Outcome)
			}
		})
	}
	all, err := st.AuditLog(ctx, store.AuditQuery{Limit: 1000})
	if err != nil || len(all) != len(steps) {
		t.Fatalf("%d audit rows for %d actions (%v)", len(all), len(steps), err)
	}

	// The page and the API show them, newest first, filterable.
	var body auditJSON
	code, _, raw := do(t, c, http.MethodGet, f.http.URL+"/api/audit?action=consumer.pause&limit=1", "", "", op)
	if err := json.Unmarshal([]byte(raw), &body); code != 200 || err != nil {
		t.Fatalf("GET /api/audit = %d %v %s", code, err, raw)
	}
	if len(body.Entries) != 1 || body.Entries[0].Action != auditPause || body.NextBefore == 0 {
		t.Errorf("filtered page: %+v", body)
	}
	code, _, raw = do(t, c, http.MethodGet, f.http.URL+"/api/audit?action=consumer.pause&before="+strconv.FormatInt(body.NextBefore, 10), "", "", op)
	if err := json.Unmarshal([]byte(raw), &body); code != 200 || err != nil || len(body.Entries) != 1 || body.NextBefore != 0 {
		t.Errorf("second page: %d %v %+v", code, err, body)
	}
	for _, bad := range []string{"limit=0", "limit=x", "before=-1", "before=abc"} {
		if code, _, raw := do(t, c, http.MethodGet, f.http.URL+"/api/audit?"+bad, "", "", op); code != 400 || !strings.Contains(raw, strings.Split(bad, "=")[0]) {
			t.Errorf("GET /api/audit?%s = %d %s, want 400 naming the parameter", bad, code, raw)
		}
	}
	code, _, page := do(t, c, http.MethodGet, f.http.URL+"/audit", "", "", basic("vera", viewerPassword))
	if code != 200 {
		t.Fatalf("GET /audit as viewer = %d", code)
	}
	rows := findAll(parseHTML(t, page), func(n *html.Node) bool { return n.Data == "tr" && hasClass(n, "audit-entry") })
	if len(rows) != len(steps) {
		t.Fatalf("audit page shows %d rows, want %d", len(rows), len(steps))
	}
	if txt := textOf(rows[len(rows)-1]); !strings.Contains(txt, "otto") || !strings.Contains(txt, "5") || !strings.Contains(txt, "→") || !strings.Contains(txt, "6") {
		t.Errorf("oldest row does not show who and old → new: %q", txt)
	}
}

// TestAuditPageEscapesNames: targets come from URLs and broker names.
func TestAuditPageEscapesNames(t *testing.T) {
	st := openAuditStore(t)
	if _, err := st.RecordAudit(t.Context(), store.AuditEntry{Actor: "<i>x</i>", Role: "operator", Action: auditPause,
		Target: "<img src=x onerror=alert(1)>", Outcome: store.AuditOK}); err != nil {
		t.Fatal(err)
	}
	f := newFixtureWith(t, func(d *Deps) { d.Audit = st })
	_, _, page := do(t, f.client(t), http.MethodGet, f.http.URL+"/audit", "", "", nil)
	doc := parseHTML(t, page)
	if n := findAll(doc, func(n *html.Node) bool { return n.Data == "img" || n.Data == "i" }); len(n) != 0 {
		t.Errorf("%d elements injected through the audit log", len(n))
	}
	if !strings.Contains(page, "&lt;img src=x onerror=alert(1)&gt;") {
		t.Error("the target is not shown as text")
	}
}

func TestAuditPageWithoutStore(t *testing.T) {
	f := newFixture(t)
	code, _, page := do(t, f.client(t), http.MethodGet, f.http.URL+"/audit", "", "", nil)
	if code != 200 || !strings.Contains(page, "does not keep an audit log") {
		t.Errorf("GET /audit without a log = %d", code)
	}
	if code, _, _ := do(t, f.client(t), http.MethodGet, f.http.URL+"/api/audit", "", "", nil); code != http.StatusServiceUnavailable {
		t.Errorf("GET /api/audit without a log = %d, want 503", code)
	}
}
