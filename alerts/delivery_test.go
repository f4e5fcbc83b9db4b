package alerts_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"warren/alerts"
	"warren/monitor"
)

// Warren (evaluator + dispatcher on one database file) restarts with three
// alerts firing; meanwhile one condition cleared and a new one appeared.
// After the restart exactly one resolved and one firing notification go out.
func TestRestartWithThreeFiringOneClearedOneNew(t *testing.T) {
	path := filepath.Join(t.TempDir(), "warren.db")
	rc := newReceiver(t, "k", nil)
	hooks := []alerts.WebhookConfig{rc.hook("ops")}
	ctx := context.Background()
	c := newClock()
	rules := alerts.RuleSet{Defaults: map[string]alerts.RuleParams{
		alerts.RuleQueueDepth: {ClearBelow: fp(8)},
		alerts.RuleNoConsumer: {Enabled: bp(true), For: dp(10 * time.Second)},
	}}
	a, b, nc, fresh := uniqueQueue(t, "a"), uniqueQueue(t, "b"), uniqueQueue(t, "nc"), uniqueQueue(t, "new")
	noConsumer := func(name string, messages, consumers int64) monitor.QueueSample {
		return monitor.QueueSample{Vhost: "/", Name: name, Messages: ip(messages), Consumers: ip(consumers)}
	}
	start := func() (*alerts.Evaluator, func(), func()) {
		st := openStore(t, path)
		d, stop := startDispatcher(t, st, hooks)
		e := alerts.NewEvaluator(st, hooks, testLogger(t), alerts.WithThresholds(testThresholds),
			alerts.WithRules(rules), alerts.WithWaker(d))
		if err := e.Load(ctx); err != nil {
			t.Fatalf("Load: %v", err)
		}
		drain := func() {
			eventually(t, 10*time.Second, "an empty outbox", func() bool { return len(pending(t, st)) == 0 })
		}
		return e, drain, func() { stop(); _ = st.Close() }
	}

	e1, drain1, stop1 := start()
	for range 3 {
		e1.ObserveSnapshot(ctx, c.snap(depth("/", a, 30), depth("/", b, 12), noConsumer(nc, 5, 0), noConsumer(fresh, 0, 0)))
	}
	eventually(t, 10*time.Second, "three firing notifications", func() bool { return rc.count() >= 3 })
	drain1()
	stop1()
	before := rc.count()

	e2, drain2, stop2 := start()
	defer stop2()
	// b cleared and fresh got a backlog with no consumer while warren was
	// down; a and nc still hold. The for of no_consumer starts afresh.
	for range 4 {
		e2.ObserveSnapshot(ctx, c.snap(depth("/", a, 30), depth("/", b, 2), noConsumer(nc, 5, 0), noConsumer(fresh, 9, 0)))
	}
	eventually(t, 10*time.Second, "two more notifications", func() bool { return rc.count() >= before+2 })
	drain2()
	got := rc.got()
	if before != 3 || len(got) != 5 {
		t.Fatalf("got %d notifications before and %d in all, want 3 and 5", before, len(got))
	}
	after := map[string]string{}
	for _, r := range got[3:] {
		after[r.Payload.Alert.Rule+" "+r.Payload.Alert.Queue] = r.Payload.Status
	}
	if after["queue_depth "+b] != "resolved" || after["no_consumer "+fresh] != "firing" {
		t.Errorf("after restart got %v, want %s resolved and %s firing (no_consumer)", after, b, fresh)
	}
}

// A receiver slower than the timeout, then answering 503 for a while, gets
// every attempt with the same delivery id and the notification once it
// recovers; it is never delivered twice.
func TestSlowThen503ReceiverGetsSameIDOnRecovery(t *testing.T) {
	var accepted atomic.Int32
	rc := &receiver{t: t}
	rc.respond = func(n int, r request) int {
		switch {
		case n == 0:
			return 0 // replaced below: the handler blocks until the client gives up
		case n < 4:
			return http.StatusServiceUnavailable
		default:
			accepted.Add(1)
			return http.StatusOK
		}
	}
	release := make(chan struct{})
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rc.count() == 0 {
			// Slower than the webhook timeout: wait until the client
			// abandons the request.
			rc.mu.Lock()
			rc.requests = append(rc.requests, request{Delivery: r.Header.Get("X-Warren-Delivery")})
			rc.mu.Unlock()
			// The server notices the client hanging up only once the
			// body has been read.
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		rc.serve(w, r)
	})
	rc.srv = httptest.NewServer(slow)
	t.Cleanup(rc.srv.Close)
	// Registered last, so it runs first: Close waits for the handler.
	t.Cleanup(func() { close(release) })
	hook := rc.hook("ops")
	hook.Timeout = 100 * time.Millisecond
	st := newStore(t)
	d, _ := startDispatcher(t, st, []alerts.WebhookConfig{hook})
	e := newEvaluator(t, st, []alerts.WebhookConfig{hook}, d)
	c := newClock()
	q := uniqueQueue(t, "slow")
	e.ObserveSnapshot(context.Background(), c.snap(depth("/", q, 12)))
	eventually(t, 20*time.Second, "an accepted delivery", func() bool { return accepted.Load() == 1 })
	eventually(t, 10*time.Second, "an empty outbox", func() bool { return len(pending(t, st)) == 0 })
	got := rc.got()
	if len(got) != 5 {
		t.Fatalf("receiver saw %d requests, want 5 (timeout, 3x503, 200)", len(got))
	}
	for i, r := range got {
		if r.Delivery == "" || r.Delivery != got[0].Delivery {
			t.Errorf("request %d delivery id %q, want %q", i, r.Delivery, got[0].Delivery)
		}
	}
	if accepted.Load() != 1 {
		t.Errorf("accepted %d times, want once", accepted.Load())
	}
}

// A resolved notification queued while the receiver is down (and warren
// restarts during the outage) arrives exactly once after recovery.
func TestResolvedDuringOutageArrivesOnce(t *testing.T) {
	var down atomic.Bool
	var resolvedOK atomic.Int32
	rc := newReceiver(t, "k", func(n int, r request) int {
		if down.Load() {
			return http.StatusServiceUnavailable
		}
		if r.Payload.Status == "resolved" {
			resolvedOK.Add(1)
		}
		return http.StatusOK
	})
	hooks := []alerts.WebhookConfig{rc.hook("ops")}
	path := filepath.Join(t.TempDir(), "warren.db")
	ctx := context.Background()
	c := newClock()
	q := uniqueQueue(t, "outage")

	st1 := openStore(t, path)
	d1, stop1 := startDispatcher(t, st1, hooks)
	e1 := newEvaluator(t, st1, hooks, d1)
	e1.ObserveSnapshot(ctx, c.snap(depth("/", q, 12)))
	eventually(t, 10*time.Second, "the firing notification", func() bool { return rc.count() == 1 })
	eventually(t, 10*time.Second, "an empty outbox", func() bool { return len(pending(t, st1)) == 0 })
	down.Store(true)
	e1.ObserveSnapshot(ctx, c.snap(depth("/", q, 1)))
	eventually(t, 10*time.Second, "failed attempts", func() bool { return rc.count() >= 3 })
	stop1()
	_ = st1.Close()

	st2 := openStore(t, path)
	t.Cleanup(func() { _ = st2.Close() })
	if n := len(pending(t, st2)); n != 1 {
		t.Fatalf("outbox holds %d notifications after restart, want the resolved one", n)
	}
	down.Store(false)
	startDispatcher(t, st2, hooks)
	eventually(t, 10*time.Second, "an empty outbox", func() bool { return len(pending(t, st2)) == 0 })

	ids := map[string]bool{}
	for _, r := range rc.got()[1:] {
		if r.Payload.Status != "resolved" {
			t.Errorf("unexpected %s notification", r.Payload.Status)
		}
		ids[r.Delivery] = true
	}
	if resolvedOK.Load() != 1 || len(ids) != 1 {
		t.Errorf("resolved accepted %d times with %d delivery ids, want once with one id", resolvedOK.Load(), len(ids))
	}
}
