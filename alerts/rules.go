package alerts

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"warren/monitor"
)

// Rule kinds. Each reads one figure per target from a monitor snapshot; a
// figure the snapshot does not carry is unknown and changes nothing.
const (
	// RuleNoConsumer: messages waiting (value = messages) on a queue that
	// has no consumer; 0 while it has consumers.
	RuleNoConsumer = "no_consumer"
	// RuleQueueGrowing: ready messages (value) on a queue the monitor marks
	// as growing (net egress not positive); 0 while it is not growing.
	RuleQueueGrowing = "queue_growing"
	// RuleTimeToDrain: the monitor's time to drain in seconds.
	RuleTimeToDrain = "time_to_drain"
	// RuleDeadLetterNotEmpty: messages in a queue the monitor recognises as
	// a dead-letter queue.
	RuleDeadLetterNotEmpty = "dead_letter_not_empty"
	// RuleMonitoringBlind: 1 while polls of the management API fail, 0
	// once one succeeds. Its target has no vhost and no queue.
	RuleMonitoringBlind = "monitoring_blind"
	// RuleBrokerAlarm: 1 while a node reports a memory or disk alarm (the
	// alert's queue field names the node), 0 when it reports none.
	RuleBrokerAlarm = "broker_alarm"
)

// RuleKinds lists every rule kind in evaluation order.
var RuleKinds = []string{RuleQueueDepth, RuleNoConsumer, RuleQueueGrowing, RuleTimeToDrain,
	RuleDeadLetterNotEmpty, RuleMonitoringBlind, RuleBrokerAlarm,
	RuleConsumerNotRunning, RuleBreakerOpen, RuleConsumerErrorRate, RuleConsumerSlowRate, RuleConsumerP95Latency}

// RuleParams are the settings of one rule for one target. A pointer left
// nil takes the value from the level below (global default, then built-in).
type RuleParams struct {
	// Enabled turns the rule on. Only queue_depth is on by default.
	Enabled *bool
	// Warning fires the alert at severity warning when value >= Warning.
	Warning *float64
	// Critical fires (or escalates) at severity critical when value >=
	// Critical; nil means the rule never goes critical.
	Critical *float64
	// ClearBelow resolves a firing alert when value < ClearBelow
	// (hysteresis). Default: Warning. A critical alert de-escalates to
	// warning when value < Critical - (Warning - ClearBelow).
	ClearBelow *float64
	// For is how long the condition must hold (through known values)
	// before the alert fires.
	For *time.Duration
}

// merge returns p with every field o sets taken from o.
func (p RuleParams) merge(o RuleParams) RuleParams {
	if o.Enabled != nil {
		p.Enabled = o.Enabled
	}
	if o.Warning != nil {
		p.Warning = o.Warning
	}
	if o.Critical != nil {
		p.Critical = o.Critical
	}
	if o.ClearBelow != nil {
		p.ClearBelow = o.ClearBelow
	}
	if o.For != nil {
		p.For = o.For
	}
	return p
}

// RuleOverride changes a rule's params for the queues it selects.
type RuleOverride struct {
	Rule string
	// Queue is an exact queue name or a glob (path.Match syntax: *, ?, [..]);
	// empty selects every queue. An exact match wins over a glob.
	Queue string
	// Vhost selects one vhost exactly; empty selects every vhost.
	Vhost  string
	Params RuleParams
}

// RuleSet is the rules configuration: global defaults per kind plus
// overrides. The zero value enables queue_depth only, with built-in levels.
type RuleSet struct {
	Defaults  map[string]RuleParams
	Overrides []RuleOverride
}

// Effective is the resolved configuration of one rule for one target.
type Effective struct {
	Enabled    bool
	Warning    float64
	Critical   float64 // 0 with HasCritical false: no critical level
	HasCrit    bool
	ClearBelow float64
	For        time.Duration
}

// builtin returns each kind's built-in params.
func builtin(kind string) RuleParams {
	f := func(v float64) *float64 { return &v }
	d := func(v time.Duration) *time.Duration { return &v }
	b := func(v bool) *bool { return &v }
	switch kind {
	case RuleQueueDepth:
		return RuleParams{Enabled: b(true), Warning: f(10000), Critical: f(50000), For: d(0)}
	case RuleNoConsumer:
		return RuleParams{Enabled: b(false), Warning: f(1), For: d(time.Minute)}
	case RuleQueueGrowing:
		return RuleParams{Enabled: b(false), Warning: f(1), For: d(5 * time.Minute)}
	case RuleTimeToDrain:
		return RuleParams{Enabled: b(false), Warning: f(3600), For: d(5 * time.Minute)}
	case RuleDeadLetterNotEmpty:
		return RuleParams{Enabled: b(false), Warning: f(1), For: d(0)}
	case RuleMonitoringBlind:
		return RuleParams{Enabled: b(false), Warning: f(1), For: d(time.Minute)}
	case RuleBrokerAlarm:
		return RuleParams{Enabled: b(false), Warning: f(1), Critical: f(1), For: d(0)}
	case RuleConsumerNotRunning:
		return RuleParams{Enabled: b(false), Warning: f(1), For: d(time.Minute)}
	case RuleBreakerOpen:
		return RuleParams{Enabled: b(false), Warning: f(1), For: d(0)}
	case RuleConsumerErrorRate:
		return RuleParams{Enabled: b(false), Warning: f(1), For: d(time.Minute)}
	case RuleConsumerSlowRate:
		return RuleParams{Enabled: b(false), Warning: f(1), For: d(5 * time.Minute)}
	case RuleConsumerP95Latency:
		return RuleParams{Enabled: b(false), Warning: f(1000), For: d(5 * time.Minute)}
	}
	return RuleParams{}
}

// RuleSetFromThresholds returns the queue_depth rule the health section
// describes: its levels as the defaults, per-queue levels as exact overrides.
func RuleSetFromThresholds(t monitor.Thresholds) RuleSet {
	rs := RuleSet{Defaults: map[string]RuleParams{}}
	if t.Default != (monitor.Level{}) {
		w, c := float64(t.Default.Warning), float64(t.Default.Critical)
		rs.Defaults[RuleQueueDepth] = RuleParams{Warning: &w, Critical: &c}
	}
	names := make([]string, 0, len(t.Queues))
	for n := range t.Queues {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		l := t.Queues[n]
		w, c := float64(l.Warning), float64(l.Critical)
		rs.Overrides = append(rs.Overrides, RuleOverride{Rule: RuleQueueDepth, Queue: n, Params: RuleParams{Warning: &w, Critical: &c}})
	}
	return rs
}

// Layer returns base with o layered over it: o's defaults merge into
// base's, and o's overrides come after (so they win over) base's.
func (base RuleSet) Layer(o RuleSet) RuleSet {
	out := RuleSet{Defaults: map[string]RuleParams{}}
	for k, v := range base.Defaults {
		out.Defaults[k] = v
	}
	for k, v := range o.Defaults {
		out.Defaults[k] = out.Defaults[k].merge(v)
	}
	out.Overrides = append(append(out.Overrides, base.Overrides...), o.Overrides...)
	return out
}

func isGlob(s string) bool { return strings.ContainsAny(s, "*?[") }

// Resolve returns the effective rule for kind on queue vhost/queue:
// built-in, then global default, then matching glob overrides, then
// matching exact ones, each group in configuration order.
func (rs RuleSet) Resolve(kind, vhost, queue string) Effective {
	p := builtin(kind).merge(rs.Defaults[kind])
	for _, exact := range []bool{false, true} {
		for _, o := range rs.Overrides {
			if o.Rule != kind || (o.Vhost != "" && o.Vhost != vhost) {
				continue
			}
			switch {
			case o.Queue == "":
				if exact {
					continue
				}
			case isGlob(o.Queue):
				if exact {
					continue
				}
				if ok, _ := path.Match(o.Queue, queue); !ok {
					continue
				}
			default:
				if !exact || o.Queue != queue {
					continue
				}
			}
			p = p.merge(o.Params)
		}
	}
	e := Effective{}
	if p.Enabled != nil {
		e.Enabled = *p.Enabled
	}
	if p.Warning != nil {
		e.Warning = *p.Warning
	}
	if p.Critical != nil {
		e.Critical, e.HasCrit = *p.Critical, true
	}
	e.ClearBelow = e.Warning
	if p.ClearBelow != nil {
		e.ClearBelow = *p.ClearBelow
	}
	if p.For != nil {
		e.For = *p.For
	}
	return e
}

// Validate checks the rule set; each error names the key under prefix
// (e.g. "alerts.rules").
func (rs RuleSet) Validate(prefix string) error {
	var errs []error
	check := func(key string, p RuleParams) {
		if p.Warning != nil && p.Critical != nil && *p.Critical < *p.Warning {
			errs = append(errs, fmt.Errorf("%s.critical: must be at least warning (%g), got %g", key, *p.Warning, *p.Critical))
		}
		if p.ClearBelow != nil && p.Warning != nil && *p.ClearBelow > *p.Warning {
			errs = append(errs, fmt.Errorf("%s.clear_below: must not exceed warning (%g), got %g", key, *p.Warning, *p.ClearBelow))
		}
		if p.For != nil && *p.For < 0 {
			errs = append(errs, fmt.Errorf("%s.for: must not be negative", key))
		}
	}
	for kind, p := range rs.Defaults {
		key := prefix + ".defaults." + kind
		if !slices.Contains(RuleKinds, kind) {
			errs = append(errs, fmt.Errorf("%s: unknown rule (known: %s)", key, strings.Join(RuleKinds, ", ")))
			continue
		}
		check(key, p)
	}
	for i, o := range rs.Overrides {
		key := fmt.Sprintf("%s.overrides[%d]", prefix, i)
		if !slices.Contains(RuleKinds, o.Rule) {
			errs = append(errs, fmt.Errorf("%s.rule: unknown rule %q (known: %s)", key, o.Rule, strings.Join(RuleKinds, ", ")))
		}
		if isGlob(o.Queue) {
			if _, err := path.Match(o.Queue, ""); err != nil {
				errs = append(errs, fmt.Errorf("%s.queue: bad glob %q: %v", key, o.Queue, err))
			}
		}
		check(key, o.Params)
	}
	return errors.Join(errs...)
}
