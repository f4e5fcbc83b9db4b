package monitor

import (
	"context"
	"math"
	"strconv"
	"strings"
	"time"
)

// queueKey identifies a queue across polls; vhost and name stay separate.
type queueKey struct{ vhost, name string }

// rateSmoothing is the time constant of the exponential smoothing of rates:
// a step change shows about two thirds of its size after this long.
const rateSmoothing = 15 * time.Second

// rateState is what a queue's rates are derived from at the next poll.
type rateState struct {
	at        time.Time
	published *int64
	messages  *int64
	ingress   *float64 // smoothed
	egress    *float64 // smoothed
}

// deriveRates sets IngressRate, EgressRate, TimeToDrainSeconds and Growing on
// every queue from warren's own deltas since the previous successful poll,
// and returns the state for the next one. Ingress is the growth of the
// broker's cumulative publish counter; egress is ingress minus the growth of
// the depth (what left the queue: delivered and acked, expired, dropped).
// A counter that went down (queue re-created, broker restarted) starts over
// rather than giving a negative rate.
func deriveRates(prev map[queueKey]rateState, queues []QueueSample, at time.Time) (map[queueKey]rateState, []oddity) {
	next := make(map[queueKey]rateState, len(queues))
	var odd []oddity
	for i := range queues {
		q := &queues[i]
		k := queueKey{q.Vhost, q.Name}
		st := rateState{at: at, published: q.PublishedTotal, messages: q.Messages}
		old, ok := prev[k]
		if ok {
			st.ingress, st.egress = old.ingress, old.egress
		}
		dt := at.Sub(old.at).Seconds()
		// A queue that never saw a publish has no message_stats: nothing was
		// published, so its ingress is a true 0 once the depth is known.
		pubNow, pubOld := q.PublishedTotal, old.published
		if ok && pubNow == nil && pubOld == nil && q.Messages != nil && old.messages != nil {
			zero := int64(0)
			pubNow, pubOld = &zero, &zero
		}
		if ok && dt > 0 && pubNow != nil && pubOld != nil && q.Messages != nil && old.messages != nil &&
			*pubNow >= *pubOld {
			in := float64(*pubNow-*pubOld) / dt
			out := in - float64(*q.Messages-*old.messages)/dt
			// A negative instantaneous egress (depth grew more than was
			// published) is sampling skew: the broker samples the depth and
			// the publish counter apart. It is smoothed like any other
			// sample, since dropping it would bias egress upwards; only the
			// smoothed value shown is kept at 0 or more.
			switch {
			case in > maxPlausibleRate || out > maxPlausibleRate || out < -maxPlausibleRate:
				odd = append(odd, oddity{vhost: q.Vhost, queue: q.Name, field: "ingress_rate",
					value: formatRate(in), reason: "absurd rate"})
			default:
				alpha := 1 - math.Exp(-dt/rateSmoothing.Seconds())
				st.ingress = smooth(st.ingress, in, alpha)
				st.egress = smooth(st.egress, out, alpha)
			}
		}
		q.IngressRate, q.EgressRate = st.ingress, nonNegative(st.egress)
		q.TimeToDrainSeconds, q.Growing = drain(q.Ready, q.IngressRate, q.EgressRate)
		next[k] = st
	}
	return next, odd
}

func nonNegative(v *float64) *float64 {
	if v == nil || *v >= 0 {
		return v
	}
	zero := 0.0
	return &zero
}

func smooth(prev *float64, v, alpha float64) *float64 {
	if prev == nil {
		return &v
	}
	s := *prev + alpha*(v-*prev)
	return &s
}

// drain says how long the ready messages last at the current net egress,
// or that the queue is growing.
func drain(ready *int64, ingress, egress *float64) (*float64, *bool) {
	if ready == nil || ingress == nil || egress == nil {
		return nil, nil
	}
	no, yes := false, true
	if *ready == 0 {
		zero := 0.0
		return &zero, &no
	}
	net := *egress - *ingress
	// Within a thousandth of a message per second the queue stands still:
	// not draining (no time to drain) but not growing either, so an idle
	// queue that holds messages is not reported as growing.
	switch {
	case net < -1e-3:
		return nil, &yes
	case net <= 1e-3:
		return nil, &no
	}
	t := float64(*ready) / net
	return &t, &no
}

func formatRate(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }

// RetryQueueMarker is part of the name of every retry delay queue warren's
// consumers declare (QUEUE.warren.retry.DELAY).
const RetryQueueMarker = ".warren.retry."

// deadLetterSuffixes name a queue as a dead-letter queue by convention.
var deadLetterSuffixes = []string{".dlq", ".dead-letter", ".warren.dlq"}

// markDeadLetters sets IsDeadLetter on configured dead-letter queues, on the
// queues other queues' dead-letter exchanges route to, and on queues named by
// convention. Binding lookups are bounded per poll; a failed lookup only
// leaves those targets unrecognised.
func (p *Poller) markDeadLetters(ctx context.Context, queues []QueueSample) error {
	dlq := map[queueKey]bool{}
	for _, r := range p.cfg.DeadLetterQueues {
		dlq[queueKey{r.Vhost, r.Name}] = true
	}
	type exKey struct {
		vhost, exchange string
		routingKey      string
		hasKey          bool
	}
	lookups := map[exKey]bool{}
	for _, q := range queues {
		// warren's own retry delay queues dead-letter expired messages back
		// to their source queue: that route is a retry, not a dead letter.
		if q.DeadLetterExchange == nil || strings.Contains(q.Name, RetryQueueMarker) {
			continue
		}
		if *q.DeadLetterExchange == "" {
			// The default exchange routes by queue name: the routing key
			// (or, without one, the queue's own name) is the target.
			target := q.Name
			if q.deadLetterRoutingKey != nil {
				target = *q.deadLetterRoutingKey
			}
			if target != q.Name {
				dlq[queueKey{q.Vhost, target}] = true
			}
			continue
		}
		k := exKey{vhost: q.Vhost, exchange: *q.DeadLetterExchange}
		if q.deadLetterRoutingKey != nil {
			k.routingKey, k.hasKey = *q.deadLetterRoutingKey, true
		}
		lookups[k] = true
	}
	n := 0
	for k := range lookups {
		if n >= maxDeadLetterLookups {
			p.logOnce("dlx-limit", "too many dead-letter exchanges to look up in one poll; some dead-letter queues may not be recognised",
				"limit", maxDeadLetterLookups)
			break
		}
		n++
		var rk *string
		if k.hasKey {
			rk = &k.routingKey
		}
		targets, err := p.fetchBindingTargets(ctx, k.vhost, k.exchange, rk)
		if err != nil {
			if isAccessError(err) || ctx.Err() != nil {
				return err
			}
			p.logOnce("dlx:"+k.vhost+"\x00"+k.exchange, "looking up dead-letter exchange bindings failed",
				"vhost", k.vhost, "exchange", k.exchange, "error", err)
			continue
		}
		for _, t := range targets {
			dlq[queueKey{k.vhost, t}] = true
		}
	}
	for i := range queues {
		q := &queues[i]
		lower := strings.ToLower(q.Name)
		named := false
		for _, s := range deadLetterSuffixes {
			if strings.HasSuffix(lower, s) {
				named = true
			}
		}
		q.IsDeadLetter = named || dlq[queueKey{q.Vhost, q.Name}]
	}
	return nil
}
