package web

// In-test implementations of the web interfaces. The web package is tested
// against these on purpose: the cases here (a queue named "<b>x</b>", values
// the broker did not report, a controller that rejects a value) must be set
// up exactly, and the lead's end-to-end test covers the real broker.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"

	"warren/alerts"
	"warren/consumers"
	"warren/monitor"
)

func i64(v int64) *int64       { return &v }
func f64(v float64) *float64   { return &v }
func intp(v int) *int          { return &v }
func strp(v string) *string    { return &v }
func testLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// fakeQueues serves a fixed snapshot that tests may replace.
type fakeQueues struct {
	mu   sync.Mutex
	snap monitor.Snapshot
}

func (f *fakeQueues) Latest() monitor.Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snap
}

func (f *fakeQueues) set(s monitor.Snapshot) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.snap = s
}

// fakeConsumers validates like the real manager promises to: a value must be
// within 1..max, and a rejected change leaves everything as it was.
type fakeConsumers struct {
	mu      sync.Mutex
	order   []string
	byName  map[string]consumers.Status
	updates int // calls to Update, accepted or not
	applied int // changes actually applied
}

func newFakeConsumers(list ...consumers.Status) *fakeConsumers {
	f := &fakeConsumers{byName: map[string]consumers.Status{}}
	for _, st := range list {
		f.order = append(f.order, st.Name)
		f.byName[st.Name] = st
	}
	return f
}

func (f *fakeConsumers) List() []consumers.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]consumers.Status, 0, len(f.order))
	for _, n := range f.order {
		out = append(out, f.byName[n])
	}
	return out
}

func (f *fakeConsumers) Get(name string) (consumers.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.byName[name]
	if !ok {
		return consumers.Status{}, fmt.Errorf("consumer %q: %w", name, consumers.ErrNotFound)
	}
	return st, nil
}

func (f *fakeConsumers) Update(_ context.Context, name string, ch consumers.Change) (consumers.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.updates++
	st, ok := f.byName[name]
	if !ok {
		return consumers.Status{}, fmt.Errorf("consumer %q: %w", name, consumers.ErrNotFound)
	}
	if ch.Concurrency != nil && (*ch.Concurrency < 1 || *ch.Concurrency > st.MaxConcurrency) {
		return st, fmt.Errorf("%w: concurrency must be between 1 and %d, got %d", consumers.ErrInvalid, st.MaxConcurrency, *ch.Concurrency)
	}
	if ch.Prefetch != nil && (*ch.Prefetch < 1 || *ch.Prefetch > st.MaxPrefetch) {
		return st, fmt.Errorf("%w: prefetch must be between 1 and %d, got %d", consumers.ErrInvalid, st.MaxPrefetch, *ch.Prefetch)
	}
	if ch.Concurrency != nil {
		st.Concurrency = *ch.Concurrency
	}
	if ch.Prefetch != nil {
		st.Prefetch = *ch.Prefetch
		st.AppliedPrefetch = *ch.Prefetch
	}
	f.byName[name] = st
	f.applied++
	return st, nil
}

func (f *fakeConsumers) setState(name, state string) (consumers.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st, ok := f.byName[name]
	if !ok {
		return consumers.Status{}, fmt.Errorf("consumer %q: %w", name, consumers.ErrNotFound)
	}
	st.State = state
	f.byName[name] = st
	f.applied++
	return st, nil
}

func (f *fakeConsumers) Pause(_ context.Context, name string) (consumers.Status, error) {
	return f.setState(name, consumers.StatePaused)
}

func (f *fakeConsumers) Resume(_ context.Context, name string) (consumers.Status, error) {
	return f.setState(name, consumers.StateRunning)
}

func (f *fakeConsumers) counts() (updates, applied int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.updates, f.applied
}

// fakeAlerts returns fixed lists or errors: list is what fires now,
// history the alerts most recently changed first, like the store.
type fakeAlerts struct {
	mu        sync.Mutex
	list      []alerts.Alert
	err       error
	history   []alerts.Alert
	histErr   error
	lastLimit int // limit of the last AlertHistory call
}

func (f *fakeAlerts) ActiveAlerts(context.Context) ([]alerts.Alert, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.list, f.err
}

func (f *fakeAlerts) AlertHistory(_ context.Context, limit int) ([]alerts.Alert, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastLimit = limit
	if f.histErr != nil {
		return nil, f.histErr
	}
	out := f.history
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func (f *fakeAlerts) historyLimit() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastLimit
}

// fixture is a server over fakes with a realistic mix of data.
type fixture struct {
	queues    *fakeQueues
	consumers *fakeConsumers
	alerts    *fakeAlerts
	server    *Server
	http      *httptest.Server
}

var pollTime = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

func defaultSnapshot() monitor.Snapshot {
	return monitor.Snapshot{
		At: pollTime,
		Queues: []monitor.QueueSample{
			{Vhost: "/", Name: "orders", Messages: i64(1234), Ready: i64(1200), Unacked: i64(34), Consumers: i64(2), Status: monitor.StatusWarning,
				IngressRate: f64(12.5), EgressRate: f64(20), TimeToDrainSeconds: f64(160), Growing: boolp(false)},
			{Vhost: "/", Name: "idle", Status: monitor.StatusUnknown}, // nothing reported
			{Vhost: "/", Name: "<b>x</b>", Messages: i64(1), Ready: i64(1), Unacked: i64(0), Consumers: i64(0), Status: monitor.StatusOK},
			{Vhost: "/", Name: "a/b?c#d", Messages: i64(7), Ready: i64(5), Unacked: i64(2), Consumers: i64(1), Status: monitor.StatusOK},
			{Vhost: "/", Name: "with space+plus", Messages: i64(99999), Ready: i64(99999), Unacked: i64(0), Consumers: i64(0), Status: monitor.StatusCritical},
			{Vhost: "tenant/2", Name: "ünï ✓ 100%", Messages: i64(3), Ready: i64(3), Unacked: i64(0), Consumers: i64(1), Status: monitor.StatusOK},
		},
	}
}

func defaultConsumers() []consumers.Status {
	return []consumers.Status{
		{Name: "demo", Queue: "orders", Vhost: "/", State: consumers.StateRunning, Concurrency: 5, Prefetch: 10, AppliedPrefetch: 10,
			MaxConcurrency: 100, MaxPrefetch: 1000, InFlight: 3, Processed: 12345, Failed: 6, Rate: 42.5, LatencyP95Ms: f64(87.4)},
		{Name: "odd/<i>name</i>?#", Queue: "a/b?c#d", Vhost: "/", State: consumers.StatePaused, Concurrency: 1, Prefetch: 1, AppliedPrefetch: 1,
			MaxConcurrency: 10, MaxPrefetch: 10},
	}
}

// firingAlert is the one alert of the fixture that fires now.
func firingAlert() alerts.Alert {
	return alerts.Alert{
		ID: "a1", Rule: alerts.RuleQueueDepth, Severity: alerts.SeverityCritical, State: alerts.StateFiring,
		Vhost: "/", Queue: "with space+plus", Value: 99999, Threshold: 50000, StartedAt: pollTime,
	}
}

// resolvedAlert fired an hour before the poll and resolved 90 s later.
func resolvedAlert() alerts.Alert {
	resolved := pollTime.Add(-time.Hour + 90*time.Second)
	return alerts.Alert{
		ID: "a0", Rule: alerts.RuleQueueDepth, Severity: alerts.SeverityWarning, State: alerts.StateResolved,
		Vhost: "/", Queue: "orders", Value: 12000, Threshold: 10000, StartedAt: pollTime.Add(-time.Hour), ResolvedAt: &resolved,
	}
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureWith(t, nil)
}

// newFixtureWith is newFixture with a chance to adjust the Deps.
func newFixtureWith(t *testing.T, adjust func(*Deps)) *fixture {
	t.Helper()
	f := &fixture{
		queues:    &fakeQueues{snap: defaultSnapshot()},
		consumers: newFakeConsumers(defaultConsumers()...),
		alerts: &fakeAlerts{
			list:    []alerts.Alert{firingAlert()},
			history: []alerts.Alert{firingAlert(), resolvedAlert()},
		},
	}
	d := Deps{
		Queues:    f.queues,
		Consumers: f.consumers,
		Alerts:    f.alerts,
		Logger:    testLogger(),
		Version:   "test",
	}
	if adjust != nil {
		adjust(&d)
	}
	f.server = New(d)
	f.http = httptest.NewServer(f.server.Handler())
	t.Cleanup(f.http.Close)
	return f
}

// client is an HTTP client with a cookie jar (for the CSRF cookie) that does
// not follow redirects.
func (f *fixture) client(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// do sends a request and returns status, headers and body.
func do(t *testing.T, c *http.Client, method, url, contentType, body string, header map[string]string) (int, http.Header, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

// parseHTML parses a page or fragment.
func parseHTML(t *testing.T, s string) *html.Node {
	t.Helper()
	n, err := html.Parse(strings.NewReader(s))
	if err != nil {
		t.Fatalf("parsing html: %v", err)
	}
	return n
}

// findAll returns the elements for which match is true, in document order.
func findAll(n *html.Node, match func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && match(n) {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return out
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func textOf(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}

func hasClass(n *html.Node, class string) bool {
	v, _ := attr(n, "class")
	for _, c := range strings.Fields(v) {
		if c == class {
			return true
		}
	}
	return false
}

// csrfToken loads the dashboard and returns the token from its meta tag (the
// client's jar keeps the cookie).
func csrfToken(t *testing.T, f *fixture, c *http.Client) string {
	t.Helper()
	code, _, body := do(t, c, http.MethodGet, f.http.URL+"/", "", "", nil)
	if code != http.StatusOK {
		t.Fatalf("GET / = %d", code)
	}
	metas := findAll(parseHTML(t, body), func(n *html.Node) bool {
		name, _ := attr(n, "name")
		return n.Data == "meta" && name == "csrf-token"
	})
	if len(metas) != 1 {
		t.Fatalf("want one csrf-token meta, got %d", len(metas))
	}
	tok, _ := attr(metas[0], "content")
	if tok == "" {
		t.Fatal("empty csrf token")
	}
	return tok
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var errBoom = errors.New("boom: dial tcp 10.0.0.1:15672: connection refused")

func changeConcurrency(n int) consumers.Change { return consumers.Change{Concurrency: intp(n)} }

func boolp(v bool) *bool { return &v }
