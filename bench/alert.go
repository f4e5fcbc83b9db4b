package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"warren/alerts"
	"warren/monitor"
	"warren/store"
)

// alertRep is one threshold crossing.
type alertRep struct {
	toPoll    time.Duration // crossing to the first poll that saw the queue at critical
	toWebhook time.Duration // crossing to the webhook's arrival
}

type alertResult struct {
	reps          []alertRep
	statsInterval string // the broker's collect_statistics_interval, if rabbitmqctl could tell
	elapsed       time.Duration
}

// statsInterval asks the local broker for collect_statistics_interval; it
// needs rabbitmqctl and its Erlang cookie, so "unknown" is a fine answer.
func statsInterval(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "rabbitmqctl", "eval", "application:get_env(rabbit, collect_statistics_interval).").Output()
	var ms int
	if err != nil || !strings.HasPrefix(string(out), "{ok,") {
		return "unknown (rabbitmqctl could not tell)"
	}
	if _, err := fmt.Sscanf(strings.TrimPrefix(string(out), "{ok,"), "%d}", &ms); err != nil {
		return "unknown (rabbitmqctl could not tell)"
	}
	return fmt.Sprintf("%d ms", ms)
}

// alertHit is a firing webhook for one queue, stamped on arrival.
type alertHit struct {
	queue string
	at    time.Time
}

// depthSeen records when a poll first showed a watched queue at or above
// its level; it is the poller's first observer, so the time is the poll's
// result in hand, before the evaluator runs.
type depthSeen struct {
	mu     sync.Mutex
	level  int64
	seen   map[string]time.Time
	listed map[string]bool // a poll listed the queue with a depth
}

func (d *depthSeen) ObserveSnapshot(_ context.Context, s monitor.Snapshot) {
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, q := range s.Queues {
		if _, watched := d.seen[q.Name]; watched && q.Messages != nil {
			d.listed[q.Name] = true
		}
		if _, watched := d.seen[q.Name]; watched && q.Messages != nil && *q.Messages >= d.level && d.seen[q.Name].IsZero() {
			d.seen[q.Name] = now
		}
	}
}

func (d *depthSeen) allListed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.listed) == len(d.seen)
}

func (d *depthSeen) at(queue string) time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.seen[queue]
}

// alertLatency wires the monitor poller, the alerts evaluator, the
// dispatcher and a real SQLite store as `warren serve` does, points a
// generic webhook at a real HTTP receiver, and publishes into queues with
// no consumer until each crosses its critical level.
func alertLatency(ctx context.Context, o options, logger *slog.Logger) (alertResult, error) {
	began := time.Now()
	res := alertResult{statsInterval: statsInterval(ctx)}
	env, err := describeEnvironment(ctx, o)
	if err != nil {
		return res, err
	}
	dir, err := os.MkdirTemp("", "warren-bench-alert-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	st, err := store.Open(ctx, filepath.Join(dir, "warren.db"), nil)
	if err != nil {
		return res, err
	}
	defer st.Close()

	queues := make([]string, o.alertReps)
	seen := &depthSeen{level: int64(o.alertCritical), seen: map[string]time.Time{}, listed: map[string]bool{}}
	limits := monitor.Thresholds{
		// Every other queue of the shared broker stays quiet.
		Default: monitor.Level{Warning: 1 << 50, Critical: 1 << 50},
		Queues:  map[string]monitor.Level{},
	}
	for i := range queues {
		queues[i] = uniqueQueue("warren-bench-alert")
		seen.seen[queues[i]] = time.Time{}
		// Warning = critical: the crossing fires one critical alert.
		limits.Queues[queues[i]] = monitor.Level{Warning: int64(o.alertCritical), Critical: int64(o.alertCritical)}
	}
	hits := make(chan alertHit, 64)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		at := time.Now()
		var p alerts.GenericPayload
		if err := json.NewDecoder(r.Body).Decode(&p); err == nil && p.Status == alerts.StateFiring {
			select {
			case hits <- alertHit{queue: p.Alert.Queue, at: at}:
			default:
			}
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()

	quiet := slog.New(slog.DiscardHandler)
	hooks := []alerts.WebhookConfig{{Name: "bench", URL: recv.URL, Format: "generic"}}
	dispatcher, err := alerts.NewDispatcher(st, hooks, quiet)
	if err != nil {
		return res, err
	}
	evaluator := alerts.NewEvaluator(st, hooks, quiet, alerts.WithWaker(dispatcher), alerts.WithThresholds(limits))
	if err := evaluator.Load(ctx); err != nil {
		return res, err
	}
	poller, err := monitor.NewPoller(monitor.PollerConfig{
		URL: env.mgmtURL, Username: env.mgmtUser, Password: env.mgmtPass,
		Interval: o.alertPoll, Thresholds: limits,
		// The fresh-depth probe as `warren serve` wires it by default
		// (management.probe_queues 50).
		Probe: monitor.ProbeConfig{AMQPURL: o.amqpURL, MaxQueues: 50, Timeout: o.alertPoll / 2},
	}, st, []monitor.Observer{seen, evaluator}, quiet)
	if err != nil {
		return res, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = dispatcher.Run(runCtx) })
	wg.Go(func() { _ = poller.Run(runCtx) })
	defer func() {
		cancel()
		wg.Wait()
	}()

	conn, err := amqp.Dial(o.amqpURL)
	if err != nil {
		return res, err
	}
	defer conn.Close()
	// The queues exist, empty, before the clock runs, as a queue that fills
	// up usually has: a new queue's first statistics reach the management
	// API late, which would measure queue creation, not the crossing.
	decl, err := conn.Channel()
	if err != nil {
		return res, err
	}
	for _, q := range queues {
		defer deleteQueue(o.amqpURL, q)
		if _, err := decl.QueueDeclare(q, false, false, false, false, nil); err != nil {
			return res, err
		}
	}
	_ = decl.Close()
	deadline := time.Now().Add(time.Minute)
	for !seen.allListed() {
		if time.Now().After(deadline) {
			return res, errors.New("the poller did not list the new queues within a minute")
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return res, err
		}
	}
	for i, q := range queues {
		// A random start, so the crossing falls anywhere in the broker's
		// statistics cycle, not always at the same point of it.
		if err := sleepCtx(ctx, rand.N(5*time.Second)); err != nil {
			return res, err
		}
		crossed, err := fillUntilAlert(ctx, conn, q, o.alertCritical, o.alertRate, hits)
		if err != nil {
			return res, fmt.Errorf("repetition %d: %w", i+1, err)
		}
		rep := alertRep{toWebhook: crossed.webhook.Sub(crossed.at)}
		if polled := seen.at(q); !polled.IsZero() {
			rep.toPoll = polled.Sub(crossed.at)
		}
		res.reps = append(res.reps, rep)
		logger.Info("alert", "rep", i+1, "crossing_to_poll", rep.toPoll.Round(time.Millisecond), "crossing_to_webhook", rep.toWebhook.Round(time.Millisecond))
		deleteQueue(o.amqpURL, q)
	}
	res.elapsed = time.Since(began)
	return res, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-time.After(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type crossing struct {
	at      time.Time // the critical-th message confirmed
	webhook time.Time // the firing webhook for the queue arrived
}

// fillUntilAlert publishes into an empty queue at rate msg/s with confirms
// until the firing webhook for it arrives.
func fillUntilAlert(ctx context.Context, conn *amqp.Connection, queue string, critical int, rate float64, hits <-chan alertHit) (crossing, error) {
	var c crossing
	ch, err := conn.Channel()
	if err != nil {
		return c, err
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		return c, err
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 1024))
	crossedAt := make(chan time.Time, 1)
	go func() {
		n := 0
		for conf := range confirms {
			if conf.Ack {
				n++
			}
			if n == critical {
				crossedAt <- time.Now()
			}
		}
	}()
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	deadline := time.After(2 * time.Minute)
	for {
		select {
		case <-tick.C:
			if err := ch.PublishWithContext(ctx, "", queue, true, false, amqp.Publishing{Body: []byte("bench")}); err != nil {
				return c, err
			}
		case t := <-crossedAt:
			c.at = t
		case h := <-hits:
			if h.queue != queue {
				continue // another queue's alert (an earlier repetition)
			}
			if c.at.IsZero() {
				return c, errors.New("webhook arrived before the publisher saw the crossing")
			}
			c.webhook = h.at
			return c, nil
		case <-deadline:
			return c, fmt.Errorf("no firing webhook for %s within 2 minutes (crossed: %t)", queue, !c.at.IsZero())
		case <-ctx.Done():
			return c, ctx.Err()
		}
	}
}

func (r alertResult) markdown(env environment, command string, o options) string {
	var toPoll, toHook []time.Duration
	for _, x := range r.reps {
		toPoll = append(toPoll, x.toPoll)
		toHook = append(toHook, x.toWebhook)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## Alert latency: threshold crossing to webhook\n\n")
	fmt.Fprintf(&b, "%s\n\n```sh\n%s\n```\n\n", env, command)
	fmt.Fprintf(&b, "The monitor poller (`management.poll_interval` **%s**), the alerts evaluator, the webhook\n", o.alertPoll)
	fmt.Fprintf(&b, "dispatcher and a real SQLite store, wired as `warren serve` wires them (fresh-depth probe on),\n")
	fmt.Fprintf(&b, "against the local broker's management API; a generic webhook to a real HTTP receiver on loopback. Each repetition publishes,\n")
	fmt.Fprintf(&b, "after a random 0-5 s pause, into its own empty queue with no consumer (declared before the clock\n")
	fmt.Fprintf(&b, "runs, and already listed by a poll) at %.0f msg/s with publisher confirms, warning = critical =\n", o.alertRate)
	fmt.Fprintf(&b, "%d messages. Crossing = the publisher's %dth confirm; the clock stops when the firing webhook\n", o.alertCritical, o.alertCritical)
	fmt.Fprintf(&b, "for that queue arrives at the receiver. \"First poll\" is when a poll's result first showed the\n")
	fmt.Fprintf(&b, "queue at critical (before evaluation). The suite took %s.\n\n", r.elapsed.Round(time.Second))
	row := func(what string, ds []time.Duration) {
		n, p50, _, top := durationStats(ds)
		each := make([]string, len(ds))
		for i, d := range ds {
			each[i] = fmt.Sprintf("%.2f s", d.Seconds())
		}
		fmt.Fprintf(&b, "| %s | %d | %.2f s | %.2f s | %s |\n", what, n, p50.Seconds(), top.Seconds(), strings.Join(each, ", "))
	}
	fmt.Fprintf(&b, "`management.poll_interval` %s · broker `collect_statistics_interval` %s\n\n", o.alertPoll, r.statsInterval)
	fmt.Fprintf(&b, "| from the crossing to | repetitions | p50 | max | each |\n| --- | ---: | ---: | ---: | --- |\n")
	row("the first poll that saw it", toPoll)
	row("the webhook received", toHook)
	var warren []time.Duration
	for _, x := range r.reps {
		warren = append(warren, x.toWebhook-x.toPoll)
	}
	_, p50, _, top := durationStats(warren)
	fmt.Fprintf(&b, "\nFrom that poll to the webhook (evaluation, outbox write, delivery): p50 %s, max %s. The rest is\n", fmtMs(p50), fmtMs(top))
	fmt.Fprintf(&b, "the wait for the next poll tick: the poller reads the queue's ready count with an AMQP passive\n")
	fmt.Fprintf(&b, "declare (`management.probe_queues`, on by default), not from the management API, whose counts\n")
	fmt.Fprintf(&b, "change only every `collect_statistics_interval` plus the plugin's collection delay.\n\n")
	return b.String()
}
