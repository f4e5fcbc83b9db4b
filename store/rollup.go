package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

// Retention says how long each resolution of queue history is kept.
type Retention struct {
	Raw    time.Duration // samples at the poll interval; default 6h
	Minute time.Duration // 1-minute rollups; default 7 days
	Hour   time.Duration // 1-hour rollups; default 90 days
}

// Retention defaults (README: store.raw_retention, minute_retention, hour_retention).
const (
	DefaultRawRetention    = 6 * time.Hour
	DefaultMinuteRetention = 7 * 24 * time.Hour
	DefaultHourRetention   = 90 * 24 * time.Hour
)

// DefaultRetention returns the default retention of every resolution.
func DefaultRetention() Retention {
	return Retention{Raw: DefaultRawRetention, Minute: DefaultMinuteRetention, Hour: DefaultHourRetention}
}

// Resolution names the table a chart query was answered from.
type Resolution string

// Resolutions of stored queue history, finest first.
const (
	ResolutionRaw    Resolution = "raw"
	ResolutionMinute Resolution = "1m"
	ResolutionHour   Resolution = "1h"
)

// rollupLateness is how long after a minute ends it is rolled up. A sample is
// stamped with its poll's start and written when the poll ends, which can be
// a request timeout or more later; a minute rolled up too early would miss it.
const rollupLateness = 2 * time.Minute

// rollupChunk bounds how many minutes (or hours) one rollup transaction
// covers, so catching up after downtime never holds the writer for long.
const rollupChunk = 60

// level describes one rollup level: the table it is built into, the table it
// is built from and its bucket width.
type level struct {
	res    Resolution
	table  string
	source string
	width  time.Duration
	// fromRollup: the source already holds buckets with a samples column,
	// so averages are weighted by it.
	fromRollup bool
}

var (
	levelMinute = level{res: ResolutionMinute, table: "queue_rollups_1m", source: "queue_samples", width: time.Minute}
	levelHour   = level{res: ResolutionHour, table: "queue_rollups_1h", source: "queue_rollups_1m", width: time.Hour, fromRollup: true}
)

// aggregateSQL returns a SELECT producing rollup rows of l from its source,
// for the queues selected by queueFilter ("IN (SELECT id FROM queues)" or
// "= ?") and ts in [?, ?). Table names come from the fixed levels above.
func (l level) aggregateSQL(queueFilter string) string {
	w := l.width.Milliseconds()
	bucket := fmt.Sprintf("(ts - ts %% %d)", w)
	avgInt := func(col string) string {
		if l.fromRollup {
			return fmt.Sprintf("CAST(round(sum(%[1]s * samples) * 1.0 / sum(CASE WHEN %[1]s IS NOT NULL THEN samples END)) AS INTEGER)", col)
		}
		return fmt.Sprintf("CAST(round(avg(%s)) AS INTEGER)", col)
	}
	avgReal := func(col string) string {
		if l.fromRollup {
			return fmt.Sprintf("sum(%[1]s * samples) / sum(CASE WHEN %[1]s IS NOT NULL THEN samples END)", col)
		}
		return fmt.Sprintf("avg(%s)", col)
	}
	samples, maxCol := "count(*)", "max(messages)"
	if l.fromRollup {
		samples, maxCol = "sum(samples)", "max(messages_max)"
	}
	// Aliases differ from every source column so GROUP BY cannot mistake one
	// for the other.
	return `SELECT queue_id AS b_queue, ` + bucket + ` AS b_ts, ` + samples + ` AS b_samples, ` +
		avgInt("messages") + ` AS b_messages, ` + maxCol + ` AS b_max, ` +
		avgInt("ready") + ` AS b_ready, ` + avgInt("unacked") + ` AS b_unacked, ` +
		avgInt("consumers") + ` AS b_consumers, ` +
		avgReal("ingress_rate") + ` AS b_ingress, ` + avgReal("egress_rate") + ` AS b_egress` +
		` FROM ` + l.source + ` WHERE queue_id ` + queueFilter + ` AND ts >= ? AND ts < ?
		GROUP BY queue_id, ` + bucket
}

// Rollup computes every complete 1-minute bucket from the raw samples and
// every complete 1-hour bucket from the minutes, up to now. It resumes where
// the last call stopped (rollup_state) and is idempotent: a bucket computed
// twice is replaced. It returns how many rollup rows it wrote.
func (s *Store) Rollup(ctx context.Context, now time.Time) (int64, error) {
	minuteEnd := now.Add(-rollupLateness).Truncate(time.Minute)
	n1, err := s.rollupLevel(ctx, levelMinute, now.Add(-s.retention.Raw), minuteEnd)
	if err != nil {
		return n1, err
	}
	minuteDone, err := s.doneUntil(ctx, levelMinute)
	if err != nil {
		return n1, err
	}
	n2, err := s.rollupLevel(ctx, levelHour, now.Add(-s.retention.Minute), fromMs(minuteDone).Truncate(time.Hour))
	return n1 + n2, err
}

// doneUntil returns the exclusive end (ms) of the buckets of l computed so
// far, 0 if none.
func (s *Store) doneUntil(ctx context.Context, l level) (int64, error) {
	var v int64
	err := s.writer.QueryRowContext(ctx, `SELECT done_until FROM rollup_state WHERE level = ?`, string(l.res)).Scan(&v)
	if err == sql.ErrNoRows {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading rollup state of %s: %w", l.res, err)
	}
	return v, nil
}

// rollupLevel computes the buckets of l from its watermark (or from
// oldest, when nothing was rolled up yet or the watermark is older than the
// source can hold) to end, a chunk per transaction.
func (s *Store) rollupLevel(ctx context.Context, l level, oldest, end time.Time) (int64, error) {
	w := l.width.Milliseconds()
	done, err := s.doneUntil(ctx, l)
	if err != nil {
		return 0, err
	}
	start := done
	if floor := ms(oldest.Truncate(l.width)); start < floor {
		start = floor
	}
	stop := ms(end)
	insert := `INSERT OR REPLACE INTO ` + l.table + `
		(queue_id, ts, samples, messages, messages_max, ready, unacked, consumers, ingress_rate, egress_rate) ` +
		l.aggregateSQL("IN (SELECT id FROM queues)")
	var total int64
	for from := start; from < stop; from += rollupChunk * w {
		to := min(from+rollupChunk*w, stop)
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			res, err := tx.ExecContext(ctx, insert, from, to)
			if err != nil {
				return err
			}
			n, _ := res.RowsAffected()
			total += n
			_, err = tx.ExecContext(ctx, `INSERT INTO rollup_state (level, done_until) VALUES (?, ?)
				ON CONFLICT (level) DO UPDATE SET done_until = excluded.done_until`, string(l.res), to)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("rolling up %s from %s: %w", l.res, fromMs(from).Format(time.RFC3339), err)
		}
	}
	return total, nil
}

// chooseResolution picks the table for a window: the finest one that still
// holds from and gives a chart a sensible number of points (at most a few
// thousand).
func (s *Store) chooseResolution(from, to, now time.Time) Resolution {
	window, age := to.Sub(from), now.Sub(from)
	switch {
	case window <= 2*time.Hour && age <= s.retention.Raw:
		return ResolutionRaw
	case window <= 3*24*time.Hour && age <= s.retention.Minute:
		return ResolutionMinute
	default:
		return ResolutionHour
	}
}

// maxChartPoints is the most points QueueSeries returns from a rollup
// resolution: a chart is a few hundred pixels wide, and turning each row
// into a Go value is what costs most in a query.
const maxChartPoints = 400

// downsampleSQL merges the rows of union (columns of a rollup table) into
// buckets of step ms. step is an integer computed by QueueSeries.
func downsampleSQL(union string, step int64) string {
	b := fmt.Sprintf("(ts - ts %% %d)", step)
	wInt := func(col string) string {
		return fmt.Sprintf("CAST(round(sum(%[1]s * samples) * 1.0 / sum(CASE WHEN %[1]s IS NOT NULL THEN samples END)) AS INTEGER)", col)
	}
	wReal := func(col string) string {
		return fmt.Sprintf("sum(%[1]s * samples) / sum(CASE WHEN %[1]s IS NOT NULL THEN samples END)", col)
	}
	return `SELECT ` + b + ` AS d_ts, ` + wInt("messages") + `, max(messages_max), ` + wInt("ready") + `, ` +
		wInt("unacked") + `, ` + wInt("consumers") + `, ` + wReal("ingress_rate") + `, ` + wReal("egress_rate") +
		` FROM (` + union + `) GROUP BY d_ts ORDER BY d_ts`
}

// QueueSeries answers a chart query: the history of one queue between from
// and to, oldest first, from the resolution that suits the window (raw
// samples up to 2 hours, minutes up to 3 days, hours beyond), and says which
// one it used. Windows that would give more than maxChartPoints minutes or
// hours are merged into wider buckets, reported as e.g. "4m" or "6h". Buckets not rolled up yet (the last minutes or hour) are
// computed on the fly from the finer table, so a chart reaches the present.
func (s *Store) QueueSeries(ctx context.Context, vhost, name string, from, to time.Time) ([]QueuePoint, Resolution, error) {
	if !to.After(from) {
		return nil, "", fmt.Errorf("queue series of %q in vhost %q: to %s is not after from %s",
			name, vhost, to.UTC().Format(time.RFC3339), from.UTC().Format(time.RFC3339))
	}
	res := s.chooseResolution(from, to, s.now())
	// A long window of a rollup resolution is merged into wider buckets,
	// a whole multiple of the stored one, so at most maxChartPoints remain.
	var step int64
	if res != ResolutionRaw {
		width := time.Minute
		if res == ResolutionHour {
			width = time.Hour
		}
		if n := int64(to.Sub(from) / width); n > maxChartPoints {
			mult := (n + maxChartPoints - 1) / maxChartPoints
			step = mult * width.Milliseconds()
			if res == ResolutionHour {
				res = Resolution(fmt.Sprintf("%dh", mult))
			} else {
				res = Resolution(fmt.Sprintf("%dm", mult))
			}
		}
	}
	pts, err := s.readPoints(ctx, baseResolution(res), vhost, name, ms(from), ms(to)+1, step)
	if err != nil {
		return nil, res, fmt.Errorf("queue series of %q in vhost %q (%s): %w", name, vhost, res, err)
	}
	return pts, res, nil
}

// baseResolution maps a merged resolution ("6h") to the table it is read
// from.
func baseResolution(r Resolution) Resolution {
	switch {
	case r == ResolutionRaw || r == ResolutionMinute || r == ResolutionHour:
		return r
	case strings.HasSuffix(string(r), "h"):
		return ResolutionHour
	default:
		return ResolutionMinute
	}
}

// readPoints reads points of one queue with lo <= ts < hi (ms). For rollup
// resolutions, the buckets past the level's watermark are aggregated from
// the finer table.
//
// step, when not 0, merges the points of a rollup resolution into buckets
// of step ms (weighted by their sample counts) inside SQLite.
func (s *Store) readPoints(ctx context.Context, res Resolution, vhost, name string, lo, hi, step int64) ([]QueuePoint, error) {
	var id int64
	err := s.reader.QueryRowContext(ctx, `SELECT id FROM queues WHERE vhost = ? AND name = ?`, vhost, name).Scan(&id)
	if err == sql.ErrNoRows {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var (
		query string
		args  []any
	)
	switch res {
	case ResolutionRaw:
		query = `SELECT ts, messages, messages, ready, unacked, consumers, ingress_rate, egress_rate
			FROM queue_samples WHERE queue_id = ? AND ts >= ? AND ts < ? ORDER BY ts`
		args = []any{id, lo, hi}
	case ResolutionMinute, ResolutionHour:
		l := levelMinute
		if res == ResolutionHour {
			l = levelHour
		}
		var done int64
		if err := s.reader.QueryRowContext(ctx, `SELECT coalesce(max(done_until), 0) FROM rollup_state WHERE level = ?`,
			string(res)).Scan(&done); err != nil {
			return nil, err
		}
		stored := `SELECT ts, messages, messages_max, ready, unacked, consumers, ingress_rate, egress_rate, samples
			FROM ` + l.table + ` WHERE queue_id = ? AND ts >= ? AND ts < ?`
		tail := `SELECT b_ts, b_messages, b_max, b_ready, b_unacked, b_consumers, b_ingress, b_egress, b_samples FROM (` +
			l.aggregateSQL("= ?") + `)`
		union := `SELECT * FROM (` + stored + `) UNION ALL SELECT * FROM (` + tail + `)`
		query = `SELECT ts, messages, messages_max, ready, unacked, consumers, ingress_rate, egress_rate FROM (` + union + `) ORDER BY 1`
		if step != 0 {
			query = downsampleSQL(union, step)
		}
		args = []any{id, lo, min(hi, done), id, max(lo, done), hi}
	default:
		return nil, fmt.Errorf("unknown resolution %q", res)
	}
	rows, err := s.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []QueuePoint
	for rows.Next() {
		var (
			ts                                   int64
			messages, mmax, ready, unacked, cons sql.NullInt64
			ingress, egress                      sql.NullFloat64
		)
		if err := rows.Scan(&ts, &messages, &mmax, &ready, &unacked, &cons, &ingress, &egress); err != nil {
			return nil, err
		}
		out = append(out, QueuePoint{
			At: fromMs(ts), Messages: intPtr(messages), MessagesMax: intPtr(mmax),
			Ready: intPtr(ready), Unacked: intPtr(unacked), Consumers: intPtr(cons),
			IngressRate: floatPtr(ingress), EgressRate: floatPtr(egress),
		})
	}
	return out, rows.Err()
}
