package store

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"time"

	"warren/consumers"
	"warren/monitor"
)

// Compile-time checks: the store is the sample sink of the monitor and of the
// consumer aggregator.
var (
	_ monitor.SampleWriter   = (*Store)(nil)
	_ consumers.SampleWriter = (*Store)(nil)
)

// QueuePoint is one point of one queue's history: a raw sample, or the
// average over a rollup bucket (At = bucket start). Nil = not reported by the
// broker (or, for a bucket, in none of its samples).
type QueuePoint struct {
	At        time.Time
	Messages  *int64
	Ready     *int64
	Unacked   *int64
	Consumers *int64
	// MessagesMax is the highest depth seen in a rollup bucket; for a raw
	// sample it equals Messages.
	MessagesMax *int64
	IngressRate *float64 // messages/s into the queue, warren's own estimate
	EgressRate  *float64 // messages/s out of the queue, warren's own estimate
}

// queueKey identifies a queue: vhost and name are kept as separate strings.
type queueKey struct{ vhost, name string }

// queueIDs returns the ids of the given queues, creating the missing ones in
// tx. The caller holds s.idMu.
func (s *Store) queueIDs(ctx context.Context, tx *sql.Tx, queues []monitor.QueueSample) ([]int64, error) {
	out := make([]int64, len(queues))
	var ins, sel *sql.Stmt
	defer func() {
		if ins != nil {
			ins.Close()
		}
		if sel != nil {
			sel.Close()
		}
	}()
	for i, q := range queues {
		k := queueKey{q.Vhost, q.Name}
		if id, ok := s.ids[k]; ok {
			out[i] = id
			continue
		}
		if ins == nil {
			var err error
			if ins, err = tx.PrepareContext(ctx, `INSERT INTO queues (vhost, name) VALUES (?, ?) ON CONFLICT DO NOTHING`); err != nil {
				return nil, err
			}
			if sel, err = tx.PrepareContext(ctx, `SELECT id FROM queues WHERE vhost = ? AND name = ?`); err != nil {
				return nil, err
			}
		}
		if _, err := ins.ExecContext(ctx, q.Vhost, q.Name); err != nil {
			return nil, fmt.Errorf("queue %q in vhost %q: %w", q.Name, q.Vhost, err)
		}
		var id int64
		if err := sel.QueryRowContext(ctx, q.Vhost, q.Name).Scan(&id); err != nil {
			return nil, fmt.Errorf("queue %q in vhost %q: %w", q.Name, q.Vhost, err)
		}
		s.ids[k] = id
		out[i] = id
	}
	return out, nil
}

// WriteQueueSamples stores the queues of one poll in one transaction with one
// prepared statement: a poll can hold 10,000 queues, and a transaction per row
// would hold the writer for seconds.
func (s *Store) WriteQueueSamples(ctx context.Context, at time.Time, queues []monitor.QueueSample) error {
	if len(queues) == 0 {
		return nil
	}
	ts := ms(at)
	s.idMu.Lock()
	defer s.idMu.Unlock()
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		ids, err := s.queueIDs(ctx, tx, queues)
		if err != nil {
			return err
		}
		// OR REPLACE: a queue listed twice in one poll keeps its last reading
		// instead of failing the whole poll on the primary key.
		stmt, err := tx.PrepareContext(ctx, `INSERT OR REPLACE INTO queue_samples
			(queue_id, ts, messages, ready, unacked, consumers, ingress_rate, egress_rate)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for i, q := range queues {
			if _, err := stmt.ExecContext(ctx, ids[i], ts,
				nullInt(q.Messages), nullInt(q.Ready), nullInt(q.Unacked), nullInt(q.Consumers),
				nullFloat(q.IngressRate), nullFloat(q.EgressRate)); err != nil {
				return fmt.Errorf("queue %q in vhost %q: %w", q.Name, q.Vhost, err)
			}
		}
		return nil
	})
	if err != nil {
		// The transaction rolled back: ids created in it are gone.
		clear(s.ids)
		return fmt.Errorf("writing %d queue samples: %w", len(queues), err)
	}
	return nil
}

// WriteConsumerSamples stores per-interval consumer summaries in one transaction.
func (s *Store) WriteConsumerSamples(ctx context.Context, samples []consumers.Sample) error {
	if len(samples) == 0 {
		return nil
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO consumer_samples
			(ts, consumer, interval_ms, processed, failed, slow, p50_ms, p95_ms, p99_ms, max_ms,
			 retried, dead_lettered, e2e_p50_ms, e2e_p95_ms, e2e_p99_ms)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, c := range samples {
			if _, err := stmt.ExecContext(ctx, ms(c.At), c.Consumer, c.Interval.Milliseconds(),
				c.Processed, c.Failed, c.Slow,
				nullFloat(c.LatencyP50Ms), nullFloat(c.LatencyP95Ms),
				nullFloat(c.LatencyP99Ms), nullFloat(c.LatencyMaxMs),
				c.Retried, c.DeadLettered,
				nullFloat(c.E2EP50Ms), nullFloat(c.E2EP95Ms), nullFloat(c.E2EP99Ms)); err != nil {
				return fmt.Errorf("consumer %q: %w", c.Consumer, err)
			}
		}
		// The chart rollups move with the samples (consumer_series.go).
		return s.rollupConsumerSamples(ctx, tx, samples)
	})
	if err != nil {
		return fmt.Errorf("writing %d consumer samples: %w", len(samples), err)
	}
	return nil
}

// QueueHistory returns the raw samples of one queue taken at or after since,
// oldest first.
func (s *Store) QueueHistory(ctx context.Context, vhost, name string, since time.Time) ([]QueuePoint, error) {
	pts, err := s.readPoints(ctx, ResolutionRaw, vhost, name, ms(since), math.MaxInt64, 0)
	if err != nil {
		return nil, fmt.Errorf("reading history of queue %q in vhost %q: %w", name, vhost, err)
	}
	return pts, nil
}

// ConsumerHistory returns the samples of one consumer whose interval ended at
// or after since, oldest first.
func (s *Store) ConsumerHistory(ctx context.Context, consumer string, since time.Time) ([]consumers.Sample, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT ts, interval_ms, processed, failed, slow,
			p50_ms, p95_ms, p99_ms, max_ms
		FROM consumer_samples WHERE consumer = ? AND ts >= ? ORDER BY ts`,
		consumer, ms(since))
	if err != nil {
		return nil, fmt.Errorf("reading history of consumer %q: %w", consumer, err)
	}
	defer rows.Close()
	var out []consumers.Sample
	for rows.Next() {
		var (
			ts, intervalMs          int64
			c                       consumers.Sample
			p50, p95, p99, maxLaten sql.NullFloat64
		)
		if err := rows.Scan(&ts, &intervalMs, &c.Processed, &c.Failed, &c.Slow,
			&p50, &p95, &p99, &maxLaten); err != nil {
			return nil, fmt.Errorf("reading history of consumer %q: %w", consumer, err)
		}
		c.Consumer = consumer
		c.At = fromMs(ts)
		c.Interval = time.Duration(intervalMs) * time.Millisecond
		c.LatencyP50Ms, c.LatencyP95Ms = floatPtr(p50), floatPtr(p95)
		c.LatencyP99Ms, c.LatencyMaxMs = floatPtr(p99), floatPtr(maxLaten)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading history of consumer %q: %w", consumer, err)
	}
	return out, nil
}
