package main

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"warren/loadgen"
)

// paceResult is one loadgen phase checked against the broker.
type paceResult struct {
	rep          loadgen.Report
	perSecond    []float64 // confirmed per second, from the progress callback
	brokerPub    int64     // message_stats.publish of the queue
	brokerDepth  int64
	countersWait time.Duration // how long the management stats took to catch up
}

// paceCheck runs one phase at the target rate into a fresh queue and reads
// the broker's own publish counter for that queue afterwards.
func paceCheck(ctx context.Context, o options) (paceResult, error) {
	var res paceResult
	env, err := describeEnvironment(ctx, o)
	if err != nil {
		return res, err
	}
	queue := uniqueQueue("warren-bench-pace")
	defer deleteQueue(o.amqpURL, queue)
	var lastConfirmed int64
	var lastAt time.Time
	cfg := loadgen.Config{
		URL: o.amqpURL, Queue: queue, Declare: true, Size: 256,
		Phases: []loadgen.Phase{{Duration: o.paceFor, Rate: o.paceRate}},
		Progress: func(r loadgen.Report) {
			now := time.Now()
			if !lastAt.IsZero() { // the first tick includes connection set-up
				res.perSecond = append(res.perSecond, float64(r.Confirmed-lastConfirmed)/now.Sub(lastAt).Seconds())
			}
			lastConfirmed, lastAt = r.Confirmed, now
		},
	}
	res.rep, err = loadgen.Run(ctx, cfg)
	if err != nil {
		return res, err
	}
	// The management plugin aggregates stats every few seconds: poll until
	// the counter reaches the report's figure, or 30 s.
	start := time.Now()
	for {
		q, err := env.queue(ctx, queue)
		if err != nil {
			return res, err
		}
		res.brokerPub, res.brokerDepth = q.MessageStats.Publish, q.Messages
		// publish and messages are refreshed separately; wait for both.
		caughtUp := res.brokerPub >= res.rep.Confirmed && res.brokerDepth >= res.rep.Confirmed
		if caughtUp || time.Since(start) > 30*time.Second {
			break
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	res.countersWait = time.Since(start)
	return res, nil
}

func deleteQueue(amqpURL, queue string) {
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		return
	}
	defer conn.Close()
	if ch, err := conn.Channel(); err == nil {
		_, _ = ch.QueueDelete(queue, false, false, false)
	}
}

func percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func (r paceResult) markdown(env environment, command string) string {
	p := r.rep.Phases[0]
	target := p.Phase.Rate
	dev := 100 * (p.Rate() - target) / target
	if math.Abs(dev) < 0.005 {
		dev = 0 // no "-0.00%"
	}
	sorted := slices.Clone(r.perSecond)
	slices.Sort(sorted)
	within := func(x float64) string {
		if math.Abs(x) <= 2 {
			return "yes"
		}
		return "**no**"
	}
	match := "yes"
	if r.brokerPub != r.rep.Confirmed || r.brokerDepth != r.rep.Confirmed {
		match = "**no**"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## Load generator\n\n")
	fmt.Fprintf(&b, "%s\n\n```sh\n%s\n```\n\n", env, command)
	fmt.Fprintf(&b, "One `loadgen` phase of %s at %.0f msg/s, 256-byte persistent messages, confirms on, one publisher,\n", p.Phase.Duration, target)
	fmt.Fprintf(&b, "into a fresh queue; the broker's own count read from the management API\n")
	fmt.Fprintf(&b, "(`/api/queues/{vhost}/{name}`: `message_stats.publish` and `messages`) after the run.\n\n")
	fmt.Fprintf(&b, "| measure | value |\n| --- | --- |\n")
	fmt.Fprintf(&b, "| target rate | %.0f msg/s for %s |\n", target, p.Phase.Duration)
	fmt.Fprintf(&b, "| achieved rate (confirmed / phase time) | %.1f msg/s (%+.2f%%; within 2%%: %s) |\n", p.Rate(), dev, within(dev))
	if len(sorted) > 0 {
		worst := math.Max(math.Abs(sorted[0]-target), math.Abs(sorted[len(sorted)-1]-target)) / target * 100
		share := func(pct float64) float64 {
			n := 0
			for _, x := range sorted {
				if math.Abs(x-target) <= target*pct/100 {
					n++
				}
			}
			return 100 * float64(n) / float64(len(sorted))
		}
		fmt.Fprintf(&b, "| per-second confirmed rate, %d one-second windows | min %.0f · p5 %.0f · median %.0f · p95 %.0f · max %.0f (worst window %.1f%% off) |\n",
			len(sorted), sorted[0], percentile(sorted, 0.05), percentile(sorted, 0.5), percentile(sorted, 0.95), sorted[len(sorted)-1], worst)
		fmt.Fprintf(&b, "| one-second windows within 2%% / 5%% of target | %.0f%% / %.0f%% |\n", share(2), share(5))
	}
	fmt.Fprintf(&b, "| sent / confirmed / nacked / errors (report) | %d / %d / %d / %d |\n", p.Sent, p.Confirmed, p.Nacked, p.Errors)
	fmt.Fprintf(&b, "| broker `message_stats.publish` / queue depth | %d / %d (matches the report: %s) |\n", r.brokerPub, r.brokerDepth, match)
	fmt.Fprintf(&b, "| confirm latency p50 / p99 | %s / %s |\n\n", p.ConfirmP50, p.ConfirmP99)
	fmt.Fprintf(&b, "The phase rate is what the schedule guarantees: message n is due at start + n/rate, so when\n")
	fmt.Fprintf(&b, "the broker stalls (a slow confirm holds back publishing once 1,000 are unconfirmed) the\n")
	fmt.Fprintf(&b, "publisher catches up afterwards and the phase still sends rate × duration. The one-second\n")
	fmt.Fprintf(&b, "windows (confirmed-count deltas between progress ticks) show how even it was inside the phase:\n")
	fmt.Fprintf(&b, "a stall shows as a low window followed by a high one, and as the confirm p99. The host is\n")
	fmt.Fprintf(&b, "shared (see the load average), so stalls here are the broker waiting for CPU or disk.\n\n")
	return b.String()
}
