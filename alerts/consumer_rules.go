package alerts

import (
	"context"
	"slices"
	"time"

	"warren/consumers"
)

// Consumer rule kinds. Their target's vhost is the consumer's vhost and
// their "queue" is the consumer's name (overrides select consumers by name
// with the same exact/glob syntax).
const (
	// RuleConsumerNotRunning: 1 while the consumer is reconnecting or
	// cancelled, 0 while running, paused or circuit-open; unknown while
	// starting or stopped.
	RuleConsumerNotRunning = "consumer_not_running"
	// RuleBreakerOpen: 1 while the consumer's circuit breaker is open, 0
	// when closed or half-open; unknown without a breaker.
	RuleBreakerOpen = "breaker_open"
	// RuleConsumerErrorRate: failed messages per second between two
	// evaluations; unknown on the first.
	RuleConsumerErrorRate = "consumer_error_rate"
	// RuleConsumerSlowRate: slow messages per second between two evaluations.
	RuleConsumerSlowRate = "consumer_slow_rate"
	// RuleConsumerP95Latency: the handler's p95 latency in milliseconds.
	RuleConsumerP95Latency = "consumer_p95_latency"
)

var consumerRules = []string{RuleConsumerNotRunning, RuleBreakerOpen, RuleConsumerErrorRate,
	RuleConsumerSlowRate, RuleConsumerP95Latency}

// ConsumerSource lists the managed consumers; *consumers.Manager is one.
type ConsumerSource interface {
	List() []consumers.Status
}

// WithConsumers evaluates the consumer rules on each monitor snapshot,
// from src's statuses.
func WithConsumers(src ConsumerSource) EvaluatorOption {
	return func(e *Evaluator) { e.consumers = src }
}

// consumerCounters are the counters seen at the previous evaluation.
type consumerCounters struct {
	at           time.Time
	failed, slow uint64
}

// observeConsumers evaluates every consumer rule and resolves the alerts
// of consumers that no longer exist.
func (e *Evaluator) observeConsumers(ctx context.Context, at, queuedAt time.Time) {
	if e.consumers == nil {
		return
	}
	seen := map[alertKey]bool{}
	prev := e.counters
	e.counters = make(map[string]consumerCounters)
	for _, c := range e.consumers.List() {
		key := func(rule string) alertKey { return alertKey{rule, c.Vhost, c.Name} }
		obs := make([]observation, 0, len(consumerRules))

		notRunning := observation{key: key(RuleConsumerNotRunning)}
		switch c.State {
		case consumers.StateReconnecting, consumers.StateCancelled:
			notRunning.value, notRunning.known = 1, true
		case consumers.StateRunning, consumers.StatePaused, consumers.StateCircuitOpen:
			notRunning.known = true
		}
		obs = append(obs, notRunning)

		breaker := observation{key: key(RuleBreakerOpen)}
		switch c.Circuit {
		case "open":
			breaker.value, breaker.known = 1, true
		case "closed", "half_open":
			breaker.known = true
		}
		obs = append(obs, breaker)

		errRate := observation{key: key(RuleConsumerErrorRate)}
		slowRate := observation{key: key(RuleConsumerSlowRate)}
		if p, ok := prev[c.Name]; ok && at.After(p.at) && c.Failed >= p.failed && c.Slow >= p.slow {
			secs := at.Sub(p.at).Seconds()
			errRate.value, errRate.known = float64(c.Failed-p.failed)/secs, true
			slowRate.value, slowRate.known = float64(c.Slow-p.slow)/secs, true
		}
		e.counters[c.Name] = consumerCounters{at: at, failed: c.Failed, slow: c.Slow}
		obs = append(obs, errRate, slowRate)

		p95 := observation{key: key(RuleConsumerP95Latency)}
		if c.LatencyP95Ms != nil {
			p95.value, p95.known = *c.LatencyP95Ms, true
		}
		obs = append(obs, p95)

		for _, o := range obs {
			seen[o.key] = true
			e.evaluate(ctx, o, at, queuedAt)
		}
	}
	var gone []alertKey
	for key := range e.active {
		if slices.Contains(consumerRules, key.rule) && !seen[key] {
			gone = append(gone, key)
		}
	}
	for key := range e.pending {
		if slices.Contains(consumerRules, key.rule) && !seen[key] {
			e.clearPending(ctx, key)
		}
	}
	sortKeys(gone)
	for _, key := range gone {
		a := e.active[key]
		e.resolve(ctx, key, a, a.Value, at, queuedAt)
	}
}

// SetConsumerSource is WithConsumers for a source created after the
// evaluator (the consumer manager is built after the poller's observers).
func (e *Evaluator) SetConsumerSource(src ConsumerSource) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.consumers = src
}
