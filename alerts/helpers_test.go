package alerts_test

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"warren/alerts"
	"warren/monitor"
	"warren/store"
)

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not a wait for an event
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// uniqueQueue gives each test its own queue name, as the project's tests do.
func uniqueQueue(t *testing.T, suffix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return t.Name() + "-" + suffix + "-" + hex.EncodeToString(b)
}

// openStore opens the real SQLite store at path (migrations applied).
func openStore(t *testing.T, path string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), path, testLogger(t))
	if err != nil {
		t.Fatalf("opening store: %v", err)
	}
	return st
}

func newStore(t *testing.T) *store.Store {
	st := openStore(t, filepath.Join(t.TempDir(), "warren.db"))
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// pending returns every notification not yet delivered or abandoned,
// whenever it is due.
func pending(t *testing.T, st alerts.DeliveryStore) []alerts.Notification {
	t.Helper()
	ns, err := st.PendingNotifications(context.Background(), time.Now().Add(24*time.Hour), 0)
	if err != nil {
		t.Fatalf("reading outbox: %v", err)
	}
	return ns
}

// startDispatcher runs a dispatcher until the returned stop is called (or
// the test ends) and checks that Run returns nil.
func startDispatcher(t *testing.T, st alerts.DeliveryStore, hooks []alerts.WebhookConfig, opts ...alerts.DispatcherOption) (*alerts.Dispatcher, func()) {
	t.Helper()
	opts = append([]alerts.DispatcherOption{
		alerts.WithBackoff(2*time.Millisecond, 20*time.Millisecond),
		alerts.WithPollInterval(20 * time.Millisecond),
	}, opts...)
	d, err := alerts.NewDispatcher(st, hooks, testLogger(t), opts...)
	if err != nil {
		t.Fatalf("NewDispatcher: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Dispatcher.Run returned %v, want nil", err)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("Dispatcher.Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return d, stop
}

// request is one webhook POST as a receiver saw it.
type request struct {
	Delivery    string
	Signature   string
	HasSig      bool
	ContentType string
	UserAgent   string
	Body        []byte
	Payload     alerts.GenericPayload
	Raw         map[string]any
}

// receiver is a real HTTP webhook receiver recording what it got. respond
// picks the status of the nth request (0-based); nil means 200.
type receiver struct {
	t      *testing.T
	secret string
	srv    *httptest.Server

	mu       sync.Mutex
	requests []request
	respond  func(n int, r request) int
}

func newReceiver(t *testing.T, secret string, respond func(n int, r request) int) *receiver {
	rc := &receiver{t: t, secret: secret, respond: respond}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		rc.t.Errorf("receiver: reading body: %v", err)
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	req := request{
		Delivery:    r.Header.Get("X-Warren-Delivery"),
		ContentType: r.Header.Get("Content-Type"),
		UserAgent:   r.Header.Get("User-Agent"),
		Body:        body,
	}
	req.Signature, req.HasSig = r.Header.Get("X-Warren-Signature"), r.Header.Get("X-Warren-Signature") != ""
	if r.Method != http.MethodPost {
		rc.t.Errorf("receiver: method %s, want POST", r.Method)
	}
	if err := json.Unmarshal(body, &req.Payload); err != nil {
		rc.t.Errorf("receiver: body is not JSON: %v: %s", err, body)
	}
	_ = json.Unmarshal(body, &req.Raw)
	if rc.secret != "" {
		// Verified independently of alerts.Signature.
		mac := hmac.New(sha256.New, []byte(rc.secret))
		mac.Write(body)
		want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
		if !hmac.Equal([]byte(req.Signature), []byte(want)) {
			rc.t.Errorf("receiver: signature %q does not match body (want %q)", req.Signature, want)
		}
	} else if req.HasSig {
		rc.t.Errorf("receiver: unexpected signature %q without a secret", req.Signature)
	}
	rc.mu.Lock()
	n := len(rc.requests)
	rc.requests = append(rc.requests, req)
	respond := rc.respond
	rc.mu.Unlock()
	status := http.StatusOK
	if respond != nil {
		status = respond(n, req)
	}
	w.WriteHeader(status)
}

func (rc *receiver) got() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]request(nil), rc.requests...)
}

func (rc *receiver) count() int { return len(rc.got()) }

// hook returns a webhook pointing at the receiver.
func (rc *receiver) hook(name string) alerts.WebhookConfig {
	return alerts.WebhookConfig{Name: name, URL: rc.srv.URL + "/hook", Secret: rc.secret, Format: "generic", Timeout: 5 * time.Second}
}

var testThresholds = monitor.Thresholds{Default: monitor.Level{Warning: 10, Critical: 20}}

// depth is a queue sample classified like the monitor does; messages < 0
// means the broker did not report a depth.
func depth(vhost, name string, messages int64) monitor.QueueSample {
	q := monitor.QueueSample{Vhost: vhost, Name: name}
	if messages >= 0 {
		q.Messages = &messages
	}
	q.Status = testThresholds.Classify(name, q.Messages)
	return q
}

// clock hands out strictly increasing poll times, in the past like a
// real poll's.
type clock struct{ at time.Time }

func newClock() *clock {
	return &clock{at: time.Now().Add(-time.Hour).UTC().Truncate(time.Millisecond)}
}

func (c *clock) snap(queues ...monitor.QueueSample) monitor.Snapshot {
	c.at = c.at.Add(5 * time.Second)
	return monitor.Snapshot{At: c.at, Queues: queues}
}

func (c *clock) failed() monitor.Snapshot {
	c.at = c.at.Add(5 * time.Second)
	return monitor.Snapshot{At: c.at, Err: errors.New("management API unreachable")}
}

func newEvaluator(t *testing.T, st alerts.Store, hooks []alerts.WebhookConfig, w alerts.Waker) *alerts.Evaluator {
	t.Helper()
	opts := []alerts.EvaluatorOption{alerts.WithThresholds(testThresholds)}
	if w != nil {
		opts = append(opts, alerts.WithWaker(w))
	}
	e := alerts.NewEvaluator(st, hooks, testLogger(t), opts...)
	if err := e.Load(context.Background()); err != nil {
		t.Fatalf("Load: %v", err)
	}
	return e
}

func activeAlerts(t *testing.T, e *alerts.Evaluator) []alerts.Alert {
	t.Helper()
	as, err := e.ActiveAlerts(context.Background())
	if err != nil {
		t.Fatalf("ActiveAlerts: %v", err)
	}
	return as
}
