package consumers

import (
	"context"
	"log/slog"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// With Options.NoObservation the counters still move but no latency, type
// or slow-message figure is recorded (bench/ compares the two).
func TestNoObservationKeepsCountersOnly(t *testing.T) {
	b := newBroker(t)
	q := queueName(t)
	b.declare(q, nil)
	h := func(Config, *slog.Logger) (HandlerFunc, error) {
		return func(ctx context.Context, d Delivery) error {
			if d.MessageID == "slow" {
				time.Sleep(30 * time.Millisecond) // simulated slow work, not a wait for a condition
			}
			return nil
		}, nil
	}
	cfg := testConfig("quiet", q)
	cfg.SlowProcessingThreshold = 20 * time.Millisecond
	w := &obsWriter{}
	r := startManager(t, []Config{cfg}, w, Options{Handlers: map[string]HandlerFactory{"test": h}, NoObservation: true})

	published := time.Now().Add(-2 * time.Second).UnixMilli()
	b.publishOne(q, amqp.Publishing{MessageId: "h1", Headers: amqp.Table{HeaderMessageType: "Header", HeaderPublishedAt: published}})
	b.publishOne(q, amqp.Publishing{MessageId: "slow", Type: "Slow"})
	eventually(t, 10*time.Second, func() bool { return mustGet(t, r.Manager, "quiet").Processed == 2 }, "processed")

	st := mustGet(t, r.Manager, "quiet")
	if st.Slow != 0 || st.LatencyP50Ms != nil || st.E2EP50Ms != nil {
		t.Errorf("status %+v: want no slow count, no handler or end-to-end latency", st)
	}
	if types, err := r.MessageTypes("quiet"); err != nil || len(types) != 0 {
		t.Errorf("types %+v (%v), want none", types, err)
	}
	r.stop(t)
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.slow) != 0 {
		t.Errorf("slow samples %+v, want none", w.slow)
	}
	var processed int64
	for _, s := range w.samples {
		processed += s.Processed
	}
	if processed != 2 {
		t.Errorf("samples count %d processed, want 2", processed)
	}
}
