package consumers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// memSamples is an in-memory SampleWriter standing in for the store package,
// which is built separately; it records what the Manager hands over.
type memSamples struct {
	mu      sync.Mutex
	samples []Sample
}

func (w *memSamples) WriteConsumerSamples(_ context.Context, s []Sample) error {
	w.mu.Lock()
	w.samples = append(w.samples, s...)
	w.mu.Unlock()
	return nil
}

func (w *memSamples) totals(name string) (processed, failed int64, withLatency int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.samples {
		if s.Consumer != name {
			continue
		}
		processed += s.Processed
		failed += s.Failed
		if s.LatencyP50Ms != nil {
			withLatency++
		}
	}
	return
}

func TestConsumesEverythingAndDrainsQueue(t *testing.T) {
	b := newBroker(t)
	q := queueName(t)
	b.declare(q, nil)
	const n = 200
	b.publish(q, n, "m")

	cfg := testConfig("drain", q)
	cfg.Handler = HandlerConfig{Type: HandlerSleep, Duration: time.Millisecond}
	cfg.SlowProcessingThreshold = time.Microsecond // every 1 ms message counts as slow
	w := &memSamples{}
	r := startManager(t, []Config{cfg}, w, Options{SampleInterval: 200 * time.Millisecond})

	eventually(t, 30*time.Second, func() bool { return mustGet(t, r.Manager, "drain").Processed == n },
		"all %d messages processed", n)
	eventually(t, 10*time.Second, func() bool { m, _ := b.inspect(q); return m == 0 }, "queue drained")
	st := mustGet(t, r.Manager, "drain")
	if st.Slow != n {
		t.Fatalf("slow = %d, want %d", st.Slow, n)
	}
	if st.Failed != 0 || st.State != StateRunning || st.AppliedPrefetch != 10 || st.Concurrency != 4 {
		t.Fatalf("unexpected status %+v", st)
	}
	if st.LatencyP50Ms == nil || st.LatencyP99Ms == nil || *st.LatencyP50Ms <= 0 {
		t.Fatalf("latency percentiles missing: %+v", st)
	}
	if err := r.Ready(context.Background()); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	eventually(t, 10*time.Second, func() bool { return mustGet(t, r.Manager, "drain").Rate > 0 }, "rate > 0")

	r.stop(t)
	// Everything was acked: nothing came back to the queue on close.
	if m, c := b.inspect(q); m != 0 || c != 0 {
		t.Fatalf("after shutdown: %d messages, %d consumers; want 0, 0", m, c)
	}
	if st := mustGet(t, r.Manager, "drain"); st.State != StateStopped {
		t.Fatalf("state after Run = %q, want stopped", st.State)
	}
	// The final flush makes the samples add up to the counters.
	processed, failed, withLatency := w.totals("drain")
	if processed != n || failed != 0 || withLatency == 0 {
		t.Fatalf("samples: processed %d failed %d with latency %d", processed, failed, withLatency)
	}
}

func TestFailedMessagesAreRequeuedAndCounted(t *testing.T) {
	b := newBroker(t)
	q := queueName(t)
	b.declare(q, nil)
	const n = 20
	b.publish(q, n, "f")

	rec := newRecorder()
	// Every message fails on its first delivery: even ones with an error,
	// odd ones with a panic. The redelivery succeeds.
	rec.failFn = func(d Delivery) error {
		if d.Redelivered {
			return nil
		}
		var i int
		fmt.Sscanf(d.MessageID, "f-%d", &i)
		if i%2 == 1 {
			panic("boom " + d.MessageID)
		}
		return errors.New("first attempt fails")
	}
	w := &memSamples{}
	r := startManager(t, []Config{testConfig("fail", q)}, w, Options{
		SampleInterval: time.Hour, // only the final flush
		Handlers:       map[string]HandlerFactory{"test": rec.factory()},
	})
	eventually(t, 30*time.Second, func() bool {
		st := mustGet(t, r.Manager, "fail")
		return st.Processed == n && st.Failed == n
	}, "%d processed and %d failed", n, n)
	eventually(t, 10*time.Second, func() bool { m, _ := b.inspect(q); return m == 0 }, "queue drained")
	if st := mustGet(t, r.Manager, "fail"); st.LastError == "" {
		t.Fatal("LastError empty after failures")
	}
	r.stop(t)
	if _, _, distinct := rec.stats(); distinct != n {
		t.Fatalf("distinct messages handled = %d, want %d", distinct, n)
	}
	if p, f, _ := w.totals("fail"); p != n || f != n {
		t.Fatalf("samples processed %d failed %d, want %d and %d", p, f, n, n)
	}
}

func TestSleepHandlerFailureRatioRedelivers(t *testing.T) {
	b := newBroker(t)
	q := queueName(t)
	b.declare(q, nil)
	const n = 30
	b.publish(q, n, "s")
	cfg := testConfig("ratio", q)
	cfg.Handler = HandlerConfig{Type: HandlerSleep, FailureRatio: 0.5}
	r := startManager(t, []Config{cfg}, nil, Options{})
	// With ratio 0.5 the chance that none of 30 fails is 2^-30.
	eventually(t, 30*time.Second, func() bool {
		st := mustGet(t, r.Manager, "ratio")
		return st.Processed == n && st.Failed > 0
	}, "all processed after some failures")
	eventually(t, 10*time.Second, func() bool { m, _ := b.inspect(q); return m == 0 }, "queue drained")
}

func TestConcurrencyChangeUnderBacklog(t *testing.T) {
	b := newBroker(t)
	q := queueName(t)
	b.declare(q, nil)
	const n = 40
	b.publish(q, n, "c")

	rec := newRecorder()
	rec.gate = make(chan struct{})
	cfg := testConfig("conc", q)
	cfg.MaxConcurrentMessages = 2
	cfg.PrefetchCount = 20
	r := startManager(t, []Config{cfg}, nil, Options{Handlers: map[string]HandlerFactory{"test": rec.factory()}})
	ctx := context.Background()

	eventually(t, 10*time.Second, func() bool { a, _, _ := rec.stats(); return a == 2 }, "2 handlers running")
	if st := mustGet(t, r.Manager, "conc"); st.InFlight != 2 {
		t.Fatalf("in-flight = %d, want 2", st.InFlight)
	}

	st, err := r.Update(ctx, "conc", Change{Concurrency: ptr(8)})
	if err != nil || st.Concurrency != 8 {
		t.Fatalf("Update concurrency 8: %+v, %v", st, err)
	}
	eventually(t, 10*time.Second, func() bool { a, _, _ := rec.stats(); return a == 8 }, "8 handlers running")
	eventually(t, 5*time.Second, func() bool { return mustGet(t, r.Manager, "conc").InFlight == 8 }, "in_flight 8")
	if _, maxSeen, _ := rec.stats(); maxSeen > 8 {
		t.Fatalf("max concurrent handlers %d > 8", maxSeen)
	}

	// Lower to 3 with 8 running: nothing is interrupted, and new work only
	// starts once fewer than 3 are in flight.
	if _, err := r.Update(ctx, "conc", Change{Concurrency: ptr(3)}); err != nil {
		t.Fatal(err)
	}
	for range 5 { // release five of the eight one by one
		rec.gate <- struct{}{}
	}
	eventually(t, 5*time.Second, func() bool { a, _, _ := rec.stats(); return a == 3 }, "3 running after releases")
	rec.resetMax()
	for range 10 { // each release lets exactly one new message start
		rec.gate <- struct{}{}
		eventually(t, 5*time.Second, func() bool { a, _, _ := rec.stats(); return a == 3 }, "back to 3 running")
	}
	if _, maxSeen, _ := rec.stats(); maxSeen > 3 {
		t.Fatalf("max concurrent handlers after lowering = %d, want <= 3", maxSeen)
	}
	close(rec.gate)
	eventually(t, 30*time.Second, func() bool { return mustGet(t, r.Manager, "conc").Processed == n }, "all processed")
}

func TestPrefetchChangeResubscribesWithoutLossOrDuplicates(t *testing.T) {
	b := newBroker(t)
	q := queueName(t)
	b.declare(q, nil)
	const n = 1500
	ids := b.publish(q, n, "p")

	rec := newRecorder()
	rec.failFn = func(Delivery) error { time.Sleep(2 * time.Millisecond); return nil } // simulated work
	cfg := testConfig("pref", q)
	cfg.PrefetchCount = 5
	r := startManager(t, []Config{cfg}, nil, Options{Handlers: map[string]HandlerFactory{"test": rec.factory()}})
	ctx := context.Background()

	eventually(t, 10*time.Second, func() bool { return mustGet(t, r.Manager, "pref").Processed >= 50 }, "some processed")
	st, err := r.Update(ctx, "pref", Change{Prefetch: ptr(50)})
	if err != nil {
		t.Fatal(err)
	}
	if st.Prefetch != 50 || st.AppliedPrefetch != 50 {
		t.Fatalf("after Update: prefetch %d applied %d, want 50/50", st.Prefetch, st.AppliedPrefetch)
	}
	// A second switch while the first old consumer may still be draining.
	if st, err = r.Update(ctx, "pref", Change{Prefetch: ptr(40)}); err != nil || st.AppliedPrefetch != 40 {
		t.Fatalf("second Update: %+v, %v", st, err)
	}
	eventually(t, 20*time.Second, func() bool {
		cs := mgmtConsumers(t, "/", q)
		return len(cs) == 1 && cs[0].PrefetchCount == 40 && strings.HasPrefix(cs[0].ConsumerTag, "warren-pref-")
	}, "management API lists one consumer with prefetch 40")

	eventually(t, 60*time.Second, func() bool { return mustGet(t, r.Manager, "pref").Processed == n }, "all processed")
	eventually(t, 10*time.Second, func() bool { m, _ := b.inspect(q); return m == 0 }, "queue drained")
	r.stop(t)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, id := range ids {
		if c := rec.seen[id]; c != 1 {
			t.Errorf("message %s handled %d times, want 1", id, c)
		}
	}
	if len(rec.seen) != n {
		t.Errorf("handled %d distinct messages, want %d", len(rec.seen), n)
	}
	if st := mustGet(t, r.Manager, "pref"); st.Failed != 0 || st.Processed != n {
		t.Errorf("counters after run: %+v", st)
	}
}

func TestPauseStopsIntakeAndResumeContinues(t *testing.T) {
	b := newBroker(t)
	q := queueName(t)
	b.declare(q, nil)
	const n = 300
	b.publish(q, n, "z")

	rec := newRecorder()
	rec.failFn = func(Delivery) error { time.Sleep(5 * time.Millisecond); return nil } // simulated work
	cfg := testConfig("pause", q)
	cfg.MaxConcurrentMessages = 2
	r := startManager(t, []Config{cfg}, nil, Options{Handlers: map[string]HandlerFactory{"test": rec.factory()}})
	ctx := context.Background()

	eventually(t, 10*time.Second, func() bool { return mustGet(t, r.Manager, "pause").Processed >= 10 }, "some processed")
	st, err := r.Pause(ctx, "pause")
	if err != nil || st.State != StatePaused {
		t.Fatalf("Pause: %+v, %v", st, err)
	}
	// Paused without a change, nothing is pending (a trial saw "applying"
	// on every paused consumer); a change made while paused is.
	if st.PrefetchPending {
		t.Errorf("paused without a prefetch change: prefetch_pending true")
	}
	if st, err := r.Update(ctx, "pause", Change{Prefetch: ptr(cfg.PrefetchCount + 1)}); err != nil || !st.PrefetchPending {
		t.Fatalf("prefetch changed while paused: pending %v, %v", st.PrefetchPending, err)
	}
	if st, err := r.Update(ctx, "pause", Change{Prefetch: ptr(cfg.PrefetchCount)}); err != nil || st.PrefetchPending {
		t.Fatalf("prefetch changed back while paused: pending %v, %v", st.PrefetchPending, err)
	}
	eventually(t, 10*time.Second, func() bool { return mustGet(t, r.Manager, "pause").InFlight == 0 }, "in-flight drained")
	processed := mustGet(t, r.Manager, "pause").Processed
	if processed >= n {
		t.Fatalf("everything processed before pause took effect")
	}
	// Intake stopped: no consumer on the queue, and every message not
	// processed is back to ready (prefetched ones were requeued).
	eventually(t, 10*time.Second, func() bool {
		m, c := b.inspect(q)
		return c == 0 && m == n-int(processed)
	}, "queue holds the %d unprocessed messages with no consumer", n-int(processed))
	if p := mustGet(t, r.Manager, "pause").Processed; p != processed {
		t.Fatalf("processed moved while paused: %d -> %d", processed, p)
	}
	if err := r.Ready(ctx); err != nil {
		t.Fatalf("Ready while paused: %v", err)
	}

	st, err = r.Resume(ctx, "pause")
	if err != nil || st.State != StateRunning || st.AppliedPrefetch != 10 {
		t.Fatalf("Resume: %+v, %v", st, err)
	}
	eventually(t, 30*time.Second, func() bool { return mustGet(t, r.Manager, "pause").Processed == n }, "all processed")
	eventually(t, 10*time.Second, func() bool { m, _ := b.inspect(q); return m == 0 }, "queue drained")
	if st := mustGet(t, r.Manager, "pause"); st.Failed != 0 {
		t.Fatalf("failures: %+v", st)
	}
}

func TestShutdownDrainsInFlight(t *testing.T) {
	b := newBroker(t)
	q := queueName(t)
	b.declare(q, nil)
	b.publish(q, 10, "d")

	rec := newRecorder()
	rec.gate = make(chan struct{})
	cfg := testConfig("shut", q)
	cfg.MaxConcurrentMessages = 3
	r := startManager(t, []Config{cfg}, nil, Options{Handlers: map[string]HandlerFactory{"test": rec.factory()}})

	eventually(t, 10*time.Second, func() bool { a, _, _ := rec.stats(); return a == 3 }, "3 handlers running")
	r.cancel()
	// Intake stops at once (basic.cancel) while the three keep running.
	eventually(t, 10*time.Second, func() bool { _, c := b.inspect(q); return c == 0 }, "consumer cancelled")
	select {
	case <-r.done:
		t.Fatal("Run returned while handlers were still running")
	default:
	}
	close(rec.gate)
	r.stop(t)
	st := mustGet(t, r.Manager, "shut")
	if st.Processed != 3 || st.Failed != 0 || st.InFlight != 0 {
		t.Fatalf("after shutdown: %+v; want 3 processed", st)
	}
	if m, _ := b.inspect(q); m != 7 {
		t.Fatalf("queue holds %d messages, want the 7 never started", m)
	}
}

func TestShutdownTimeoutRequeuesUnfinished(t *testing.T) {
	b := newBroker(t)
	q := queueName(t)
	b.declare(q, nil)
	b.publish(q, 5, "t")

	rec := newRecorder()
	rec.gate = make(chan struct{}) // never opened: handlers only return on ctx cancel
	cfg := testConfig("timeout", q)
	cfg.MaxConcurrentMessages = 2
	r := startManager(t, []Config{cfg}, nil, Options{
		ShutdownTimeout: 300 * time.Millisecond,
		Handlers:        map[string]HandlerFactory{"test": rec.factory()},
	})
	eventually(t, 10*time.Second, func() bool { a, _, _ := rec.stats(); return a == 2 }, "2 handlers running")
	r.stop(t)
	st := mustGet(t, r.Manager, "timeout")
	if st.Processed != 0 || st.Failed != 0 || st.InFlight != 0 {
		t.Fatalf("after shutdown: %+v", st)
	}
	if m, _ := b.inspect(q); m != 5 {
		t.Fatalf("queue holds %d messages, want all 5 requeued", m)
	}
}

func TestReconnectsAfterConnectionClosed(t *testing.T) {
	b := newBroker(t)
	q := queueName(t)
	b.declare(q, nil)
	rec := newRecorder()
	cfg := testConfig("reco-"+q[len(q)-6:], q)
	r := startManager(t, []Config{cfg}, nil, Options{Handlers: map[string]HandlerFactory{"test": rec.factory()}})
	eventually(t, 10*time.Second, func() bool { return r.Ready(context.Background()) == nil }, "ready")

	// Close the consumer's connection from the broker side.
	connName := "warren-" + cfg.Name
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

	c := r.byName[cfg.Name]
	eventually(t, 20*time.Second, func() bool {
		return c.tagSeq.Load() >= 2 && mustGet(t, r.Manager, cfg.Name).State == StateRunning
	}, "re-subscribed after the connection was closed")
	b.publish(q, 10, "r")
	eventually(t, 20*time.Second, func() bool { return mustGet(t, r.Manager, cfg.Name).Processed == 10 }, "processing continues")
}

func TestDeclareQueue(t *testing.T) {
	b := newBroker(t)
	missing := queueName(t) + "-new"
	b.cleanupQueue(missing)
	existing := queueName(t) + "-old"
	// Declared elsewhere with arguments warren does not know: the passive
	// check must accept it instead of failing with 406.
	b.declare(existing, amqp.Table{"x-max-length": int32(1000)})

	mk := func(name, q string) Config {
		c := testConfig(name, q)
		c.Declare = true
		c.Handler = HandlerConfig{Type: HandlerSleep}
		return c
	}
	r := startManager(t, []Config{mk("new", missing), mk("old", existing)}, nil, Options{})
	eventually(t, 10*time.Second, func() bool { return r.Ready(context.Background()) == nil }, "both ready")
	b.publish(missing, 3, "n")
	b.publish(existing, 3, "o")
	eventually(t, 10*time.Second, func() bool {
		return mustGet(t, r.Manager, "new").Processed == 3 && mustGet(t, r.Manager, "old").Processed == 3
	}, "both consume")
}

func TestReadyNamesConsumerWithMissingQueue(t *testing.T) {
	q := queueName(t) + "-absent"
	cfg := testConfig("absent", q)
	cfg.Handler = HandlerConfig{Type: HandlerSleep}
	r := startManager(t, []Config{cfg}, nil, Options{})
	eventually(t, 10*time.Second, func() bool {
		err := r.Ready(context.Background())
		return err != nil && strings.Contains(err.Error(), `"absent"`) &&
			strings.Contains(err.Error(), "cancelled: queue missing") && strings.Contains(err.Error(), "NOT_FOUND")
	}, "Ready names the consumer and the missing queue")
	// Pausing a consumer takes it out of readiness.
	if _, err := r.Pause(context.Background(), "absent"); err != nil {
		t.Fatal(err)
	}
	if err := r.Ready(context.Background()); err != nil {
		t.Fatalf("Ready with the only consumer paused: %v", err)
	}
}

func TestConsumesFromOtherVhost(t *testing.T) {
	// A vhost whose name needs escaping everywhere it goes into a URL.
	vhost := "warren test/" + strings.TrimPrefix(queueName(t), "warren-test-")
	path := "/api/vhosts/" + url.PathEscape(vhost)
	if code := mgmtDo(t, http.MethodPut, path, ""); code >= 300 {
		t.Fatalf("creating vhost: HTTP %d", code)
	}
	t.Cleanup(func() { mgmtDo(t, http.MethodDelete, path, "") })
	perm := `{"configure":".*","write":".*","read":".*"}`
	if code := mgmtDo(t, http.MethodPut, "/api/permissions/"+url.PathEscape(vhost)+"/guest", perm); code >= 300 {
		t.Fatalf("granting permissions: HTTP %d", code)
	}

	cfg := testConfig("vhost", "jobs")
	cfg.Vhost = vhost
	cfg.Declare = true
	cfg.Handler = HandlerConfig{Type: HandlerLog}
	r := startManager(t, []Config{cfg}, nil, Options{})
	eventually(t, 10*time.Second, func() bool { return r.Ready(context.Background()) == nil }, "ready")

	conn, err := amqp.DialConfig(testAMQPURL, amqp.Config{Vhost: vhost})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	vb := &broker{t: t, conn: conn}
	vb.publish("jobs", 5, "v")
	eventually(t, 10*time.Second, func() bool { return mustGet(t, r.Manager, "vhost").Processed == 5 }, "processed in vhost")
	if st := mustGet(t, r.Manager, "vhost"); st.Vhost != vhost {
		t.Fatalf("status vhost %q, want %q", st.Vhost, vhost)
	}
}

func mgmtDo(t *testing.T, method, path, body string) int {
	t.Helper()
	req, err := http.NewRequest(method, testMgmtURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("guest", "guest")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("management API %s %s: %v", method, path, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
