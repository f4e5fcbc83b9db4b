package consumers

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

const (
	testAMQPURL = "amqp://guest:guest@127.0.0.1:5672/"
	testMgmtURL = "http://127.0.0.1:15672"
)

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %s", timeout, fmt.Sprintf(format, args...))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("WARREN_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// broker is a test connection used to declare, publish and inspect queues.
type broker struct {
	t    *testing.T
	conn *amqp.Connection
}

func newBroker(t *testing.T) *broker {
	t.Helper()
	conn, err := amqp.Dial(testAMQPURL)
	if err != nil {
		t.Fatalf("connecting to the test broker: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &broker{t: t, conn: conn}
}

// queueName returns a unique queue name for this test.
func queueName(t *testing.T) string {
	n := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	return fmt.Sprintf("warren-test-%s-%06d", n, rand.IntN(1000000))
}

// declare creates a durable queue and deletes it when the test ends.
func (b *broker) declare(name string, args amqp.Table) {
	b.t.Helper()
	ch, err := b.conn.Channel()
	if err != nil {
		b.t.Fatal(err)
	}
	defer ch.Close()
	if _, err := ch.QueueDeclare(name, true, false, false, false, args); err != nil {
		b.t.Fatalf("declaring %s: %v", name, err)
	}
	b.cleanupQueue(name)
}

func (b *broker) cleanupQueue(name string) {
	b.t.Cleanup(func() {
		conn, err := amqp.Dial(testAMQPURL)
		if err != nil {
			return
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			return
		}
		_, _ = ch.QueueDelete(name, false, false, false)
	})
}

// publish sends n persistent messages with ids prefix-0..n-1 and waits for
// the broker's confirms.
func (b *broker) publish(queue string, n int, prefix string) []string {
	b.t.Helper()
	ch, err := b.conn.Channel()
	if err != nil {
		b.t.Fatal(err)
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		b.t.Fatal(err)
	}
	ids := make([]string, n)
	ctx := context.Background()
	for i := range n {
		ids[i] = fmt.Sprintf("%s-%d", prefix, i)
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, true, false, amqp.Publishing{
			DeliveryMode: amqp.Persistent,
			ContentType:  "text/plain",
			MessageId:    ids[i],
			Body:         []byte("hello " + ids[i]),
		})
		if err != nil {
			b.t.Fatalf("publishing: %v", err)
		}
		if i == n-1 {
			if ok, err := dc.WaitContext(ctx); err != nil || !ok {
				b.t.Fatalf("publish not confirmed: %v", err)
			}
		}
	}
	return ids
}

// inspect returns the ready message count and consumer count of a queue
// (passive declare: exact, no management-API lag).
func (b *broker) inspect(queue string) (messages, consumers int) {
	b.t.Helper()
	ch, err := b.conn.Channel()
	if err != nil {
		b.t.Fatal(err)
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		b.t.Fatalf("inspecting %s: %v", queue, err)
	}
	return q.Messages, q.Consumers
}

// mgmt GETs a management API path and decodes the JSON answer.
func mgmt(t *testing.T, method, path string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, testMgmtURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("guest", "guest")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("management API %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, out); err != nil {
			t.Fatalf("decoding %s: %v", path, err)
		}
	}
	return resp.StatusCode
}

type mgmtConsumer struct {
	ConsumerTag   string `json:"consumer_tag"`
	PrefetchCount int    `json:"prefetch_count"`
	Queue         struct {
		Name string `json:"name"`
	} `json:"queue"`
}

func mgmtConsumers(t *testing.T, vhost, queue string) []mgmtConsumer {
	var all []mgmtConsumer
	mgmt(t, http.MethodGet, "/api/consumers/"+url.PathEscape(vhost), &all)
	var out []mgmtConsumer
	for _, c := range all {
		if c.Queue.Name == queue {
			out = append(out, c)
		}
	}
	return out
}

// recorder is a test handler that counts every message id it saw, tracks
// how many handlers run at once, and can block handlers on a gate.
type recorder struct {
	mu      sync.Mutex
	seen    map[string]int
	active  int
	maxSeen int
	gate    chan struct{} // nil: do not block; otherwise each handler takes one token or waits for close
	failFn  func(d Delivery) error
	started chan string // optional: receives the message id when a handler starts
}

func newRecorder() *recorder { return &recorder{seen: make(map[string]int)} }

func (r *recorder) factory() HandlerFactory {
	return func(Config, *slog.Logger) (HandlerFunc, error) { return r.handle, nil }
}

func (r *recorder) handle(ctx context.Context, d Delivery) error {
	r.mu.Lock()
	r.active++
	r.maxSeen = max(r.maxSeen, r.active)
	gate, failFn := r.gate, r.failFn
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.active--
		r.mu.Unlock()
	}()
	if r.started != nil {
		r.started <- d.MessageID
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if failFn != nil {
		if err := failFn(d); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.seen[d.MessageID]++
	r.mu.Unlock()
	return nil
}

func (r *recorder) stats() (active, maxSeen, distinct int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.active, r.maxSeen, len(r.seen)
}

func (r *recorder) resetMax() {
	r.mu.Lock()
	r.maxSeen = r.active
	r.mu.Unlock()
}

// testConfig is a consumer on queue using the "test" handler type.
func testConfig(name, queue string) Config {
	return Config{
		Name:                  name,
		Queue:                 queue,
		Vhost:                 "/",
		MaxConcurrentMessages: 4,
		PrefetchCount:         10,
		MaxConcurrency:        50,
		MaxPrefetch:           500,
		Handler:               HandlerConfig{Type: "test"},
	}
}

// running is a Manager started by startManager.
type running struct {
	*Manager
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
	err    error         // Run's result, valid after done
}

// stop cancels Run and waits for it to return.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		if r.err != nil {
			t.Fatalf("Run returned %v", r.err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func startManager(t *testing.T, cfgs []Config, w SampleWriter, opts Options) *running {
	t.Helper()
	if opts.ReconnectMinBackoff == 0 {
		opts.ReconnectMinBackoff = 50 * time.Millisecond
		opts.ReconnectMaxBackoff = 500 * time.Millisecond
	}
	m, err := NewManager(testAMQPURL, cfgs, w, testLogger(t), opts)
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Manager: m, cancel: cancel, done: make(chan struct{})}
	go func() {
		r.err = m.Run(ctx)
		close(r.done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(60 * time.Second):
		}
	})
	return r
}

func mustGet(t *testing.T, m *Manager, name string) Status {
	t.Helper()
	st, err := m.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func ptr[T any](v T) *T { return &v }
