package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"warren/consumers"
)

// ConsumerPoint is one point of a consumer's history: one stored sample (one
// sample interval), or several merged into a bucket (At = bucket start). Nil
// means not recorded: no message handled in the bucket (latencies), or rows
// written before warren recorded the field (retries, dead letters, e2e).
type ConsumerPoint struct {
	At        time.Time
	Processed int64
	Failed    int64
	Slow      int64
	// Retried and DeadLettered are nil for buckets with no row recording them.
	Retried      *int64
	DeadLettered *int64
	// Rate is messages handled per second over the bucket's sample intervals.
	Rate *float64
	// Handler latency percentiles. A merged bucket has the mean of its
	// samples' percentiles weighted by the messages each covered: a chart
	// value, not an exact percentile of the bucket. MaxMs is the true max.
	P50Ms, P95Ms, P99Ms, MaxMs *float64
	// End-to-end latency (publish to handled), merged the same way.
	E2EP50Ms, E2EP95Ms, E2EP99Ms *float64
}

// consumerRollupTables are the consumer rollup levels, folded in by
// WriteConsumerSamples.
var consumerRollupTables = []struct {
	table string
	width time.Duration
}{
	{"consumer_rollups_1m", time.Minute},
	{"consumer_rollups_1h", time.Hour},
}

// sampleWeight is how many messages a sample's percentiles stand for: the
// messages it handled, at least 1 when it has percentiles at all.
func sampleWeight(c consumers.Sample) int64 { return max(c.Processed+c.Failed, 1) }

// weighted returns p*w (nil when p is nil) and w (0 when p is nil).
func weighted(p *float64, w int64) (sql.NullFloat64, int64) {
	if p == nil {
		return sql.NullFloat64{}, 0
	}
	return sql.NullFloat64{Float64: *p * float64(w), Valid: true}, w
}

// rollupConsumerSamples folds samples into the consumer rollups inside the
// caller's transaction and drops buckets older than their retention for the
// consumers written. The minute and hour levels use the store's minute and
// hour retention.
func (s *Store) rollupConsumerSamples(ctx context.Context, tx *sql.Tx, samples []consumers.Sample) error {
	now := s.now()
	keep := map[string]time.Duration{
		"consumer_rollups_1m": s.retention.Minute,
		"consumer_rollups_1h": s.retention.Hour,
	}
	for _, lvl := range consumerRollupTables {
		// Sums skip NULLs: a percentile unknown in one sample leaves the
		// bucket's sum and weight as they were.
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO `+lvl.table+`
			(consumer, ts, samples, interval_ms, processed, failed, slow, retried, dead_lettered,
			 lat_weight, p50_sum, p95_sum, p99_sum, max_ms, e2e_weight, e2e_p50_sum, e2e_p95_sum, e2e_p99_sum)
			VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (consumer, ts) DO UPDATE SET
				samples = samples + 1,
				interval_ms = interval_ms + excluded.interval_ms,
				processed = processed + excluded.processed,
				failed = failed + excluded.failed,
				slow = slow + excluded.slow,
				retried = retried + excluded.retried,
				dead_lettered = dead_lettered + excluded.dead_lettered,
				lat_weight = lat_weight + excluded.lat_weight,
				p50_sum = CASE WHEN excluded.p50_sum IS NULL THEN p50_sum ELSE coalesce(p50_sum, 0) + excluded.p50_sum END,
				p95_sum = CASE WHEN excluded.p95_sum IS NULL THEN p95_sum ELSE coalesce(p95_sum, 0) + excluded.p95_sum END,
				p99_sum = CASE WHEN excluded.p99_sum IS NULL THEN p99_sum ELSE coalesce(p99_sum, 0) + excluded.p99_sum END,
				max_ms = CASE WHEN max_ms IS NULL OR excluded.max_ms > max_ms THEN excluded.max_ms ELSE max_ms END,
				e2e_weight = e2e_weight + excluded.e2e_weight,
				e2e_p50_sum = CASE WHEN excluded.e2e_p50_sum IS NULL THEN e2e_p50_sum ELSE coalesce(e2e_p50_sum, 0) + excluded.e2e_p50_sum END,
				e2e_p95_sum = CASE WHEN excluded.e2e_p95_sum IS NULL THEN e2e_p95_sum ELSE coalesce(e2e_p95_sum, 0) + excluded.e2e_p95_sum END,
				e2e_p99_sum = CASE WHEN excluded.e2e_p99_sum IS NULL THEN e2e_p99_sum ELSE coalesce(e2e_p99_sum, 0) + excluded.e2e_p99_sum END`)
		if err != nil {
			return fmt.Errorf("preparing %s: %w", lvl.table, err)
		}
		defer stmt.Close()
		seen := map[string]bool{}
		for _, c := range samples {
			w := sampleWeight(c)
			p50, lw := weighted(c.LatencyP50Ms, w)
			p95, _ := weighted(c.LatencyP95Ms, w)
			p99, _ := weighted(c.LatencyP99Ms, w)
			e50, ew := weighted(c.E2EP50Ms, w)
			e95, _ := weighted(c.E2EP95Ms, w)
			e99, _ := weighted(c.E2EP99Ms, w)
			bucket := ms(c.At.Truncate(lvl.width))
			if _, err := stmt.ExecContext(ctx, c.Consumer, bucket, c.Interval.Milliseconds(),
				c.Processed, c.Failed, c.Slow, c.Retried, c.DeadLettered,
				lw, p50, p95, p99, nullFloat(c.LatencyMaxMs), ew, e50, e95, e99); err != nil {
				return fmt.Errorf("rolling up consumer %q into %s: %w", c.Consumer, lvl.table, err)
			}
			seen[c.Consumer] = true
		}
		cutoff := ms(now.Add(-keep[lvl.table]).Truncate(lvl.width))
		for name := range seen {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+lvl.table+` WHERE consumer = ? AND ts < ?`, name, cutoff); err != nil {
				return fmt.Errorf("pruning %s of consumer %q: %w", lvl.table, name, err)
			}
		}
	}
	return nil
}

// ConsumerSeries answers a chart query for one consumer between from and to,
// oldest first, and says at which resolution, like QueueSeries: single
// samples for windows up to 2 hours (within the raw retention), 1-minute
// rollups up to 3 days, 1-hour rollups beyond, merged into wider buckets
// (reported as e.g. "4m", "6h") so at most maxChartPoints remain.
func (s *Store) ConsumerSeries(ctx context.Context, consumer string, from, to time.Time) ([]ConsumerPoint, Resolution, error) {
	if !to.After(from) {
		return nil, "", fmt.Errorf("consumer series of %q: to %s is not after from %s",
			consumer, to.UTC().Format(time.RFC3339), from.UTC().Format(time.RFC3339))
	}
	res := s.chooseResolution(from, to, s.now())
	table := "consumer_rollups_1m"
	var step int64
	if res != ResolutionRaw {
		width, unit := time.Minute, "m"
		if res == ResolutionHour {
			width, unit, table = time.Hour, "h", "consumer_rollups_1h"
		}
		if n := int64(to.Sub(from) / width); n > maxChartPoints {
			mult := (n + maxChartPoints - 1) / maxChartPoints
			step = mult * width.Milliseconds()
			res = Resolution(fmt.Sprintf("%d%s", mult, unit))
		}
	}
	var (
		pts []ConsumerPoint
		err error
	)
	if res == ResolutionRaw {
		pts, err = s.readConsumerSamples(ctx, consumer, ms(from), ms(to)+1)
	} else {
		pts, err = s.readConsumerRollups(ctx, table, consumer, ms(from), ms(to)+1, step)
	}
	if err != nil {
		return nil, res, fmt.Errorf("consumer series of %q (%s): %w", consumer, res, err)
	}
	return pts, res, nil
}

// readConsumerSamples reads the raw samples of one consumer with
// lo <= ts < hi (ms).
func (s *Store) readConsumerSamples(ctx context.Context, consumer string, lo, hi int64) ([]ConsumerPoint, error) {
	return s.scanConsumerPoints(ctx, `SELECT ts, processed, failed, slow, retried, dead_lettered, interval_ms,
			p50_ms, p95_ms, p99_ms, max_ms, e2e_p50_ms, e2e_p95_ms, e2e_p99_ms
		FROM consumer_samples WHERE consumer = ? AND ts >= ? AND ts < ? ORDER BY ts`, consumer, lo, hi)
}

// readConsumerRollups reads one rollup table of one consumer with
// lo <= ts < hi (ms), merged into buckets of step ms when step is not 0.
func (s *Store) readConsumerRollups(ctx context.Context, table, consumer string, lo, hi, step int64) ([]ConsumerPoint, error) {
	bucket := "ts"
	if step > 0 {
		bucket = fmt.Sprintf("(ts - ts %% %d)", step)
	}
	avg := func(sum, weight string) string {
		return fmt.Sprintf("sum(%s) / nullif(sum(CASE WHEN %s IS NOT NULL THEN %s END), 0)", sum, sum, weight)
	}
	return s.scanConsumerPoints(ctx, `SELECT `+bucket+` AS c_ts, sum(processed), sum(failed), sum(slow),
			sum(retried), sum(dead_lettered), sum(interval_ms), `+
		avg("p50_sum", "lat_weight")+`, `+avg("p95_sum", "lat_weight")+`, `+avg("p99_sum", "lat_weight")+`, max(max_ms), `+
		avg("e2e_p50_sum", "e2e_weight")+`, `+avg("e2e_p95_sum", "e2e_weight")+`, `+avg("e2e_p99_sum", "e2e_weight")+`
		FROM `+table+` WHERE consumer = ? AND ts >= ? AND ts < ?
		GROUP BY c_ts ORDER BY c_ts`, consumer, lo, hi)
}

// scanConsumerPoints runs a query whose columns are ts, processed, failed,
// slow, retried, dead_lettered, interval_ms, p50, p95, p99, max, e2e p50,
// e2e p95, e2e p99.
func (s *Store) scanConsumerPoints(ctx context.Context, query string, args ...any) ([]ConsumerPoint, error) {
	rows, err := s.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ConsumerPoint
	for rows.Next() {
		var (
			ts, intervalMs      int64
			p                   ConsumerPoint
			retried, dead       sql.NullInt64
			p50, p95, p99, mx   sql.NullFloat64
			e2e50, e2e95, e2e99 sql.NullFloat64
		)
		if err := rows.Scan(&ts, &p.Processed, &p.Failed, &p.Slow, &retried, &dead, &intervalMs,
			&p50, &p95, &p99, &mx, &e2e50, &e2e95, &e2e99); err != nil {
			return nil, err
		}
		p.At = fromMs(ts)
		p.Retried, p.DeadLettered = intPtr(retried), intPtr(dead)
		if intervalMs > 0 {
			r := float64(p.Processed) * 1000 / float64(intervalMs)
			p.Rate = &r
		}
		p.P50Ms, p.P95Ms, p.P99Ms, p.MaxMs = floatPtr(p50), floatPtr(p95), floatPtr(p99), floatPtr(mx)
		p.E2EP50Ms, p.E2EP95Ms, p.E2EP99Ms = floatPtr(e2e50), floatPtr(e2e95), floatPtr(e2e99)
		out = append(out, p)
	}
	return out, rows.Err()
}
