package consumers

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func TestCollectorExposesCountersStateAndHistogram(t *testing.T) {
	m, err := NewManager("amqp://guest:guest@127.0.0.1:5672/", []Config{{Name: "metrics", Queue: "q", MaxConcurrentMessages: 1, PrefetchCount: 1, Handler: HandlerConfig{Type: HandlerLog}}}, nil, testLogger(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	s := &m.consumers[0].stats
	s.processed.Add(12)
	s.failed.Add(4)
	s.retried.Add(3)
	s.deadLettered.Add(2)
	// 10 fast messages (2 ms) and one slow one (3 s).
	for range 10 {
		s.hist.record(2 * time.Millisecond)
	}
	s.hist.record(3 * time.Second)

	reg := prometheus.NewRegistry()
	reg.MustRegister(m.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&text, mf); err != nil {
			t.Fatal(err)
		}
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(text.String()))
	if err != nil {
		t.Fatalf("exposition does not parse: %v\n%s", err, text.String())
	}
	value := func(name string) float64 {
		f, ok := fams[name]
		if !ok || len(f.Metric) != 1 {
			t.Fatalf("%s missing or not one series:\n%s", name, text.String())
		}
		if c := f.Metric[0].Counter; c != nil {
			return c.GetValue()
		}
		return f.Metric[0].Gauge.GetValue()
	}
	if value("warren_consumer_messages_processed_total") != 12 || value("warren_consumer_messages_failed_total") != 4 ||
		value("warren_consumer_concurrency") != 1 || value("warren_consumer_prefetch") != 1 || value("warren_consumer_in_flight") != 0 {
		t.Fatalf("status series wrong:\n%s", text.String())
	}
	if fams["warren_consumer_messages_processed_total"].GetType().String() != "COUNTER" {
		t.Fatalf("processed_total is not a counter")
	}
	if value("warren_consumer_messages_retried_total") != 3 || value("warren_consumer_messages_dead_lettered_total") != 2 {
		t.Fatalf("counters wrong:\n%s", text.String())
	}
	if f := fams["warren_consumer_state"]; len(f.Metric) != 1 || f.Metric[0].Label[1].GetValue() == "" {
		t.Fatalf("state series missing:\n%s", text.String())
	}
	h := fams["warren_consumer_handler_duration_seconds"].Metric[0].Histogram
	if h.GetSampleCount() != 11 {
		t.Fatalf("histogram count %d, want 11", h.GetSampleCount())
	}
	for _, b := range h.Bucket {
		switch b.GetUpperBound() {
		case 0.001:
			if b.GetCumulativeCount() != 0 {
				t.Errorf("bucket 1ms holds %d, want 0 (2 ms messages must not count as faster)", b.GetCumulativeCount())
			}
		case 0.0025:
			if b.GetCumulativeCount() != 10 {
				t.Errorf("bucket 2.5ms holds %d, want the 10 fast messages", b.GetCumulativeCount())
			}
		case 2.5:
			if b.GetCumulativeCount() != 10 {
				t.Errorf("bucket 2.5s holds %d, want 10", b.GetCumulativeCount())
			}
		case 5:
			if b.GetCumulativeCount() != 11 {
				t.Errorf("bucket 5s holds %d, want 11", b.GetCumulativeCount())
			}
		}
	}
}
