package web

// Regression tests for what a new user's trial found: alert history,
// failure labelling of the management API, escaped paths in the log.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"

	"warren/alerts"
	"warren/monitor"
)

func TestAPIAlertsState(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	get := func(query string) (int, []alerts.Alert, string) {
		t.Helper()
		code, _, body := do(t, c, http.MethodGet, f.http.URL+"/api/alerts"+query, "", "", nil)
		var got struct {
			Alerts []alerts.Alert `json:"alerts"`
		}
		if code == http.StatusOK {
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("decoding %s: %v", body, err)
			}
		}
		return code, got.Alerts, body
	}
	ids := func(list []alerts.Alert) string {
		var out []string
		for _, a := range list {
			out = append(out, a.ID+":"+a.State)
		}
		return strings.Join(out, ",")
	}

	for _, q := range []string{"", "?state=firing"} {
		code, list, body := get(q)
		if code != http.StatusOK || ids(list) != "a1:firing" {
			t.Errorf("GET /api/alerts%s = %d %s, want the firing alert only", q, code, body)
		}
	}

	code, list, body := get("?state=all")
	if code != http.StatusOK || ids(list) != "a1:firing,a0:resolved" {
		t.Fatalf("state=all = %d %s, want the history, most recent first", code, body)
	}
	if list[1].ResolvedAt == nil || !list[1].ResolvedAt.Equal(pollTime.Add(-time.Hour+90*time.Second)) {
		t.Errorf("resolved alert lacks resolved_at: %s", body)
	}
	if got := f.alerts.historyLimit(); got != 100 {
		t.Errorf("history read with limit %d, want 100", got)
	}

	// More than the limit in the source: at most 100 are served.
	var many []alerts.Alert
	for i := range 150 {
		a := resolvedAlert()
		a.ID = fmt.Sprintf("h%d", i)
		many = append(many, a)
	}
	f.alerts.mu.Lock()
	f.alerts.history = many
	f.alerts.mu.Unlock()
	if _, list, _ := get("?state=all"); len(list) != 100 || list[0].ID != "h0" {
		t.Errorf("state=all with 150 in history served %d", len(list))
	}

	for _, q := range []string{"?state=resolved", "?state=ALL", "?state=bogus"} {
		code, _, body := get(q)
		if code != http.StatusBadRequest || !strings.Contains(body, "state") {
			t.Errorf("GET /api/alerts%s = %d %s, want 400 naming the parameter", q, code, body)
		}
	}

	f.alerts.mu.Lock()
	f.alerts.histErr = errBoom
	f.alerts.mu.Unlock()
	if code, _, body := get("?state=all"); code != http.StatusInternalServerError || strings.Contains(body, "10.0.0.1") {
		t.Errorf("history failure: %d %s", code, body)
	}
}

// section returns the element with the id, or fails.
func section(t *testing.T, doc *html.Node, id string) *html.Node {
	t.Helper()
	s := findAll(doc, func(n *html.Node) bool { v, _ := attr(n, "id"); return v == id })
	if len(s) != 1 {
		t.Fatalf("%d elements with id %q", len(s), id)
	}
	return s[0]
}

func TestAlertsPageShowsFiringAndRecent(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	for _, hx := range []map[string]string{nil, {"HX-Request": "true"}} {
		code, _, body := do(t, c, http.MethodGet, f.http.URL+"/alerts", "", "", hx)
		if code != http.StatusOK {
			t.Fatalf("GET /alerts = %d", code)
		}
		panel := section(t, parseHTML(t, body), "alerts")
		var heads []string
		for _, h := range findAll(panel, func(n *html.Node) bool { return n.Data == "h3" }) {
			heads = append(heads, textOf(h))
		}
		if strings.Join(heads, ",") != "Firing,Acknowledged,History" {
			t.Errorf("headings %q, want Firing, Acknowledged, History", heads)
		}
		if n := len(findAll(panel, func(n *html.Node) bool { return n.Data == "tr" && hasClass(n, "alert") })); n != 1 {
			t.Errorf("%d firing rows", n)
		}
		recent := findAll(panel, func(n *html.Node) bool { return n.Data == "tr" && hasClass(n, "alert-history") })
		if len(recent) != 2 {
			t.Fatalf("%d recent rows, want 2 (firing and resolved)", len(recent))
		}
		if st, _ := attr(recent[0], "data-state"); st != alerts.StateFiring {
			t.Errorf("first recent row is %q, want the most recent (firing)", st)
		}
		res := textOf(recent[1])
		for _, want := range []string{"resolved", "orders", "2025-01-02 02:04:05 UTC", "2025-01-02 02:05:35 UTC", "lasted 1m 30s"} {
			if !strings.Contains(res, want) {
				t.Errorf("resolved row lacks %q: %q", want, res)
			}
		}
	}
	if got := f.alerts.historyLimit(); got != alertHistoryLimit {
		t.Errorf("/alerts read history with limit %d, want %d", got, alertHistoryLimit)
	}
}

func TestQueuePageShowsAlertHistoryOfThatQueue(t *testing.T) {
	f := newFixture(t)
	_, _, body := do(t, f.client(t), http.MethodGet, f.http.URL+queueHref("/", "orders"), "", "", nil)
	panel := section(t, parseHTML(t, body), "alerts")
	recent := findAll(panel, func(n *html.Node) bool { return n.Data == "tr" && hasClass(n, "alert-history") })
	if len(recent) != 1 || !strings.Contains(textOf(recent[0]), "resolved") {
		t.Errorf("queue orders shows %d recent alerts, want its resolved one", len(recent))
	}
	if n := len(findAll(panel, func(n *html.Node) bool { return n.Data == "tr" && hasClass(n, "alert") })); n != 0 {
		t.Errorf("queue orders shows %d firing alerts of other queues", n)
	}
}

// TestManagementAPIFailureLabels: wrong management credentials say so, name
// the management API (not the broker), and leave depths unknown, never "0
// queues".
func TestManagementAPIFailureLabels(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	rejected := fmt.Errorf("polling queues at http://127.0.0.1:15672: %w for user %q (HTTP 401)", monitor.ErrCredentialsRejected, "guest")
	unreachable := fmt.Errorf("polling queues at http://127.0.0.1:15672: %w: connection refused", monitor.ErrUnreachable)

	for _, tc := range []struct {
		name    string
		err     error
		reason  string // in the header badge
		because string // in the queue panels
	}{
		{"credentials", rejected, "credentials rejected", " (credentials rejected)"},
		{"unreachable", unreachable, "unreachable", " (unreachable)"},
		{"other", errBoom, "poll failed", ""}, // not "failed (poll failed)"
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.queues.set(monitor.Snapshot{At: pollTime, Err: tc.err})
			_, _, body := do(t, c, http.MethodGet, f.http.URL+"/", "", "", nil)
			doc := parseHTML(t, body)
			badge := strings.TrimSpace(textOf(section(t, doc, "broker")))
			if badge != "management API: "+tc.reason {
				t.Errorf("header badge %q, want %q", badge, "management API: "+tc.reason)
			}
			if title, _ := attr(section(t, doc, "broker"), "title"); title != shortError(tc.err) {
				t.Errorf("badge tooltip %q", title)
			}
			queues := textOf(section(t, doc, "queues"))
			want := "Queue depths unknown: the last poll of the management API failed" + tc.because + " at 03:04:05 UTC."
			if !strings.Contains(queues, want) {
				t.Errorf("queue panel lacks %q: %q", want, queues)
			}
			for _, bad := range []string{"0 queues", "No queues in the last poll"} {
				if strings.Contains(queues, bad) {
					t.Errorf("queue panel says %q after a failed poll: %q", bad, queues)
				}
			}

			// The htmx refresh of the panel says the same and updates the badge.
			_, _, frag := do(t, c, http.MethodGet, f.http.URL+"/queues", "", "", map[string]string{"HX-Request": "true"})
			if !strings.Contains(frag, want) || strings.Contains(frag, "0 queues") || !strings.Contains(frag, "management API: "+tc.reason) {
				t.Errorf("queue fragment after a failed poll: %s", frag)
			}

			// So does the page of one queue.
			for _, hx := range []map[string]string{nil, {"HX-Request": "true"}} {
				code, _, page := do(t, c, http.MethodGet, f.http.URL+queueHref("/", "orders"), "", "", hx)
				text := textOf(section(t, parseHTML(t, page), "queue"))
				wantQ := "Depth of this queue unknown: the last poll of the management API failed" + tc.because + " at 03:04:05 UTC."
				if code != http.StatusOK || !strings.Contains(text, wantQ) || strings.Contains(text, "not in the last poll") {
					t.Errorf("queue page after a failed poll: %d %q", code, text)
				}
			}

			// And the API does not call a queue it could not see "not found".
			code, _, apiBody := do(t, c, http.MethodGet, f.http.URL+"/api/queues/%2F/orders", "", "", nil)
			if code != http.StatusServiceUnavailable || !strings.Contains(apiBody, "queue depths unknown: the last poll of the management API failed"+tc.because) {
				t.Errorf("GET /api/queues/%%2F/orders after a failed poll = %d %s", code, apiBody)
			}
		})
	}

	t.Run("before the first poll", func(t *testing.T) {
		f.queues.set(monitor.Snapshot{})
		_, _, body := do(t, c, http.MethodGet, f.http.URL+"/", "", "", nil)
		doc := parseHTML(t, body)
		if badge := textOf(section(t, doc, "broker")); badge != "management API: waiting for first poll" {
			t.Errorf("badge %q", badge)
		}
		queues := textOf(section(t, doc, "queues"))
		if strings.Contains(queues, "0 queues") || !strings.Contains(queues, "Waiting for the first poll") {
			t.Errorf("queue panel before the first poll: %q", queues)
		}
		_, _, page := do(t, c, http.MethodGet, f.http.URL+queueHref("/", "orders"), "", "", nil)
		if text := textOf(section(t, parseHTML(t, page), "queue")); strings.Contains(text, "not in the last poll") {
			t.Errorf("queue page before the first poll: %q", text)
		}
	})

	t.Run("after a good poll", func(t *testing.T) {
		f.queues.set(defaultSnapshot())
		_, _, body := do(t, c, http.MethodGet, f.http.URL+"/", "", "", nil)
		doc := parseHTML(t, body)
		if badge := textOf(section(t, doc, "broker")); badge != "management API: ok · polled 03:04:05 UTC" {
			t.Errorf("badge %q", badge)
		}
		if queues := textOf(section(t, doc, "queues")); !strings.Contains(queues, "6 queues · polled 03:04:05 UTC") {
			t.Errorf("queue panel: %q", queues)
		}
	})
}

// syncBuffer is a log destination the server's goroutines may share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestRequestLogHasEscapedPath(t *testing.T) {
	var logs syncBuffer
	f := newFixtureWith(t, func(d *Deps) {
		d.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	c := f.client(t)
	for _, path := range []string{"/api/queues/%2F/%2Fnope", "/queues/%2F/a%2Fb%3Fc%23d"} {
		do(t, c, http.MethodGet, f.http.URL+path, "", "", nil)
		found := false
		for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err != nil {
				t.Fatalf("log line %q: %v", line, err)
			}
			if rec["msg"] == "http request" && rec["path"] == path {
				found = true
			}
		}
		if !found {
			t.Errorf("no request log line with path %s in:\n%s", path, logs.String())
		}
	}
}
