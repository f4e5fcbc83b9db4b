package alerts_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"warren/alerts"
)

// A queue crossing warning, then critical, then back to ok notifies exactly
// three times per webhook; repeated, unknown and failed polls add nothing.
func TestEvaluatorLifecycle(t *testing.T) {
	st := newStore(t)
	signed := newReceiver(t, "s3cret-key", nil)
	unsigned := newReceiver(t, "", nil)
	hooks := []alerts.WebhookConfig{signed.hook("signed"), unsigned.hook("unsigned")}
	d, _ := startDispatcher(t, st, hooks)
	e := newEvaluator(t, st, hooks, d)
	ctx := context.Background()
	c := newClock()
	q := uniqueQueue(t, "orders")
	other := uniqueQueue(t, "quiet")

	observe := func(messages int64) {
		e.ObserveSnapshot(ctx, c.snap(depth("/", q, messages), depth("/", other, 1)))
	}
	observe(5)  // ok: nothing
	observe(-1) // unknown on a quiet queue: nothing
	observe(12) // warning: fires
	warnAt := c.at
	observe(15) // still warning: nothing
	observe(-1) // unknown: nothing
	e.ObserveSnapshot(ctx, c.failed())
	observe(25) // critical: same alert, new severity
	observe(30)
	observe(-1)
	e.ObserveSnapshot(ctx, c.failed())
	if got := activeAlerts(t, e); len(got) != 1 || got[0].Severity != alerts.SeverityCritical {
		t.Fatalf("active alerts after unknown and failed polls = %+v, want one critical", got)
	}
	// The firing alert shows the latest known value (30), not the one it
	// escalated at (25); found by a trial run.
	if got, _ := st.ActiveAlerts(ctx); len(got) != 1 || got[0].Value != 30 {
		t.Fatalf("stored firing alert = %+v, want value 30", got)
	}
	observe(3) // ok: resolves
	resolvedAt := c.at
	observe(3)
	observe(2)
	e.ObserveSnapshot(ctx, c.failed())

	for _, rc := range []*receiver{signed, unsigned} {
		eventually(t, 10*time.Second, "three notifications", func() bool { return rc.count() >= 3 })
	}
	eventually(t, 10*time.Second, "an empty outbox", func() bool { return len(pending(t, st)) == 0 })
	// Every transition was in the outbox before ObserveSnapshot returned and
	// the outbox is now empty, so nothing else can still arrive.
	if got := activeAlerts(t, e); len(got) != 0 {
		t.Fatalf("active alerts after resolve = %+v, want none", got)
	}

	for _, rc := range []*receiver{signed, unsigned} {
		got := rc.got()
		if len(got) != 3 {
			t.Fatalf("receiver got %d notifications, want 3: %+v", len(got), got)
		}
		want := []struct {
			status, severity string
			value, threshold float64
		}{
			{"firing", "warning", 12, 10},
			{"firing", "critical", 25, 20},
			{"resolved", "critical", 3, 20},
		}
		ids := map[string]bool{}
		for i, w := range want {
			r := got[i]
			p := r.Payload
			if p.Version != "1" || p.Status != w.status || p.Alert.Severity != w.severity ||
				p.Alert.Value != w.value || p.Alert.Threshold != w.threshold {
				t.Errorf("notification %d = %+v, want %+v", i, p, w)
			}
			if p.Alert.ID != got[0].Payload.Alert.ID || p.Alert.ID == "" {
				t.Errorf("notification %d alert id %q, want the first one's %q", i, p.Alert.ID, got[0].Payload.Alert.ID)
			}
			if p.Alert.Rule != alerts.RuleQueueDepth || p.Alert.Vhost != "/" || p.Alert.Queue != q {
				t.Errorf("notification %d names %s %s/%s", i, p.Alert.Rule, p.Alert.Vhost, p.Alert.Queue)
			}
			if !p.Alert.StartedAt.Equal(warnAt) {
				t.Errorf("notification %d started_at %s, want %s", i, p.Alert.StartedAt, warnAt)
			}
			if r.Delivery == "" || ids[r.Delivery] {
				t.Errorf("notification %d delivery id %q is empty or repeated", i, r.Delivery)
			}
			ids[r.Delivery] = true
			if r.ContentType != "application/json" || r.UserAgent != "warren" {
				t.Errorf("notification %d content-type %q user-agent %q", i, r.ContentType, r.UserAgent)
			}
			if (rc == signed) != r.HasSig {
				t.Errorf("notification %d signature present = %v", i, r.HasSig)
			}
			var keys []string
			for k := range r.Raw {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			if !slices.Equal(keys, []string{"alert", "status", "version"}) {
				t.Errorf("body keys %v", keys)
			}
			var alertKeys []string
			for k := range r.Raw["alert"].(map[string]any) {
				alertKeys = append(alertKeys, k)
			}
			slices.Sort(alertKeys)
			wantKeys := []string{"id", "queue", "resolved_at", "rule", "severity", "started_at", "state", "threshold", "value", "vhost"}
			if !slices.Equal(alertKeys, wantKeys) {
				t.Errorf("alert keys %v, want %v", alertKeys, wantKeys)
			}
		}
		if got[0].Payload.Alert.ResolvedAt != nil || got[0].Payload.Alert.State != "firing" {
			t.Errorf("firing notification has state %q resolved_at %v", got[0].Payload.Alert.State, got[0].Payload.Alert.ResolvedAt)
		}
		if r := got[2].Payload.Alert; r.State != "resolved" || r.ResolvedAt == nil || !r.ResolvedAt.Equal(resolvedAt) {
			t.Errorf("resolved notification has state %q resolved_at %v, want %s", r.State, r.ResolvedAt, resolvedAt)
		}
	}
	if a, b := signed.got()[0].Delivery, unsigned.got()[0].Delivery; a == b {
		t.Errorf("both webhooks got delivery id %q; want one per webhook", a)
	}
}

// A queue that disappears from a successful poll was deleted: its alert
// resolves once. A failed poll (which carries no queues) resolves nothing.
func TestEvaluatorDeletedQueueResolves(t *testing.T) {
	st := newStore(t)
	rc := newReceiver(t, "k", nil)
	hooks := []alerts.WebhookConfig{rc.hook("ops")}
	d, _ := startDispatcher(t, st, hooks)
	e := newEvaluator(t, st, hooks, d)
	ctx := context.Background()
	c := newClock()
	gone, stays := uniqueQueue(t, "gone"), uniqueQueue(t, "stays")

	e.ObserveSnapshot(ctx, c.snap(depth("/", gone, 50), depth("/", stays, 50)))
	e.ObserveSnapshot(ctx, c.failed())
	if n := len(activeAlerts(t, e)); n != 2 {
		t.Fatalf("%d active alerts after a failed poll, want 2", n)
	}
	e.ObserveSnapshot(ctx, c.snap(depth("/", stays, 50)))
	e.ObserveSnapshot(ctx, c.snap(depth("/", stays, 50)))

	eventually(t, 10*time.Second, "three notifications", func() bool { return rc.count() >= 3 })
	eventually(t, 10*time.Second, "an empty outbox", func() bool { return len(pending(t, st)) == 0 })
	got := rc.got()
	if len(got) != 3 {
		t.Fatalf("got %d notifications, want 3", len(got))
	}
	if p := got[2].Payload; p.Status != "resolved" || p.Alert.Queue != gone || p.Alert.Value != 50 {
		t.Errorf("last notification %+v, want %s resolved with its last value", p, gone)
	}
	if a := activeAlerts(t, e); len(a) != 1 || a[0].Queue != stays {
		t.Errorf("active alerts %+v, want only %s", a, stays)
	}
}

// After a restart (new store handle, new evaluator loading from the same
// file) a queue still over its threshold stays quiet and one that cleared
// resolves exactly once.
func TestEvaluatorRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "warren.db")
	rc := newReceiver(t, "k", nil)
	hooks := []alerts.WebhookConfig{rc.hook("ops")}
	ctx := context.Background()
	c := newClock()
	still, cleared := uniqueQueue(t, "still"), uniqueQueue(t, "cleared")

	st1 := openStore(t, path)
	d1, stop1 := startDispatcher(t, st1, hooks)
	e1 := newEvaluator(t, st1, hooks, d1)
	e1.ObserveSnapshot(ctx, c.snap(depth("/", still, 30), depth("/", cleared, 30)))
	eventually(t, 10*time.Second, "two firing notifications", func() bool { return rc.count() >= 2 })
	eventually(t, 10*time.Second, "an empty outbox", func() bool { return len(pending(t, st1)) == 0 })
	stop1()
	if err := st1.Close(); err != nil {
		t.Fatalf("closing store: %v", err)
	}

	st2 := openStore(t, path)
	t.Cleanup(func() { _ = st2.Close() })
	d2, _ := startDispatcher(t, st2, hooks)
	e2 := newEvaluator(t, st2, hooks, d2)
	for range 3 {
		e2.ObserveSnapshot(ctx, c.snap(depth("/", still, 30), depth("/", cleared, 0)))
	}
	eventually(t, 10*time.Second, "a third notification", func() bool { return rc.count() >= 3 })
	eventually(t, 10*time.Second, "an empty outbox", func() bool { return len(pending(t, st2)) == 0 })

	got := rc.got()
	if len(got) != 3 {
		t.Fatalf("got %d notifications, want 3", len(got))
	}
	var clearedID string
	for _, r := range got[:2] {
		if r.Payload.Alert.Queue == cleared {
			clearedID = r.Payload.Alert.ID
		}
	}
	if p := got[2].Payload; p.Status != "resolved" || p.Alert.Queue != cleared || p.Alert.ID != clearedID {
		t.Errorf("after restart got %+v, want %s (alert %s) resolved", p, cleared, clearedID)
	}
	if a := activeAlerts(t, e2); len(a) != 1 || a[0].Queue != still {
		t.Errorf("active alerts %+v, want only %s", a, still)
	}
}

// A transition the store cannot record leaves the evaluator's memory as it
// was, so the next poll tries it again.
func TestEvaluatorRetriesUnrecordedTransition(t *testing.T) {
	st := newStore(t)
	flaky := &failingStore{Store: st, fail: 1}
	e := newEvaluator(t, flaky, []alerts.WebhookConfig{{Name: "ops", URL: "http://127.0.0.1:1/"}}, nil)
	ctx := context.Background()
	c := newClock()
	q := uniqueQueue(t, "q")

	e.ObserveSnapshot(ctx, c.snap(depth("/", q, 30)))
	if n := len(activeAlerts(t, e)); n != 0 {
		t.Fatalf("%d active alerts after a failed write, want 0", n)
	}
	e.ObserveSnapshot(ctx, c.snap(depth("/", q, 30)))
	if a := activeAlerts(t, e); len(a) != 1 || a[0].Severity != alerts.SeverityCritical {
		t.Fatalf("active alerts %+v, want one critical", a)
	}
	if n := len(pending(t, st)); n != 1 {
		t.Fatalf("%d outbox rows, want 1", n)
	}
}

// failingStore wraps the real store and fails the first RecordTransition
// calls: a real SQLite cannot be made to fail one write on demand.
type failingStore struct {
	alerts.Store
	fail int
}

func (f *failingStore) RecordTransition(ctx context.Context, a alerts.Alert, outbox []alerts.Notification) error {
	if f.fail > 0 {
		f.fail--
		return context.DeadlineExceeded
	}
	return f.Store.RecordTransition(ctx, a, outbox)
}
