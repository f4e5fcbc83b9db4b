package consumers

import (
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// ThrottleConfig protects a downstream: at most MaxConcurrent handler calls
// at once (0: only the worker pool limits) and at least DelayBetweenCalls
// between the starts of two calls (0: no delay). Both are live.
type ThrottleConfig struct {
	MaxConcurrent     int
	DelayBetweenCalls time.Duration
}

// throttle is applied by the dispatcher before a message is taken off the
// deliveries channel, so a throttled consumer holds no more than it can
// start. When a knob is off the hot path pays one atomic load for it.
type throttle struct {
	mu      sync.Mutex // serialises changes
	conc    atomic.Int64
	lim     *limiter // limit = conc while conc > 0
	delayNs atomic.Int64
	rl      *rate.Limiter
}

func newThrottle(cfg ThrottleConfig, maxConcurrency int) *throttle {
	t := &throttle{
		lim: newLimiter(maxConcurrency, maxConcurrency),
		rl:  rate.NewLimiter(rate.Inf, 1),
	}
	t.set(cfg)
	return t
}

// set applies cfg; values are validated by the caller.
func (t *throttle) set(cfg ThrottleConfig) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.setConcLocked(cfg.MaxConcurrent)
	t.setDelayLocked(cfg.DelayBetweenCalls)
}

func (t *throttle) setConc(n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.setConcLocked(n)
}

func (t *throttle) setDelay(d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.setDelayLocked(d)
}

func (t *throttle) setConcLocked(n int) {
	if n > 0 {
		// Limit first, then switch on: calls that started while it was off
		// hold no token and return none.
		t.lim.setLimit(n)
	} else {
		t.lim.setLimit(cap(t.lim.tokens))
	}
	t.conc.Store(int64(n))
}

func (t *throttle) setDelayLocked(d time.Duration) {
	if d > 0 {
		t.rl.SetLimit(rate.Every(d))
	} else {
		t.rl.SetLimit(rate.Inf)
	}
	t.delayNs.Store(int64(d))
}

func (t *throttle) config() ThrottleConfig {
	return ThrottleConfig{MaxConcurrent: int(t.conc.Load()), DelayBetweenCalls: time.Duration(t.delayNs.Load())}
}

// wait takes a throttle permit (if max_concurrent is on) and waits for the
// call rate (if delay_between_calls is on), giving up when s drains or its
// channel closes. held reports whether a permit was taken (the caller
// releases it with t.lim.release, also when ok is false).
func (t *throttle) wait(s *subscription) (held, ok bool) {
	if t.conc.Load() > 0 {
		select {
		case <-t.lim.tokens:
			held = true
		case <-s.draining:
			return false, false
		case <-s.chClosed:
			return false, false
		}
	}
	if t.delayNs.Load() > 0 {
		r := t.rl.Reserve()
		if d := r.Delay(); d > 0 {
			tm := time.NewTimer(d)
			select {
			case <-tm.C:
			case <-s.draining:
				tm.Stop()
				r.Cancel()
				return held, false
			case <-s.chClosed:
				tm.Stop()
				r.Cancel()
				return held, false
			}
		}
	}
	return held, true
}
