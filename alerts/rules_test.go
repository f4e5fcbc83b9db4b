package alerts_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"warren/alerts"
	"warren/monitor"
)

func fp(v float64) *float64             { return &v }
func dp(v time.Duration) *time.Duration { return &v }
func bp(v bool) *bool                   { return &v }
func ip(v int64) *int64                 { return &v }

// ruleEvaluator is an evaluator with rules rs (over no health thresholds)
// whose outbox is inspected directly: the webhook is never called.
func ruleEvaluator(t *testing.T, rs alerts.RuleSet) (*alerts.Evaluator, func() []alerts.Notification) {
	t.Helper()
	st := newStore(t)
	hooks := []alerts.WebhookConfig{{Name: "outbox-only", URL: "http://127.0.0.1:9/never", Format: "generic"}}
	e := alerts.NewEvaluator(st, hooks, testLogger(t), alerts.WithRules(rs))
	if err := e.Load(context.Background()); err != nil {
		t.Fatalf("Load: %v", err)
	}
	return e, func() []alerts.Notification { return pending(t, st) }
}

func summary(ns []alerts.Notification) []string {
	out := []string{}
	for _, n := range ns {
		out = append(out, fmt.Sprintf("%s %s %s/%s %s %g", n.Alert.Rule, n.Status, n.Alert.Vhost, n.Alert.Queue, n.Alert.Severity, n.Alert.Value))
	}
	return out
}

func wantSummary(t *testing.T, got []alerts.Notification, want ...string) {
	t.Helper()
	g := summary(got)
	if fmt.Sprint(g) != fmt.Sprint(want) {
		t.Fatalf("notifications:\n got  %q\n want %q", g, want)
	}
}

// A value bouncing around the threshold (990, 1010, 995, 1020, ...) fires
// once and resolves once, delivered to a real receiver.
// wantSummarySet compares ignoring order: one poll's notifications are
// ordered by delivery id, which is random.
func wantSummarySet(t *testing.T, got []alerts.Notification, want ...string) {
	t.Helper()
	g := summary(got)
	slices.Sort(g)
	slices.Sort(want)
	if fmt.Sprint(g) != fmt.Sprint(want) {
		t.Fatalf("notifications:\n got  %q\n want %q", g, want)
	}
}

func TestHysteresisBouncingValueFiresOnceResolvesOnce(t *testing.T) {
	st := newStore(t)
	rc := newReceiver(t, "sig-key", nil)
	hooks := []alerts.WebhookConfig{rc.hook("ops")}
	d, _ := startDispatcher(t, st, hooks)
	rs := alerts.RuleSet{Defaults: map[string]alerts.RuleParams{
		alerts.RuleQueueDepth: {Warning: fp(1000), Critical: fp(5000), ClearBelow: fp(900)},
	}}
	e := alerts.NewEvaluator(st, hooks, testLogger(t), alerts.WithRules(rs), alerts.WithWaker(d))
	c := newClock()
	q := uniqueQueue(t, "bounce")
	ctx := context.Background()
	for i := range 60 {
		v := int64(990 + (i%2)*20 + (i%3)*5) // 990, 1015, 1000, 1005, 990, 1025, ...
		e.ObserveSnapshot(ctx, c.snap(depth("/", q, v)))
		if i%7 == 3 {
			e.ObserveSnapshot(ctx, c.snap(depth("/", q, -1))) // unknown in between
		}
	}
	e.ObserveSnapshot(ctx, c.snap(depth("/", q, 850)))
	e.ObserveSnapshot(ctx, c.snap(depth("/", q, 995)))
	e.ObserveSnapshot(ctx, c.snap(depth("/", q, 880)))
	eventually(t, 10*time.Second, "an empty outbox", func() bool { return len(pending(t, st)) == 0 })
	got := rc.got()
	if len(got) != 2 || got[0].Payload.Status != "firing" || got[1].Payload.Status != "resolved" {
		t.Fatalf("receiver got %d notifications %+v, want one firing then one resolved", len(got), got)
	}
	if got[0].Payload.Alert.Value != 1015 || got[1].Payload.Alert.Value != 850 {
		t.Errorf("values %g, %g; want 1015, 850", got[0].Payload.Alert.Value, got[1].Payload.Alert.Value)
	}
}

// The condition must hold for "for" through known values; unknown values
// neither fire, resolve nor reset the wait; a value below warning resets it.
func TestRuleForDurationAndUnknown(t *testing.T) {
	e, outbox := ruleEvaluator(t, alerts.RuleSet{Defaults: map[string]alerts.RuleParams{
		alerts.RuleQueueDepth: {Warning: fp(10), Critical: fp(20), For: dp(20 * time.Second)},
	}})
	c := newClock() // 5s per poll
	ctx := context.Background()
	q := uniqueQueue(t, "for")
	obs := func(v int64) { e.ObserveSnapshot(ctx, c.snap(depth("/", q, v))) }
	obs(12) // t=0: pending
	obs(15) // 5s
	obs(5)  // below: resets
	obs(12) // t=0 again
	obs(-1) // unknown
	e.ObserveSnapshot(ctx, c.failed())
	obs(13) // 15s
	wantSummary(t, outbox())
	obs(14) // 20s: fires
	wantSummary(t, outbox(), fmt.Sprintf("queue_depth firing //%s warning 14", q))
	obs(-1)
	e.ObserveSnapshot(ctx, c.failed())
	obs(-1)
	wantSummary(t, outbox(), fmt.Sprintf("queue_depth firing //%s warning 14", q))
}

// Severity escalates at critical and de-escalates only below critical minus
// the hysteresis gap; each change is one notification.
func TestRuleEscalationAndDeescalation(t *testing.T) {
	e, outbox := ruleEvaluator(t, alerts.RuleSet{Defaults: map[string]alerts.RuleParams{
		alerts.RuleQueueDepth: {Warning: fp(10), Critical: fp(20), ClearBelow: fp(8)},
	}})
	c := newClock()
	ctx := context.Background()
	q := uniqueQueue(t, "esc")
	for _, v := range []int64{12, 25, 19, 18, 21, 17, 9, 11, 7, 9} {
		e.ObserveSnapshot(ctx, c.snap(depth("/", q, v)))
	}
	p := "queue_depth %s //" + q + " %s %d"
	wantSummary(t, outbox(),
		fmt.Sprintf(p, "firing", "warning", 12),
		fmt.Sprintf(p, "firing", "critical", 25),
		fmt.Sprintf(p, "firing", "warning", 17),
		fmt.Sprintf(p, "resolved", "warning", 7),
	)
}

func TestRuleSetResolvePrecedence(t *testing.T) {
	rs := alerts.RuleSetFromThresholds(monitor.Thresholds{
		Default: monitor.Level{Warning: 100, Critical: 200},
		Queues:  map[string]monitor.Level{"orders": {Warning: 5, Critical: 9}},
	}).Layer(alerts.RuleSet{
		Defaults: map[string]alerts.RuleParams{alerts.RuleNoConsumer: {Enabled: bp(true)}},
		Overrides: []alerts.RuleOverride{
			{Rule: alerts.RuleQueueDepth, Queue: "orders", Params: alerts.RuleParams{ClearBelow: fp(3)}},
			{Rule: alerts.RuleQueueDepth, Queue: "ord*", Params: alerts.RuleParams{Warning: fp(50), For: dp(time.Minute)}},
			{Rule: alerts.RuleQueueDepth, Vhost: "staging", Params: alerts.RuleParams{Enabled: bp(false)}},
		},
	})
	cases := []struct {
		vhost, queue string
		want         alerts.Effective
	}{
		{"/", "other", alerts.Effective{Enabled: true, Warning: 100, Critical: 200, HasCrit: true, ClearBelow: 100}},
		{"/", "orders", alerts.Effective{Enabled: true, Warning: 5, Critical: 9, HasCrit: true, ClearBelow: 3, For: time.Minute}},
		{"/", "ordinal", alerts.Effective{Enabled: true, Warning: 50, Critical: 200, HasCrit: true, ClearBelow: 50, For: time.Minute}},
		{"staging", "other", alerts.Effective{Enabled: false, Warning: 100, Critical: 200, HasCrit: true, ClearBelow: 100}},
	}
	for _, c := range cases {
		if got := rs.Resolve(alerts.RuleQueueDepth, c.vhost, c.queue); got != c.want {
			t.Errorf("Resolve(queue_depth, %s, %s) = %+v, want %+v", c.vhost, c.queue, got, c.want)
		}
	}
	if got := rs.Resolve(alerts.RuleNoConsumer, "/", "x"); !got.Enabled || got.For != time.Minute || got.Warning != 1 {
		t.Errorf("no_consumer = %+v, want enabled with built-in defaults", got)
	}
	if got := rs.Resolve(alerts.RuleTimeToDrain, "/", "x"); got.Enabled {
		t.Errorf("time_to_drain enabled without configuration")
	}
	bad := alerts.RuleSet{
		Defaults:  map[string]alerts.RuleParams{"nope": {}},
		Overrides: []alerts.RuleOverride{{Rule: alerts.RuleQueueDepth, Queue: "[", Params: alerts.RuleParams{Warning: fp(5), Critical: fp(1)}}},
	}
	err := bad.Validate("alerts.rules")
	for _, want := range []string{"alerts.rules.defaults.nope", "alerts.rules.overrides[0].queue", "alerts.rules.overrides[0].critical"} {
		if err == nil || !contains(err.Error(), want) {
			t.Errorf("Validate error %v does not name %s", err, want)
		}
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// Every derived-signal rule fires and resolves on its own figure, and an
// unknown figure changes nothing.
func TestRuleKindsFromMonitorSignals(t *testing.T) {
	on := alerts.RuleParams{Enabled: bp(true), For: dp(0)}
	off := alerts.RuleParams{Enabled: bp(false)}
	e, outbox := ruleEvaluator(t, alerts.RuleSet{Defaults: map[string]alerts.RuleParams{
		alerts.RuleQueueDepth:         off,
		alerts.RuleNoConsumer:         on,
		alerts.RuleQueueGrowing:       on,
		alerts.RuleTimeToDrain:        {Enabled: bp(true), For: dp(0), Warning: fp(600), Critical: fp(3600)},
		alerts.RuleDeadLetterNotEmpty: on,
		alerts.RuleMonitoringBlind:    {Enabled: bp(true), For: dp(10 * time.Second)},
		alerts.RuleBrokerAlarm:        on,
	}})
	c := newClock()
	ctx := context.Background()
	q, dlq := uniqueQueue(t, "work"), uniqueQueue(t, "work.dlq")
	sample := func(messages, consumers int64, growing *bool, ttd *float64) monitor.QueueSample {
		return monitor.QueueSample{Vhost: "/", Name: q, Messages: ip(messages), Ready: ip(messages),
			Consumers: ip(consumers), Growing: growing, TimeToDrainSeconds: ttd}
	}
	dead := func(messages int64) monitor.QueueSample {
		return monitor.QueueSample{Vhost: "/", Name: dlq, Messages: ip(messages), Consumers: ip(1), IsDeadLetter: true}
	}
	node := func(alarm *bool) []monitor.Node { return []monitor.Node{{Name: "rabbit@a", MemAlarm: alarm}} }
	snap := func(nodes []monitor.Node, qs ...monitor.QueueSample) {
		s := c.snap(qs...)
		s.Nodes = nodes
		e.ObserveSnapshot(ctx, s)
	}

	snap(node(bp(false)), sample(0, 0, bp(false), fp(0)), dead(0))
	wantSummary(t, outbox())
	snap(node(bp(true)), sample(7, 0, bp(true), nil), dead(3))                                                  // no consumer, growing, dlq, alarm
	snap(node(nil), sample(7, 1, nil, fp(900)), monitor.QueueSample{Vhost: "/", Name: dlq, IsDeadLetter: true}) // consumers back; rest unknown; ttd warning
	snap(nil, sample(7, 1, nil, fp(4000)), dead(3))                                                             // ttd critical
	e.ObserveSnapshot(ctx, c.failed())                                                                          // blind pending
	e.ObserveSnapshot(ctx, c.failed())
	e.ObserveSnapshot(ctx, c.failed()) // 10s: blind fires
	snap(node(bp(false)), sample(0, 1, bp(false), fp(0)), dead(0))
	w := func(rule, status, target, sev string, v float64) string {
		return fmt.Sprintf("%s %s %s %s %g", rule, status, target, sev, v)
	}
	wantSummarySet(t, outbox(),
		w("no_consumer", "firing", "//"+q, "warning", 7),
		w("queue_growing", "firing", "//"+q, "warning", 7),
		w("dead_letter_not_empty", "firing", "//"+dlq, "warning", 3),
		w("broker_alarm", "firing", "/rabbit@a", "critical", 1),
		w("no_consumer", "resolved", "//"+q, "warning", 0),
		w("time_to_drain", "firing", "//"+q, "warning", 900),
		w("time_to_drain", "firing", "//"+q, "critical", 4000),
		w("monitoring_blind", "firing", "/", "warning", 1),
		w("monitoring_blind", "resolved", "/", "warning", 0),
		w("queue_growing", "resolved", "//"+q, "warning", 0),
		w("time_to_drain", "resolved", "//"+q, "critical", 0),
		w("dead_letter_not_empty", "resolved", "//"+dlq, "warning", 0),
		w("broker_alarm", "resolved", "/rabbit@a", "critical", 0),
	)
}
