package alerts_test

import (
	"context"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"warren/alerts"
)

// A receiver answering 500 twice then 200 gets the same delivery id on every
// attempt, is delivered once it succeeds, and still gets later
// notifications after it, in order.
func TestDispatcherRetriesServerErrorsWithSameID(t *testing.T) {
	st := newStore(t)
	rc := newReceiver(t, "k", func(n int, _ request) int {
		if n < 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	hooks := []alerts.WebhookConfig{rc.hook("ops")}
	ctx := context.Background()
	c := newClock()
	q := uniqueQueue(t, "q")

	// Both transitions are in the outbox before the dispatcher starts, so
	// the second one waits behind the first one's retries.
	e := newEvaluator(t, st, hooks, nil)
	e.ObserveSnapshot(ctx, c.snap(depth("/", q, 30)))
	e.ObserveSnapshot(ctx, c.snap(depth("/", q, 0)))
	startDispatcher(t, st, hooks)

	eventually(t, 10*time.Second, "four requests", func() bool { return rc.count() >= 4 })
	eventually(t, 10*time.Second, "an empty outbox", func() bool { return len(pending(t, st)) == 0 })
	got := rc.got()
	if len(got) != 4 {
		t.Fatalf("got %d requests, want 4", len(got))
	}
	for i := range 3 {
		if got[i].Delivery != got[0].Delivery || got[i].Payload.Status != "firing" {
			t.Errorf("attempt %d: delivery %q status %q, want %q firing", i, got[i].Delivery, got[i].Payload.Status, got[0].Delivery)
		}
		if string(got[i].Body) != string(got[0].Body) {
			t.Errorf("attempt %d body differs from the first: %s", i, got[i].Body)
		}
	}
	if got[3].Payload.Status != "resolved" || got[3].Delivery == got[0].Delivery {
		t.Errorf("last request %q %q, want the resolved notification", got[3].Delivery, got[3].Payload.Status)
	}
}

// A 4xx answer is final: the notification is abandoned, not retried, and the
// next notification for the same webhook still goes out.
func TestDispatcherDoesNotRetryClientErrors(t *testing.T) {
	st := newStore(t)
	rc := newReceiver(t, "k", func(n int, _ request) int {
		if n == 0 {
			return http.StatusBadRequest
		}
		return http.StatusOK
	})
	hooks := []alerts.WebhookConfig{rc.hook("ops")}
	d, _ := startDispatcher(t, st, hooks)
	e := newEvaluator(t, st, hooks, d)
	ctx := context.Background()
	c := newClock()
	q := uniqueQueue(t, "q")

	e.ObserveSnapshot(ctx, c.snap(depth("/", q, 30)))
	eventually(t, 10*time.Second, "the refused notification to leave the outbox", func() bool {
		return rc.count() >= 1 && len(pending(t, st)) == 0
	})
	e.ObserveSnapshot(ctx, c.snap(depth("/", q, 0)))
	eventually(t, 10*time.Second, "a second request", func() bool { return rc.count() >= 2 })
	eventually(t, 10*time.Second, "an empty outbox", func() bool { return len(pending(t, st)) == 0 })
	got := rc.got()
	if len(got) != 2 || got[0].Payload.Status != "firing" || got[1].Payload.Status != "resolved" {
		t.Fatalf("got %d requests (%+v), want the refused firing once then resolved", len(got), got)
	}
}

// A receiver that never answers holds up only its own webhook.
//
// The hanging receiver is a fake (a handler that blocks until the test
// ends): no real receiver can be made to hang on demand.
func TestDispatcherHangingReceiverDoesNotDelayOthers(t *testing.T) {
	st := newStore(t)
	release := make(chan struct{})
	var hungOnce sync.Once
	hung := make(chan struct{})
	slow := newReceiver(t, "", func(int, request) int {
		hungOnce.Do(func() { close(hung) })
		<-release
		return http.StatusOK
	})
	// Registered after slow's server, so it runs first: the blocked handler
	// must return before httptest.Server.Close can.
	t.Cleanup(func() { close(release) })
	fast := newReceiver(t, "k", nil)
	slowHook := slow.hook("slow")
	slowHook.Timeout = time.Hour // the attempt must still be hanging when fast is checked
	hooks := []alerts.WebhookConfig{slowHook, fast.hook("fast")}
	d, stop := startDispatcher(t, st, hooks)
	e := newEvaluator(t, st, hooks, d)
	ctx := context.Background()
	c := newClock()
	q := uniqueQueue(t, "q")

	e.ObserveSnapshot(ctx, c.snap(depth("/", q, 30)))
	e.ObserveSnapshot(ctx, c.snap(depth("/", q, 0)))
	eventually(t, 10*time.Second, "fast to get both notifications", func() bool { return fast.count() >= 2 })
	<-hung
	select {
	case <-release:
		t.Fatal("slow receiver was released early")
	default:
	}
	if n := slow.count(); n != 1 {
		t.Errorf("slow receiver got %d requests while hanging, want 1", n)
	}
	if got := fast.got(); got[0].Payload.Status != "firing" || got[1].Payload.Status != "resolved" {
		t.Errorf("fast got %s then %s", got[0].Payload.Status, got[1].Payload.Status)
	}
	pendingFor := func(webhook string) int {
		n := 0
		for _, p := range pending(t, st) {
			if p.Webhook == webhook {
				n++
			}
		}
		return n
	}
	eventually(t, 10*time.Second, "fast's outbox to empty", func() bool { return pendingFor("fast") == 0 })
	// Shutdown does not wait for the hanging attempt to finish, and what
	// the slow webhook did not get stays in the outbox.
	stop()
	if n := pendingFor("slow"); n != 2 {
		t.Errorf("%d notifications pending for the slow webhook, want 2", n)
	}
}

// A notification sent but not yet marked delivered when the process stops
// is sent again by the next run, with the same delivery id.
func TestDispatcherResendsAfterCrashBeforeMark(t *testing.T) {
	path := filepath.Join(t.TempDir(), "warren.db")
	answered := make(chan struct{})
	first := true
	var mu sync.Mutex
	rc := newReceiver(t, "k", func(int, request) int {
		mu.Lock()
		isFirst := first
		first = false
		mu.Unlock()
		if isFirst {
			// Hold the first answer until the dispatcher has stopped, so
			// the receiver has the body but the outbox never hears back.
			<-answered
		}
		return http.StatusOK
	})
	hooks := []alerts.WebhookConfig{rc.hook("ops")}
	ctx := context.Background()
	c := newClock()
	q := uniqueQueue(t, "q")

	st1 := openStore(t, path)
	d1, stop1 := startDispatcher(t, st1, hooks)
	e := newEvaluator(t, st1, hooks, d1)
	e.ObserveSnapshot(ctx, c.snap(depth("/", q, 30)))
	eventually(t, 10*time.Second, "the first request", func() bool { return rc.count() >= 1 })
	stop1()
	close(answered)
	if err := st1.Close(); err != nil {
		t.Fatalf("closing store: %v", err)
	}

	st2 := openStore(t, path)
	t.Cleanup(func() { _ = st2.Close() })
	if n := len(pending(t, st2)); n != 1 {
		t.Fatalf("%d pending after the crash, want 1", n)
	}
	startDispatcher(t, st2, hooks)
	eventually(t, 10*time.Second, "the resend", func() bool { return rc.count() >= 2 })
	eventually(t, 10*time.Second, "an empty outbox", func() bool { return len(pending(t, st2)) == 0 })
	got := rc.got()
	if len(got) != 2 || got[0].Delivery != got[1].Delivery || string(got[0].Body) != string(got[1].Body) {
		t.Fatalf("got %+v, want the same notification twice", got)
	}
}

// Outbox rows for a webhook that is no longer configured are abandoned
// rather than left pending forever.
func TestDispatcherAbandonsUnknownWebhook(t *testing.T) {
	st := newStore(t)
	rc := newReceiver(t, "k", nil)
	kept := rc.hook("kept")
	removed := alerts.WebhookConfig{Name: "removed", URL: "http://127.0.0.1:1/hook"}
	e := newEvaluator(t, st, []alerts.WebhookConfig{kept, removed}, nil)
	e.ObserveSnapshot(context.Background(), newClock().snap(depth("/", uniqueQueue(t, "q"), 30)))
	startDispatcher(t, st, []alerts.WebhookConfig{kept})
	eventually(t, 10*time.Second, "an empty outbox", func() bool { return len(pending(t, st)) == 0 })
	if n := rc.count(); n != 1 {
		t.Errorf("kept webhook got %d requests, want 1", n)
	}
}

func TestNewDispatcherRejectsInvalidWebhooks(t *testing.T) {
	_, err := alerts.NewDispatcher(newStore(t), []alerts.WebhookConfig{{Name: "x", URL: "ftp://h/", Format: "generic"}}, nil)
	if err == nil {
		t.Fatal("NewDispatcher accepted an ftp URL")
	}
}
