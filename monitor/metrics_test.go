package monitor

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrapeText gathers reg, writes the text exposition and parses it back
// with the Prometheus text parser.
func scrapeText(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := expfmt.NewEncoder(&buf, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, f := range fams {
		if err := enc.Encode(f); err != nil {
			t.Fatal(err)
		}
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	parsed, err := parser.TextToMetricFamilies(&buf)
	if err != nil {
		t.Fatalf("parsing the exposition: %v\n%s", err, buf.String())
	}
	return parsed
}

func TestCollector(t *testing.T) {
	_, srv := newFakeAPI(t, "honest")
	p := newTestPoller(t, PollerConfig{URL: srv.URL}, &recordingWriter{})
	c := NewCollector(p)
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)

	if s := p.runOnce(t.Context()); s.Err != nil {
		t.Fatal(s.Err)
	}
	// A failed poll: wrong password (401).
	p.cfg.Password = "wrong"
	if s := p.runOnce(t.Context()); s.Err == nil {
		t.Fatal("poll with a wrong password succeeded")
	}
	// Unreachable: a closed server.
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	p.endpoint = closed.URL
	p.runOnce(t.Context())

	fams := scrapeText(t, reg)
	get := func(name string, labels map[string]string) (float64, bool) {
		f, ok := fams[name]
		if !ok {
			return 0, false
		}
	next:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue(), true
			case m.Gauge != nil:
				return m.GetGauge().GetValue(), true
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
		return 0, false
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"warren_monitor_polls_total", nil, 3},
		{"warren_monitor_poll_duration_seconds", nil, 3},
		{"warren_monitor_sample_write_duration_seconds", nil, 1},
		{"warren_monitor_poll_errors_total", map[string]string{"kind": "credentials_rejected"}, 1},
		{"warren_monitor_poll_errors_total", map[string]string{"kind": "unreachable"}, 1},
		{"warren_monitor_poll_errors_total", map[string]string{"kind": "permission_denied"}, 0},
		{"warren_monitor_poll_ticks_skipped_total", nil, 0},
	} {
		got, ok := get(tc.name, tc.labels)
		if !ok || got != tc.want {
			t.Errorf("%s%v = %v (present %v), want %v", tc.name, tc.labels, got, ok, tc.want)
		}
	}
	// The last poll failed: no node series (the snapshot holds none).
	if _, ok := fams["warren_rabbitmq_node_memory_alarm"]; ok {
		t.Error("node series after a failed poll")
	}

	// After a good poll, nodes appear; values not reported stay absent.
	p.endpoint, p.cfg.Password = srv.URL, fakePass
	if s := p.runOnce(t.Context()); s.Err != nil {
		t.Fatal(s.Err)
	}
	fams = scrapeText(t, reg)
	for _, tc := range []struct {
		name, node string
		want       float64
		present    bool
	}{
		{"warren_rabbitmq_node_memory_alarm", "rabbit@a", 1, true},
		{"warren_rabbitmq_node_disk_free_alarm", "rabbit@b", 1, true},
		{"warren_rabbitmq_node_file_descriptors_used", "rabbit@a", 38, true},
		{"warren_rabbitmq_node_partitions", "rabbit@a", 1, true},
		{"warren_rabbitmq_node_running", "rabbit@b", 0, false}, // "yes" is not a boolean
		{"warren_rabbitmq_node_file_descriptors_used", "rabbit@b", 0, false},
	} {
		got, ok := get(tc.name, map[string]string{"node": tc.node})
		if ok != tc.present || ok && got != tc.want {
			t.Errorf("%s{node=%s} = %v (present %v), want %v (present %v)", tc.name, tc.node, got, ok, tc.want, tc.present)
		}
	}
}
