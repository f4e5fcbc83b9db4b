package consumers

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// batchRecorder records every batch call and the successes per id.
type batchRecorder struct {
	mu        sync.Mutex
	calls     [][]Delivery
	succeeded map[string]int
	fail      func(call int, batch []Delivery) error
}

func (r *batchRecorder) factory() BatchHandlerFactory {
	return func(Config, *slog.Logger) (BatchHandlerFunc, error) {
		return func(_ context.Context, batch []Delivery) error {
			r.mu.Lock()
			r.calls = append(r.calls, append([]Delivery(nil), batch...))
			call := len(r.calls)
			r.mu.Unlock()
			if r.fail != nil {
				if err := r.fail(call, batch); err != nil {
					return err
				}
			}
			r.mu.Lock()
			for _, d := range batch {
				r.succeeded[d.MessageID]++
			}
			r.mu.Unlock()
			return nil
		}, nil
	}
}

func TestFailedBatchIsRedeliveredWhole(t *testing.T) {
	b := newBroker(t)
	q := queueName(t)
	b.declare(q, nil)
	ids := b.publish(q, 5, "b") // in the queue before the consumer starts: one batch of 5

	rec := &batchRecorder{succeeded: map[string]int{}, fail: func(call int, _ []Delivery) error {
		if call == 1 {
			return errors.New("bulk insert failed")
		}
		return nil
	}}
	cfg := testConfig("batch", q)
	cfg.MaxConcurrentMessages = 1
	cfg.BatchSize = 5
	cfg.BatchTimeout = 5 * time.Second // the batch fills long before
	r := startManager(t, []Config{cfg}, nil, Options{BatchHandlers: map[string]BatchHandlerFactory{"test": rec.factory()}})

	eventually(t, 20*time.Second, func() bool { return mustGet(t, r.Manager, "batch").Processed == 5 },
		"batch processed after redelivery: %+v", mustGet(t, r.Manager, "batch"))
	r.stop(t)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.calls) != 2 {
		t.Fatalf("%d batch calls, want 2 (failed, then redelivered)", len(rec.calls))
	}
	for i, call := range rec.calls {
		var got []string
		for _, d := range call {
			got = append(got, d.MessageID)
			if i == 1 && !d.Redelivered {
				t.Errorf("second call: %s not marked redelivered", d.MessageID)
			}
		}
		if strings.Join(got, ",") != strings.Join(ids, ",") {
			t.Errorf("call %d got %v, want the whole batch %v", i+1, got, ids)
		}
	}
	if st := mustGet(t, r.Manager, "batch"); st.Failed != 5 || st.BatchSize != 5 {
		t.Errorf("failed=%d batch_size=%d, want 5, 5", st.Failed, st.BatchSize)
	}
	if msgs, _ := b.inspect(q); msgs != 0 {
		t.Errorf("queue holds %d", msgs)
	}
	eventually(t, 10*time.Second, func() bool { return unacked(t, q) == 0 }, "unacked back to 0")
}

// Concurrent batches finish out of order and some fail: multiple acks and
// nacks must never settle another batch's messages.
func TestConcurrentBatchesSettleOnlyTheirOwnMessages(t *testing.T) {
	b := newBroker(t)
	q := queueName(t)
	b.declare(q, nil)
	var mu sync.Mutex
	failedOnce := map[string]bool{}
	rec := &batchRecorder{succeeded: map[string]int{}, fail: func(call int, batch []Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		for _, d := range batch {
			if strings.HasSuffix(d.MessageID, "3") && !failedOnce[d.MessageID] {
				failedOnce[d.MessageID] = true
				return errors.New("contains a 3")
			}
		}
		return nil
	}}
	cfg := testConfig("batches", q)
	cfg.MaxConcurrentMessages = 4
	cfg.PrefetchCount = 40
	cfg.BatchSize = 7
	cfg.BatchTimeout = 20 * time.Millisecond
	r := startManager(t, []Config{cfg}, nil, Options{BatchHandlers: map[string]BatchHandlerFactory{"test": rec.factory()}})

	const n = 200
	ids := b.publish(q, n, "m")
	eventually(t, 30*time.Second, func() bool { return mustGet(t, r.Manager, "batches").Processed == n },
		"all processed: %+v", mustGet(t, r.Manager, "batches"))
	r.stop(t)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, id := range ids {
		if rec.succeeded[id] != 1 {
			t.Errorf("%s succeeded %d times, want exactly 1", id, rec.succeeded[id])
		}
	}
	for i, call := range rec.calls {
		if len(call) > cfg.BatchSize {
			t.Errorf("call %d had %d messages", i, len(call))
		}
	}
	if msgs, _ := b.inspect(q); msgs != 0 {
		t.Errorf("queue holds %d", msgs)
	}
	eventually(t, 10*time.Second, func() bool { return unacked(t, q) == 0 }, "unacked back to 0")
}

func TestBatchWithPerMessageHandlerAndRetryPolicy(t *testing.T) {
	b := newBroker(t)
	q := queueName(t)
	b.declare(q, nil)
	// A failed batch retries every message in it, so a message can fail
	// with its neighbours several times: room for that.
	retry := RetryConfig{MaxAttempts: 10, InitialDelay: 20 * time.Millisecond, Multiplier: 1}
	b.cleanupRetryQueues(q, retry)
	f := &countingFailer{calls: map[string]int{}, failFirst: 1, err: errors.New("first try fails")}
	cfg := testConfig("batchretry", q)
	cfg.BatchSize = 4
	cfg.BatchTimeout = 20 * time.Millisecond
	cfg.Retry = &retry
	r := startManager(t, []Config{cfg}, nil, Options{Handlers: map[string]HandlerFactory{"test": f.factory()}})
	ids := b.publish(q, 12, "p")
	eventually(t, 20*time.Second, func() bool { return mustGet(t, r.Manager, "batchretry").Processed == 12 },
		"processed after retries: %+v", mustGet(t, r.Manager, "batchretry"))
	r.stop(t)
	st := mustGet(t, r.Manager, "batchretry")
	if st.DeadLettered != 0 {
		t.Errorf("dead-lettered %d", st.DeadLettered)
	}
	for _, id := range ids {
		if f.callsOf(id) < 2 {
			t.Errorf("%s handled %d times", id, f.callsOf(id))
		}
	}
	if msgs, _ := b.inspect(q); msgs != 0 {
		t.Errorf("queue holds %d", msgs)
	}
}

func TestInterceptorsWrapHandlerInOrder(t *testing.T) {
	b := newBroker(t)
	q := queueName(t)
	b.declare(q, nil)
	var mu sync.Mutex
	var trace []string
	mark := func(s string) {
		mu.Lock()
		trace = append(trace, s)
		mu.Unlock()
	}
	wrap := func(name string) Interceptor {
		return func(cfg Config, next HandlerFunc) HandlerFunc {
			return func(ctx context.Context, d Delivery) error {
				mark(name + " before " + cfg.Name)
				err := next(ctx, d)
				mark(name + " after")
				return err
			}
		}
	}
	h := func(Config, *slog.Logger) (HandlerFunc, error) {
		return func(context.Context, Delivery) error { mark("handler"); return nil }, nil
	}
	cfg := testConfig("icpt", q)
	cfg.MaxConcurrentMessages = 1
	r := startManager(t, []Config{cfg}, nil, Options{
		Handlers:     map[string]HandlerFactory{"test": h},
		Interceptors: []Interceptor{wrap("outer"), wrap("inner")},
	})
	b.publish(q, 1, "i")
	eventually(t, 10*time.Second, func() bool { return mustGet(t, r.Manager, "icpt").Processed == 1 }, "processed")
	r.stop(t)
	mu.Lock()
	defer mu.Unlock()
	want := "outer before icpt,inner before icpt,handler,inner after,outer after"
	if got := strings.Join(trace, ","); got != want {
		t.Errorf("trace %s, want %s", got, want)
	}
}
