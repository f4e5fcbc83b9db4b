package loadgen

import (
	"math/bits"
	"sync"
	"time"
)

// subBuckets is how many linear steps split each power of two; 8 keeps every
// bucket within 12.5% of its value, which is plenty for a p50/p99 read-out and
// costs a fixed 64*8 counters however many messages are observed.
const subBuckets = 8

// latencyHistogram is a log-linear histogram of durations in microseconds.
// It is cheap enough to observe every confirm: one lock, one increment.
type latencyHistogram struct {
	mu     sync.Mutex
	counts [64 * subBuckets]int64
	total  int64
}

func bucketOf(us uint64) int {
	if us < subBuckets {
		return int(us)
	}
	exp := bits.Len64(us) - 1 // us is in [2^exp, 2^(exp+1))
	mantissa := (us >> (exp - 3)) & (subBuckets - 1)
	return exp*subBuckets + int(mantissa)
}

// upperBound is the largest value that falls in bucket b, so a quantile read
// from it errs on the slow side.
func upperBound(b int) uint64 {
	if b < subBuckets {
		return uint64(b)
	}
	exp := b / subBuckets
	mantissa := uint64(b % subBuckets)
	lo := (uint64(1) << exp) | mantissa<<(exp-3)
	return lo + (uint64(1) << (exp - 3)) - 1
}

func (h *latencyHistogram) observe(d time.Duration) {
	us := d.Microseconds()
	if us < 0 {
		us = 0
	}
	b := bucketOf(uint64(us))
	h.mu.Lock()
	h.counts[b]++
	h.total++
	h.mu.Unlock()
}

// quantile returns the q-quantile (0 < q <= 1), or 0 with no observations.
func (h *latencyHistogram) quantile(q float64) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.total == 0 {
		return 0
	}
	rank := int64(q*float64(h.total) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen int64
	for b, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(upperBound(b)) * time.Microsecond
		}
	}
	return 0
}

// merge adds o's observations to h.
func (h *latencyHistogram) merge(o *latencyHistogram) {
	o.mu.Lock()
	counts, total := o.counts, o.total
	o.mu.Unlock()
	h.mu.Lock()
	for b, c := range counts {
		h.counts[b] += c
	}
	h.total += total
	h.mu.Unlock()
}
