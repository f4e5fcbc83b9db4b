package consumers

import (
	"sync"
	"sync/atomic"
)

// limiter is a counting semaphore whose limit can change while permits are
// held. Permits are tokens in a buffered channel (capacity = the largest
// limit ever allowed), so acquire and release are one channel operation each:
// no mutex and no allocation per message.
//
// Lowering the limit removes free tokens; what cannot be removed because it
// is held by in-flight work becomes debt, paid by the next releases instead of
// returning their token. So in-flight work is never interrupted and new work
// only starts while fewer than the new limit are in flight.
//
// Invariant: held + len(tokens) - debt == limit.
type limiter struct {
	tokens chan struct{}
	debt   atomic.Int64
	limit  atomic.Int64

	mu sync.Mutex // serialises setLimit
}

func newLimiter(limit, maxLimit int) *limiter {
	l := &limiter{tokens: make(chan struct{}, maxLimit)}
	l.limit.Store(int64(limit))
	for range limit {
		l.tokens <- struct{}{}
	}
	return l
}

// release returns one permit.
func (l *limiter) release() {
	for {
		d := l.debt.Load()
		if d == 0 {
			l.tokens <- struct{}{} // never blocks: at most limit <= cap tokens exist
			return
		}
		if l.debt.CompareAndSwap(d, d-1) {
			return
		}
	}
}

// setLimit changes the number of permits. n must be in [1, cap(tokens)].
func (l *limiter) setLimit(n int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delta := n - int(l.limit.Load())
	l.limit.Store(int64(n))
	for delta > 0 { // raise: pay off debt first, then add tokens
		d := l.debt.Load()
		if d == 0 {
			break
		}
		if l.debt.CompareAndSwap(d, d-1) {
			delta--
		}
	}
	for ; delta > 0; delta-- {
		l.tokens <- struct{}{}
	}
	for delta < 0 { // lower: take free tokens, the rest becomes debt
		select {
		case <-l.tokens:
			delta++
		default:
			l.debt.Add(int64(-delta))
			delta = 0
		}
	}
}

// current returns the limit in force.
func (l *limiter) current() int { return int(l.limit.Load()) }
