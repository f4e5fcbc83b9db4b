package consumers

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// closeConnection force-closes the broker connection named connName through
// the management API.
func closeConnection(t *testing.T, connName string) {
	t.Helper()
	eventually(t, 20*time.Second, func() bool {
		var conns []struct {
			Name             string         `json:"name"`
			ClientProperties map[string]any `json:"client_properties"`
		}
		mgmt(t, http.MethodGet, "/api/connections", &conns)
		for _, c := range conns {
			if c.ClientProperties["connection_name"] == connName {
				return mgmt(t, http.MethodDelete, "/api/connections/"+url.PathEscape(c.Name), nil) < 300
			}
		}
		return false
	}, "connection %s closed through the management API", connName)
}

func TestConnectionForceClosedWithUnackedMessagesLosesNothing(t *testing.T) {
	b := newBroker(t)
	q := queueName(t)
	b.declare(q, nil)
	rec := newRecorder()
	rec.gate = make(chan struct{})
	cfg := testConfig("kill-"+q[len(q)-6:], q)
	r := startManager(t, []Config{cfg}, nil, Options{Handlers: map[string]HandlerFactory{"test": rec.factory()}})
	eventually(t, 10*time.Second, func() bool { return r.Ready(context.Background()) == nil }, "ready")

	const n = 40
	ids := b.publish(q, n, "k")
	// Workers hold 4 unacked messages (and the prefetch buffer more) when
	// the connection dies.
	eventually(t, 10*time.Second, func() bool { a, _, _ := rec.stats(); return a == cfg.MaxConcurrentMessages }, "workers busy")
	closeConnection(t, "warren-"+cfg.Name)
	c := r.byName[cfg.Name]
	eventually(t, 20*time.Second, func() bool {
		return c.tagSeq.Load() >= 2 && mustGet(t, r.Manager, cfg.Name).State == StateRunning
	}, "re-subscribed after the connection was closed")
	close(rec.gate)

	eventually(t, 30*time.Second, func() bool { _, _, distinct := rec.stats(); return distinct == n }, "every id handled")
	eventually(t, 10*time.Second, func() bool { return mustGet(t, r.Manager, cfg.Name).Processed == n },
		"every id acked: %+v", mustGet(t, r.Manager, cfg.Name))
	r.stop(t)

	st := mustGet(t, r.Manager, cfg.Name)
	rec.mu.Lock()
	handled := 0
	for _, id := range ids {
		if rec.seen[id] == 0 {
			t.Errorf("message %s never handled", id)
		}
		handled += rec.seen[id]
	}
	rec.mu.Unlock()
	// Processed counts acks that reached the broker: exactly one per id.
	// Every extra handling is a delivery of the dead channel whose ack was
	// dropped, never sent on the new channel.
	if st.Processed != n {
		t.Errorf("processed (acked) = %d, want exactly %d", st.Processed, n)
	}
	if uint64(handled-n) != st.StaleAcks {
		t.Errorf("handled %d times for %d ids, but stale_acks = %d", handled, n, st.StaleAcks)
	}
	if st.StaleAcks < uint64(cfg.MaxConcurrentMessages) {
		t.Errorf("stale_acks = %d, want at least the %d in flight when the connection died", st.StaleAcks, cfg.MaxConcurrentMessages)
	}
	if msgs, _ := b.inspect(q); msgs != 0 {
		t.Errorf("queue still holds %d", msgs)
	}
	eventually(t, 10*time.Second, func() bool { return unacked(t, q) == 0 }, "unacked back to 0")
}

func TestQueueDeletedUnderItsConsumer(t *testing.T) {
	b := newBroker(t)
	qa, qb := queueName(t)+"-a", queueName(t)+"-b"
	b.declare(qa, nil)
	b.declare(qb, nil)
	rec := newRecorder()
	r := startManager(t, []Config{testConfig("a", qa), testConfig("b", qb)}, nil,
		Options{Handlers: map[string]HandlerFactory{"test": rec.factory()}})
	eventually(t, 10*time.Second, func() bool { return r.Ready(context.Background()) == nil }, "ready")
	b.publish(qa, 5, "a1")
	eventually(t, 10*time.Second, func() bool { return mustGet(t, r.Manager, "a").Processed == 5 }, "a consumes")

	ch, err := b.conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDelete(qa, false, false, false); err != nil {
		t.Fatal(err)
	}
	_ = ch.Close()
	eventually(t, 10*time.Second, func() bool {
		st := mustGet(t, r.Manager, "a")
		return st.State == StateCancelled && strings.Contains(st.LastError, "queue missing")
	}, "a shows cancelled: queue missing: %+v", mustGet(t, r.Manager, "a"))
	if err := r.Ready(context.Background()); err == nil || !strings.Contains(err.Error(), `consumer "a" not ready: cancelled: queue missing`) {
		t.Errorf("Ready = %v", err)
	}

	// The other consumer is unaffected.
	b.publish(qb, 10, "b")
	eventually(t, 10*time.Second, func() bool { return mustGet(t, r.Manager, "b").Processed == 10 }, "b keeps consuming")
	if st := mustGet(t, r.Manager, "b"); st.State != StateRunning {
		t.Errorf("b state %q", st.State)
	}

	// The queue comes back: a subscribes again by itself.
	b.declare(qa, nil)
	eventually(t, 20*time.Second, func() bool { return mustGet(t, r.Manager, "a").State == StateRunning }, "a running again")
	b.publish(qa, 5, "a2")
	eventually(t, 10*time.Second, func() bool { return mustGet(t, r.Manager, "a").Processed == 10 }, "a consumes again")
	r.stop(t)
	if msgs, _ := b.inspect(qa); msgs != 0 {
		t.Errorf("queue a holds %d", msgs)
	}
	if _, _, distinct := rec.stats(); distinct != 20 {
		t.Errorf("distinct ids handled = %d, want 20", distinct)
	}
}

func TestCircuitBreakerOpensAndCloses(t *testing.T) {
	b := newBroker(t)
	q := queueName(t)
	b.declare(q, nil)
	rec := newRecorder()
	var failing atomic.Bool
	failing.Store(true)
	rec.failFn = func(Delivery) error {
		if failing.Load() {
			return errors.New("downstream down")
		}
		return nil
	}
	cfg := testConfig("brk", q)
	cfg.CircuitBreaker = &BreakerConfig{FailureThreshold: 3, CoolDown: 300 * time.Millisecond, HalfOpenMax: 2}
	r := startManager(t, []Config{cfg}, nil, Options{Handlers: map[string]HandlerFactory{"test": rec.factory()}})
	eventually(t, 10*time.Second, func() bool { return r.Ready(context.Background()) == nil }, "ready")
	if st := mustGet(t, r.Manager, "brk"); st.Circuit != CircuitClosed {
		t.Fatalf("circuit %q at start", st.Circuit)
	}

	const n = 30
	ids := b.publish(q, n, "x")
	// Failures (nacked with requeue) open the circuit: intake stops, the
	// broker-side consumer is gone and the messages wait in the queue.
	eventually(t, 10*time.Second, func() bool {
		st := mustGet(t, r.Manager, "brk")
		return st.State == StateCircuitOpen && st.Circuit == CircuitOpen
	}, "circuit open: %+v", mustGet(t, r.Manager, "brk"))
	eventually(t, 10*time.Second, func() bool { _, consumers := b.inspect(q); return consumers == 0 }, "no broker consumer while open")
	// The half-open test messages still fail: it opens again.
	eventually(t, 10*time.Second, func() bool { return mustGet(t, r.Manager, "brk").CircuitOpened >= 2 },
		"reopened after failing test messages: %+v", mustGet(t, r.Manager, "brk"))
	if st := mustGet(t, r.Manager, "brk"); st.CircuitHalfOpened < 1 {
		t.Errorf("half-opened %d times", st.CircuitHalfOpened)
	}

	// The downstream recovers: the next half-open passes its test messages
	// and the circuit closes with the normal prefetch.
	failing.Store(false)
	eventually(t, 10*time.Second, func() bool {
		st := mustGet(t, r.Manager, "brk")
		return st.Circuit == CircuitClosed && st.CircuitClosed >= 1 && st.State == StateRunning && st.AppliedPrefetch == cfg.PrefetchCount
	}, "circuit closed with prefetch %d: %+v", cfg.PrefetchCount, mustGet(t, r.Manager, "brk"))
	eventually(t, 20*time.Second, func() bool { return mustGet(t, r.Manager, "brk").Processed == n },
		"everything processed: %+v", mustGet(t, r.Manager, "brk"))
	r.stop(t)
	rec.mu.Lock()
	for _, id := range ids {
		if rec.seen[id] != 1 {
			t.Errorf("message %s succeeded %d times, want 1", id, rec.seen[id])
		}
	}
	rec.mu.Unlock()
	if msgs, _ := b.inspect(q); msgs != 0 {
		t.Errorf("queue holds %d", msgs)
	}
	eventually(t, 10*time.Second, func() bool { return unacked(t, q) == 0 }, "unacked back to 0")
}

func TestThrottleLimitsHandlerCallsLive(t *testing.T) {
	b := newBroker(t)
	q := queueName(t)
	b.declare(q, nil)
	rec := newRecorder()
	rec.gate = make(chan struct{})
	cfg := testConfig("thr", q)
	cfg.MaxConcurrentMessages = 10
	cfg.PrefetchCount = 50
	cfg.Throttle = &ThrottleConfig{MaxConcurrent: 2}
	r := startManager(t, []Config{cfg}, nil, Options{Handlers: map[string]HandlerFactory{"test": rec.factory()}})
	eventually(t, 10*time.Second, func() bool { return r.Ready(context.Background()) == nil }, "ready")

	const n = 60
	ids := b.publish(q, n, "t")
	eventually(t, 10*time.Second, func() bool { a, _, _ := rec.stats(); return a == 2 }, "two calls at once")
	for range 10 {
		rec.gate <- struct{}{} // one handler finishes; the next may start
	}
	if _, maxSeen, _ := rec.stats(); maxSeen > 2 {
		t.Fatalf("%d handler calls at once with throttle.max_concurrent 2", maxSeen)
	}
	st, err := r.Update(context.Background(), "thr", Change{ThrottleMaxConcurrent: ptr(5)})
	if err != nil || st.ThrottleMaxConcurrent != 5 {
		t.Fatalf("Update: %v %+v", err, st)
	}
	eventually(t, 10*time.Second, func() bool { a, _, _ := rec.stats(); return a == 5 }, "five calls at once")
	rec.resetMax()
	for range 10 {
		rec.gate <- struct{}{}
	}
	if _, maxSeen, _ := rec.stats(); maxSeen > 5 {
		t.Fatalf("%d handler calls at once with throttle.max_concurrent 5", maxSeen)
	}
	// Off: only the worker pool limits.
	if _, err := r.Update(context.Background(), "thr", Change{ThrottleMaxConcurrent: ptr(0)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() bool { a, _, _ := rec.stats(); return a == 10 }, "ten calls at once")
	if _, err := r.Update(context.Background(), "thr", Change{ThrottleMaxConcurrent: ptr(11000)}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("out-of-range throttle accepted: %v", err)
	}
	close(rec.gate)
	eventually(t, 20*time.Second, func() bool { return mustGet(t, r.Manager, "thr").Processed == n }, "all processed")
	r.stop(t)
	rec.mu.Lock()
	for _, id := range ids {
		if rec.seen[id] != 1 {
			t.Errorf("%s handled %d times", id, rec.seen[id])
		}
	}
	rec.mu.Unlock()
}

func TestThrottleDelayBetweenCalls(t *testing.T) {
	b := newBroker(t)
	q := queueName(t)
	b.declare(q, nil)
	var mu sync.Mutex
	var starts []time.Time
	h := func(Config, *slog.Logger) (HandlerFunc, error) {
		return func(context.Context, Delivery) error {
			mu.Lock()
			starts = append(starts, time.Now())
			mu.Unlock()
			return nil
		}, nil
	}
	cfg := testConfig("delay", q)
	cfg.MaxConcurrentMessages = 10
	r := startManager(t, []Config{cfg}, nil, Options{Handlers: map[string]HandlerFactory{"test": h}})
	const gap = 40 * time.Millisecond
	if st, err := r.Update(context.Background(), "delay", Change{ThrottleDelay: ptr(gap)}); err != nil || st.ThrottleDelayMs != 40 {
		t.Fatalf("Update: %v %+v", err, st)
	}
	b.publish(q, 6, "d")
	eventually(t, 10*time.Second, func() bool { return mustGet(t, r.Manager, "delay").Processed == 6 }, "processed")
	r.stop(t)
	mu.Lock()
	defer mu.Unlock()
	// A lower bound only: calls may start later, never sooner. 5 gaps
	// between 6 calls; allow the rate limiter's rounding.
	if span := starts[len(starts)-1].Sub(starts[0]); span < 5*gap-5*time.Millisecond {
		t.Errorf("6 calls within %s, want at least %s apart in total", span, 5*gap)
	}
}

func TestPooledConnectionsAreSharedAndRecover(t *testing.T) {
	b := newBroker(t)
	base := queueName(t)
	sharing := []string{"a", "b", "c"}
	var cfgs []Config
	for _, n := range sharing {
		b.declare(base+"-"+n, nil)
		cfgs = append(cfgs, testConfig(n, base+"-"+n))
	}
	rec := newRecorder()
	r := startManager(t, cfgs, nil, Options{
		Handlers:       map[string]HandlerFactory{"test": rec.factory()},
		MaxConnections: 1, MaxChannelsPerConnection: 3,
	})
	eventually(t, 10*time.Second, func() bool { return r.Ready(context.Background()) == nil }, "ready")
	pool := r.pools["/"]
	pool.mu.Lock()
	if len(pool.conns) != 1 || pool.conns[0].leases != 3 {
		t.Errorf("pool holds %d connections; want 1 with 3 leases", len(pool.conns))
	}
	connName := pool.conns[0].name
	pool.mu.Unlock()
	first, others := sharing[0], sharing[1:]

	// A queue deleted under one consumer: the others on the same
	// connection go on.
	ch, err := b.conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDelete(base+"-"+first, false, false, false); err != nil {
		t.Fatal(err)
	}
	_ = ch.Close()
	eventually(t, 10*time.Second, func() bool { return mustGet(t, r.Manager, first).State == StateCancelled }, "%s cancelled", first)
	for _, n := range others {
		b.publish(base+"-"+n, 5, n+"1")
	}
	eventually(t, 10*time.Second, func() bool {
		return mustGet(t, r.Manager, others[0]).Processed == 5 && mustGet(t, r.Manager, others[1]).Processed == 5
	}, "the others are unaffected")
	for _, n := range others {
		if st := mustGet(t, r.Manager, n); st.State != StateRunning || st.StaleAcks != 0 {
			t.Errorf("%s: %+v", n, st)
		}
	}

	// The shared connection dies: everyone on it recovers.
	b.declare(base+"-"+first, nil)
	closeConnection(t, connName)
	eventually(t, 30*time.Second, func() bool {
		for _, n := range sharing {
			if mustGet(t, r.Manager, n).State != StateRunning {
				return false
			}
		}
		return true
	}, "the three running again")
	for _, n := range sharing {
		b.publish(base+"-"+n, 5, n+"2")
	}
	eventually(t, 20*time.Second, func() bool {
		return mustGet(t, r.Manager, first).Processed == 5 &&
			mustGet(t, r.Manager, others[0]).Processed == 10 && mustGet(t, r.Manager, others[1]).Processed == 10
	}, "all consume after the connection was replaced")
	r.stop(t)
	for _, n := range sharing {
		if msgs, _ := b.inspect(base + "-" + n); msgs != 0 {
			t.Errorf("queue %s holds %d", n, msgs)
		}
	}
}

func TestConnectionPoolExhaustedIsVisible(t *testing.T) {
	b := newBroker(t)
	base := queueName(t)
	var cfgs []Config
	for _, n := range []string{"x", "y"} {
		b.declare(base+"-"+n, nil)
		cfgs = append(cfgs, testConfig(n, base+"-"+n))
	}
	r := startManager(t, cfgs, nil, Options{
		Handlers:       map[string]HandlerFactory{"test": newRecorder().factory()},
		MaxConnections: 1, MaxChannelsPerConnection: 1,
	})
	eventually(t, 10*time.Second, func() bool {
		var running, refused int
		for _, n := range []string{"x", "y"} {
			st := mustGet(t, r.Manager, n)
			if st.State == StateRunning {
				running++
			} else if st.State == StateReconnecting && strings.Contains(st.LastError, "connection pool exhausted") {
				refused++
			}
		}
		return running == 1 && refused == 1
	}, "one consumer running, the other reconnecting with the pool exhausted")
}

// Meant to run under -race too: many workers, retries and the pool at once.
func TestTenThousandMessagesFiftyWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("long")
	}
	b := newBroker(t)
	q := queueName(t)
	b.declare(q, nil)
	retry := RetryConfig{MaxAttempts: 3, InitialDelay: 10 * time.Millisecond, Multiplier: 2}
	b.cleanupRetryQueues(q, retry)
	rec := newRecorder()
	var mu sync.Mutex
	failed := map[string]bool{}
	rec.failFn = func(d Delivery) error {
		// The first attempt of every 100th message fails.
		if strings.HasSuffix(d.MessageID, "00") {
			mu.Lock()
			defer mu.Unlock()
			if !failed[d.MessageID] {
				failed[d.MessageID] = true
				return errors.New("first attempt fails")
			}
		}
		return nil
	}
	cfg := testConfig("bulk", q)
	cfg.MaxConcurrentMessages = 50
	cfg.PrefetchCount = 200
	cfg.Retry = &retry
	r := startManager(t, []Config{cfg}, nil, Options{
		Handlers:       map[string]HandlerFactory{"test": rec.factory()},
		MaxConnections: 2,
	})
	const n = 10000
	ids := b.publish(q, n, "m")
	eventually(t, 120*time.Second, func() bool { return mustGet(t, r.Manager, "bulk").Processed == n },
		"all processed")
	r.stop(t)
	st := mustGet(t, r.Manager, "bulk")
	wantRetried := uint64(n/100 - 1) // m-100 ... m-9900
	if st.Retried != wantRetried || st.DeadLettered != 0 || st.StaleAcks != 0 {
		t.Errorf("retried=%d dead_lettered=%d stale=%d, want %d, 0, 0", st.Retried, st.DeadLettered, st.StaleAcks, wantRetried)
	}
	rec.mu.Lock()
	for _, id := range ids {
		if rec.seen[id] != 1 {
			t.Errorf("%s succeeded %d times", id, rec.seen[id])
		}
	}
	rec.mu.Unlock()
	if _, maxSeen, _ := rec.stats(); maxSeen > 50 {
		t.Errorf("%d handlers at once with 50 workers", maxSeen)
	}
	if msgs, _ := b.inspect(q); msgs != 0 {
		t.Errorf("queue holds %d", msgs)
	}
	eventually(t, 10*time.Second, func() bool { return unacked(t, q) == 0 }, "unacked back to 0")
}
