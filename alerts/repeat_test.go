package alerts_test

import (
	"context"
	"testing"
	"time"

	"warren/alerts"
)

// A firing alert nobody acknowledged notifies again every repeat interval
// (poll time, from the snapshots: no sleeps), each repeat stored in the
// outbox under a new delivery id with status firing; once acknowledged it
// stops repeating, and it still resolves once. A real receiver gets each
// delivery id exactly once.
func TestRepeatIntervalRenotifiesUntilAcknowledged(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	rc := newReceiver(t, "k", nil)
	hooks := []alerts.WebhookConfig{rc.hook("ops")}
	e := alerts.NewEvaluator(st, hooks, testLogger(t), alerts.WithThresholds(testThresholds),
		alerts.WithRepeatInterval(time.Minute))
	if err := e.Load(ctx); err != nil {
		t.Fatalf("Load: %v", err)
	}
	q := uniqueQueue(t, "q")
	c := newClock()
	start := c.at
	// observe polls at start+offset with the given depth.
	observe := func(offset time.Duration, messages int64) {
		s := c.snap(depth("/", q, messages))
		s.At = start.Add(offset)
		e.ObserveSnapshot(ctx, s)
	}
	count := func() int { return len(pending(t, st)) }

	observe(0, 30) // fires
	if n := count(); n != 1 {
		t.Fatalf("after firing: %d outbox rows, want 1", n)
	}
	observe(30*time.Second, 31)
	observe(59*time.Second, 32)
	if n := count(); n != 1 {
		t.Fatalf("before the repeat interval: %d outbox rows, want 1", n)
	}
	observe(60*time.Second, 33) // first repeat
	observe(90*time.Second, 33)
	observe(121*time.Second, 34) // second repeat
	ns := pending(t, st)
	if len(ns) != 3 {
		t.Fatalf("after two intervals: outbox %v, want 3 rows", summary(ns))
	}
	ids := map[string]bool{}
	for _, n := range ns {
		if n.Status != alerts.StateFiring || n.Alert.ID != ns[0].Alert.ID {
			t.Errorf("row %s: status %s alert %s, want firing for alert %s", n.DeliveryID, n.Status, n.Alert.ID, ns[0].Alert.ID)
		}
		ids[n.DeliveryID] = true
	}
	if len(ids) != 3 {
		t.Errorf("delivery ids %v, want 3 distinct", ids)
	}

	if err := st.AckAlert(ctx, alerts.Ack{AlertID: ns[0].Alert.ID, By: "ana", At: time.Now(), Note: "on it"}); err != nil {
		t.Fatalf("AckAlert: %v", err)
	}
	for _, off := range []time.Duration{3, 4, 5, 6} {
		observe(off*time.Minute, 35)
	}
	if n := count(); n != 3 {
		t.Errorf("after the ack: %d outbox rows, want still 3 (no repeats)", n)
	}
	observe(7*time.Minute, 0) // resolves
	ns = pending(t, st)
	if len(ns) != 4 || ns[3].Status != alerts.StateResolved {
		t.Fatalf("after clearing: outbox %v, want 3 firing and 1 resolved", summary(ns))
	}

	_, stop := startDispatcher(t, st, hooks)
	eventually(t, 10*time.Second, "an empty outbox", func() bool { return count() == 0 })
	stop()
	got := rc.got()
	if len(got) != 4 {
		t.Fatalf("receiver got %d requests, want 4", len(got))
	}
	seen := map[string]bool{}
	for i, r := range got {
		if seen[r.Delivery] {
			t.Errorf("delivery id %s received twice", r.Delivery)
		}
		seen[r.Delivery] = true
		want := alerts.StateFiring
		if i == 3 {
			want = alerts.StateResolved
		}
		if r.Payload.Status != want {
			t.Errorf("request %d status %q, want %q", i, r.Payload.Status, want)
		}
	}
}

// Without a repeat interval a long-firing alert notifies once.
func TestNoRepeatByDefault(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	hooks := []alerts.WebhookConfig{{Name: "outbox-only", URL: "http://127.0.0.1:9/never", Format: "generic"}}
	e := newEvaluator(t, st, hooks, nil)
	q := uniqueQueue(t, "q")
	c := newClock()
	start := c.at
	for i := range 10 {
		s := c.snap(depth("/", q, 30))
		s.At = start.Add(time.Duration(i) * time.Hour)
		e.ObserveSnapshot(ctx, s)
	}
	if ns := pending(t, st); len(ns) != 1 {
		t.Errorf("outbox %v, want one firing notification", summary(ns))
	}
}

// A restart keeps the repeat interval's rhythm: the repeat is due one
// interval after the last notification before the restart, not one interval
// after the restart.
func TestRepeatIntervalSurvivesRestart(t *testing.T) {
	st := newStore(t)
	ctx := context.Background()
	hooks := []alerts.WebhookConfig{{Name: "ops", URL: "http://127.0.0.1:9/unused", Format: "generic"}}
	newEval := func() *alerts.Evaluator {
		e := alerts.NewEvaluator(st, hooks, testLogger(t), alerts.WithThresholds(testThresholds),
			alerts.WithRepeatInterval(time.Minute))
		if err := e.Load(ctx); err != nil {
			t.Fatalf("Load: %v", err)
		}
		return e
	}
	q := uniqueQueue(t, "q")
	// Poll times on the wall clock: the outbox's creation times are.
	start := time.Now().UTC().Truncate(time.Millisecond)
	observe := func(e *alerts.Evaluator, offset time.Duration, messages int64) {
		s := newClock().snap(depth("/", q, messages))
		s.At = start.Add(offset)
		e.ObserveSnapshot(ctx, s)
	}
	count := func() int { return len(pending(t, st)) }

	e := newEval()
	observe(e, 0, 30) // fires
	observe(e, 30*time.Second, 31)
	if n := count(); n != 1 {
		t.Fatalf("after firing: %d outbox rows, want 1", n)
	}
	e = newEval() // restart
	observe(e, 40*time.Second, 31)
	if n := count(); n != 1 {
		t.Fatalf("right after the restart: %d outbox rows, want still 1", n)
	}
	observe(e, 62*time.Second, 32)
	if n := count(); n != 2 {
		t.Fatalf("one interval after the notification before the restart: %d outbox rows, want 2 (a repeat)", n)
	}
}
