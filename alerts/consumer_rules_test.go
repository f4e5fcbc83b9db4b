package alerts_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"warren/alerts"
	"warren/consumers"
)

// fakeConsumers stands in for *consumers.Manager: reaching reconnecting,
// cancelled and circuit-open states and exact counters on demand needs a
// broker outage, so the statuses are set directly.
type fakeConsumers struct {
	mu   sync.Mutex
	list []consumers.Status
}

func (f *fakeConsumers) List() []consumers.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]consumers.Status(nil), f.list...)
}

func (f *fakeConsumers) set(s ...consumers.Status) {
	f.mu.Lock()
	f.list = s
	f.mu.Unlock()
}

func TestConsumerRules(t *testing.T) {
	st := newStore(t)
	hooks := []alerts.WebhookConfig{{Name: "outbox-only", URL: "http://127.0.0.1:9/never", Format: "generic"}}
	on := alerts.RuleParams{Enabled: bp(true), For: dp(0)}
	src := &fakeConsumers{}
	e := alerts.NewEvaluator(st, hooks, testLogger(t), alerts.WithConsumers(src), alerts.WithRules(alerts.RuleSet{
		Defaults: map[string]alerts.RuleParams{
			alerts.RuleQueueDepth:         {Enabled: bp(false)},
			alerts.RuleConsumerNotRunning: {Enabled: bp(true), For: dp(10 * time.Second)},
			alerts.RuleBreakerOpen:        on,
			alerts.RuleConsumerErrorRate:  {Enabled: bp(true), For: dp(0), Warning: fp(1), Critical: fp(10)},
			alerts.RuleConsumerP95Latency: {Enabled: bp(true), For: dp(0), Warning: fp(500)},
		},
	}))
	c := newClock() // 5s per poll
	ctx := context.Background()
	status := func(state, circuit string, failed uint64, p95 *float64) consumers.Status {
		return consumers.Status{Name: "billing", Vhost: "/", State: state, Circuit: circuit, Failed: failed, LatencyP95Ms: p95}
	}
	src.set(status(consumers.StateRunning, "closed", 0, nil))
	e.ObserveSnapshot(ctx, c.snap())
	src.set(status(consumers.StateReconnecting, "open", 10, fp(800))) // 2 failures/s
	e.ObserveSnapshot(ctx, c.failed())                                // consumer rules still evaluated
	src.set(status(consumers.StateStarting, "open", 100, fp(900)))    // 18/s: critical; starting is unknown
	e.ObserveSnapshot(ctx, c.snap())
	src.set(status(consumers.StateReconnecting, "half_open", 100, nil))
	e.ObserveSnapshot(ctx, c.snap()) // 10s reconnecting: fires
	src.set()                        // consumer removed from config
	e.ObserveSnapshot(ctx, c.snap())
	w := func(rule, status, sev string, v float64) string {
		return fmt.Sprintf("%s %s //billing %s %g", rule, status, sev, v)
	}
	wantSummarySet(t, pending(t, st),
		w("breaker_open", "firing", "warning", 1),
		w("consumer_error_rate", "firing", "warning", 2),
		w("consumer_p95_latency", "firing", "warning", 800),
		w("consumer_error_rate", "firing", "critical", 18),
		w("breaker_open", "resolved", "warning", 0),
		w("consumer_error_rate", "resolved", "critical", 0),
		w("consumer_not_running", "firing", "warning", 1),
		w("consumer_not_running", "resolved", "warning", 1),
		// Resolved with the last value seen while firing (900), since a
		// firing alert keeps its current value.
		w("consumer_p95_latency", "resolved", "warning", 900),
	)
}
