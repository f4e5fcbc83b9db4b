package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"warren/consumers"
	"warren/loadgen"
)

// Settings of the batch suite: one worker, so the database sees one
// transaction at a time, and a prefetch that keeps two batches of the
// largest size on hand.
const (
	batchConcurrency = 1
	batchPrefetch    = 200
)

type batchRun struct {
	handled      int64
	elapsed      time.Duration // first to last handled message
	transactions int64
	rows         int64 // counted in the database afterwards
	complete     bool  // every message handled before the time limit
}

func (r batchRun) rate() float64 {
	if r.elapsed <= 0 || r.handled < 2 {
		return 0
	}
	return float64(r.handled-1) / r.elapsed.Seconds()
}

type batchResult struct {
	sizes   []int
	runs    map[int][]batchRun
	elapsed time.Duration
}

// batchSuite consumes the same backlog with each batch size; the handler
// inserts one row per message, in one SQLite transaction per batch.
func batchSuite(ctx context.Context, o options, logger *slog.Logger) (batchResult, error) {
	began := time.Now()
	res := batchResult{sizes: o.batchSizes, runs: map[int][]batchRun{}}
	dir, err := os.MkdirTemp("", "warren-bench-batch-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	for rep := range o.batchReps {
		for _, size := range o.batchSizes {
			queue := uniqueQueue("warren-bench-batch")
			if _, err := loadgen.Run(ctx, loadgen.Config{URL: o.amqpURL, Queue: queue, Declare: true, Count: int64(o.batchMessages), Size: o.size}); err != nil {
				deleteQueue(o.amqpURL, queue)
				return res, fmt.Errorf("publishing: %w", err)
			}
			r, err := consumeBatches(ctx, o, queue, size, filepath.Join(dir, fmt.Sprintf("batch-%d-%d.db", size, rep)))
			deleteQueue(o.amqpURL, queue)
			if err != nil {
				return res, fmt.Errorf("batch size %d: %w", size, err)
			}
			res.runs[size] = append(res.runs[size], r)
			logger.Info("run", "batch_size", size, "msg_per_s", int(r.rate()), "handled", r.handled, "transactions", r.transactions, "complete", r.complete)
		}
	}
	res.elapsed = time.Since(began)
	return res, nil
}

// openBatchDB opens a fresh SQLite file in WAL mode with synchronous=FULL:
// the messages are acked once the transaction committed, so the commit must
// be durable, i.e. reach the disk, before the broker forgets the messages.
func openBatchDB(ctx context.Context, path string) (*sql.DB, error) {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path)}
	dsn := u.String() + "?_pragma=" + url.QueryEscape("journal_mode(WAL)") + "&_pragma=" + url.QueryEscape("synchronous(FULL)") +
		"&_pragma=" + url.QueryEscape("busy_timeout(5000)")
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `CREATE TABLE received (
		id INTEGER PRIMARY KEY,
		message_id TEXT NOT NULL,
		message_type TEXT NOT NULL,
		body BLOB NOT NULL,
		received_at INTEGER NOT NULL)`); err != nil {
		db.Close()
		return nil, fmt.Errorf("creating table in %s: %w", path, err)
	}
	return db, nil
}

// insertBatch writes one row per message in one transaction.
func insertBatch(ctx context.Context, db *sql.DB, batch []consumers.Delivery) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO received (message_id, message_type, body, received_at) VALUES (?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	now := time.Now().UnixMilli()
	for _, d := range batch {
		if _, err := stmt.ExecContext(ctx, d.MessageID, d.Type, d.Body, now); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func consumeBatches(ctx context.Context, o options, queue string, size int, dbPath string) (batchRun, error) {
	db, err := openBatchDB(ctx, dbPath)
	if err != nil {
		return batchRun{}, err
	}
	defer db.Close()
	p := newProgress(o.batchMessages)
	var txs atomic.Int64
	batchFactory := func(consumers.Config, *slog.Logger) (consumers.BatchHandlerFunc, error) {
		return func(ctx context.Context, batch []consumers.Delivery) error {
			if err := insertBatch(ctx, db, batch); err != nil {
				return err
			}
			txs.Add(1)
			for range batch {
				p.handled()
			}
			return nil
		}, nil
	}
	// Batch size 1 is the ordinary per-message path (a batch handler is
	// only used above 1), with the same one-row transaction.
	factory := func(consumers.Config, *slog.Logger) (consumers.HandlerFunc, error) {
		return func(ctx context.Context, d consumers.Delivery) error {
			if err := insertBatch(ctx, db, []consumers.Delivery{d}); err != nil {
				return err
			}
			txs.Add(1)
			p.handled()
			return nil
		}, nil
	}
	m, err := consumers.NewManager(o.amqpURL, []consumers.Config{{
		Name: "bench-batch", Queue: queue,
		MaxConcurrentMessages: batchConcurrency, PrefetchCount: max(batchPrefetch, 2*size),
		BatchSize: size,
		Handler:   consumers.HandlerConfig{Type: "bench-sqlite"},
	}}, nil, nil, consumers.Options{
		Handlers:        map[string]consumers.HandlerFactory{"bench-sqlite": factory},
		BatchHandlers:   map[string]consumers.BatchHandlerFactory{"bench-sqlite": batchFactory},
		SampleInterval:  time.Hour,
		ShutdownTimeout: 10 * time.Second,
	})
	if err != nil {
		return batchRun{}, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- m.Run(runCtx) }()
	werr := p.wait(ctx, o.batchLimit)
	r := batchRun{complete: werr == nil}
	if werr != nil && ctx.Err() == nil {
		werr = nil // the time limit: the rate over what was handled still counts
	}
	// Snapshot the progress before shutdown, which may finish a few more.
	r.handled = p.count.Load()
	last := p.last.Load()
	if !r.complete {
		last = time.Now().UnixNano()
	}
	r.elapsed = time.Duration(last - p.first.Load())
	r.transactions = txs.Load()
	cancel()
	if err := <-runDone; err != nil {
		werr = errors.Join(werr, err)
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM received`).Scan(&r.rows); err != nil {
		werr = errors.Join(werr, err)
	}
	return r, werr
}

func (r batchResult) markdown(env environment, command string, o options) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Batch sizes: one SQLite transaction per batch\n\n")
	fmt.Fprintf(&b, "%s\n\n```sh\n%s\n```\n\n", env, command)
	fmt.Fprintf(&b, "Each run: %d pre-published %d-byte persistent messages, the managed consumer with concurrency\n", o.batchMessages, o.size)
	fmt.Fprintf(&b, "%d and prefetch %d (or twice the batch size), and a handler that inserts one row per message\n", batchConcurrency, batchPrefetch)
	fmt.Fprintf(&b, "into a real SQLite file (modernc driver, WAL, `synchronous=FULL`: the messages are acked after the\n")
	fmt.Fprintf(&b, "commit, so the commit must be on disk) in one transaction per batch; batch size 1 is the ordinary\n")
	fmt.Fprintf(&b, "per-message handler. A run stops after %s even if messages are left; the rate is first to last\n", o.batchLimit)
	fmt.Fprintf(&b, "handled message. %d runs per size; means shown. The suite took %s.\n\n", o.batchReps, r.elapsed.Round(time.Second))
	fmt.Fprintf(&b, "| batch size | msg/s | vs batch size %d | transactions/s | messages handled / run | rows in the database |\n", r.sizes[0])
	fmt.Fprintf(&b, "| ---: | ---: | ---: | ---: | ---: | ---: |\n")
	var base float64
	for i, size := range r.sizes {
		runs := r.runs[size]
		var rate, txps, handled, rows float64
		for _, x := range runs {
			rate += x.rate()
			if x.elapsed > 0 {
				txps += float64(x.transactions) / x.elapsed.Seconds()
			}
			handled += float64(x.handled)
			rows += float64(x.rows)
		}
		n := float64(len(runs))
		rate, txps, handled, rows = rate/n, txps/n, handled/n, rows/n
		if i == 0 {
			base = rate
		}
		fmt.Fprintf(&b, "| %d | %.0f | %.1f× | %.0f | %.0f | %.0f |\n", size, rate, rate/base, txps, handled, rows)
	}
	for _, size := range r.sizes {
		for _, x := range r.runs[size] {
			if x.rows != x.handled {
				fmt.Fprintf(&b, "\nRows differ from messages handled where a batch committed while the run was being stopped (after the count).\n")
				fmt.Fprintf(&b, "\n")
				return b.String()
			}
		}
	}
	fmt.Fprintf(&b, "\nEvery handled message is one row in the database.\n\n")
	return b.String()
}
