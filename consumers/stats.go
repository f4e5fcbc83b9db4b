package consumers

import (
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Latency histogram: log-linear buckets over nanoseconds, four sub-buckets per
// power of two, so a bucket is at most 25% wide and the midpoint estimate is
// within ~12% of the true value. Bucket i < 4 holds exactly i ns; above that
// the top bit and the next two bits pick the bucket. 248 buckets cover every
// int64 duration. Recording is one atomic add, without a lock.
const histBuckets = 248

type histogram struct {
	counts [histBuckets]atomic.Uint64
}

func bucketOf(ns int64) int {
	if ns < 4 {
		if ns < 0 {
			return 0
		}
		return int(ns)
	}
	e := bits.Len64(uint64(ns)) - 1 // index of the top bit, >= 2
	sub := int(ns>>(e-2)) & 3
	return 4*(e-1) + sub
}

// bucketLower returns the smallest value that falls in bucket i.
func bucketLower(i int) float64 {
	if i < 4 {
		return float64(i)
	}
	e := i/4 + 1
	sub := i % 4
	return float64(4+sub) * math.Ldexp(1, e-2)
}

func (h *histogram) record(d time.Duration) {
	h.counts[bucketOf(int64(d))].Add(1)
}

// counters is a copy of a consumer's cumulative counters at one moment.
// Differences of two copies describe the interval between them.
type counters struct {
	processed, failed, slow uint64
	retried, deadLettered   uint64
	buckets                 [histBuckets]uint64
	e2e                     [histBuckets]uint64 // end-to-end latency
}

// sub returns c - prev.
func (c *counters) sub(prev *counters) counters {
	out := counters{
		processed: c.processed - prev.processed,
		failed:    c.failed - prev.failed,
		slow:      c.slow - prev.slow,

		retried:      c.retried - prev.retried,
		deadLettered: c.deadLettered - prev.deadLettered,
	}
	for i := range out.buckets {
		out.buckets[i] = c.buckets[i] - prev.buckets[i]
		out.e2e[i] = c.e2e[i] - prev.e2e[i]
	}
	return out
}

// quantilesMs returns the estimated latency quantiles in milliseconds, or nils
// when the histogram is empty.
func (c *counters) quantilesMs(qs ...float64) []*float64 {
	return quantilesMs(&c.buckets, qs...)
}

// quantilesMs estimates quantiles of one histogram in milliseconds.
func quantilesMs(buckets *[histBuckets]uint64, qs ...float64) []*float64 {
	out := make([]*float64, len(qs))
	var total uint64
	for _, n := range buckets {
		total += n
	}
	if total == 0 {
		return out
	}
	for qi, q := range qs {
		rank := uint64(math.Ceil(q * float64(total)))
		if rank < 1 {
			rank = 1
		}
		var cum uint64
		for i, n := range buckets {
			cum += n
			if cum >= rank {
				lo := bucketLower(i)
				hi := lo + 1
				if i+1 < histBuckets {
					hi = bucketLower(i + 1)
				}
				v := (lo + hi) / 2 / 1e6
				out[qi] = &v
				break
			}
		}
	}
	return out
}

// stats are the per-consumer counters. The hot path touches only atomics;
// mu guards the bookkeeping done by the sampler and the status readers.
type stats struct {
	processed    atomic.Uint64
	failed       atomic.Uint64
	slow         atomic.Uint64
	retried      atomic.Uint64
	deadLettered atomic.Uint64
	staleAcks    atomic.Uint64
	inFlight     atomic.Int64
	hist         histogram
	e2e          histogram    // publish to handled, from the x-warren-published-at header
	maxNs        atomic.Int64 // largest latency of the current sample interval

	mu sync.Mutex
	// last is the state at the latest sample boundary, prev at the one before.
	// Status latency percentiles cover now-prev, i.e. the last full sample
	// interval plus the running one, so they are never empty right after a
	// boundary.
	last, prev counters
	rate       rateRing
}

func (s *stats) observe(d time.Duration) {
	s.hist.record(d)
	ns := int64(d)
	for {
		cur := s.maxNs.Load()
		if ns <= cur || s.maxNs.CompareAndSwap(cur, ns) {
			return
		}
	}
}

func (s *stats) snapshot() counters {
	c := counters{
		processed: s.processed.Load(),
		failed:    s.failed.Load(),
		slow:      s.slow.Load(),

		retried:      s.retried.Load(),
		deadLettered: s.deadLettered.Load(),
	}
	for i := range c.buckets {
		c.buckets[i] = s.hist.counts[i].Load()
		c.e2e[i] = s.e2e.counts[i].Load()
	}
	return c
}

// sample closes the current interval and returns its figures.
func (s *stats) sample(name string, at time.Time, interval time.Duration) Sample {
	now := s.snapshot()
	maxNs := s.maxNs.Swap(0)
	s.mu.Lock()
	d := now.sub(&s.last)
	s.prev, s.last = s.last, now
	s.mu.Unlock()
	q := d.quantilesMs(0.50, 0.95, 0.99)
	e := quantilesMs(&d.e2e, 0.50, 0.95, 0.99)
	smp := Sample{
		E2EP50Ms:     e[0],
		E2EP95Ms:     e[1],
		E2EP99Ms:     e[2],
		Consumer:     name,
		At:           at,
		Interval:     interval,
		Processed:    int64(d.processed),
		Failed:       int64(d.failed),
		Slow:         int64(d.slow),
		Retried:      int64(d.retried),
		DeadLettered: int64(d.deadLettered),
		LatencyP50Ms: q[0],
		LatencyP95Ms: q[1],
		LatencyP99Ms: q[2],
	}
	if q[0] != nil {
		m := float64(maxNs) / 1e6
		smp.LatencyMaxMs = &m
	}
	return smp
}

// recentQuantiles returns p50/p95/p99 of handler and end-to-end latency
// over the recent window (see stats.prev).
func (s *stats) recentQuantiles() (handler, e2e []*float64) {
	now := s.snapshot()
	s.mu.Lock()
	d := now.sub(&s.prev)
	s.mu.Unlock()
	return d.quantilesMs(0.50, 0.95, 0.99), quantilesMs(&d.e2e, 0.50, 0.95, 0.99)
}

// rateRing keeps one (time, handled count) point per tick for the last
// rateWindow seconds, so the rate costs nothing on the hot path: it is the
// difference of the cumulative counters over the window.
const rateSlots = 11 // 10 one-second intervals

type ratePoint struct {
	at    time.Time
	total uint64
}

type rateRing struct {
	points [rateSlots]ratePoint
	next   int
	n      int
}

func (r *rateRing) add(p ratePoint) {
	r.points[r.next] = p
	r.next = (r.next + 1) % rateSlots
	if r.n < rateSlots {
		r.n++
	}
}

// oldest returns the oldest point, if any.
func (r *rateRing) oldest() (ratePoint, bool) {
	if r.n == 0 {
		return ratePoint{}, false
	}
	return r.points[(r.next-r.n+rateSlots)%rateSlots], true
}

// tickRate records the handled total (processed + failed) for the rate.
func (s *stats) tickRate(at time.Time) {
	total := s.processed.Load() + s.failed.Load()
	s.mu.Lock()
	s.rate.add(ratePoint{at: at, total: total})
	s.mu.Unlock()
}

// currentRate returns messages handled per second over the last ~10 s.
func (s *stats) currentRate(now time.Time) float64 {
	total := s.processed.Load() + s.failed.Load()
	s.mu.Lock()
	p, ok := s.rate.oldest()
	s.mu.Unlock()
	if !ok {
		return 0
	}
	secs := now.Sub(p.at).Seconds()
	if secs < 0.5 || total < p.total {
		return 0
	}
	return float64(total-p.total) / secs
}

// logLimiter rate-limits a noisy log line and counts what it suppressed, so
// the next line that passes can say how many were dropped.
type logLimiter struct {
	lim        *rate.Limiter
	suppressed atomic.Uint64
}

func newLogLimiter(every time.Duration, burst int) *logLimiter {
	return &logLimiter{lim: rate.NewLimiter(rate.Every(every), burst)}
}

// allow reports whether to log now and how many lines were suppressed since
// the last one that was allowed.
func (l *logLimiter) allow() (bool, uint64) {
	if !l.lim.Allow() {
		l.suppressed.Add(1)
		return false, 0
	}
	return true, l.suppressed.Swap(0)
}
