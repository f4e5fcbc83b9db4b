package store

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"warren/monitor"
)

// benchQueues is the number of queues of the full-history benchmark;
// WARREN_BENCH_QUEUES overrides it for a quick run.
func benchQueues(b *testing.B) int {
	if v := os.Getenv("WARREN_BENCH_QUEUES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("WARREN_BENCH_QUEUES=%q: want a positive integer", v)
		}
		return n
	}
	return 1000
}

// BenchmarkQueueSeries generates a full default history (6 h raw at 5 s,
// 7 d of 1-minute rollups, 90 d of 1-hour rollups) for benchQueues queues,
// reports the database size, then times chart queries for each window.
//
// The raw samples go through WriteQueueSamples, one poll at a time, as the
// poller writes them. The rollup tables are filled directly with INSERTs of
// the rows the rollup job would have produced: running the job over 90 days
// of simulated raw samples would mean writing 1.5 billion raw rows first.
func BenchmarkQueueSeries(b *testing.B) {
	ctx := context.Background()
	nq := benchQueues(b)
	now := time.Now().UTC().Truncate(time.Hour)
	path := filepath.Join(b.TempDir(), "bench.db")
	s, err := Open(ctx, path, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	s.now = func() time.Time { return now }

	rng := rand.New(rand.NewPCG(1, 2))
	queues := make([]monitor.QueueSample, nq)
	for i := range queues {
		queues[i] = monitor.QueueSample{Vhost: fmt.Sprintf("vhost-%d", i%10), Name: fmt.Sprintf("orders.service-%04d.events", i)}
	}
	depth := make([]int64, nq)
	sample := func(i int) monitor.QueueSample {
		depth[i] = max(0, depth[i]+rng.Int64N(21)-10)
		q := queues[i]
		q.Messages, q.Ready, q.Unacked, q.Consumers = ptr(depth[i]), ptr(depth[i]*9/10), ptr(depth[i]/10), ptr(int64(2))
		q.IngressRate, q.EgressRate = ptr(float64(rng.IntN(5000))/10), ptr(float64(rng.IntN(5000))/10)
		return q
	}

	start := time.Now()
	poll := make([]monitor.QueueSample, nq)
	var writeTotal time.Duration
	rawPolls := int(DefaultRawRetention / (5 * time.Second))
	for p := range rawPolls {
		for i := range poll {
			poll[i] = sample(i)
		}
		t0 := time.Now()
		if err := s.WriteQueueSamples(ctx, now.Add(-DefaultRawRetention+time.Duration(p)*5*time.Second), poll); err != nil {
			b.Fatal(err)
		}
		writeTotal += time.Since(t0)
	}
	rawTime := time.Since(start)

	fill := func(table string, width, keep time.Duration, samples int) {
		buckets := int(keep / width)
		for first := 0; first < buckets; first += 60 {
			err := s.inTx(ctx, func(tx *sql.Tx) error {
				stmt, err := tx.PrepareContext(ctx, `INSERT INTO `+table+`
					(queue_id, ts, samples, messages, messages_max, ready, unacked, consumers, ingress_rate, egress_rate)
					VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
				if err != nil {
					return err
				}
				defer stmt.Close()
				for k := first; k < min(first+60, buckets); k++ {
					ts := ms(now.Add(-keep + time.Duration(k)*width))
					for i := range nq {
						q := sample(i)
						if _, err := stmt.ExecContext(ctx, s.ids[queueKey{q.Vhost, q.Name}], ts, samples,
							*q.Messages, *q.Messages+5, *q.Ready, *q.Unacked, *q.Consumers,
							*q.IngressRate, *q.EgressRate); err != nil {
							return err
						}
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		if _, err := s.writer.ExecContext(ctx, `INSERT OR REPLACE INTO rollup_state (level, done_until) VALUES (?, ?)`,
			table[len(table)-2:], ms(now.Add(-rollupLateness).Truncate(width))); err != nil {
			b.Fatal(err)
		}
	}
	t0 := time.Now()
	fill("queue_rollups_1m", time.Minute, DefaultMinuteRetention, 12)
	fill("queue_rollups_1h", time.Hour, DefaultHourRetention, 60)
	rollupTime := time.Since(t0)
	if _, err := s.Checkpoint(ctx); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	fmt.Printf("%d queues: %d raw polls written in %s (mean %s per poll of %d queues), rollup tables filled in %s; database %.1f MB\n",
		nq, rawPolls, rawTime.Round(time.Second), (writeTotal / time.Duration(rawPolls)).Round(time.Microsecond), nq,
		rollupTime.Round(time.Second), float64(fi.Size())/1e6)

	for _, w := range []time.Duration{15 * time.Minute, time.Hour, 6 * time.Hour, 24 * time.Hour, 7 * 24 * time.Hour, 30 * 24 * time.Hour, 90 * 24 * time.Hour} {
		b.Run("window="+fmtWindow(w), func(b *testing.B) {
			var points int
			var res Resolution
			i := 0
			for b.Loop() {
				q := queues[i%nq]
				i++
				pts, r, err := s.QueueSeries(ctx, q.Vhost, q.Name, now.Add(-w), now)
				if err != nil {
					b.Fatal(err)
				}
				points, res = len(pts), r
			}
			b.ReportMetric(float64(points), "points")
			b.Logf("resolution %s", res)
		})
	}
	b.ReportMetric(float64(fi.Size())/1e6, "db_MB")
}

func fmtWindow(d time.Duration) string {
	if d >= 24*time.Hour {
		return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	}
	return d.String()
}

func ptr[T any](v T) *T { return &v }
