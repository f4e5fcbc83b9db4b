package web

import (
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"warren/monitor"
)

func scrape(t *testing.T, f *fixture) map[string]*dto.MetricFamily {
	t.Helper()
	code, hdr, body := do(t, f.client(t), http.MethodGet, f.http.URL+"/metrics", "", "", map[string]string{"Accept": "text/plain"})
	if code != http.StatusOK {
		t.Fatalf("GET /metrics = %d: %s", code, body)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("content type %q", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing metrics: %v\n%s", err, body)
	}
	return fams
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// value returns the value of the series with exactly these labels.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	t.Helper()
	fam, ok := fams[name]
	if !ok {
		return 0, false
	}
	for _, m := range fam.GetMetric() {
		got := labels(m)
		if len(got) != len(want) {
			continue
		}
		match := true
		for k, v := range want {
			match = match && got[k] == v
		}
		if !match {
			continue
		}
		switch fam.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue(), true
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

func TestMetrics(t *testing.T) {
	f := newFixture(t)
	fams := scrape(t, f)

	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"warren_queue_messages", map[string]string{"vhost": "/", "queue": "orders"}, 1234},
		{"warren_queue_messages_ready", map[string]string{"vhost": "/", "queue": "orders"}, 1200},
		{"warren_queue_messages_unacknowledged", map[string]string{"vhost": "/", "queue": "orders"}, 34},
		{"warren_queue_ingress_messages_per_second", map[string]string{"vhost": "/", "queue": "orders"}, 12.5},
		{"warren_queue_egress_messages_per_second", map[string]string{"vhost": "/", "queue": "orders"}, 20},
		{"warren_queue_time_to_drain_seconds", map[string]string{"vhost": "/", "queue": "orders"}, 160},
		{"warren_queue_dead_letter", map[string]string{"vhost": "/", "queue": "orders"}, 0},
		{"warren_queue_consumers", map[string]string{"vhost": "/", "queue": "orders"}, 2},
		{"warren_queue_messages", map[string]string{"vhost": "/", "queue": "<b>x</b>"}, 1},
		{"warren_queue_messages", map[string]string{"vhost": "tenant/2", "queue": "ünï ✓ 100%"}, 3},
		{"warren_monitor_last_poll_success", map[string]string{}, 1},
	} {
		got, ok := value(t, fams, tc.name, tc.labels)
		if !ok || got != tc.want {
			t.Errorf("%s%v = %v (present %v), want %v", tc.name, tc.labels, got, ok, tc.want)
		}
	}
	// Consumer series belong to the consumers package's collector.
	if _, ok := fams["warren_consumer_messages_processed_total"]; ok {
		t.Error("web's collector must not export consumer series (the consumers collector does)")
	}
	// Unknown values are absent, not 0.
	for _, name := range []string{"warren_queue_messages", "warren_queue_messages_ready", "warren_queue_messages_unacknowledged", "warren_queue_consumers"} {
		if _, ok := value(t, fams, name, map[string]string{"vhost": "/", "queue": "idle"}); ok {
			t.Errorf("%s has a series for the idle queue whose value is unknown", name)
		}
	}
	if _, ok := fams["go_goroutines"]; !ok {
		t.Error("go runtime metrics missing")
	}

	// A failed poll: success 0, no queue series.
	f.queues.set(monitor.Snapshot{At: pollTime, Err: errBoom})
	fams = scrape(t, f)
	if got, ok := value(t, fams, "warren_monitor_last_poll_success", map[string]string{}); !ok || got != 0 {
		t.Errorf("last_poll_success after failure = %v %v", got, ok)
	}
	if _, ok := fams["warren_queue_messages"]; ok {
		t.Error("queue series after a failed poll")
	}
}

func TestMetricsDuplicateQueueDoesNotBreakScrape(t *testing.T) {
	f := newFixture(t)
	s := defaultSnapshot()
	s.Queues = append(s.Queues, s.Queues[0])
	f.queues.set(s)
	scrape(t, f)
}

func TestTwoServersHaveTheirOwnRegistry(t *testing.T) {
	// Would panic with "duplicate metrics collector registration" on a
	// shared registry.
	newFixture(t)
	newFixture(t)
}
