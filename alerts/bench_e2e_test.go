package alerts_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"warren/alerts"
	"warren/monitor"
	"warren/store"
)

// BenchmarkAlertLatencyRealBroker measures, against the real broker and
// management API, the time from the publish that takes a queue with no
// consumer past its critical level to the firing webhook arriving at a
// real receiver (poller 1s with the AMQP depth probe -> evaluator -> SQLite
// outbox -> dispatcher).
//
//	go test ./alerts -run '^$' -bench AlertLatencyRealBroker -benchtime 5x
func BenchmarkAlertLatencyRealBroker(b *testing.B) {
	conn, err := amqp.Dial("amqp://guest:guest@127.0.0.1:5672/")
	if err != nil {
		b.Skipf("needs RabbitMQ on 127.0.0.1:5672: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		b.Fatal(err)
	}
	publish := func(q string, n int) {
		for range n {
			dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), "", q, false, false, amqp.Publishing{Body: []byte("x")})
			if err != nil {
				b.Fatal(err)
			}
			if ok, err := dc.WaitContext(context.Background()); !ok || err != nil {
				b.Fatalf("publish not confirmed: %v", err)
			}
		}
	}
	const interval = time.Second
	var worst, total time.Duration
	for i := 0; i < b.N; i++ {
		q := fmt.Sprintf("warren-bench-latency-%d-%d", time.Now().UnixNano(), i)
		if _, err := ch.QueueDeclare(q, false, false, false, false, nil); err != nil {
			b.Fatal(err)
		}
		fired := make(chan time.Time, 4)
		recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// The poller sees every queue of the shared broker; only
			// this queue's alert counts.
			var p alerts.GenericPayload
			if json.NewDecoder(r.Body).Decode(&p) != nil || p.Alert.Queue != q || p.Status != alerts.StateFiring {
				return
			}
			select {
			case fired <- time.Now():
			default:
			}
		}))
		st := newBenchStore(b)
		hooks := []alerts.WebhookConfig{{Name: "bench", URL: recv.URL, Format: "generic"}}
		d, err := alerts.NewDispatcher(st, hooks, nil)
		if err != nil {
			b.Fatal(err)
		}
		limits := monitor.Thresholds{Default: monitor.Level{Warning: 10, Critical: 10}}
		e := alerts.NewEvaluator(st, hooks, nil, alerts.WithThresholds(limits), alerts.WithWaker(d))
		seen := &depthWatcher{queue: q, want: 9, ch: make(chan struct{})}
		p, err := monitor.NewPoller(monitor.PollerConfig{URL: "http://127.0.0.1:15672", Username: "guest", Password: "guest",
			Interval: interval, Thresholds: limits,
			// As `warren serve` wires it (management.probe_queues: 50).
			Probe: monitor.ProbeConfig{AMQPURL: "amqp://guest:guest@127.0.0.1:5672/", MaxQueues: 50, Timeout: interval / 2}}, st, []monitor.Observer{e, seen}, nil)
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); _ = d.Run(ctx) }()
		go func() { defer wg.Done(); _ = p.Run(ctx) }()
		publish(q, 9)
		select { // a poll has seen the queue just under critical
		case <-seen.ch:
		case <-time.After(60 * time.Second):
			b.Fatal("no poll saw 9 messages")
		}
		b.ResetTimer()
		publish(q, 1)
		crossed := time.Now()
		var at time.Time
		select {
		case at = <-fired:
		case <-time.After(60 * time.Second):
			b.Fatal("no webhook")
		}
		b.StopTimer()
		lat := at.Sub(crossed)
		total += lat
		worst = max(worst, lat)
		cancel()
		wg.Wait()
		recv.Close()
		_ = st.Close()
		_, _ = ch.QueueDelete(q, false, false, false)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/alert-avg")
	b.ReportMetric(float64(worst.Milliseconds()), "ms/alert-max")
}

// depthWatcher closes ch once a successful poll shows queue at want messages.
type depthWatcher struct {
	queue string
	want  int64
	once  sync.Once
	ch    chan struct{}
}

func (w *depthWatcher) ObserveSnapshot(_ context.Context, s monitor.Snapshot) {
	for _, q := range s.Queues {
		if q.Name == w.queue && q.Messages != nil && *q.Messages == w.want {
			w.once.Do(func() { close(w.ch) })
		}
	}
}

func newBenchStore(b *testing.B) *store.Store {
	st, err := store.Open(context.Background(), filepath.Join(b.TempDir(), "warren.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	return st
}
