package consumers

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestMessageType(t *testing.T) {
	tests := []struct {
		name string
		d    amqp.Delivery
		want string
	}{
		{"header wins", amqp.Delivery{Headers: amqp.Table{HeaderMessageType: "H"}, Type: "T", Body: []byte(`{"type":"B"}`)}, "H"},
		{"amqp type", amqp.Delivery{Type: "T", Body: []byte(`{"type":"B"}`)}, "T"},
		{"json body", amqp.Delivery{Body: []byte(` {"id": 1, "type" : "OrderPlaced", "x": 2}`)}, "OrderPlaced"},
		{"type as a value first", amqp.Delivery{Body: []byte(`{"kind":"type","type":"Real"}`)}, "Real"},
		{"not json", amqp.Delivery{Body: []byte(`type: x`)}, unknownType},
		{"non-string type", amqp.Delivery{Body: []byte(`{"type": 5}`)}, unknownType},
		{"escaped", amqp.Delivery{Body: []byte(`{"type": "a\"b"}`)}, unknownType},
		{"compressed body not scanned", amqp.Delivery{ContentEncoding: "gzip", Body: []byte(`{"type":"B"}`)}, unknownType},
		{"empty", amqp.Delivery{}, unknownType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := messageType(&tt.d); got != tt.want {
				t.Errorf("messageType = %q, want %q", got, tt.want)
			}
		})
	}
	if n := testing.AllocsPerRun(100, func() {
		d := amqp.Delivery{Headers: amqp.Table{HeaderMessageType: "H"}}
		_ = messageType(&d)
	}); n > 1 { // the table literal itself
		t.Errorf("messageType from a header allocates %v times", n)
	}
}

func TestTypeTableIsBounded(t *testing.T) {
	var tt typeTable
	for i := range maxMessageTypes + 20 {
		tt.record(string(rune('a'+i%26))+string(rune('a'+i/26)), time.Millisecond, outProcessed)
	}
	st := tt.status()
	if len(st) != maxMessageTypes+1 {
		t.Fatalf("%d types, want %d plus %q", len(st), maxMessageTypes, otherType)
	}
	found := false
	for _, s := range st {
		if s.Type == otherType {
			found = s.Processed == 20
		}
	}
	if !found {
		t.Errorf("the types beyond the limit must be counted under %q: %+v", otherType, st)
	}
}

// obsWriter captures samples and slow messages.
type obsWriter struct {
	mu      sync.Mutex
	samples []Sample
	slow    []SlowMessage
}

func (w *obsWriter) WriteConsumerSamples(_ context.Context, s []Sample) error {
	w.mu.Lock()
	w.samples = append(w.samples, s...)
	w.mu.Unlock()
	return nil
}

func (w *obsWriter) WriteSlowMessages(_ context.Context, m []SlowMessage) error {
	w.mu.Lock()
	w.slow = append(w.slow, m...)
	w.mu.Unlock()
	return nil
}

func TestPerTypeAggregatesSlowSamplesAndEndToEndLatency(t *testing.T) {
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
	cfg := testConfig("obs", q)
	cfg.SlowProcessingThreshold = 20 * time.Millisecond
	w := &obsWriter{}
	r := startManager(t, []Config{cfg}, w, Options{Handlers: map[string]HandlerFactory{"test": h}})

	published := time.Now().Add(-2 * time.Second).UnixMilli()
	b.publishOne(q, amqp.Publishing{MessageId: "h1", Headers: amqp.Table{HeaderMessageType: "Header", HeaderPublishedAt: published}})
	b.publishOne(q, amqp.Publishing{MessageId: "t1", Type: "AMQPType"})
	b.publishOne(q, amqp.Publishing{MessageId: "j1", Body: []byte(`{"type":"Body"}`)})
	b.publishOne(q, amqp.Publishing{MessageId: "j2", Body: []byte(`{"type":"Body"}`)})
	b.publishOne(q, amqp.Publishing{MessageId: "slow", Type: "Slow"})
	eventually(t, 10*time.Second, func() bool { return mustGet(t, r.Manager, "obs").Processed == 5 }, "processed")

	st := mustGet(t, r.Manager, "obs")
	if st.E2EP50Ms == nil || *st.E2EP50Ms < 1500 {
		t.Errorf("end-to-end p50 = %v, want about 2000 ms (published 2 s ago)", st.E2EP50Ms)
	}
	if st.Slow != 1 {
		t.Errorf("slow = %d, want 1", st.Slow)
	}
	types, err := r.MessageTypes("obs")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"AMQPType": 1, "Body": 2, "Header": 1, "Slow": 1}
	if len(types) != len(want) {
		t.Errorf("types %+v", types)
	}
	for _, ts := range types {
		if want[ts.Type] != ts.Processed || ts.LatencyP50Ms == nil {
			t.Errorf("type %q: %+v, want processed %d with latency", ts.Type, ts, want[ts.Type])
		}
	}
	r.stop(t) // writes the final sample and the slow messages
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.slow) != 1 || w.slow[0].MessageID != "slow" || w.slow[0].Type != "Slow" || w.slow[0].Consumer != "obs" || w.slow[0].Duration < 20*time.Millisecond {
		t.Errorf("slow samples %+v", w.slow)
	}
	var e2eSeen bool
	for _, s := range w.samples {
		e2eSeen = e2eSeen || s.E2EP50Ms != nil
	}
	if !e2eSeen {
		t.Error("no sample carries end-to-end latency")
	}
}

func TestRuntimeSampledWhenTracking(t *testing.T) {
	b := newBroker(t)
	q := queueName(t)
	b.declare(q, nil)
	r := startManager(t, []Config{testConfig("mem", q)}, nil, Options{
		Handlers:    map[string]HandlerFactory{"test": newRecorder().factory()},
		TrackMemory: true,
	})
	if _, ok := r.Runtime(); ok {
		t.Fatal("runtime sample before the first interval")
	}
	r.stop(t) // the final sample reads the runtime too
	rs, ok := r.Runtime()
	if !ok || rs.Goroutines < 1 || rs.HeapAllocBytes == 0 || rs.At.IsZero() {
		t.Errorf("runtime sample %+v, %v", rs, ok)
	}
}
