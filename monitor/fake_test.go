package monitor

// These tests use httptest fakes of the management API, because a real
// RabbitMQ never sends the answers they need: counts encoded as floats,
// strings or null, junk values, duplicates across pages, a page that goes out
// of range mid-poll, 403/500 answers, a non-JSON body, or no answer at all.
// The real broker is exercised in broker_test.go.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	fakeUser = "watcher"
	fakePass = "s3cret-Pa55word"
)

// fakeAPI serves testdata/<scenario>_page<N>.json (200) or
// testdata/<scenario>_page<N>.status<code>.json for GET /api/queues?page=N.
//
// Other GET /api/X requests (overview, nodes, consumers) are served from
// testdata/<scenario>_X.json when it exists, 404 otherwise.
type fakeAPI struct {
	t        *testing.T
	scenario string
	mu       sync.Mutex
	queries  []string // of /api/queues requests
	paths    []string // escaped path of every request
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.paths = append(f.paths, r.URL.EscapedPath())
	if r.URL.Path == "/api/queues" {
		f.queries = append(f.queries, r.URL.RawQuery)
	}
	f.mu.Unlock()
	if u, p, ok := r.BasicAuth(); !ok || u != fakeUser || p != fakePass {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprint(w, `{"error":"not_authorised","reason":"Login failed"}`)
		return
	}
	if r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	if r.URL.Path != "/api/queues" {
		body, err := os.ReadFile(filepath.Join("testdata", f.scenario+"_"+strings.ReplaceAll(strings.TrimPrefix(r.URL.Path, "/api/"), "/", "_")+".json"))
		if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
		return
	}
	q := r.URL.Query()
	if q.Get("columns") != queueColumns || q.Get("page_size") == "" {
		http.Error(w, "unexpected query "+r.URL.RawQuery, http.StatusBadRequest)
		return
	}
	base := filepath.Join("testdata", fmt.Sprintf("%s_page%s", f.scenario, q.Get("page")))
	matches, _ := filepath.Glob(base + ".status*.json")
	status, file := http.StatusOK, base+".json"
	if len(matches) == 1 {
		file = matches[0]
		fmt.Sscanf(strings.TrimPrefix(file, base+".status"), "%d", &status)
	}
	body, err := os.ReadFile(file)
	if err != nil {
		f.t.Errorf("fake API: no fixture for %s: %v", r.URL.RawQuery, err)
		http.Error(w, "no fixture", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}

func newFakeAPI(t *testing.T, scenario string) (*fakeAPI, *httptest.Server) {
	f := &fakeAPI{t: t, scenario: scenario}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func newTestPoller(t *testing.T, cfg PollerConfig, w SampleWriter, obs ...Observer) *Poller {
	t.Helper()
	if cfg.Username == "" {
		cfg.Username, cfg.Password = fakeUser, fakePass
	}
	p, err := NewPoller(cfg, w, obs, testLogger(t))
	if err != nil {
		t.Fatalf("NewPoller: %v", err)
	}
	return p
}

func TestOddJSON(t *testing.T) {
	f, srv := newFakeAPI(t, "odd")
	w := &recordingWriter{}
	obs := &recordingObserver{}
	p := newTestPoller(t, PollerConfig{
		URL:        srv.URL + "/", // a trailing slash must not break the API path
		PageSize:   6,
		Thresholds: Thresholds{Default: Level{Warning: 5, Critical: 7}, Queues: map[string]Level{"zeros": {Warning: 1, Critical: 1}}},
	}, w, obs)

	snap := p.runOnce(t.Context())
	if snap.Err != nil {
		t.Fatalf("poll failed: %v", snap.Err)
	}
	want := []QueueSample{
		{Vhost: "/", Name: "dup", Messages: i64(2), Ready: i64(2), Unacked: i64(0), Consumers: i64(0), Status: StatusOK},
		{Vhost: "/", Name: "floats", Messages: i64(3), Ready: i64(2), Unacked: i64(1), Consumers: i64(0), Status: StatusOK},
		{Vhost: "/", Name: "huge", Status: StatusUnknown},
		{Vhost: "/", Name: "missing-fields", Status: StatusUnknown},
		{Vhost: "/", Name: "nulls", Status: StatusUnknown},
		{Vhost: "/", Name: "odd", Status: StatusUnknown},
		{Vhost: "/", Name: "strings", Messages: i64(7), Ready: i64(5), Unacked: i64(2), Consumers: i64(1), Status: StatusCritical},
		{Vhost: "/", Name: "zeros", Messages: i64(0), Ready: i64(0), Unacked: i64(0), Consumers: i64(0), Status: StatusOK},
		{Vhost: "other", Name: "dup", Messages: i64(4), Ready: i64(4), Unacked: i64(0), Consumers: i64(1), Status: StatusOK},
	}
	if len(snap.Queues) != len(want) {
		t.Fatalf("got %d queues, want %d: %+v", len(snap.Queues), len(want), snap.Queues)
	}
	for i, w := range want {
		g := snap.Queues[i]
		if g.Vhost != w.Vhost || g.Name != w.Name || g.Status != w.Status ||
			!ptrEq(g.Messages, w.Messages) || !ptrEq(g.Ready, w.Ready) ||
			!ptrEq(g.Unacked, w.Unacked) || !ptrEq(g.Consumers, w.Consumers) {
			t.Errorf("queue %d = {%s %s m=%s r=%s u=%s c=%s %s}, want {%s %s m=%s r=%s u=%s c=%s %s}", i,
				g.Vhost, g.Name, ptrStr(g.Messages), ptrStr(g.Ready), ptrStr(g.Unacked), ptrStr(g.Consumers), g.Status,
				w.Vhost, w.Name, ptrStr(w.Messages), ptrStr(w.Ready), ptrStr(w.Unacked), ptrStr(w.Consumers), w.Status)
		}
	}
	if f.queries[0] != "columns=name%2Cvhost%2Cmessages%2Cmessages_ready%2Cmessages_unacknowledged%2Cconsumers%2C"+
		"consumer_utilisation%2Cmessage_stats.publish%2Carguments%2Ceffective_policy_definition&page=1&page_size=6" {
		t.Errorf("first query = %s", f.queries[0])
	}
	if len(f.queries) != 2 {
		t.Errorf("%d requests, want 2 (page_count is 2)", len(f.queries))
	}
	if w.count() != 1 || len(w.polls[0]) != len(want) {
		t.Errorf("writer got %d polls, want 1 with %d queues", w.count(), len(want))
	}
	if s := obs.all(); len(s) != 1 || len(s[0].Queues) != len(want) {
		t.Errorf("observer got %+v", s)
	}
	if err := p.Ready(t.Context()); err != nil {
		t.Errorf("Ready after a good poll: %v", err)
	}
}

func TestParseCount(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want *int64
		odd  bool
	}{
		{"", nil, false}, // field missing
		{"null", nil, false},
		{"0", i64(0), false},
		{"42", i64(42), false},
		{"42.0", i64(42), false},
		{"4.2e1", i64(42), false},
		{`"42"`, i64(42), false},
		{`" 42 "`, i64(42), false},
		{`"42.0"`, i64(42), false},
		{"9007199254740993", i64(9007199254740993), false}, // above 2^53 stays exact
		{"1.5", nil, true},
		{"-1", nil, true},
		{"-0.5", nil, true},
		{"1e30", nil, true},
		{`""`, nil, true},
		{`"abc"`, nil, true},
		{`"Inf"`, nil, true},
		{`"NaN"`, nil, true},
		{`"0x1p4"`, nil, true},
		{`"true"`, nil, true},
		{"true", nil, true},
		{"{}", nil, true},
		{"[1]", nil, true},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			got, err := parseCount([]byte(tc.raw))
			if !ptrEq(got, tc.want) || (err != nil) != tc.odd {
				t.Errorf("parseCount(%s) = %s, %v; want %s, odd=%v", tc.raw, ptrStr(got), err, ptrStr(tc.want), tc.odd)
			}
		})
	}
}

func TestPagesShrinkMidPoll(t *testing.T) {
	_, srv := newFakeAPI(t, "shrunk")
	p := newTestPoller(t, PollerConfig{URL: srv.URL, PageSize: 2}, nil)
	snap := p.runOnce(t.Context())
	if snap.Err != nil {
		t.Fatalf("poll failed: %v", snap.Err)
	}
	if len(snap.Queues) != 2 || snap.Queues[0].Name != "a" || snap.Queues[1].Name != "b" {
		t.Errorf("queues = %+v, want a and b", snap.Queues)
	}
}

func TestFailedPolls(t *testing.T) {
	statusServer := func(status int, body string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			fmt.Fprint(w, body)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	_, okSrv := newFakeAPI(t, "odd")
	_, notPaged := newFakeAPI(t, "not_paged")
	// A receiver that never answers: only a fake can hold a request open.
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	t.Cleanup(hang.Close)

	for _, tc := range []struct {
		name     string
		url      string
		user     string
		password string
		timeout  time.Duration
		sentinel error
		contains []string
	}{
		{name: "401", url: okSrv.URL, user: fakeUser, password: "wrong-" + fakePass,
			sentinel: ErrCredentialsRejected, contains: []string{"credentials rejected", fakeUser, "401"}},
		{name: "403", url: statusServer(403, `{"error":"not_authorised","reason":"Not management user"}`),
			sentinel: ErrPermissionDenied, contains: []string{"permission denied", "403"}},
		{name: "500", url: statusServer(500, `{"error":"internal","reason":"boom"}`),
			contains: []string{"HTTP 500", "boom"}},
		{name: "502 not JSON", url: statusServer(502, `<html>bad gateway</html>`),
			contains: []string{"502"}},
		{name: "200 not JSON", url: statusServer(200, `<html>hello</html>`),
			contains: []string{"undecodable"}},
		{name: "200 not a paged listing", url: notPaged.URL,
			contains: []string{"undecodable", "items"}},
		{name: "200 no page_count", url: statusServer(200, `{"items":[]}`),
			contains: []string{"undecodable", "page_count"}},
		{name: "timeout", url: hang.URL, timeout: 200 * time.Millisecond,
			sentinel: ErrUnreachable, contains: []string{"management API unreachable", "timed out"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			user, pass := tc.user, tc.password
			if user == "" {
				user, pass = fakeUser, fakePass
			}
			w := &recordingWriter{}
			obs := &recordingObserver{}
			p := newTestPoller(t, PollerConfig{URL: tc.url, Username: user, Password: pass, Timeout: tc.timeout}, w, obs)
			snap := p.runOnce(t.Context())
			checkFailedPoll(t, p, snap, w, obs, pass, tc.sentinel, tc.contains...)
		})
	}
}

// checkFailedPoll asserts what every failed poll must look like.
func checkFailedPoll(t *testing.T, p *Poller, snap Snapshot, w *recordingWriter, obs *recordingObserver,
	password string, sentinel error, contains ...string) {
	t.Helper()
	if snap.Err == nil {
		t.Fatalf("poll succeeded, want an error")
	}
	msg := snap.Err.Error()
	t.Logf("error: %s", msg)
	if sentinel != nil && !errors.Is(snap.Err, sentinel) {
		t.Errorf("error %q does not wrap %v", msg, sentinel)
	}
	for _, c := range contains {
		if !strings.Contains(msg, c) {
			t.Errorf("error %q does not mention %q", msg, c)
		}
	}
	if password != "" && strings.Contains(msg, password) {
		t.Errorf("error %q contains the password", msg)
	}
	if len(snap.Queues) != 0 {
		t.Errorf("failed poll has %d queues", len(snap.Queues))
	}
	if w.count() != 0 {
		t.Errorf("failed poll wrote %d sample batches", w.count())
	}
	if s := obs.all(); len(s) != 1 || s[0].Err == nil {
		t.Errorf("observers got %+v, want the failed snapshot", s)
	}
	if l := p.Latest(); l.Err == nil || l.At.IsZero() {
		t.Errorf("Latest = %+v, want the failed snapshot", l)
	}
	if err := p.Ready(t.Context()); err == nil || err.Error() != msg {
		t.Errorf("Ready = %v, want %q", err, msg)
	}
}

func TestCancelledPollIsNotReported(t *testing.T) {
	started := make(chan struct{}, 1)
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-r.Context().Done()
	}))
	t.Cleanup(hang.Close)
	obs := &recordingObserver{}
	p := newTestPoller(t, PollerConfig{URL: hang.URL, Timeout: time.Hour}, nil, obs)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan Snapshot)
	go func() { done <- p.runOnce(ctx) }()
	<-started
	cancel()
	select {
	case snap := <-done:
		if !errors.Is(snap.Err, context.Canceled) {
			t.Errorf("interrupted poll error = %v, want context.Canceled", snap.Err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("poll did not end when its context was cancelled")
	}
	if len(obs.all()) != 0 || !p.Latest().At.IsZero() {
		t.Error("an interrupted poll was reported")
	}
	if err := p.Ready(t.Context()); err == nil {
		t.Error("Ready before any completed poll = nil")
	}
}

func TestNewPollerConfig(t *testing.T) {
	p, err := NewPoller(PollerConfig{URL: "http://127.0.0.1:15672"}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.cfg.Thresholds.Default != (Level{Warning: DefaultWarning, Critical: DefaultCritical}) {
		t.Errorf("default thresholds not applied: %+v", p.cfg.Thresholds)
	}
	if p.cfg.Interval != DefaultInterval || p.cfg.Timeout != DefaultTimeout || p.cfg.PageSize != MaxPageSize {
		t.Errorf("defaults not applied: %+v", p.cfg)
	}
	if l := p.Latest(); !l.At.IsZero() || l.Queues != nil || l.Err != nil {
		t.Error("Latest before the first poll is not the zero Snapshot")
	}
	for _, tc := range []struct {
		name string
		cfg  PollerConfig
		want string
	}{
		{"no scheme", PollerConfig{URL: "127.0.0.1:15672"}, "http"},
		{"ftp", PollerConfig{URL: "ftp://host"}, "http"},
		{"credentials in URL", PollerConfig{URL: "http://guest:hunter2@host:15672"}, "username/password"},
		{"query", PollerConfig{URL: "http://host:15672/?x=1"}, "query"},
		{"page size too big", PollerConfig{URL: "http://host", PageSize: 501}, "500"},
		{"negative page size", PollerConfig{URL: "http://host", PageSize: -1}, "page size"},
		{"negative interval", PollerConfig{URL: "http://host", Interval: -time.Second}, "poll_interval"},
		{"warning 0", PollerConfig{URL: "http://host", Thresholds: Thresholds{Default: Level{Warning: 0, Critical: 5}}}, "warning"},
		{"critical below warning", PollerConfig{URL: "http://host", Thresholds: Thresholds{Default: Level{Warning: 10, Critical: 5}}}, "critical"},
		{"bad override", PollerConfig{URL: "http://host", Thresholds: Thresholds{Queues: map[string]Level{"orders": {}}}}, `"orders"`},
		{"negative timeout", PollerConfig{URL: "http://host", Timeout: -time.Second}, "timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewPoller(tc.cfg, nil, nil, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("NewPoller = %v, want an error mentioning %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q contains the password", err)
			}
		})
	}
}
