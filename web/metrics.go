package web

import (
	"github.com/prometheus/client_golang/prometheus"
)

// collector exposes the queue state at scrape time, straight from the sources:
// nothing is copied into gauges between scrapes, so /metrics can never show a
// queue that is gone or a value older than the last poll.
type collector struct {
	queues QueueSource

	queueMessages, queueReady, queueUnacked, queueConsumers *prometheus.Desc
	queueIngress, queueEgress, queueDrain, queueDeadLetter  *prometheus.Desc
	queueUtilisation                                        *prometheus.Desc

	lastPollSuccess, lastPollTime *prometheus.Desc
}

var _ prometheus.Collector = (*collector)(nil)

// Consumer series come from the consumers package's own collector (wired in
// cmd/warren through Deps.Metrics), which reads the counters directly.
func newCollector(q QueueSource) *collector {
	queueLabels := []string{"vhost", "queue"}
	return &collector{
		queues: q,

		queueMessages: prometheus.NewDesc("warren_queue_messages",
			"Messages in the queue (ready + unacknowledged) at the last poll. Absent when the broker did not report it.", queueLabels, nil),
		queueReady: prometheus.NewDesc("warren_queue_messages_ready",
			"Messages ready for delivery at the last poll. Absent when the broker did not report it.", queueLabels, nil),
		queueUnacked: prometheus.NewDesc("warren_queue_messages_unacknowledged",
			"Messages delivered but not yet acknowledged at the last poll. Absent when the broker did not report it.", queueLabels, nil),
		queueConsumers: prometheus.NewDesc("warren_queue_consumers",
			"Consumers attached to the queue at the last poll. Absent when the broker did not report it.", queueLabels, nil),
		queueIngress: prometheus.NewDesc("warren_queue_ingress_messages_per_second",
			"Messages published to the queue per second, warren's smoothed estimate from its own polls. Absent until known.", queueLabels, nil),
		queueEgress: prometheus.NewDesc("warren_queue_egress_messages_per_second",
			"Messages leaving the queue per second (ingress minus depth growth), warren's smoothed estimate. Absent until known.", queueLabels, nil),
		queueDrain: prometheus.NewDesc("warren_queue_time_to_drain_seconds",
			"Time to drain the ready messages at the current rates. Absent when unknown or when the queue is growing.", queueLabels, nil),
		queueUtilisation: prometheus.NewDesc("warren_queue_consumer_utilisation_ratio",
			"Share of time the queue's consumers could take new messages (broker's consumer_utilisation, 0..1). Absent when not reported.", queueLabels, nil),
		queueDeadLetter: prometheus.NewDesc("warren_queue_dead_letter",
			"1 if warren recognises the queue as a dead-letter queue, else 0.", queueLabels, nil),

		lastPollSuccess: prometheus.NewDesc("warren_monitor_last_poll_success",
			"1 if the last management-API poll succeeded, 0 if it failed or none happened yet.", nil, nil),
		lastPollTime: prometheus.NewDesc("warren_monitor_last_poll_timestamp_seconds",
			"Unix time of the last management-API poll, successful or not.", nil, nil),
	}
}

// Describe sends every descriptor the collector may produce.
func (m *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		m.queueMessages, m.queueReady, m.queueUnacked, m.queueConsumers,
		m.queueIngress, m.queueEgress, m.queueDrain, m.queueDeadLetter, m.queueUtilisation,
		m.lastPollSuccess, m.lastPollTime,
	} {
		ch <- d
	}
}

// Collect reads the latest snapshot.
func (m *collector) Collect(ch chan<- prometheus.Metric) {
	snap := m.queues.Latest()
	ok := 0.0
	if snap.Err == nil && !snap.At.IsZero() {
		ok = 1
	}
	emit(ch, m.lastPollSuccess, prometheus.GaugeValue, ok)
	if !snap.At.IsZero() {
		emit(ch, m.lastPollTime, prometheus.GaugeValue, float64(snap.At.UnixNano())/1e9)
	}

	// A duplicate label set would make the whole scrape fail; keep the first.
	seenQueue := make(map[[2]string]bool, len(snap.Queues))
	for _, q := range snap.Queues {
		key := [2]string{q.Vhost, q.Name}
		if seenQueue[key] {
			continue
		}
		seenQueue[key] = true
		for _, g := range []struct {
			desc *prometheus.Desc
			v    *int64
		}{
			{m.queueMessages, q.Messages},
			{m.queueReady, q.Ready},
			{m.queueUnacked, q.Unacked},
			{m.queueConsumers, q.Consumers},
		} {
			if g.v == nil {
				continue // unknown: no series rather than a false 0
			}
			emit(ch, g.desc, prometheus.GaugeValue, float64(*g.v), q.Vhost, q.Name)
		}
		for _, g := range []struct {
			desc *prometheus.Desc
			v    *float64
		}{
			{m.queueIngress, q.IngressRate},
			{m.queueEgress, q.EgressRate},
			{m.queueDrain, q.TimeToDrainSeconds},
			{m.queueUtilisation, q.ConsumerUtilisation},
		} {
			if g.v != nil {
				emit(ch, g.desc, prometheus.GaugeValue, *g.v, q.Vhost, q.Name)
			}
		}
		dlq := 0.0
		if q.IsDeadLetter {
			dlq = 1
		}
		emit(ch, m.queueDeadLetter, prometheus.GaugeValue, dlq, q.Vhost, q.Name)
	}
}

// emit sends one const metric. A label value that is not valid UTF-8 would
// make NewConstMetric fail; such a series is skipped instead of failing (or
// panicking) the whole scrape.
func emit(ch chan<- prometheus.Metric, desc *prometheus.Desc, typ prometheus.ValueType, v float64, labels ...string) {
	m, err := prometheus.NewConstMetric(desc, typ, v, labels...)
	if err != nil {
		return
	}
	ch <- m
}
