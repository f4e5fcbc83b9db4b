package consumers

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// latencyBounds are the Prometheus histogram buckets (seconds) the internal
// log-linear latency buckets are folded into at scrape time.
var latencyBounds = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}

// collector exposes the counters that only the consumers know (retries,
// dead letters, stale acks, state, breaker) and the handler latency
// histogram. It reads the live atomics at scrape time: nothing is copied
// per message.
type collector struct {
	m *Manager

	processed, failed, inFlight, concurrency, prefetch *prometheus.Desc
	retried, deadLettered, staleAcks, slow             *prometheus.Desc
	state, circuit                                     *prometheus.Desc
	latency, e2e                                       *prometheus.Desc
}

// Collector returns a Prometheus collector for the manager's consumers.
func (m *Manager) Collector() prometheus.Collector {
	l := []string{"consumer"}
	return &collector{
		m: m,
		processed: prometheus.NewDesc("warren_consumer_messages_processed_total",
			"Messages the managed consumer handled successfully (acked).", l, nil),
		failed: prometheus.NewDesc("warren_consumer_messages_failed_total",
			"Handler failures (errors, panics, deadlines); each is retried, dead-lettered or requeued.", l, nil),
		inFlight: prometheus.NewDesc("warren_consumer_in_flight",
			"Messages being handled right now.", l, nil),
		concurrency: prometheus.NewDesc("warren_consumer_concurrency",
			"Maximum of concurrently handled messages (live setting).", l, nil),
		prefetch: prometheus.NewDesc("warren_consumer_prefetch",
			"Desired prefetch count (live setting).", l, nil),
		retried: prometheus.NewDesc("warren_consumer_messages_retried_total",
			"Failed messages scheduled for another attempt through a delay queue.", l, nil),
		deadLettered: prometheus.NewDesc("warren_consumer_messages_dead_lettered_total",
			"Messages moved to the dead-letter queue (retries exhausted or malformed).", l, nil),
		staleAcks: prometheus.NewDesc("warren_consumer_stale_acks_total",
			"Acks dropped because the channel that delivered the message was gone; the broker redelivers those messages.", l, nil),
		slow: prometheus.NewDesc("warren_consumer_messages_slow_total",
			"Messages whose handler took at least the slow-processing threshold.", l, nil),
		state: prometheus.NewDesc("warren_consumer_state",
			"1 for the consumer's current state (running, paused, reconnecting, cancelled, circuit_open, ...).", []string{"consumer", "state"}, nil),
		circuit: prometheus.NewDesc("warren_consumer_circuit_state",
			"1 for the circuit breaker's current state (closed, open, half_open); absent without a breaker.", []string{"consumer", "state"}, nil),
		latency: prometheus.NewDesc("warren_consumer_handler_duration_seconds",
			"Handler time per message. Folded from warren's internal buckets, which are at most 25% wide.", l, nil),
		e2e: prometheus.NewDesc("warren_consumer_end_to_end_duration_seconds",
			"Time from publish (x-warren-published-at header) to handler done, for messages that carry the header.", l, nil),
	}
}

// Describe sends every descriptor the collector may produce.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.processed, c.failed, c.inFlight, c.concurrency, c.prefetch, c.retried, c.deadLettered, c.staleAcks, c.slow, c.state, c.circuit, c.latency, c.e2e} {
		ch <- d
	}
}

// Collect reads every consumer's counters.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	for _, con := range c.m.consumers {
		name := con.cfg.Name
		s := &con.stats
		st := con.status(now)
		ch <- prometheus.MustNewConstMetric(c.processed, prometheus.CounterValue, float64(st.Processed), name)
		ch <- prometheus.MustNewConstMetric(c.failed, prometheus.CounterValue, float64(st.Failed), name)
		ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(st.InFlight), name)
		ch <- prometheus.MustNewConstMetric(c.concurrency, prometheus.GaugeValue, float64(st.Concurrency), name)
		ch <- prometheus.MustNewConstMetric(c.prefetch, prometheus.GaugeValue, float64(st.Prefetch), name)
		ch <- prometheus.MustNewConstMetric(c.retried, prometheus.CounterValue, float64(s.retried.Load()), name)
		ch <- prometheus.MustNewConstMetric(c.deadLettered, prometheus.CounterValue, float64(s.deadLettered.Load()), name)
		ch <- prometheus.MustNewConstMetric(c.staleAcks, prometheus.CounterValue, float64(s.staleAcks.Load()), name)
		ch <- prometheus.MustNewConstMetric(c.slow, prometheus.CounterValue, float64(s.slow.Load()), name)
		ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, 1, name, st.State)
		if st.Circuit != "" {
			ch <- prometheus.MustNewConstMetric(c.circuit, prometheus.GaugeValue, 1, name, st.Circuit)
		}
		ch <- foldHistogram(c.latency, &s.hist, name)
		ch <- foldHistogram(c.e2e, &s.e2e, name)
	}
}

// foldHistogram turns the internal buckets into a cumulative Prometheus
// histogram. Each internal bucket counts under the first bound at or above
// its upper edge, so a bucket never reports a message faster than it was;
// the sum uses bucket midpoints.
func foldHistogram(desc *prometheus.Desc, h *histogram, label string) prometheus.Metric {
	cum := make(map[float64]uint64, len(latencyBounds))
	var count uint64
	var sum float64
	for i := range h.counts {
		n := h.counts[i].Load()
		if n == 0 {
			continue
		}
		lower, upper := bucketLower(i)/1e9, bucketLower(i+1)/1e9
		count += n
		sum += float64(n) * (lower + upper) / 2
		for _, b := range latencyBounds {
			if upper <= b {
				cum[b] += n
				break
			}
		}
	}
	var running uint64
	for _, b := range latencyBounds {
		running += cum[b]
		cum[b] = running
	}
	return prometheus.MustNewConstHistogram(desc, count, sum, cum, label)
}
