// Command bench runs warren's side-by-side benchmarks on the local broker and
// rewrites its own sections of BENCHMARKS.md with dated tables:
//
//   - loadgen: does `warren loadgen` hold 1,000 msg/s within 2%, and does its
//     report match the broker's own publish counter?
//   - consumers: warren's managed consumer vs a plain amqp091-go consumer, same
//     queue, prefetch, concurrency, message size and (no-op) handler, for
//     prefetch 1/10/100/1000 x concurrency 1/10/50: throughput ratio, CPU and
//     allocations per message.
//   - observation: the managed consumer with observation on vs off.
//   - batch: batch sizes 1/10/100 with one SQLite transaction per batch.
//   - live-changes: time from Manager.Update to the new concurrency or
//     prefetch being in effect.
//   - alert-latency: time from a queue crossing its critical level to the
//     webhook arriving at a real receiver.
//   - monitor-scale: cost of one poll (and its store write) for 100, 1,000
//     and 10,000 queues served by a fake management API.
//
// Run it with `make bench` or `go run ./bench`; `go run ./bench -help` lists
// the knobs. It uses only the public APIs of loadgen and consumers.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// options are the command's flags.
type options struct {
	amqpURL   string
	mgmtURL   string
	out       string
	only      map[string]bool // suites to run; empty: all
	paceRate  float64
	paceFor   time.Duration
	messages  int
	reps      int
	size      int
	prefetch  []int
	concurrcy []int

	obsMessages   int
	obsReps       int
	batchMessages int
	batchLimit    time.Duration
	batchSizes    []int
	batchReps     int
	liveChanges   int
	liveWork      time.Duration
	alertReps     int
	alertPoll     time.Duration
	alertCritical int
	alertRate     float64
	monQueues     []int
	monPolls      int
}

// suiteNames are the suites (and BENCHMARKS.md sections) in running order.
func suiteNames() []string {
	return []string{"loadgen", "consumers", "observation", "batch", "live-changes", "alert-latency", "monitor-scale"}
}

func main() {
	// The monitor-scale suite runs its fake management API in a child
	// process (this program again), so the poll's CPU and allocations are
	// warren's alone.
	if len(os.Args) == 3 && os.Args[1] == fakeManagementArg {
		if err := serveFakeManagement(os.Args[2], os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "bench fake management API:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	fs.StringVar(&o.amqpURL, "amqp-url", "amqp://guest:guest@127.0.0.1:5672/", "broker")
	fs.StringVar(&o.mgmtURL, "management-url", "http://127.0.0.1:15672", "management API (guest/guest unless the URL carries other credentials)")
	fs.StringVar(&o.out, "out", "BENCHMARKS.md", "file whose bench sections are rewritten; - prints them instead")
	only := fs.String("only", "", "comma-separated suites to run, of: "+strings.Join(suiteNames(), ", ")+" (default: all)")
	quick := fs.Bool("quick", false, "smoke run: every suite with small sizes and short durations (flags given explicitly still win); the numbers mean little")
	fs.Float64Var(&o.paceRate, "pace-rate", 1000, "loadgen suite: target rate")
	fs.DurationVar(&o.paceFor, "pace-duration", 60*time.Second, "loadgen suite: phase length")
	fs.IntVar(&o.messages, "messages", 10000, "consumers suite: messages per run")
	fs.IntVar(&o.reps, "reps", 3, "consumers suite: runs per variant and cell (interleaved)")
	fs.IntVar(&o.size, "size", 256, "consumers, observation and batch suites: message body size in bytes")
	prefetch := fs.String("prefetch", "1,10,100,1000", "consumers suite: prefetch values")
	conc := fs.String("concurrency", "1,10,50", "consumers suite: concurrency values")
	fs.IntVar(&o.obsMessages, "observation-messages", 10000, "observation suite: messages per run")
	fs.IntVar(&o.obsReps, "observation-reps", 5, "observation suite: runs per variant (interleaved)")
	fs.IntVar(&o.batchMessages, "batch-messages", 10000, "batch suite: messages per run")
	fs.DurationVar(&o.batchLimit, "batch-limit", 15*time.Second, "batch suite: a run stops after this long even if not every message was handled")
	batchSizes := fs.String("batch-sizes", "1,10,100", "batch suite: batch sizes")
	fs.IntVar(&o.batchReps, "batch-reps", 2, "batch suite: runs per batch size")
	fs.IntVar(&o.liveChanges, "live-changes", 20, "live-changes suite: changes of each kind (concurrency, prefetch)")
	fs.DurationVar(&o.liveWork, "live-work", 20*time.Millisecond, "live-changes suite: simulated handler time per message")
	fs.IntVar(&o.alertReps, "alert-reps", 5, "alert-latency suite: repetitions")
	fs.DurationVar(&o.alertPoll, "alert-poll-interval", time.Second, "alert-latency suite: the monitor's poll interval")
	fs.IntVar(&o.alertCritical, "alert-critical", 100, "alert-latency suite: the queue's critical depth")
	fs.Float64Var(&o.alertRate, "alert-rate", 100, "alert-latency suite: publish rate into the queue, msg/s")
	monQueues := fs.String("monitor-queues", "100,1000,10000", "monitor-scale suite: queue counts")
	fs.IntVar(&o.monPolls, "monitor-polls", 10, "monitor-scale suite: measured polls per queue count")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (every setting is a flag; see -help)", fs.Arg(0))
	}
	if *quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		quickDefaults(&o, set, prefetch, conc, monQueues)
	}
	var err error
	if o.prefetch, err = intList(*prefetch); err != nil {
		return fmt.Errorf("-prefetch: %w", err)
	}
	if o.concurrcy, err = intList(*conc); err != nil {
		return fmt.Errorf("-concurrency: %w", err)
	}
	if o.batchSizes, err = intList(*batchSizes); err != nil {
		return fmt.Errorf("-batch-sizes: %w", err)
	}
	if o.monQueues, err = intList(*monQueues); err != nil {
		return fmt.Errorf("-monitor-queues: %w", err)
	}
	for name, v := range map[string]int{"observation-messages": o.obsMessages, "observation-reps": o.obsReps,
		"batch-messages": o.batchMessages, "batch-reps": o.batchReps, "live-changes": o.liveChanges,
		"alert-reps": o.alertReps, "alert-critical": o.alertCritical, "monitor-polls": o.monPolls} {
		if v < 1 {
			return fmt.Errorf("-%s: must be at least 1, got %d", name, v)
		}
	}
	if o.alertPoll <= 0 || o.alertRate <= 0 || o.liveWork <= 0 || o.batchLimit <= 0 {
		return errors.New("-alert-poll-interval, -alert-rate, -live-work and -batch-limit must be positive")
	}
	o.only = map[string]bool{}
	if *only != "" {
		known := map[string]bool{}
		for _, n := range suiteNames() {
			known[n] = true
		}
		for _, n := range strings.Split(*only, ",") {
			n = strings.TrimSpace(n)
			if !known[n] {
				return fmt.Errorf("-only %q: unknown suite %q; want some of %s", *only, n, strings.Join(suiteNames(), ", "))
			}
			o.only[n] = true
		}
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	command := "go run ./bench " + strings.Join(args, " ")
	if len(args) == 0 {
		command = "make bench"
	}
	env, err := describeEnvironment(ctx, o)
	if err != nil {
		return err
	}

	suites := map[string]func() (string, error){
		"loadgen": func() (string, error) {
			logger.Info("loadgen suite", "rate", o.paceRate, "duration", o.paceFor)
			res, err := paceCheck(ctx, o)
			if err != nil {
				return "", err
			}
			return res.markdown(env, command), nil
		},
		"consumers": func() (string, error) {
			logger.Info("consumers suite", "cells", len(o.prefetch)*len(o.concurrcy), "messages", o.messages, "reps", o.reps)
			res, err := consumerMatrix(ctx, o, logger)
			if err != nil {
				return "", err
			}
			return res.markdown(env, command, o), nil
		},
		"observation": func() (string, error) {
			logger.Info("observation suite", "messages", o.obsMessages, "reps", o.obsReps)
			res, err := observationCost(ctx, o, logger)
			if err != nil {
				return "", err
			}
			return res.markdown(env, command, o), nil
		},
		"batch": func() (string, error) {
			logger.Info("batch suite", "sizes", o.batchSizes, "messages", o.batchMessages, "reps", o.batchReps)
			res, err := batchSuite(ctx, o, logger)
			if err != nil {
				return "", err
			}
			return res.markdown(env, command, o), nil
		},
		"live-changes": func() (string, error) {
			logger.Info("live-changes suite", "changes", o.liveChanges)
			res, err := liveChanges(ctx, o, env, logger)
			if err != nil {
				return "", err
			}
			return res.markdown(env, command, o), nil
		},
		"alert-latency": func() (string, error) {
			logger.Info("alert-latency suite", "reps", o.alertReps, "poll_interval", o.alertPoll)
			res, err := alertLatency(ctx, o, logger)
			if err != nil {
				return "", err
			}
			return res.markdown(env, command, o), nil
		},
		"monitor-scale": func() (string, error) {
			logger.Info("monitor-scale suite", "queues", o.monQueues, "polls", o.monPolls)
			res, err := monitorScale(ctx, o, logger)
			if err != nil {
				return "", err
			}
			return res.markdown(env, command, o), nil
		},
	}
	sections := map[string]string{}
	for _, name := range suiteNames() {
		if len(o.only) > 0 && !o.only[name] {
			continue
		}
		began := time.Now()
		body, err := suites[name]()
		if err != nil {
			return fmt.Errorf("%s suite: %w", name, err)
		}
		sections[name] = body
		logger.Info("suite done", "suite", name, "took", time.Since(began).Round(time.Second))
	}
	if o.out == "-" {
		for _, name := range suiteNames() {
			fmt.Fprint(stdout, sections[name])
		}
		return nil
	}
	if err := rewriteSections(o.out, sections); err != nil {
		return err
	}
	logger.Info("wrote", "file", o.out)
	return nil
}

// quickDefaults shrinks every size and duration the user did not set, for
// a smoke run of the whole program in about a minute.
func quickDefaults(o *options, set map[string]bool, prefetch, conc, monQueues *string) {
	if !set["pace-duration"] {
		o.paceFor = 5 * time.Second
	}
	if !set["messages"] {
		o.messages = 2000
	}
	if !set["reps"] {
		o.reps = 1
	}
	if !set["prefetch"] {
		*prefetch = "10,100"
	}
	if !set["concurrency"] {
		*conc = "1,10"
	}
	if !set["observation-messages"] {
		o.obsMessages = 3000
	}
	if !set["observation-reps"] {
		o.obsReps = 1
	}
	if !set["batch-messages"] {
		o.batchMessages = 1000
	}
	if !set["batch-limit"] {
		o.batchLimit = 5 * time.Second
	}
	if !set["batch-reps"] {
		o.batchReps = 1
	}
	if !set["live-changes"] {
		o.liveChanges = 4
	}
	if !set["alert-reps"] {
		o.alertReps = 1
	}
	if !set["monitor-queues"] {
		*monQueues = "100,1000"
	}
	if !set["monitor-polls"] {
		o.monPolls = 3
	}
}

func intList(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		var n int
		if _, err := fmt.Sscan(strings.TrimSpace(f), &n); err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive whole number", f)
		}
		out = append(out, n)
	}
	return out, nil
}
