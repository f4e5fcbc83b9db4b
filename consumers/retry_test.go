package consumers

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// publishOne sends one confirmed message with the given properties.
func (b *broker) publishOne(queue string, msg amqp.Publishing) {
	b.t.Helper()
	ch, err := b.conn.Channel()
	if err != nil {
		b.t.Fatal(err)
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		b.t.Fatal(err)
	}
	ctx := context.Background()
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, true, false, msg)
	if err != nil {
		b.t.Fatalf("publishing: %v", err)
	}
	if ok, err := dc.WaitContext(ctx); err != nil || !ok {
		b.t.Fatalf("publish not confirmed: %v", err)
	}
}

// getAll takes every ready message off queue (basic.get, auto-ack).
func (b *broker) getAll(queue string) []amqp.Delivery {
	b.t.Helper()
	ch, err := b.conn.Channel()
	if err != nil {
		b.t.Fatal(err)
	}
	defer ch.Close()
	var out []amqp.Delivery
	for {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			b.t.Fatalf("basic.get on %s: %v", queue, err)
		}
		if !ok {
			return out
		}
		out = append(out, d)
	}
}

// cleanupRetryQueues deletes the queues warren declares for queue's retry
// policy when the test ends.
func (b *broker) cleanupRetryQueues(queue string, r RetryConfig) {
	b.cleanupQueue(deadLetterQueueName(Config{Queue: queue, Retry: &r}))
	for n := range r.MaxAttempts {
		b.cleanupQueue(retryQueueName(queue, retryDelay(&r, n)))
	}
}

// totalUnacked sums messages_unacknowledged over queue and its retry queues
// through the management API.
func unacked(t *testing.T, queue string) int {
	var q struct {
		Unacked int `json:"messages_unacknowledged"`
	}
	mgmt(t, "GET", "/api/queues/%2F/"+queue, &q)
	return q.Unacked
}

// countingFailer fails every message (or the first n attempts of each) and
// counts handler calls per message id.
type countingFailer struct {
	mu        sync.Mutex
	calls     map[string]int
	failFirst int // fail the first failFirst calls per id; <0: always fail
	err       error
}

func (f *countingFailer) factory() HandlerFactory {
	return func(Config, *slog.Logger) (HandlerFunc, error) {
		return func(_ context.Context, d Delivery) error {
			f.mu.Lock()
			f.calls[d.MessageID]++
			n := f.calls[d.MessageID]
			f.mu.Unlock()
			if f.failFirst < 0 || n <= f.failFirst {
				return f.err
			}
			return nil
		}, nil
	}
}

func (f *countingFailer) callsOf(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[id]
}

func TestRetriesReachDeadLetterQueueWithHeaders(t *testing.T) {
	b := newBroker(t)
	q := queueName(t)
	b.declare(q, nil)
	retry := RetryConfig{MaxAttempts: 2, InitialDelay: 50 * time.Millisecond, Multiplier: 2}
	b.cleanupRetryQueues(q, retry)
	dlq := q + ".warren.dlq"

	f := &countingFailer{calls: map[string]int{}, failFirst: -1, err: errors.New("downstream says no")}
	cfg := testConfig("c", q)
	cfg.Retry = &retry
	r := startManager(t, []Config{cfg}, nil, Options{Handlers: map[string]HandlerFactory{"test": f.factory()}})

	ids := b.publish(q, 5, "m")
	eventually(t, 20*time.Second, func() bool { return mustGet(t, r.Manager, "c").DeadLettered == 5 },
		"all 5 messages dead-lettered: %+v", mustGet(t, r.Manager, "c"))
	st := mustGet(t, r.Manager, "c")
	if st.Retried != 10 || st.Failed != 15 || st.Processed != 0 {
		t.Errorf("retried=%d failed=%d processed=%d, want 10, 15, 0", st.Retried, st.Failed, st.Processed)
	}
	for _, id := range ids {
		if n := f.callsOf(id); n != 3 {
			t.Errorf("message %s handled %d times, want 3 (1 + 2 retries)", id, n)
		}
	}
	// Both delay queues exist with their TTL; the second is twice the first.
	for _, name := range []string{q + ".warren.retry.50ms", q + ".warren.retry.100ms"} {
		var info struct {
			Arguments map[string]any `json:"arguments"`
		}
		if code := mgmt(t, "GET", "/api/queues/%2F/"+name, &info); code != 200 {
			t.Errorf("delay queue %s: management API answered %d", name, code)
		}
	}
	r.stop(t)

	got := b.getAll(dlq)
	if len(got) != 5 {
		t.Fatalf("dead-letter queue holds %d messages, want 5", len(got))
	}
	seen := map[string]bool{}
	for _, d := range got {
		seen[d.MessageId] = true
		if a := attemptsOf(d.Headers); a != 3 {
			t.Errorf("%s: %s = %v, want 3", d.MessageId, HeaderAttempts, d.Headers[HeaderAttempts])
		}
		if reason, _ := d.Headers[HeaderReason].(string); !strings.Contains(reason, "downstream says no") {
			t.Errorf("%s: %s = %q", d.MessageId, HeaderReason, reason)
		}
		if oq, _ := d.Headers[HeaderOriginalQueue].(string); oq != q {
			t.Errorf("%s: %s = %q, want %q", d.MessageId, HeaderOriginalQueue, oq, q)
		}
		if at, ok := d.Headers[HeaderFailedAt].(int64); !ok || time.Since(time.UnixMilli(at)) > time.Minute {
			t.Errorf("%s: %s = %v", d.MessageId, HeaderFailedAt, d.Headers[HeaderFailedAt])
		}
		if string(d.Body) != "hello "+d.MessageId {
			t.Errorf("%s: body %q changed", d.MessageId, d.Body)
		}
	}
	for _, id := range ids {
		if !seen[id] {
			t.Errorf("message %s missing from the dead-letter queue", id)
		}
	}
	if msgs, _ := b.inspect(q); msgs != 0 {
		t.Errorf("source queue still holds %d messages", msgs)
	}
	eventually(t, 10*time.Second, func() bool { return unacked(t, q) == 0 }, "unacked back to 0")
}

func TestRetrySucceedsOnALaterAttempt(t *testing.T) {
	b := newBroker(t)
	q := queueName(t)
	b.declare(q, nil)
	retry := RetryConfig{MaxAttempts: 3, InitialDelay: 20 * time.Millisecond, Multiplier: 1, DeadLetterQueue: q + "-dead"}
	b.cleanupRetryQueues(q, retry)

	f := &countingFailer{calls: map[string]int{}, failFirst: 1, err: errors.New("flaky")}
	cfg := testConfig("c", q)
	cfg.Retry = &retry
	r := startManager(t, []Config{cfg}, nil, Options{Handlers: map[string]HandlerFactory{"test": f.factory()}})

	ids := b.publish(q, 20, "m")
	eventually(t, 20*time.Second, func() bool { return mustGet(t, r.Manager, "c").Processed == 20 },
		"all processed after one retry: %+v", mustGet(t, r.Manager, "c"))
	r.stop(t)
	st := mustGet(t, r.Manager, "c")
	if st.Retried != 20 || st.DeadLettered != 0 {
		t.Errorf("retried=%d dead_lettered=%d, want 20, 0", st.Retried, st.DeadLettered)
	}
	for _, id := range ids {
		if n := f.callsOf(id); n != 2 {
			t.Errorf("message %s handled %d times, want 2", id, n)
		}
	}
	if msgs, _ := b.inspect(q); msgs != 0 {
		t.Errorf("source queue still holds %d messages", msgs)
	}
	if msgs, _ := b.inspect(q + ".warren.retry.20ms"); msgs != 0 {
		t.Errorf("delay queue still holds %d messages", msgs)
	}
	eventually(t, 10*time.Second, func() bool { return unacked(t, q) == 0 }, "unacked back to 0")
}

func gzipped(t *testing.T, s string) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestGzipBodiesAreDecodedAndMalformedOnesDeadLetteredAtOnce(t *testing.T) {
	b := newBroker(t)
	q := queueName(t)
	b.declare(q, nil)
	retry := RetryConfig{MaxAttempts: 5, InitialDelay: time.Minute, Multiplier: 2}
	b.cleanupRetryQueues(q, retry)

	var mu sync.Mutex
	bodies := map[string]string{}
	h := func(Config, *slog.Logger) (HandlerFunc, error) {
		return func(_ context.Context, d Delivery) error {
			mu.Lock()
			bodies[d.MessageID] = string(d.Body)
			mu.Unlock()
			if d.ContentEncoding != "" {
				return fmt.Errorf("handler saw content-encoding %q", d.ContentEncoding)
			}
			if string(d.Body) == "not json" {
				return Malformed(errors.New("body is not JSON"))
			}
			return nil
		}, nil
	}
	cfg := testConfig("c", q)
	cfg.Retry = &retry
	r := startManager(t, []Config{cfg}, nil, Options{Handlers: map[string]HandlerFactory{"test": h}})

	b.publishOne(q, amqp.Publishing{MessageId: "zipped", ContentEncoding: "gzip", Body: gzipped(t, `{"a":1}`)})
	b.publishOne(q, amqp.Publishing{MessageId: "broken-gzip", ContentEncoding: "gzip", Body: []byte("plainly not gzip")})
	b.publishOne(q, amqp.Publishing{MessageId: "typed", Body: []byte("not json")})

	eventually(t, 10*time.Second, func() bool {
		st := mustGet(t, r.Manager, "c")
		return st.Processed == 1 && st.DeadLettered == 2
	}, "one processed, two dead-lettered: %+v", mustGet(t, r.Manager, "c"))
	r.stop(t)
	if st := mustGet(t, r.Manager, "c"); st.Retried != 0 {
		t.Errorf("retried = %d, want 0: malformed messages are not retried", st.Retried)
	}
	mu.Lock()
	if bodies["zipped"] != `{"a":1}` {
		t.Errorf("handler got %q for the gzip message, want the decoded body", bodies["zipped"])
	}
	if _, called := bodies["broken-gzip"]; called {
		t.Error("handler was called for a body that does not decode")
	}
	mu.Unlock()

	got := b.getAll(q + ".warren.dlq")
	reasons := map[string]string{}
	for _, d := range got {
		reason, _ := d.Headers[HeaderReason].(string)
		reasons[d.MessageId] = reason
		if a := attemptsOf(d.Headers); a != 1 {
			t.Errorf("%s: attempts %d, want 1", d.MessageId, a)
		}
		if d.MessageId == "broken-gzip" && (d.ContentEncoding != "gzip" || string(d.Body) != "plainly not gzip") {
			t.Errorf("dead letter must keep the original body and encoding, got %q %q", d.ContentEncoding, d.Body)
		}
	}
	if !strings.Contains(reasons["broken-gzip"], "malformed message: decoding gzip body") {
		t.Errorf("broken-gzip reason = %q", reasons["broken-gzip"])
	}
	if !strings.Contains(reasons["typed"], "malformed message: body is not JSON") {
		t.Errorf("typed reason = %q", reasons["typed"])
	}
	eventually(t, 10*time.Second, func() bool { return unacked(t, q) == 0 }, "unacked back to 0")
}

func TestHandlerOutlivingDeadlineFailsItsMessage(t *testing.T) {
	b := newBroker(t)
	q := queueName(t)
	b.declare(q, nil)
	retry := RetryConfig{MaxAttempts: 0, InitialDelay: time.Second, Multiplier: 1}
	b.cleanupRetryQueues(q, retry)

	release := make(chan struct{})
	var calls sync.WaitGroup
	h := func(Config, *slog.Logger) (HandlerFunc, error) {
		return func(_ context.Context, d Delivery) error {
			defer calls.Done()
			<-release // ignores its context on purpose
			return nil
		}, nil
	}
	calls.Add(3)
	cfg := testConfig("c", q)
	cfg.Retry = &retry
	cfg.HandlerTimeout = 200 * time.Millisecond
	r := startManager(t, []Config{cfg}, nil, Options{Handlers: map[string]HandlerFactory{"test": h}})

	ids := b.publish(q, 3, "stuck")
	eventually(t, 10*time.Second, func() bool { return mustGet(t, r.Manager, "c").DeadLettered == 3 },
		"stuck messages dead-lettered at the deadline: %+v", mustGet(t, r.Manager, "c"))
	// The handlers still run and hold their permits, but their messages are
	// already settled: nothing unacked on the broker.
	if st := mustGet(t, r.Manager, "c"); st.InFlight != 3 {
		t.Errorf("in_flight = %d, want 3 (handlers still running)", st.InFlight)
	}
	eventually(t, 10*time.Second, func() bool { return unacked(t, q) == 0 }, "unacked back to 0 while handlers hang")
	close(release)
	calls.Wait()
	eventually(t, 5*time.Second, func() bool { return mustGet(t, r.Manager, "c").InFlight == 0 }, "handlers returned")
	r.stop(t)
	st := mustGet(t, r.Manager, "c")
	if st.Processed != 0 || st.Failed != 3 {
		t.Errorf("processed=%d failed=%d, want 0, 3: a late success must not ack twice", st.Processed, st.Failed)
	}
	got := b.getAll(q + ".warren.dlq")
	if len(got) != len(ids) {
		t.Fatalf("dead-letter queue holds %d, want %d", len(got), len(ids))
	}
	for _, d := range got {
		if reason, _ := d.Headers[HeaderReason].(string); !strings.Contains(reason, "handler deadline 200ms exceeded") {
			t.Errorf("%s: reason %q", d.MessageId, reason)
		}
	}
	if msgs, _ := b.inspect(q); msgs != 0 {
		t.Errorf("source queue holds %d", msgs)
	}
}

func TestDeadLetterQueueDeletedMidRunLosesNothing(t *testing.T) {
	b := newBroker(t)
	q := queueName(t)
	b.declare(q, nil)
	retry := RetryConfig{MaxAttempts: 0, InitialDelay: time.Second, Multiplier: 1}
	b.cleanupRetryQueues(q, retry)
	dlq := q + ".warren.dlq"

	f := &countingFailer{calls: map[string]int{}, failFirst: -1, err: errors.New("no")}
	cfg := testConfig("c", q)
	cfg.Retry = &retry
	r := startManager(t, []Config{cfg}, nil, Options{Handlers: map[string]HandlerFactory{"test": f.factory()}})

	b.publish(q, 1, "first")
	eventually(t, 10*time.Second, func() bool { return mustGet(t, r.Manager, "c").DeadLettered == 1 }, "first dead-lettered")
	// Delete the DLQ the publisher already declared: the next dead letter is
	// unroutable, returned by the broker, and must be requeued rather than
	// acked; the retry declares the queue again.
	ch, err := b.conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDelete(dlq, false, false, false); err != nil {
		t.Fatal(err)
	}
	_ = ch.Close()
	b.publish(q, 1, "second")
	eventually(t, 10*time.Second, func() bool { return mustGet(t, r.Manager, "c").DeadLettered == 2 }, "second dead-lettered")
	r.stop(t)
	got := b.getAll(dlq)
	if len(got) != 1 || got[0].MessageId != "second-0" {
		t.Fatalf("dead-letter queue holds %v, want only second-0", got)
	}
	if n := f.callsOf("second-0"); n < 2 {
		t.Errorf("second-0 handled %d times, want at least 2 (requeued after the unroutable publish)", n)
	}
	eventually(t, 10*time.Second, func() bool { return unacked(t, q) == 0 }, "unacked back to 0")
}

func TestRetryDelays(t *testing.T) {
	r := &RetryConfig{InitialDelay: time.Second, Multiplier: 2}
	for n, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second} {
		if got := retryDelay(r, n); got != want {
			t.Errorf("retryDelay(%d) = %s, want %s", n, got, want)
		}
	}
	if got := retryDelay(&RetryConfig{InitialDelay: time.Hour, Multiplier: 10}, 50); got != maxRetryDelay {
		t.Errorf("huge delay = %s, want the cap %s", got, maxRetryDelay)
	}
	if got := retryQueueName("orders", 1500*time.Millisecond); got != "orders.warren.retry.1.5s" {
		t.Errorf("retry queue name %q", got)
	}
	if attemptsOf(amqp.Table{HeaderAttempts: int32(4)}) != 4 || attemptsOf(nil) != 0 {
		t.Error("attemptsOf")
	}
	if err := Malformed(errors.New("x")); !errors.Is(err, ErrMalformed) || err.Error() != "malformed message: x" {
		t.Errorf("Malformed: %v", err)
	}
}
