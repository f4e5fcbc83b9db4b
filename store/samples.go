package store

import (
	"context"
	"database/sql"
	"fmt"
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

// QueuePoint is one stored sample of one queue. Nil = not reported by the broker.
type QueuePoint struct {
	At        time.Time
	Messages  *int64
	Ready     *int64
	Unacked   *int64
	Consumers *int64
}

// WriteQueueSamples stores the queues of one poll in one transaction with one
// prepared statement: a poll can hold 10,000 queues, and a transaction per row
// would hold the writer for seconds.
func (s *Store) WriteQueueSamples(ctx context.Context, at time.Time, queues []monitor.QueueSample) error {
	if len(queues) == 0 {
		return nil
	}
	ts := ms(at)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO queue_samples
			(ts, vhost, name, messages, ready, unacked, consumers) VALUES (?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, q := range queues {
			if _, err := stmt.ExecContext(ctx, ts, q.Vhost, q.Name,
				nullInt(q.Messages), nullInt(q.Ready), nullInt(q.Unacked), nullInt(q.Consumers)); err != nil {
				return fmt.Errorf("queue %q in vhost %q: %w", q.Name, q.Vhost, err)
			}
		}
		return nil
	})
	if err != nil {
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
			(ts, consumer, interval_ms, processed, failed, slow, p50_ms, p95_ms, p99_ms, max_ms)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, c := range samples {
			if _, err := stmt.ExecContext(ctx, ms(c.At), c.Consumer, c.Interval.Milliseconds(),
				c.Processed, c.Failed, c.Slow,
				nullFloat(c.LatencyP50Ms), nullFloat(c.LatencyP95Ms),
				nullFloat(c.LatencyP99Ms), nullFloat(c.LatencyMaxMs)); err != nil {
				return fmt.Errorf("consumer %q: %w", c.Consumer, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("writing %d consumer samples: %w", len(samples), err)
	}
	return nil
}

// QueueHistory returns the samples of one queue taken at or after since,
// oldest first.
func (s *Store) QueueHistory(ctx context.Context, vhost, name string, since time.Time) ([]QueuePoint, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT ts, messages, ready, unacked, consumers
		FROM queue_samples WHERE vhost = ? AND name = ? AND ts >= ? ORDER BY ts`,
		vhost, name, ms(since))
	if err != nil {
		return nil, fmt.Errorf("reading history of queue %q in vhost %q: %w", name, vhost, err)
	}
	defer rows.Close()
	var out []QueuePoint
	for rows.Next() {
		var (
			ts                                  int64
			messages, ready, unacked, consumers sql.NullInt64
		)
		if err := rows.Scan(&ts, &messages, &ready, &unacked, &consumers); err != nil {
			return nil, fmt.Errorf("reading history of queue %q in vhost %q: %w", name, vhost, err)
		}
		out = append(out, QueuePoint{
			At:        fromMs(ts),
			Messages:  intPtr(messages),
			Ready:     intPtr(ready),
			Unacked:   intPtr(unacked),
			Consumers: intPtr(consumers),
		})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading history of queue %q in vhost %q: %w", name, vhost, err)
	}
	return out, nil
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
