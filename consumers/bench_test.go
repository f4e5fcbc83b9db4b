package consumers

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Throughput against the real broker: b.N messages are published (not timed)
// and then consumed with a no-op handler and one ack per message. The plain
// variant is the baseline the managed consumer must keep up with: a single
// amqp091-go consumer loop acking each delivery.
//
//	go test ./consumers -run '^$' -bench Consume -benchtime 20000x

func benchPublish(b *testing.B, queue string, n int) {
	b.Helper()
	conn, err := amqp.Dial(testAMQPURL)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 256)
	ctx := context.Background()
	var last *amqp.DeferredConfirmation
	for i := range n {
		last, err = ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, false, false,
			amqp.Publishing{Body: body, MessageId: fmt.Sprint(i)})
		if err != nil {
			b.Fatal(err)
		}
	}
	if last != nil {
		if ok, err := last.WaitContext(ctx); !ok || err != nil {
			b.Fatalf("confirm: %v", err)
		}
	}
}

func benchQueue(b *testing.B) string {
	b.Helper()
	q := fmt.Sprintf("warren-bench-%d", time.Now().UnixNano())
	conn, err := amqp.Dial(testAMQPURL)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ch, _ := conn.Channel()
	if _, err := ch.QueueDeclare(q, false, false, false, false, nil); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		conn, err := amqp.Dial(testAMQPURL)
		if err != nil {
			return
		}
		defer conn.Close()
		ch, _ := conn.Channel()
		_, _ = ch.QueueDelete(q, false, false, false)
	})
	return q
}

func BenchmarkConsumePlainAMQP(b *testing.B) {
	q := benchQueue(b)
	benchPublish(b, q, b.N)
	conn, err := amqp.Dial(testAMQPURL)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	ch, _ := conn.Channel()
	_ = ch.Qos(100, 0, false)
	b.ResetTimer()
	deliveries, err := ch.Consume(q, "", false, false, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	for range b.N {
		d := <-deliveries
		_ = d.Ack(false)
	}
}

func benchManaged(b *testing.B, concurrency int) {
	benchManagedConfig(b, concurrency, func(*Config) {})
}

// benchManagedConfig runs the managed consumer with cfg adjusted by tune.
func benchManagedConfig(b *testing.B, concurrency int, tune func(*Config)) {
	q := benchQueue(b)
	benchPublish(b, q, b.N)
	var handled atomic.Int64
	done := make(chan struct{})
	n := int64(b.N)
	noop := func(Config, *slog.Logger) (HandlerFunc, error) {
		return func(context.Context, Delivery) error {
			if handled.Add(1) == n {
				close(done)
			}
			return nil
		}, nil
	}
	cfg := Config{Name: "bench", Queue: q, MaxConcurrentMessages: concurrency, PrefetchCount: 100, Handler: HandlerConfig{Type: "noop"}}
	tune(&cfg)
	m, err := NewManager(testAMQPURL, []Config{cfg}, nil, nil, Options{Handlers: map[string]HandlerFactory{"noop": noop}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.ResetTimer()
	runDone := make(chan struct{})
	go func() { _ = m.Run(ctx); close(runDone) }()
	<-done
	b.StopTimer()
	cancel()
	<-runDone
}

func BenchmarkConsumeManagedConcurrency1(b *testing.B)  { benchManaged(b, 1) }
func BenchmarkConsumeManagedConcurrency10(b *testing.B) { benchManaged(b, 10) }

// The configuration `warren serve` runs by default: a handler deadline (5m)
// and the retry policy on (no message fails here, so no republishing).
func BenchmarkConsumeManagedServeDefaults(b *testing.B) {
	benchManagedConfig(b, 10, func(c *Config) {
		c.HandlerTimeout = 5 * time.Minute
		c.Retry = &RetryConfig{MaxAttempts: 5, InitialDelay: time.Second, Multiplier: 2}
	})
}
