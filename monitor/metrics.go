package monitor

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Poll error kinds, the "kind" label of warren_monitor_poll_errors_total.
const (
	ErrorKindCredentials = "credentials_rejected"
	ErrorKindPermission  = "permission_denied"
	ErrorKindUnreachable = "unreachable"
	ErrorKindOther       = "other" // an HTTP error or an undecodable answer
)

// ErrorKind classifies a failed poll's error for metrics and displays.
func ErrorKind(err error) string {
	switch {
	case errors.Is(err, ErrCredentialsRejected):
		return ErrorKindCredentials
	case errors.Is(err, ErrPermissionDenied):
		return ErrorKindPermission
	case errors.Is(err, ErrUnreachable):
		return ErrorKindUnreachable
	default:
		return ErrorKindOther
	}
}

// Collector exposes the poller's own health (poll duration, errors by kind,
// skipped ticks, sample write time) and the broker's nodes (alarms, file
// descriptors, partitions) from the latest poll. Per-queue gauges are
// exposed by the web server's collector from the same snapshot.
type Collector struct {
	p *Poller

	pollDuration  prometheus.Histogram
	writeDuration prometheus.Histogram
	pollErrors    *prometheus.CounterVec
	polls         prometheus.Counter
	ticksSkipped  prometheus.Counter

	nodeRunning, nodeMemUsed, nodeMemLimit, nodeMemAlarm                *prometheus.Desc
	nodeDiskFree, nodeDiskFreeLimit, nodeDiskAlarm, nodeFDUsed, nodeFDs *prometheus.Desc
	nodePartitions                                                      *prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns the metrics of p and hooks them into its polls. Call
// it before Run; register the result in the server's registry.
func NewCollector(p *Poller) *Collector {
	node := []string{"node"}
	c := &Collector{
		p: p,
		pollDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "warren_monitor_poll_duration_seconds",
			Help:    "Time one poll of the management API took (overview, nodes, every queue page, consumers), failed polls included.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}),
		writeDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "warren_monitor_sample_write_duration_seconds",
			Help:    "Time writing one poll's queue samples to the store took.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}),
		pollErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "warren_monitor_poll_errors_total",
			Help: "Failed polls of the management API by kind: credentials_rejected (401), permission_denied (403), unreachable (no answer), other.",
		}, []string{"kind"}),
		polls: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "warren_monitor_polls_total",
			Help: "Polls of the management API, failed ones included.",
		}),
		ticksSkipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "warren_monitor_poll_ticks_skipped_total",
			Help: "Poll ticks skipped because a poll outlasted the poll interval.",
		}),
		nodeRunning: prometheus.NewDesc("warren_rabbitmq_node_running",
			"1 if the broker reports the node running.", node, nil),
		nodeMemUsed: prometheus.NewDesc("warren_rabbitmq_node_memory_used_bytes",
			"Memory used by the node.", node, nil),
		nodeMemLimit: prometheus.NewDesc("warren_rabbitmq_node_memory_limit_bytes",
			"Memory high watermark of the node.", node, nil),
		nodeMemAlarm: prometheus.NewDesc("warren_rabbitmq_node_memory_alarm",
			"1 while the node's memory alarm is in force (publishers are blocked).", node, nil),
		nodeDiskFree: prometheus.NewDesc("warren_rabbitmq_node_disk_free_bytes",
			"Free disk space seen by the node.", node, nil),
		nodeDiskFreeLimit: prometheus.NewDesc("warren_rabbitmq_node_disk_free_limit_bytes",
			"Free disk space below which the node raises its disk alarm.", node, nil),
		nodeDiskAlarm: prometheus.NewDesc("warren_rabbitmq_node_disk_free_alarm",
			"1 while the node's disk alarm is in force (publishers are blocked).", node, nil),
		nodeFDUsed: prometheus.NewDesc("warren_rabbitmq_node_file_descriptors_used",
			"File descriptors the node uses.", node, nil),
		nodeFDs: prometheus.NewDesc("warren_rabbitmq_node_file_descriptors_limit",
			"File descriptors available to the node.", node, nil),
		nodePartitions: prometheus.NewDesc("warren_rabbitmq_node_partitions",
			"Nodes this node reports as partitioned from it (0 when healthy).", node, nil),
	}
	for _, k := range []string{ErrorKindCredentials, ErrorKindPermission, ErrorKindUnreachable, ErrorKindOther} {
		c.pollErrors.WithLabelValues(k) // every kind present from the start, at 0
	}
	p.pollMu.Lock()
	p.metrics = pollMetrics{
		observePollFn: func(d time.Duration, err error) {
			c.polls.Inc()
			c.pollDuration.Observe(d.Seconds())
			if err != nil {
				c.pollErrors.WithLabelValues(ErrorKind(err)).Inc()
			}
		},
		observeWriteFn: func(d time.Duration) { c.writeDuration.Observe(d.Seconds()) },
		overrunFn:      func(n int64) { c.ticksSkipped.Add(float64(n)) },
	}
	p.pollMu.Unlock()
	return c
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	c.pollDuration.Describe(ch)
	c.writeDuration.Describe(ch)
	c.pollErrors.Describe(ch)
	c.polls.Describe(ch)
	c.ticksSkipped.Describe(ch)
	for _, d := range []*prometheus.Desc{c.nodeRunning, c.nodeMemUsed, c.nodeMemLimit, c.nodeMemAlarm,
		c.nodeDiskFree, c.nodeDiskFreeLimit, c.nodeDiskAlarm, c.nodeFDUsed, c.nodeFDs, c.nodePartitions} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. Node values the broker did not
// report are left out rather than sent as 0.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.pollDuration.Collect(ch)
	c.writeDuration.Collect(ch)
	c.pollErrors.Collect(ch)
	c.polls.Collect(ch)
	c.ticksSkipped.Collect(ch)
	seen := map[string]bool{}
	for _, n := range c.p.Latest().Nodes {
		if seen[n.Name] {
			continue // a duplicate label set would fail the whole scrape
		}
		seen[n.Name] = true
		gaugeBool(ch, c.nodeRunning, n.Running, n.Name)
		gaugeBool(ch, c.nodeMemAlarm, n.MemAlarm, n.Name)
		gaugeBool(ch, c.nodeDiskAlarm, n.DiskFreeAlarm, n.Name)
		gaugeInt(ch, c.nodeMemUsed, n.MemUsed, n.Name)
		gaugeInt(ch, c.nodeMemLimit, n.MemLimit, n.Name)
		gaugeInt(ch, c.nodeDiskFree, n.DiskFree, n.Name)
		gaugeInt(ch, c.nodeDiskFreeLimit, n.DiskFreeLimit, n.Name)
		gaugeInt(ch, c.nodeFDUsed, n.FDUsed, n.Name)
		gaugeInt(ch, c.nodeFDs, n.FDTotal, n.Name)
		if n.Partitions != nil {
			sendGauge(ch, c.nodePartitions, float64(len(n.Partitions)), n.Name)
		}
	}
}

func gaugeInt(ch chan<- prometheus.Metric, d *prometheus.Desc, v *int64, labels ...string) {
	if v != nil {
		sendGauge(ch, d, float64(*v), labels...)
	}
}

func gaugeBool(ch chan<- prometheus.Metric, d *prometheus.Desc, v *bool, labels ...string) {
	if v == nil {
		return
	}
	f := 0.0
	if *v {
		f = 1
	}
	sendGauge(ch, d, f, labels...)
}

// sendGauge skips a series whose labels are not valid UTF-8 instead of
// failing the scrape.
func sendGauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	m, err := prometheus.NewConstMetric(d, prometheus.GaugeValue, v, labels...)
	if err == nil {
		ch <- m
	}
}
