package web

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"warren/alerts"
	"warren/store"
)

// TestAlertActionsAPI drives ack, silences, the delivery log and the test
// notification through the JSON API against a real store, a real dispatcher
// and a real webhook receiver.
func TestAlertActionsAPI(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "warren.db"), testLogger())
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	var hits atomic.Int32
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(recv.Close)
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
	}))
	t.Cleanup(broken.Close)
	disp, err := alerts.NewDispatcher(st, []alerts.WebhookConfig{
		{Name: "ops", URL: recv.URL + "/hook", Format: "slack"},
		{Name: "broken", URL: broken.URL + "/hook", Format: "generic"},
	}, testLogger())
	if err != nil {
		t.Fatalf("NewDispatcher: %v", err)
	}
	a := alerts.Alert{ID: "alert-1", Rule: alerts.RuleQueueDepth, Severity: "warning", State: "firing", Vhost: "/", Queue: "orders",
		Value: 12, Threshold: 10, StartedAt: time.Now().UTC().Truncate(time.Millisecond)}
	if err := st.RecordTransition(ctx, a, nil); err != nil {
		t.Fatalf("RecordTransition: %v", err)
	}
	if err := st.RecordAttempt(ctx, alerts.Attempt{DeliveryID: "d1", Webhook: "ops", AlertID: a.ID, Status: "firing",
		At: time.Now().UTC(), Outcome: "retry", LatencyMs: 12.5, Error: "receiver answered 503"}); err != nil {
		t.Fatalf("RecordAttempt: %v", err)
	}

	f := newFixtureWith(t, func(d *Deps) {
		d.Alerts = st
		d.AlertActions = st
		d.WebhookTester = disp
	})
	c := f.client(t)
	post := func(path, body string) (int, string) {
		code, _, b := do(t, c, http.MethodPost, f.http.URL+path, "application/json", body, nil)
		return code, b
	}

	// Ack.
	if code, body := post("/api/alerts/alert-1/ack", `{"by":"ana","note":"looking"}`); code != 200 || !strings.Contains(body, `"acked_by":"ana"`) {
		t.Errorf("ack = %d %s", code, body)
	}
	if ack, ok, err := st.AlertAck(ctx, "alert-1"); err != nil || !ok || ack.By != "ana" || ack.Note != "looking" {
		t.Errorf("stored ack = %+v %v %v", ack, ok, err)
	}
	for body, want := range map[string]int{`{"note":"x"}`: 400, `{"by":"a","extra":1}`: 400, `not json`: 400} {
		if code, b := post("/api/alerts/alert-1/ack", body); code != want {
			t.Errorf("ack %s = %d %s, want %d", body, code, b, want)
		}
	}
	if code, _ := post("/api/alerts/nope/ack", `{"by":"ana"}`); code != 404 {
		t.Errorf("ack of unknown alert = %d, want 404", code)
	}

	// Silences.
	code, body := post("/api/silences", `{"rule":"queue_depth","queue":"batch.*","duration":"2h","owner":"ana","reason":"nightly"}`)
	if code != 201 {
		t.Fatalf("create silence = %d %s", code, body)
	}
	for _, bad := range []string{
		`{"queue":"x","duration":"2h","reason":"r"}`,
		`{"owner":"o","reason":"r","duration":"-1h"}`,
		`{"owner":"o","reason":"r","ends_at":"2000-01-01T00:00:00Z"}`,
		`{"owner":"o","reason":"r","duration":"1h","rule":"bogus"}`,
		`{"owner":"o","reason":"r","duration":"1h","queue":"["}`,
	} {
		if code, b := post("/api/silences", bad); code != 400 {
			t.Errorf("create silence %s = %d %s, want 400", bad, code, b)
		}
	}
	code, _, body = do(t, c, http.MethodGet, f.http.URL+"/api/silences", "", "", nil)
	var sl struct{ Silences []alerts.Silence }
	if err := json.Unmarshal([]byte(body), &sl); code != 200 || err != nil || len(sl.Silences) != 1 || sl.Silences[0].Queue != "batch.*" || sl.Silences[0].Owner != "ana" {
		t.Errorf("GET silences = %d %s", code, body)
	}

	// Test notifications.
	if code, body := post("/api/webhooks/ops/test", ``); code != 200 || hits.Load() != 1 || !strings.Contains(body, `"outcome":"delivered"`) {
		t.Errorf("test ops = %d %s (receiver hits %d)", code, body, hits.Load())
	}
	if code, body := post("/api/webhooks/broken/test", ``); code != 502 || !strings.Contains(body, "403") {
		t.Errorf("test broken = %d %s, want 502 naming the 403", code, body)
	}
	if code, _ := post("/api/webhooks/nope/test", ``); code != 404 {
		t.Errorf("test unknown webhook = %d, want 404", code)
	}

	// Delivery log.
	code, _, body = do(t, c, http.MethodGet, f.http.URL+"/api/deliveries?limit=5", "", "", nil)
	var dl struct{ Deliveries []alerts.Attempt }
	if err := json.Unmarshal([]byte(body), &dl); code != 200 || err != nil || len(dl.Deliveries) != 1 || dl.Deliveries[0].LatencyMs != 12.5 {
		t.Errorf("GET deliveries = %d %s", code, body)
	}
	if code, _, _ := do(t, c, http.MethodGet, f.http.URL+"/api/deliveries?limit=0", "", "", nil); code != 400 {
		t.Errorf("limit=0 = %d, want 400", code)
	}
}

// Without the optional dependencies the action endpoints answer 503.
func TestAlertActionsUnavailable(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	for _, p := range []string{"/api/silences", "/api/deliveries"} {
		if code, _, _ := do(t, c, http.MethodGet, f.http.URL+p, "", "", nil); code != 503 {
			t.Errorf("GET %s = %d, want 503", p, code)
		}
	}
	if code, _, _ := do(t, c, http.MethodPost, f.http.URL+"/api/webhooks/x/test", "application/json", "", nil); code != 503 {
		t.Errorf("test webhook = %d, want 503", code)
	}
}
