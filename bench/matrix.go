package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"warren/consumers"
	"warren/loadgen"
)

// noopHandler is the handler both variants run: it looks at the delivery
// and does nothing, so the table measures consumer overhead only.
func noopHandler(_ context.Context, d consumers.Delivery) error {
	if d.Body == nil {
		return errors.New("empty delivery")
	}
	return nil
}

// runResult is one consumer run over one queue of pre-published messages.
type runResult struct {
	elapsed      time.Duration // first to last handled message
	cpu          time.Duration // process CPU (user+system) from start to the last message
	allocs       uint64        // heap allocations over the same span
	messages     int
	msgPerSecond float64
}

func (r runResult) cpuPerMsg() time.Duration { return r.cpu / time.Duration(r.messages) }
func (r runResult) allocsPerMsg() float64    { return float64(r.allocs) / float64(r.messages) }

// meter is CPU time and allocations at one instant.
type meter struct {
	cpu    time.Duration
	allocs uint64
}

func readMeter() meter {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return meter{
		cpu:    time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		allocs: ms.Mallocs,
	}
}

// progress tracks handled messages and the first/last handling times.
type progress struct {
	n     int64
	count atomic.Int64
	first atomic.Int64
	last  atomic.Int64
	done  chan struct{}
	once  sync.Once
}

func newProgress(n int) *progress { return &progress{n: int64(n), done: make(chan struct{})} }

func (p *progress) handled() {
	now := time.Now().UnixNano()
	p.first.CompareAndSwap(0, now)
	if c := p.count.Add(1); c >= p.n {
		p.last.CompareAndSwap(0, now)
		p.once.Do(func() { close(p.done) })
	}
}

func (p *progress) result(start, end meter) runResult {
	r := runResult{
		elapsed:  time.Duration(p.last.Load() - p.first.Load()),
		cpu:      end.cpu - start.cpu,
		allocs:   end.allocs - start.allocs,
		messages: int(p.n),
	}
	if r.elapsed > 0 {
		// n-1 intervals between the first and the n-th message.
		r.msgPerSecond = float64(p.n-1) / r.elapsed.Seconds()
	}
	return r
}

func (p *progress) wait(ctx context.Context, limit time.Duration) error {
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(limit):
		return fmt.Errorf("only %d of %d messages handled after %s", p.count.Load(), p.n, limit)
	}
}

// consumePlain is what an operator would write without warren: one channel,
// basic.qos, `concurrency` goroutines ranging over the deliveries, the
// handler, one ack per message.
func consumePlain(ctx context.Context, amqpURL, queue string, prefetch, concurrency, n int) (runResult, error) {
	runtime.GC()
	start := readMeter()
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		return runResult{}, err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return runResult{}, err
	}
	if err := ch.Qos(prefetch, 0, false); err != nil {
		return runResult{}, err
	}
	deliveries, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		return runResult{}, err
	}
	p := newProgress(n)
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for d := range deliveries {
				err := noopHandler(ctx, consumers.Delivery{
					Body: d.Body, Headers: d.Headers, ContentType: d.ContentType, ContentEncoding: d.ContentEncoding,
					MessageID: d.MessageId, CorrelationID: d.CorrelationId, Type: d.Type, Exchange: d.Exchange,
					RoutingKey: d.RoutingKey, Redelivered: d.Redelivered, Timestamp: d.Timestamp,
				})
				if err != nil {
					_ = d.Nack(false, true)
					continue
				}
				_ = d.Ack(false)
				p.handled()
			}
		})
	}
	werr := p.wait(ctx, 5*time.Minute)
	end := readMeter()
	conn.Close() // ends the deliveries channel, and the goroutines
	wg.Wait()
	return p.result(start, end), werr
}

// consumeManaged runs the same consumer through warren's public API.
func consumeManaged(ctx context.Context, amqpURL, queue string, prefetch, concurrency, n int) (runResult, error) {
	runtime.GC()
	start := readMeter()
	p := newProgress(n)
	factory := func(consumers.Config, *slog.Logger) (consumers.HandlerFunc, error) {
		return func(ctx context.Context, d consumers.Delivery) error {
			err := noopHandler(ctx, d)
			if err == nil {
				p.handled()
			}
			return err
		}, nil
	}
	m, err := consumers.NewManager(amqpURL, []consumers.Config{{
		Name: "bench", Queue: queue,
		MaxConcurrentMessages: concurrency, PrefetchCount: prefetch,
		Handler: consumers.HandlerConfig{Type: "bench-noop"},
	}}, nil, nil, consumers.Options{
		Handlers:        map[string]consumers.HandlerFactory{"bench-noop": factory},
		SampleInterval:  time.Hour, // no sample writes during the run (the writer is nil anyway)
		ShutdownTimeout: 5 * time.Second,
	})
	if err != nil {
		return runResult{}, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- m.Run(runCtx) }()
	werr := p.wait(ctx, 5*time.Minute)
	end := readMeter()
	cancel()
	if err := <-runDone; err != nil {
		werr = errors.Join(werr, err)
	}
	return p.result(start, end), werr
}

// cell is one prefetch x concurrency combination.
type cell struct {
	prefetch, concurrency int
	plain, managed        []runResult
}

type matrixResult struct {
	cells   []*cell
	elapsed time.Duration
}

func consumerMatrix(ctx context.Context, o options, logger *slog.Logger) (matrixResult, error) {
	began := time.Now()
	var res matrixResult
	for _, pf := range o.prefetch {
		for _, c := range o.concurrcy {
			res.cells = append(res.cells, &cell{prefetch: pf, concurrency: c})
		}
	}
	variants := []struct {
		name string
		run  func(context.Context, string, string, int, int, int) (runResult, error)
		into func(*cell, runResult)
	}{
		{"plain", consumePlain, func(c *cell, r runResult) { c.plain = append(c.plain, r) }},
		{"managed", consumeManaged, func(c *cell, r runResult) { c.managed = append(c.managed, r) }},
	}
	for _, c := range res.cells {
		for rep := range o.reps {
			// Alternate which variant goes first, so drift on the shared
			// machine does not favour one.
			order := []int{0, 1}
			if rep%2 == 1 {
				order = []int{1, 0}
			}
			for _, v := range order {
				variant := variants[v]
				queue := uniqueQueue("warren-bench-consume")
				if _, err := loadgen.Run(ctx, loadgen.Config{URL: o.amqpURL, Queue: queue, Declare: true, Count: int64(o.messages), Size: o.size}); err != nil {
					deleteQueue(o.amqpURL, queue)
					return res, fmt.Errorf("publishing for prefetch %d concurrency %d: %w", c.prefetch, c.concurrency, err)
				}
				r, err := variant.run(ctx, o.amqpURL, queue, c.prefetch, c.concurrency, o.messages)
				deleteQueue(o.amqpURL, queue)
				if err != nil {
					return res, fmt.Errorf("%s consumer, prefetch %d concurrency %d: %w", variant.name, c.prefetch, c.concurrency, err)
				}
				variant.into(c, r)
				logger.Info("run", "variant", variant.name, "prefetch", c.prefetch, "concurrency", c.concurrency,
					"msg_per_s", int(r.msgPerSecond), "cpu_us_per_msg", r.cpuPerMsg().Microseconds(), "allocs_per_msg", int(r.allocsPerMsg()))
			}
		}
	}
	res.elapsed = time.Since(began)
	return res, nil
}

func mean(rs []runResult, f func(runResult) float64) float64 {
	var s float64
	for _, r := range rs {
		s += f(r)
	}
	return s / float64(len(rs))
}

// spread is (max-min)/mean of the runs' throughput: the run-to-run noise.
func spread(rs []runResult) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = r.msgPerSecond
	}
	if len(v) < 2 {
		return 0
	}
	return (slices.Max(v) - slices.Min(v)) / mean(rs, func(r runResult) float64 { return r.msgPerSecond })
}

func (m matrixResult) markdown(env environment, command string, o options) string {
	rate := func(r runResult) float64 { return r.msgPerSecond }
	cpu := func(r runResult) float64 { return float64(r.cpuPerMsg().Nanoseconds()) / 1000 }
	allocs := func(r runResult) float64 { return r.allocsPerMsg() }
	var b strings.Builder
	fmt.Fprintf(&b, "## Consumer matrix: managed vs plain amqp091-go\n\n")
	fmt.Fprintf(&b, "%s\n\n```sh\n%s\n```\n\n", env, command)
	fmt.Fprintf(&b, "Each run: %d pre-published %d-byte persistent messages (published by `loadgen`, then\n", o.messages, o.size)
	fmt.Fprintf(&b, "consumed), a no-op handler, one ack per message. Plain = one channel, `basic.qos(prefetch)`,\n")
	fmt.Fprintf(&b, "`concurrency` goroutines ranging over the deliveries; managed = `consumers.NewManager` with the\n")
	fmt.Fprintf(&b, "same prefetch and concurrency. Throughput is first-to-last handled message; CPU (user+system of\n")
	fmt.Fprintf(&b, "this process) and allocations are per message over the whole run, connection set-up included.\n")
	fmt.Fprintf(&b, "%d runs per variant and cell, interleaved; means shown, noise = (max-min)/mean of the plain runs.\n", o.reps)
	fmt.Fprintf(&b, "The suite took %s.\n\n", m.elapsed.Round(time.Second))
	fmt.Fprintf(&b, "| prefetch | concurrency | plain msg/s | managed msg/s | ratio | noise | plain CPU µs/msg | managed CPU µs/msg | plain allocs/msg | managed allocs/msg | ≥ 0.97 |\n")
	fmt.Fprintf(&b, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
	var misses []string
	for _, c := range m.cells {
		ratio := mean(c.managed, rate) / mean(c.plain, rate)
		noise := spread(c.plain)
		verdict := "yes"
		switch {
		case ratio >= 0.97:
		case 1-ratio <= noise:
			verdict = "within noise"
			misses = append(misses, fmt.Sprintf("prefetch %d × concurrency %d (%.2f, noise %.0f%%)", c.prefetch, c.concurrency, ratio, noise*100))
		default:
			verdict = "**no**"
			misses = append(misses, fmt.Sprintf("prefetch %d × concurrency %d (%.2f)", c.prefetch, c.concurrency, ratio))
		}
		fmt.Fprintf(&b, "| %d | %d | %.0f | %.0f | %.2f | %.0f%% | %.1f | %.1f | %.1f | %.1f | %s |\n",
			c.prefetch, c.concurrency, mean(c.plain, rate), mean(c.managed, rate), ratio, noise*100,
			mean(c.plain, cpu), mean(c.managed, cpu), mean(c.plain, allocs), mean(c.managed, allocs), verdict)
	}
	if len(misses) == 0 {
		fmt.Fprintf(&b, "\nEvery cell reaches 0.97 of the plain consumer's throughput.\n\n")
	} else {
		fmt.Fprintf(&b, "\nCells below 0.97: %s. \"within noise\" means the gap is smaller than the plain\n", strings.Join(misses, "; "))
		fmt.Fprintf(&b, "consumer's own run-to-run spread in that cell, so this run cannot tell the two apart there.\n")
		fmt.Fprintf(&b, "The broker and both consumers share two cores, so CPU the consumer spends per message is CPU the\n")
		fmt.Fprintf(&b, "broker does not get; the CPU and allocation columns show where the managed consumer's extra\n")
		fmt.Fprintf(&b, "cost is.\n\n")
	}
	return b.String()
}
