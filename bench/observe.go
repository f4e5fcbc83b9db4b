package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"warren/consumers"
	"warren/loadgen"
	"warren/store"
)

// Settings of the observation suite: serve's default concurrency, a
// prefetch that keeps every worker busy, and a slow threshold that one
// message in slowEvery crosses.
const (
	obsPrefetch    = 100
	obsConcurrency = 10
	obsThreshold   = time.Millisecond
	obsSlowWork    = 2 * time.Millisecond
	obsSlowEvery   = 100
)

// obsRun is one run plus the slow messages the consumer counted.
type obsRun struct {
	runResult
	slow uint64
}

type obsResult struct {
	on, off []obsRun
	elapsed time.Duration
}

// observationCost runs the managed consumer over identical queues with
// observation on and off (Options.NoObservation), interleaved.
func observationCost(ctx context.Context, o options, logger *slog.Logger) (obsResult, error) {
	began := time.Now()
	var res obsResult
	dir, err := os.MkdirTemp("", "warren-bench-obs-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	types := []loadgen.MessageType{{Name: "OrderCreated", Weight: 4}, {Name: "OrderPaid", Weight: 3}, {Name: "OrderShipped", Weight: 2}, {Name: "OrderCancelled", Weight: 1}}
	for rep := range o.obsReps {
		order := []bool{true, false}
		if rep%2 == 1 {
			order = []bool{false, true}
		}
		for _, observe := range order {
			queue := uniqueQueue("warren-bench-observe")
			if _, err := loadgen.Run(ctx, loadgen.Config{URL: o.amqpURL, Queue: queue, Declare: true, Count: int64(o.obsMessages), Size: o.size, Types: types}); err != nil {
				deleteQueue(o.amqpURL, queue)
				return res, fmt.Errorf("publishing: %w", err)
			}
			r, err := consumeObserved(ctx, o, queue, observe, filepath.Join(dir, fmt.Sprintf("run-%d-%t.db", rep, observe)))
			deleteQueue(o.amqpURL, queue)
			if err != nil {
				return res, fmt.Errorf("observation %t: %w", observe, err)
			}
			if observe {
				res.on = append(res.on, r)
			} else {
				res.off = append(res.off, r)
			}
			logger.Info("run", "observation", observe, "msg_per_s", int(r.msgPerSecond),
				"cpu_us_per_msg", r.cpuPerMsg().Microseconds(), "allocs_per_msg", int(r.allocsPerMsg()), "slow", r.slow)
		}
	}
	res.elapsed = time.Since(began)
	return res, nil
}

// consumeObserved runs one managed consumer as serve would (a real store
// for samples and slow messages, a logger that formats its records) until
// it handled every message of queue.
func consumeObserved(ctx context.Context, o options, queue string, observe bool, dbPath string) (obsRun, error) {
	st, err := store.Open(ctx, dbPath, nil)
	if err != nil {
		return obsRun{}, err
	}
	defer st.Close()
	// Text-formatted like serve's default log, then thrown away.
	logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	runtime.GC()
	start := readMeter()
	p := newProgress(o.obsMessages)
	var calls atomic.Int64
	factory := func(consumers.Config, *slog.Logger) (consumers.HandlerFunc, error) {
		return func(ctx context.Context, d consumers.Delivery) error {
			if d.Body == nil {
				return errors.New("empty delivery")
			}
			if calls.Add(1)%obsSlowEvery == 0 {
				time.Sleep(obsSlowWork) // simulated slow work: crosses the slow threshold
			}
			p.handled()
			return nil
		}, nil
	}
	m, err := consumers.NewManager(o.amqpURL, []consumers.Config{{
		Name: "bench-observe", Queue: queue,
		MaxConcurrentMessages: obsConcurrency, PrefetchCount: obsPrefetch,
		SlowProcessingThreshold: obsThreshold,
		Handler:                 consumers.HandlerConfig{Type: "bench-observe"},
	}}, st, logger, consumers.Options{
		Handlers:        map[string]consumers.HandlerFactory{"bench-observe": factory},
		SampleInterval:  time.Second,
		ShutdownTimeout: 5 * time.Second,
		NoObservation:   !observe,
	})
	if err != nil {
		return obsRun{}, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- m.Run(runCtx) }()
	werr := p.wait(ctx, 5*time.Minute)
	end := readMeter()
	var slow uint64
	if s, err := m.Get("bench-observe"); err == nil {
		slow = s.Slow
	}
	cancel()
	if err := <-runDone; err != nil {
		werr = errors.Join(werr, err)
	}
	return obsRun{runResult: p.result(start, end), slow: slow}, werr
}

func (r obsResult) markdown(env environment, command string, o options) string {
	pick := func(rs []obsRun) []runResult {
		out := make([]runResult, len(rs))
		for i, x := range rs {
			out[i] = x.runResult
		}
		return out
	}
	on, off := pick(r.on), pick(r.off)
	rate := func(r runResult) float64 { return r.msgPerSecond }
	cpu := func(r runResult) float64 { return float64(r.cpuPerMsg().Nanoseconds()) / 1000 }
	allocs := func(r runResult) float64 { return r.allocsPerMsg() }
	var slow uint64
	for _, x := range r.on {
		slow += x.slow
	}
	var b strings.Builder
	fmt.Fprintf(&b, "## Cost of observation: managed consumer with observation on vs off\n\n")
	fmt.Fprintf(&b, "%s\n\n```sh\n%s\n```\n\n", env, command)
	fmt.Fprintf(&b, "Each run: %d pre-published %d-byte persistent messages of four types (`x-message-type`,\n", o.obsMessages, o.size)
	fmt.Fprintf(&b, "weights 4:3:2:1, with loadgen's publish-time header), the managed consumer at prefetch %d and\n", obsPrefetch)
	fmt.Fprintf(&b, "concurrency %d, a real SQLite store receiving samples every second, a text logger. The handler\n", obsConcurrency)
	fmt.Fprintf(&b, "does nothing except on every %dth call, where it sleeps %s: with `slow_processing_threshold`\n", obsSlowEvery, obsSlowWork)
	fmt.Fprintf(&b, "%s those are slow, and so is any message the shared machine delays past it (counted, kept for\n", obsThreshold)
	fmt.Fprintf(&b, "the store, logged at most once per 10 s).\n")
	fmt.Fprintf(&b, "On = what `warren serve` runs: handler and end-to-end latency histograms, per-type aggregates,\n")
	fmt.Fprintf(&b, "slow-message detection. Off = `consumers.Options.NoObservation`: only the counters and the rate.\n")
	fmt.Fprintf(&b, "%d runs per variant, interleaved; means shown, noise = (max-min)/mean of the runs. The suite took %s.\n\n", o.obsReps, r.elapsed.Round(time.Second))
	fmt.Fprintf(&b, "| observation | msg/s | noise | CPU µs/msg | allocs/msg | slow messages seen |\n")
	fmt.Fprintf(&b, "| --- | ---: | ---: | ---: | ---: | ---: |\n")
	fmt.Fprintf(&b, "| off | %.0f | %.0f%% | %.1f | %.2f | (not observed) |\n", mean(off, rate), spread(off)*100, mean(off, cpu), mean(off, allocs))
	fmt.Fprintf(&b, "| on | %.0f | %.0f%% | %.1f | %.2f | %d |\n\n", mean(on, rate), spread(on)*100, mean(on, cpu), mean(on, allocs), slow)
	// Each repetition ran on and off back to back: the ratio within a pair
	// is less exposed to the shared machine's drift than the means are.
	var pairs []float64
	for i := range min(len(on), len(off)) {
		pairs = append(pairs, on[i].msgPerSecond/off[i].msgPerSecond)
	}
	slices.Sort(pairs)
	ratio := percentile(pairs, 0.5)
	fmt.Fprintf(&b, "Throughput with observation on / off, median of the %d back-to-back pairs: **%.2f** (pairs %.2f to %.2f;\n",
		len(pairs), ratio, pairs[0], pairs[len(pairs)-1])
	fmt.Fprintf(&b, "ratio of the means %.2f). CPU per message %+.1f µs (%+.0f%%), allocations per message %+.2f.\n\n",
		mean(on, rate)/mean(off, rate), mean(on, cpu)-mean(off, cpu), 100*(mean(on, cpu)/mean(off, cpu)-1), mean(on, allocs)-mean(off, allocs))
	return b.String()
}
