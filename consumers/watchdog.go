package consumers

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// watchdog enforces HandlerTimeout without a context or timer per message:
// every running handler holds a slot (preallocated, one per possible
// worker) with its start time and a copy of its delivery; one goroutine per
// consumer scans the slots a few times per timeout and fails the message of
// a handler that outlived its deadline, on the handler's behalf. The
// handler itself keeps running (its permit stays held) until it returns;
// its late result is then ignored.
type watchdog struct {
	timeout time.Duration
	slots   []watchSlot
	free    chan int32
}

type watchSlot struct {
	started atomic.Int64 // unix nanos; 0 = free
	settled atomic.Bool  // the message was acked or failed
	mu      sync.Mutex   // held by the watchdog while it settles
	out     outcome      // the watchdog's settle result, under mu
	sub     *subscription
	msg     amqp.Delivery
}

func newWatchdog(timeout time.Duration, slots int) *watchdog {
	w := &watchdog{timeout: timeout, slots: make([]watchSlot, slots), free: make(chan int32, slots)}
	for i := range slots {
		w.free <- int32(i)
	}
	return w
}

// tick is how often the slots are scanned: a deadline is enforced at most
// this late.
func (w *watchdog) tick() time.Duration {
	return min(max(w.timeout/8, time.Millisecond), time.Second)
}

// run scans until ctx ends.
func (c *consumer) runWatchdog(ctx context.Context) {
	w := c.watch
	t := time.NewTicker(w.tick())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			limit := now.Add(-w.timeout).UnixNano()
			for i := range w.slots {
				sl := &w.slots[i]
				st := sl.started.Load()
				if st == 0 || st > limit {
					continue
				}
				sl.mu.Lock()
				// Same start time: still the message that overran, not a
				// newer one that took the slot meanwhile.
				if sl.started.Load() == st && sl.settled.CompareAndSwap(false, true) {
					sl.out = c.settle(sl.sub, &sl.msg, fmt.Errorf("handler deadline %s exceeded", w.timeout))
				}
				sl.mu.Unlock()
			}
		}
	}
}

// handleWatched runs the handler in a watchdog slot.
func (c *consumer) handleWatched(s *subscription, d *amqp.Delivery) outcome {
	w := c.watch
	i := <-w.free // never blocks: at most one slot per limiter permit
	sl := &w.slots[i]
	sl.sub, sl.msg = s, *d
	sl.settled.Store(false)
	sl.started.Store(time.Now().UnixNano())
	err := c.invoke(c.workCtx, &sl.msg)
	var o outcome
	if sl.settled.CompareAndSwap(false, true) {
		o = c.settle(s, &sl.msg, err)
	} else {
		sl.mu.Lock() // wait for the watchdog's settle to finish
		o = sl.out
		sl.mu.Unlock()
		c.logger.Warn("handler returned after its deadline; its message had already been failed",
			"timeout", w.timeout, "message_id", d.MessageId, "err", err)
	}
	// Under mu, so a scan cannot check this message and then fail the next
	// one that takes the slot.
	sl.mu.Lock()
	sl.started.Store(0)
	sl.sub, sl.msg = nil, amqp.Delivery{}
	sl.mu.Unlock()
	w.free <- i
	return o
}
