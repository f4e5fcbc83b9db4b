package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"warren/consumers"
	"warren/loadgen"
)

// Settings of the live-changes suite: concurrency alternates between two
// values under a backlog, then prefetch does (at a fixed concurrency).
const (
	liveConcLow, liveConcHigh = 5, 40
	livePrefetchForConc       = 100 // above liveConcHigh, so prefetch never limits the workers
	livePrefLow, livePrefHigh = 20, 60
	livePrefConcurrency       = 2                      // slow intake: the broker side takes seconds to show each change
	liveHold                  = 250 * time.Millisecond // between changes, so each starts from a settled state
	liveTimeout               = 30 * time.Second       // a change not in effect by then fails the suite
)

type liveResult struct {
	concUp, concDown []time.Duration // Update call to running workers at the new value
	prefApplied      []time.Duration // Update call to its return with Status.AppliedPrefetch = new value
	prefBroker       []time.Duration // Update call to the management API showing the new prefetch_count
	backlogLeft      int64           // messages still queued at the end (the backlog never ran dry if > 0)
	elapsed          time.Duration
}

// liveChanges measures how long a live change takes to be in effect, on a
// consumer with a backlog and a handler that takes o.liveWork per message.
func liveChanges(ctx context.Context, o options, env environment, logger *slog.Logger) (liveResult, error) {
	began := time.Now()
	var res liveResult
	queue := uniqueQueue("warren-bench-live")
	defer deleteQueue(o.amqpURL, queue)
	// Enough backlog for both phases at their highest rates, with margin.
	backlog := int64(1500 * o.liveChanges)
	if _, err := loadgen.Run(ctx, loadgen.Config{URL: o.amqpURL, Queue: queue, Declare: true, Count: backlog, Size: 64, Transient: true}); err != nil {
		return res, fmt.Errorf("publishing: %w", err)
	}
	var active atomic.Int64
	factory := func(consumers.Config, *slog.Logger) (consumers.HandlerFunc, error) {
		return func(ctx context.Context, d consumers.Delivery) error {
			active.Add(1)
			defer active.Add(-1)
			select {
			case <-time.After(o.liveWork): // simulated I/O-bound work
			case <-ctx.Done():
				return ctx.Err()
			}
			return nil
		}, nil
	}
	const name = "bench-live"
	m, err := consumers.NewManager(o.amqpURL, []consumers.Config{{
		Name: name, Queue: queue,
		MaxConcurrentMessages: liveConcLow, PrefetchCount: livePrefetchForConc,
		MaxConcurrency: 50, MaxPrefetch: 200,
		Handler: consumers.HandlerConfig{Type: "bench-live"},
	}}, nil, nil, consumers.Options{
		Handlers:        map[string]consumers.HandlerFactory{"bench-live": factory},
		SampleInterval:  time.Hour,
		ShutdownTimeout: 5 * time.Second,
	})
	if err != nil {
		return res, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- m.Run(runCtx) }()
	defer func() {
		cancel()
		<-runDone
	}()

	// waitFor polls cond every step: 100 µs for the handlers (the figures
	// are milliseconds), 50 ms for the management API (so the polling does
	// not load the broker it measures).
	waitFor := func(what string, step time.Duration, cond func() bool) error {
		deadline := time.Now().Add(liveTimeout)
		for !cond() {
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: not in effect after %s", what, liveTimeout)
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			time.Sleep(step)
		}
		return nil
	}
	hold := func() error {
		select {
		case <-time.After(liveHold):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := waitFor("start", 100*time.Microsecond, func() bool { return active.Load() == liveConcLow }); err != nil {
		return res, err
	}
	if err := hold(); err != nil {
		return res, err
	}

	// Concurrency: low -> high -> low ..., o.liveChanges changes.
	for i := range o.liveChanges {
		up := i%2 == 0
		want := liveConcLow
		if up {
			want = liveConcHigh
		}
		t0 := time.Now()
		if _, err := m.Update(ctx, name, consumers.Change{Concurrency: &want}); err != nil {
			return res, err
		}
		reached := func() bool { return active.Load() <= int64(want) }
		if up {
			reached = func() bool { return active.Load() >= int64(want) }
		}
		if err := waitFor(fmt.Sprintf("concurrency %d", want), 100*time.Microsecond, reached); err != nil {
			return res, err
		}
		if d := time.Since(t0); up {
			res.concUp = append(res.concUp, d)
		} else {
			res.concDown = append(res.concDown, d)
		}
		if err := hold(); err != nil {
			return res, err
		}
	}

	// Prefetch: low -> high -> low ..., at a fixed concurrency.
	conc := livePrefConcurrency
	pref := livePrefLow
	if _, err := m.Update(ctx, name, consumers.Change{Concurrency: &conc, Prefetch: &pref}); err != nil {
		return res, err
	}
	if err := waitFor("initial prefetch on the broker", 50*time.Millisecond, func() bool { return brokerPrefetchIs(ctx, env, queue, pref) }); err != nil {
		return res, err
	}
	if err := hold(); err != nil {
		return res, err
	}
	for i := range o.liveChanges {
		want := livePrefHigh
		if i%2 == 1 {
			want = livePrefLow
		}
		t0 := time.Now()
		st, err := m.Update(ctx, name, consumers.Change{Prefetch: &want})
		if err != nil {
			return res, err
		}
		applied := time.Since(t0)
		if st.AppliedPrefetch != want {
			// Update returns once the new subscription is up; anything else
			// is worth failing loudly for.
			return res, fmt.Errorf("prefetch %d: Update returned with applied_prefetch %d", want, st.AppliedPrefetch)
		}
		res.prefApplied = append(res.prefApplied, applied)
		if err := waitFor(fmt.Sprintf("prefetch %d on the broker", want), 50*time.Millisecond, func() bool { return brokerPrefetchIs(ctx, env, queue, want) }); err != nil {
			return res, err
		}
		res.prefBroker = append(res.prefBroker, time.Since(t0))
		if err := hold(); err != nil {
			return res, err
		}
		logger.Debug("prefetch change", "to", want, "applied", applied)
	}
	if q, err := env.queue(ctx, queue); err == nil {
		res.backlogLeft = q.Messages
	}
	res.elapsed = time.Since(began)
	return res, nil
}

// brokerPrefetchIs reports whether the management API lists the queue's
// consumers, all of them with prefetch_count want.
func brokerPrefetchIs(ctx context.Context, env environment, queue string, want int) bool {
	var list []struct {
		PrefetchCount int `json:"prefetch_count"`
		Queue         struct {
			Name string `json:"name"`
		} `json:"queue"`
	}
	if err := env.getJSON(ctx, "/api/consumers/"+url.PathEscape(vhostOf(env.amqpURL)), &list); err != nil {
		return false
	}
	n := 0
	for _, c := range list {
		if c.Queue.Name != queue {
			continue
		}
		if c.PrefetchCount != want {
			return false
		}
		n++
	}
	return n > 0
}

// durationStats is n, p50, p95 and max of ds.
func durationStats(ds []time.Duration) (n int, p50, p95, top time.Duration) {
	if len(ds) == 0 {
		return 0, 0, 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) time.Duration {
		i := int(q*float64(len(s))+0.999999) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	return len(s), at(0.50), at(0.95), s[len(s)-1]
}

func fmtMs(d time.Duration) string {
	ms := float64(d.Microseconds()) / 1000
	switch {
	case ms < 10:
		return fmt.Sprintf("%.2f ms", ms)
	case ms < 100:
		return fmt.Sprintf("%.1f ms", ms)
	}
	return fmt.Sprintf("%.0f ms", ms)
}

func (r liveResult) markdown(env environment, command string, o options) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Live changes: time to take effect\n\n")
	fmt.Fprintf(&b, "%s\n\n```sh\n%s\n```\n\n", env, command)
	fmt.Fprintf(&b, "One managed consumer on a backlog, its handler simulating %s of I/O per message. Concurrency\n", o.liveWork)
	fmt.Fprintf(&b, "alternates %d ↔ %d (prefetch %d) with `Manager.Update`; in effect = the number of handlers\n", liveConcLow, liveConcHigh, livePrefetchForConc)
	fmt.Fprintf(&b, "running at once (polled every 100 µs) reaches the new value: at least it after a raise, at most it\n")
	fmt.Fprintf(&b, "after a cut (running handlers finish their message first). Then prefetch alternates %d ↔ %d at\n", livePrefLow, livePrefHigh)
	fmt.Fprintf(&b, "concurrency %d: warren re-subscribes with the new `basic.qos`; in effect = `Update` returned with\n", livePrefConcurrency)
	fmt.Fprintf(&b, "`Status.AppliedPrefetch` at the new value, and the management API (`/api/consumers/{vhost}`) lists\n")
	fmt.Fprintf(&b, "the queue's consumer with the new `prefetch_count` (polled every 50 ms). Concurrency %d keeps the\n", livePrefConcurrency)
	fmt.Fprintf(&b, "backlog from running dry while the broker side takes seconds. %s between changes.\n", liveHold)
	dry := "the backlog never ran dry"
	if r.backlogLeft == 0 {
		dry = "**the backlog ran dry, so the last changes were not under load**"
	}
	fmt.Fprintf(&b, "Messages still queued at the end: %d (%s). The suite took %s.\n\n", r.backlogLeft, dry, r.elapsed.Round(time.Second))
	fmt.Fprintf(&b, "| change | measured until | changes | p50 | p95 | max |\n| --- | --- | ---: | ---: | ---: | ---: |\n")
	row := func(change, until string, ds []time.Duration) {
		n, p50, p95, top := durationStats(ds)
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s |\n", change, until, n, fmtMs(p50), fmtMs(p95), fmtMs(top))
	}
	row(fmt.Sprintf("concurrency %d → %d", liveConcLow, liveConcHigh), "that many handlers running", r.concUp)
	row(fmt.Sprintf("concurrency %d → %d", liveConcHigh, liveConcLow), "at most that many running", r.concDown)
	row("concurrency, both ways", "the new value reached", append(slices.Clone(r.concUp), r.concDown...))
	row(fmt.Sprintf("prefetch %d ↔ %d", livePrefLow, livePrefHigh), "`Update` returned, `applied_prefetch` = new", r.prefApplied)
	row(fmt.Sprintf("prefetch %d ↔ %d", livePrefLow, livePrefHigh), "management API shows the new `prefetch_count`", r.prefBroker)
	fmt.Fprintf(&b, "\n")
	return b.String()
}
