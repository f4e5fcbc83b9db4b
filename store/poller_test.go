package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"warren/monitor"
)

// TestPollerWritesSamples runs the real poller against the real broker's
// management API with this store as its writer, and reads the samples back.
func TestPollerWritesSamples(t *testing.T) {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	queue := fmt.Sprintf("warren %s %s <b>/#?+ é", t.Name(), hex.EncodeToString(b))

	conn, err := amqp.Dial("amqp://guest:guest@127.0.0.1:5672/")
	if err != nil {
		t.Fatalf("connecting to RabbitMQ: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := ch.QueueDelete(queue, false, false, false); err != nil {
			t.Errorf("deleting %q: %v", queue, err)
		}
	})
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	const n = 3
	for i := range n {
		conf, err := ch.PublishWithDeferredConfirmWithContext(t.Context(), "", queue, true, false,
			amqp.Publishing{DeliveryMode: amqp.Persistent, Body: fmt.Appendf(nil, "m%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := conf.WaitContext(t.Context()); err != nil || !ok {
			t.Fatalf("publish not confirmed: %v", err)
		}
	}

	s, _ := openTest(t)
	p, err := monitor.NewPoller(monitor.PollerConfig{
		URL: "http://127.0.0.1:15672", Username: "guest", Password: "guest",
		Interval: 200 * time.Millisecond,
	}, s, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("poller Run: %v", err)
		}
	}()

	start := time.Now().Add(-time.Minute)
	// The management API lags the broker by up to ~5 s.
	eventually(t, 30*time.Second, func() bool {
		pts, err := s.QueueHistory(t.Context(), "/", queue, start)
		if err != nil {
			t.Fatal(err)
		}
		last := len(pts) - 1
		return last >= 0 && pts[last].Messages != nil && *pts[last].Messages == n &&
			pts[last].Ready != nil && *pts[last].Ready == n
	})
}
