package web

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"warren/consumers"
	"warren/monitor"
)

func TestAPIQueuesShape(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	code, hdr, body := do(t, c, http.MethodGet, f.http.URL+"/api/queues", "", "", nil)
	if code != http.StatusOK {
		t.Fatalf("status %d: %s", code, body)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("content type %q", ct)
	}
	var got struct {
		Queues   []map[string]json.RawMessage `json:"queues"`
		PolledAt *string                      `json:"polled_at"`
		Error    json.RawMessage              `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("decoding %s: %v", body, err)
	}
	if got.PolledAt == nil || *got.PolledAt != "2025-01-02T03:04:05Z" {
		t.Errorf("polled_at = %v", got.PolledAt)
	}
	if string(got.Error) != "null" {
		t.Errorf("error = %s, want null", got.Error)
	}
	if len(got.Queues) != len(defaultSnapshot().Queues) {
		t.Fatalf("got %d queues", len(got.Queues))
	}
	keys := []string{"vhost", "name", "messages", "messages_ready", "messages_unacknowledged", "consumers",
		"ingress_rate", "egress_rate", "time_to_drain_seconds", "growing", "is_dead_letter", "status"}
	byName := map[string]map[string]json.RawMessage{}
	for _, q := range got.Queues {
		if len(q) != len(keys) {
			t.Errorf("queue has keys %v, want exactly %v", q, keys)
		}
		for _, k := range keys {
			if _, ok := q[k]; !ok {
				t.Errorf("queue %s lacks %q", q["name"], k)
			}
		}
		var name string
		_ = json.Unmarshal(q["name"], &name)
		byName[name] = q
	}
	idle := byName["idle"]
	for _, k := range []string{"messages", "messages_ready", "messages_unacknowledged", "consumers"} {
		if string(idle[k]) != "null" {
			t.Errorf("idle.%s = %s, want null (unknown is never 0)", k, idle[k])
		}
	}
	if string(idle["status"]) != `"unknown"` {
		t.Errorf("idle.status = %s", idle["status"])
	}
	orders := byName["orders"]
	for k, want := range map[string]string{"messages": "1234", "messages_ready": "1200", "messages_unacknowledged": "34", "consumers": "2", "status": `"warning"`, "vhost": `"/"`} {
		if string(orders[k]) != want {
			t.Errorf("orders.%s = %s, want %s", k, orders[k], want)
		}
	}
	if _, ok := byName["<b>x</b>"]; !ok {
		t.Errorf("queue <b>x</b> missing or mangled in %s", body)
	}
}

func TestAPIQueuesBeforeFirstPollAndAfterFailure(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)

	f.queues.set(monitor.Snapshot{})
	_, _, body := do(t, c, http.MethodGet, f.http.URL+"/api/queues", "", "", nil)
	if want := `{"queues":[],"polled_at":null,"error":null}`; strings.TrimSpace(body) != want {
		t.Errorf("before first poll: %s, want %s", body, want)
	}

	f.queues.set(monitor.Snapshot{At: pollTime, Err: errBoom})
	_, _, body = do(t, c, http.MethodGet, f.http.URL+"/api/queues", "", "", nil)
	var got struct {
		Queues []any   `json:"queues"`
		Error  *string `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if got.Queues == nil || len(got.Queues) != 0 || got.Error == nil || !strings.Contains(*got.Error, "connection refused") {
		t.Errorf("after failed poll: %s", body)
	}
}

func TestAPIQueueByPath(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	for _, q := range defaultSnapshot().Queues {
		t.Run(q.Name, func(t *testing.T) {
			code, _, body := do(t, c, http.MethodGet, f.http.URL+"/api"+queueHref(q.Vhost, q.Name), "", "", nil)
			if code != http.StatusOK {
				t.Fatalf("status %d: %s", code, body)
			}
			var got queueJSON
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatal(err)
			}
			if got.Name != q.Name || got.Vhost != q.Vhost {
				t.Errorf("got %q in %q, want %q in %q", got.Name, got.Vhost, q.Name, q.Vhost)
			}
		})
	}
	code, _, _ := do(t, c, http.MethodGet, f.http.URL+"/api/queues/%2F/nope", "", "", nil)
	if code != http.StatusNotFound {
		t.Errorf("unknown queue: %d", code)
	}
}

func TestAPIConsumers(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)

	code, _, body := do(t, c, http.MethodGet, f.http.URL+"/api/consumers", "", "", nil)
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	var list struct {
		Consumers []map[string]json.RawMessage `json:"consumers"`
	}
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Consumers) != 2 {
		t.Fatalf("got %d consumers", len(list.Consumers))
	}
	demo := list.Consumers[0]
	for _, k := range []string{"name", "queue", "vhost", "state", "concurrency", "prefetch", "in_flight", "processed", "failed", "rate"} {
		if _, ok := demo[k]; !ok {
			t.Errorf("consumer lacks %q: %s", k, body)
		}
	}
	if string(demo["latency_p50_ms"]) != "null" || string(demo["latency_p95_ms"]) != "87.4" {
		t.Errorf("latency: p50=%s p95=%s", demo["latency_p50_ms"], demo["latency_p95_ms"])
	}

	odd := defaultConsumers()[1].Name
	code, _, body = do(t, c, http.MethodGet, f.http.URL+"/api/consumers/"+url.PathEscape(odd), "", "", nil)
	var one consumers.Status
	if code != http.StatusOK || json.Unmarshal([]byte(body), &one) != nil || one.Name != odd {
		t.Errorf("GET odd consumer: %d %s", code, body)
	}

	code, _, body = do(t, c, http.MethodGet, f.http.URL+"/api/consumers/nope", "", "", nil)
	if code != http.StatusNotFound || !strings.Contains(body, `"error"`) {
		t.Errorf("unknown consumer: %d %s", code, body)
	}
}

func TestAPIPatchConsumer(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	patch := func(name, body string) (int, string) {
		code, _, resp := do(t, c, http.MethodPatch, f.http.URL+"/api/consumers/"+url.PathEscape(name), "application/json", body, nil)
		return code, resp
	}

	t.Run("valid", func(t *testing.T) {
		code, body := patch("demo", `{"concurrency": 7, "prefetch": 20}`)
		if code != http.StatusOK {
			t.Fatalf("status %d: %s", code, body)
		}
		var st consumers.Status
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatal(err)
		}
		if st.Concurrency != 7 || st.Prefetch != 20 || st.Name != "demo" {
			t.Errorf("got %+v", st)
		}
		code, body = patch("demo", `{"prefetch": 30}`)
		if code != http.StatusOK || !strings.Contains(body, `"prefetch":30`) || !strings.Contains(body, `"concurrency":7`) {
			t.Errorf("prefetch only: %d %s", code, body)
		}
	})

	bad := []struct {
		name, body string
		field      string // the message must name this
		reaches    bool   // the body is well-formed, so the controller judges it
	}{
		{"zero", `{"concurrency": 0}`, "concurrency", true},
		{"negative", `{"concurrency": -1}`, "concurrency", true},
		{"above max", `{"concurrency": 1000000000}`, "concurrency", true},
		{"prefetch zero", `{"prefetch": 0}`, "prefetch", true},
		{"one valid one invalid", `{"concurrency": 8, "prefetch": 0}`, "prefetch", true},
		{"string", `{"concurrency": "ten"}`, "concurrency", false},
		{"numeric string", `{"concurrency": "10"}`, "concurrency", false},
		{"fraction", `{"concurrency": 1.5}`, "concurrency", false},
		{"exponent", `{"concurrency": 1e3}`, "concurrency", false},
		{"null", `{"concurrency": null}`, "concurrency", false},
		{"bool", `{"prefetch": true}`, "prefetch", false},
		{"overflow", `{"prefetch": 99999999999999999999999}`, "prefetch", false},
		{"unknown field", `{"concurrency": 5, "workers": 3}`, "workers", false},
		{"duplicate field", `{"concurrency": 5, "concurrency": 6}`, "concurrency", false},
		{"empty body", ``, "empty", false},
		{"whitespace body", "  \n", "empty", false},
		{"empty object", `{}`, "concurrency", false},
		{"array", `[5]`, "object", false},
		{"bare number", `5`, "object", false},
		{"trailing data", `{"concurrency": 5} {"prefetch": 3}`, "after", false},
		{"truncated", `{"concurrency": 5`, "JSON", false},
		{"not json", `concurrency=5`, "JSON", false},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := f.consumers.Get("demo")
			updates0, applied0 := f.consumers.counts()
			code, body := patch("demo", tc.body)
			if code != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", code, body)
			}
			var e errorBody
			if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" {
				t.Fatalf("want {\"error\":...}, got %s", body)
			}
			if !strings.Contains(e.Error, tc.field) {
				t.Errorf("message %q does not name %q", e.Error, tc.field)
			}
			updates1, applied1 := f.consumers.counts()
			if applied1 != applied0 {
				t.Errorf("a change was applied")
			}
			if !tc.reaches && updates1 != updates0 {
				t.Errorf("controller was called for a malformed body")
			}
			if after, _ := f.consumers.Get("demo"); after != before {
				t.Errorf("consumer changed: %+v -> %+v", before, after)
			}
		})
	}

	t.Run("unknown consumer", func(t *testing.T) {
		code, body := patch("nope", `{"concurrency": 5}`)
		if code != http.StatusNotFound || !strings.Contains(body, `"error"`) {
			t.Errorf("got %d %s", code, body)
		}
	})

	t.Run("wrong content type needs csrf", func(t *testing.T) {
		_, applied0 := f.consumers.counts()
		code, _, body := do(t, c, http.MethodPatch, f.http.URL+"/api/consumers/demo", "text/plain", `{"concurrency": 9}`, nil)
		if code != http.StatusForbidden {
			t.Errorf("got %d %s", code, body)
		}
		if _, applied1 := f.consumers.counts(); applied1 != applied0 {
			t.Error("change applied")
		}
	})

	t.Run("json with charset", func(t *testing.T) {
		code, _, body := do(t, c, http.MethodPatch, f.http.URL+"/api/consumers/demo", "application/json; charset=utf-8", `{"concurrency": 9}`, nil)
		if code != http.StatusOK {
			t.Errorf("got %d %s", code, body)
		}
	})
}

func TestAPIPauseResume(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	code, _, body := do(t, c, http.MethodPost, f.http.URL+"/api/consumers/demo/pause", "application/json", "", nil)
	if code != http.StatusOK || !strings.Contains(body, `"state":"paused"`) {
		t.Fatalf("pause: %d %s", code, body)
	}
	code, _, body = do(t, c, http.MethodPost, f.http.URL+"/api/consumers/demo/resume", "application/json", "", nil)
	if code != http.StatusOK || !strings.Contains(body, `"state":"running"`) {
		t.Fatalf("resume: %d %s", code, body)
	}
	code, _, _ = do(t, c, http.MethodPost, f.http.URL+"/api/consumers/nope/pause", "application/json", "", nil)
	if code != http.StatusNotFound {
		t.Errorf("unknown: %d", code)
	}
	// A cross-site form can post text/plain or urlencoded, never JSON: refused.
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded"} {
		code, _, body = do(t, c, http.MethodPost, f.http.URL+"/api/consumers/demo/pause", ct, "", nil)
		if code != http.StatusForbidden {
			t.Errorf("content type %q without token: %d %s", ct, code, body)
		}
	}
	if st, _ := f.consumers.Get("demo"); st.State != consumers.StateRunning {
		t.Errorf("state changed to %s by a refused request", st.State)
	}
	// GET never changes state.
	code, _, _ = do(t, c, http.MethodGet, f.http.URL+"/api/consumers/demo/pause", "", "", nil)
	if code != http.StatusMethodNotAllowed && code != http.StatusNotFound {
		t.Errorf("GET pause: %d", code)
	}
}

func TestAPIAlerts(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	code, _, body := do(t, c, http.MethodGet, f.http.URL+"/api/alerts", "", "", nil)
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	var got struct {
		Alerts []map[string]json.RawMessage `json:"alerts"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil || len(got.Alerts) != 1 {
		t.Fatalf("%s (%v)", body, err)
	}
	for _, k := range []string{"id", "rule", "severity", "state", "vhost", "queue", "value", "threshold", "started_at", "resolved_at"} {
		if _, ok := got.Alerts[0][k]; !ok {
			t.Errorf("alert lacks %q", k)
		}
	}
	if string(got.Alerts[0]["resolved_at"]) != "null" {
		t.Errorf("resolved_at = %s", got.Alerts[0]["resolved_at"])
	}

	f.alerts.list = nil
	_, _, body = do(t, c, http.MethodGet, f.http.URL+"/api/alerts", "", "", nil)
	if strings.TrimSpace(body) != `{"alerts":[]}` {
		t.Errorf("no alerts: %s", body)
	}

	f.alerts.err = errBoom
	code, _, body = do(t, c, http.MethodGet, f.http.URL+"/api/alerts", "", "", nil)
	if code != http.StatusInternalServerError || strings.Contains(body, "10.0.0.1") || !strings.Contains(body, `"error"`) {
		t.Errorf("store failure leaked or wrong: %d %s", code, body)
	}
}

func TestNotFoundRouteIsJSON(t *testing.T) {
	f := newFixture(t)
	code, _, body := do(t, f.client(t), http.MethodGet, f.http.URL+"/api/nope", "", "", nil)
	if code != http.StatusNotFound || strings.TrimSpace(body) != `{"error":"not found"}` {
		t.Errorf("%d %s", code, body)
	}
}
