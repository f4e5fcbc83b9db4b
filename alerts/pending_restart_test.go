package alerts_test

import (
	"context"
	"testing"
	"time"

	"warren/alerts"
)

// A condition waiting out its rule's "for" keeps waiting across a short
// restart: it fires at since+for, not at restart+for. After a downtime
// longer than the grace (5 min) the wait starts again, since the condition
// may have cleared while nobody watched.
func TestForWaitSurvivesShortRestart(t *testing.T) {
	for _, c := range []struct {
		name     string
		resumeAt time.Duration // poll offset of the first poll after the restart
		firesAt  time.Duration // poll offset at which it must fire, not before
	}{
		{"short restart", 50 * time.Second, 60 * time.Second},
		{"long downtime", 10 * time.Minute, 11 * time.Minute},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := newStore(t)
			ctx := context.Background()
			hooks := []alerts.WebhookConfig{{Name: "ops", URL: "http://127.0.0.1:9/unused", Format: "generic"}}
			rules := alerts.RuleSet{Defaults: map[string]alerts.RuleParams{alerts.RuleQueueDepth: {For: dp(time.Minute)}}}
			newEval := func() *alerts.Evaluator {
				e := alerts.NewEvaluator(st, hooks, testLogger(t), alerts.WithThresholds(testThresholds), alerts.WithRules(rules))
				if err := e.Load(ctx); err != nil {
					t.Fatalf("Load: %v", err)
				}
				return e
			}
			q := uniqueQueue(t, "q")
			clk := newClock()
			start := clk.at
			observe := func(e *alerts.Evaluator, offset time.Duration) {
				s := clk.snap(depth("/", q, 30))
				s.At = start.Add(offset)
				e.ObserveSnapshot(ctx, s)
			}
			fired := func() bool { return len(pending(t, st)) > 0 }

			e := newEval()
			observe(e, 0)
			observe(e, 30*time.Second)
			e = newEval() // restart
			for off := c.resumeAt; off < c.firesAt; off += 5 * time.Second {
				observe(e, off)
				if fired() {
					t.Fatalf("fired at +%s, want at +%s", off, c.firesAt)
				}
			}
			observe(e, c.firesAt)
			if !fired() {
				t.Fatalf("not fired at +%s", c.firesAt)
			}
		})
	}
}
