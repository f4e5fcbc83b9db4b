// Command bench runs warren's side-by-side benchmarks on the local broker and
// rewrites its own sections of BENCHMARKS.md with dated tables:
//
//   - loadgen: does `warren loadgen` hold 1,000 msg/s within 2%, and does its
//     report match the broker's own publish counter?
//   - consumers: warren's managed consumer vs a plain amqp091-go consumer, same
//     queue, prefetch, concurrency, message size and (no-op) handler, for
//     prefetch 1/10/100/1000 x concurrency 1/10/50: throughput ratio, CPU and
//     allocations per message.
//
// Run it with `make bench` or `go run ./bench`; `go run ./bench -help` lists
// the knobs. It uses only the public APIs of loadgen and consumers.
package main

import (
	"context"
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
	only      string
	paceRate  float64
	paceFor   time.Duration
	messages  int
	reps      int
	size      int
	prefetch  []int
	concurrcy []int
}

func main() {
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
	fs.StringVar(&o.only, "only", "", "run one suite: loadgen or consumers (default: all)")
	fs.Float64Var(&o.paceRate, "pace-rate", 1000, "loadgen suite: target rate")
	fs.DurationVar(&o.paceFor, "pace-duration", 60*time.Second, "loadgen suite: phase length")
	fs.IntVar(&o.messages, "messages", 10000, "consumers suite: messages per run")
	fs.IntVar(&o.reps, "reps", 3, "consumers suite: runs per variant and cell (interleaved)")
	fs.IntVar(&o.size, "size", 256, "consumers suite: message body size in bytes")
	prefetch := fs.String("prefetch", "1,10,100,1000", "consumers suite: prefetch values")
	conc := fs.String("concurrency", "1,10,50", "consumers suite: concurrency values")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if o.prefetch, err = intList(*prefetch); err != nil {
		return fmt.Errorf("-prefetch: %w", err)
	}
	if o.concurrcy, err = intList(*conc); err != nil {
		return fmt.Errorf("-concurrency: %w", err)
	}
	if o.only != "" && o.only != "loadgen" && o.only != "consumers" {
		return fmt.Errorf("-only %q: want loadgen or consumers", o.only)
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

	sections := map[string]string{}
	if o.only == "" || o.only == "loadgen" {
		logger.Info("loadgen suite", "rate", o.paceRate, "duration", o.paceFor)
		res, err := paceCheck(ctx, o)
		if err != nil {
			return fmt.Errorf("loadgen suite: %w", err)
		}
		sections["loadgen"] = res.markdown(env, command)
	}
	if o.only == "" || o.only == "consumers" {
		logger.Info("consumers suite", "cells", len(o.prefetch)*len(o.concurrcy), "messages", o.messages, "reps", o.reps)
		res, err := consumerMatrix(ctx, o, logger)
		if err != nil {
			return fmt.Errorf("consumers suite: %w", err)
		}
		sections["consumers"] = res.markdown(env, command, o)
	}
	if o.out == "-" {
		for _, name := range []string{"loadgen", "consumers"} {
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
