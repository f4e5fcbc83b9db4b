package alerts

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

var (
	firingDesc = prometheus.NewDesc("warren_alerts_firing",
		"Alerts currently firing, by rule and severity.", []string{"rule", "severity"}, nil)
	attemptsDesc = prometheus.NewDesc("warren_alert_delivery_attempts_total",
		"Webhook delivery attempts since start, by webhook and outcome (delivered, retry, abandoned).",
		[]string{"webhook", "outcome"}, nil)
)

// attemptCounts counts delivery attempts per webhook and outcome.
type attemptCounts struct {
	mu sync.Mutex
	n  map[[2]string]uint64
}

func (c *attemptCounts) add(webhook, outcome string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = make(map[[2]string]uint64)
	}
	c.n[[2]string{webhook, outcome}]++
}

// firingCounts returns how many alerts fire per rule and severity.
func (e *Evaluator) firingCounts() map[[2]string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[[2]string]int)
	for _, a := range e.active {
		out[[2]string{a.Rule, a.Severity}]++
	}
	return out
}

// Collector exposes firing alerts and delivery attempts; either may be nil.
type Collector struct {
	e *Evaluator
	d *Dispatcher
}

// NewCollector returns the alerts' Prometheus collector.
func NewCollector(e *Evaluator, d *Dispatcher) *Collector { return &Collector{e: e, d: d} }

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- firingDesc
	ch <- attemptsDesc
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	if c.e != nil {
		for k, n := range c.e.firingCounts() {
			ch <- prometheus.MustNewConstMetric(firingDesc, prometheus.GaugeValue, float64(n), k[0], k[1])
		}
	}
	if c.d != nil {
		c.d.attempts.mu.Lock()
		for k, n := range c.d.attempts.n {
			ch <- prometheus.MustNewConstMetric(attemptsDesc, prometheus.CounterValue, float64(n), k[0], k[1])
		}
		c.d.attempts.mu.Unlock()
	}
}
