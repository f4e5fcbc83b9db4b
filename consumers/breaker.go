package consumers

import (
	"sync/atomic"
	"time"
)

// BreakerConfig configures a consumer's circuit breaker. After
// FailureThreshold consecutive failed messages the circuit opens: the
// consumer cancels its subscription (unstarted messages are requeued) for
// CoolDown. Then it half-opens: it subscribes with prefetch HalfOpenMax so
// at most that many test messages are in flight; HalfOpenMax successes
// close the circuit (normal prefetch again), one failure opens it again.
type BreakerConfig struct {
	FailureThreshold int
	CoolDown         time.Duration
	HalfOpenMax      int
}

// Circuit states (Status.Circuit).
const (
	CircuitClosed   = "closed"
	CircuitOpen     = "open"
	CircuitHalfOpen = "half_open"
)

const (
	brkClosed int32 = iota
	brkOpen
	brkHalfOpen
)

// breaker is the lock-free part of the circuit breaker that the hot path
// touches: one atomic load per success while closed. State changes are
// signalled to the consumer's loop, which stops and restarts intake.
type breaker struct {
	cfg       BreakerConfig
	state     atomic.Int32
	failures  atomic.Int64 // consecutive failures
	successes atomic.Int64 // successes while half-open
	signal    chan struct{}

	opened, halfOpened, closed atomic.Uint64 // transitions
}

func newBreaker(cfg BreakerConfig) *breaker {
	return &breaker{cfg: cfg, signal: make(chan struct{}, 1)}
}

func (b *breaker) notify() {
	select {
	case b.signal <- struct{}{}:
	default: // a signal is pending; the loop reads the state anyway
	}
}

func (b *breaker) success() {
	switch b.state.Load() {
	case brkClosed:
		if b.failures.Load() != 0 {
			b.failures.Store(0)
		}
	case brkHalfOpen:
		if b.successes.Add(1) >= int64(b.cfg.HalfOpenMax) && b.state.CompareAndSwap(brkHalfOpen, brkClosed) {
			b.failures.Store(0)
			b.closed.Add(1)
			b.notify()
		}
	}
}

func (b *breaker) failure() {
	switch b.state.Load() {
	case brkClosed:
		if b.failures.Add(1) >= int64(b.cfg.FailureThreshold) && b.state.CompareAndSwap(brkClosed, brkOpen) {
			b.opened.Add(1)
			b.notify()
		}
	case brkHalfOpen:
		if b.state.CompareAndSwap(brkHalfOpen, brkOpen) {
			b.opened.Add(1)
			b.notify()
		}
	}
}

// halfOpen moves an open circuit to half-open (the cool-down passed).
func (b *breaker) halfOpen() {
	b.successes.Store(0)
	if b.state.CompareAndSwap(brkOpen, brkHalfOpen) {
		b.halfOpened.Add(1)
	}
}

func (b *breaker) name() string {
	switch b.state.Load() {
	case brkOpen:
		return CircuitOpen
	case brkHalfOpen:
		return CircuitHalfOpen
	}
	return CircuitClosed
}
