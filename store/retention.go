package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// pruneBatch bounds how many rows one delete transaction removes, so a large
// backlog of old samples never holds the single writer for long and polls
// keep being written while retention catches up.
const pruneBatch = 5000

// Delete statements, one per table, each removing at most one batch of rows
// older than a cutoff. The queue tables are WITHOUT ROWID, keyed by
// (queue_id, ts): "queue_id IN (SELECT id FROM queues)" lets SQLite walk one
// key range per queue instead of scanning the table.
var pruneStatements = map[string]string{
	"queue_samples":    queuePruneSQL("queue_samples"),
	"queue_rollups_1m": queuePruneSQL("queue_rollups_1m"),
	"queue_rollups_1h": queuePruneSQL("queue_rollups_1h"),
	"consumer_samples": `DELETE FROM consumer_samples WHERE rowid IN
		(SELECT rowid FROM consumer_samples WHERE ts < ? LIMIT ?)`,
	"alert_delivery_attempts": `DELETE FROM alert_delivery_attempts WHERE rowid IN
		(SELECT rowid FROM alert_delivery_attempts WHERE at < ? LIMIT ?)`,
}

func queuePruneSQL(table string) string {
	return `DELETE FROM ` + table + ` WHERE (queue_id, ts) IN
		(SELECT queue_id, ts FROM ` + table + ` WHERE queue_id IN (SELECT id FROM queues) AND ts < ? LIMIT ?)`
}

// pruneTable deletes rows of table older than cutoff (ms), batch by batch.
func (s *Store) pruneTable(ctx context.Context, table string, cutoff int64) (int64, error) {
	q := pruneStatements[table]
	var total int64
	for {
		res, err := s.writer.ExecContext(ctx, q, cutoff, pruneBatch)
		if err != nil {
			return total, fmt.Errorf("pruning %s older than %s: %w", table, fromMs(cutoff).Format(time.RFC3339), err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("pruning %s: %w", table, err)
		}
		total += n
		if n < pruneBatch {
			return total, nil
		}
	}
}

// Prune deletes raw queue and consumer samples taken before olderThan and
// returns how many rows it removed. Rollups, alerts and the outbox are kept.
func (s *Store) Prune(ctx context.Context, olderThan time.Time) (int64, error) {
	var total int64
	for _, table := range []string{"queue_samples", "consumer_samples"} {
		n, err := s.pruneTable(ctx, table, ms(olderThan))
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// PruneAll applies the retention of every resolution as of now: raw samples
// older than Retention.Raw, minutes older than Retention.Minute, hours older
// than Retention.Hour, then forgets queues that have no history left. It
// returns how many rows it removed.
func (s *Store) PruneAll(ctx context.Context, now time.Time) (int64, error) {
	total, err := s.Prune(ctx, now.Add(-s.retention.Raw))
	if err != nil {
		return total, err
	}
	for _, p := range []struct {
		table string
		keep  time.Duration
	}{
		{"queue_rollups_1m", s.retention.Minute},
		{"queue_rollups_1h", s.retention.Hour},
		// The delivery log is kept as long as the longest chart history.
		{"alert_delivery_attempts", s.retention.Hour},
	} {
		n, err := s.pruneTable(ctx, p.table, ms(now.Add(-p.keep)))
		total += n
		if err != nil {
			return total, err
		}
	}
	n, err := s.PruneAudit(ctx, now.Add(-DefaultAuditRetention))
	total += n
	if err != nil {
		return total, err
	}
	n, err = s.pruneQueueIDs(ctx)
	return total + n, err
}

// pruneQueueIDs deletes queues (ids) that no table refers to any more: a
// broker whose queues come and go must not grow the id table forever.
func (s *Store) pruneQueueIDs(ctx context.Context) (int64, error) {
	s.idMu.Lock()
	defer s.idMu.Unlock()
	res, err := s.writer.ExecContext(ctx, `DELETE FROM queues WHERE
		NOT EXISTS (SELECT 1 FROM queue_samples WHERE queue_id = queues.id) AND
		NOT EXISTS (SELECT 1 FROM queue_rollups_1m WHERE queue_id = queues.id) AND
		NOT EXISTS (SELECT 1 FROM queue_rollups_1h WHERE queue_id = queues.id)`)
	if err != nil {
		return 0, fmt.Errorf("pruning unused queue ids: %w", err)
	}
	n, _ := res.RowsAffected()
	if n > 0 {
		clear(s.ids)
	}
	return n, nil
}

// Checkpoint copies the WAL into the database file and truncates it. SQLite's
// automatic checkpoints never shrink the WAL file, and one that runs while a
// reader holds an old snapshot cannot reset it, so a busy server's WAL could
// grow without bound; a periodic TRUNCATE checkpoint keeps it small. It
// reports whether readers kept it from completing (it is then retried at the
// next pass).
func (s *Store) Checkpoint(ctx context.Context) (complete bool, err error) {
	var busy, logPages, done int
	if err := s.writer.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logPages, &done); err != nil {
		return false, fmt.Errorf("checkpointing WAL: %w", err)
	}
	return busy == 0, nil
}

// Maintain is one maintenance pass as of now: rollups, retention of every
// resolution, WAL checkpoint.
func (s *Store) Maintain(ctx context.Context, now time.Time) error {
	var errs []error
	rolled, err := s.Rollup(ctx, now)
	if err != nil {
		errs = append(errs, err)
	}
	deleted, err := s.PruneAll(ctx, now)
	if err != nil {
		errs = append(errs, err)
	}
	complete, err := s.Checkpoint(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	s.logger.Debug("store maintenance pass", "rollup_rows", rolled, "deleted", deleted, "checkpoint_complete", complete)
	return errors.Join(errs...)
}

// RunMaintenance runs a maintenance pass (Maintain) at start and then every
// every, until ctx ends (it then returns nil). A failed pass is logged and
// retried at the next tick: retention falling behind must not stop the server.
func (s *Store) RunMaintenance(ctx context.Context, every time.Duration) error {
	if every <= 0 {
		return fmt.Errorf("running store maintenance: interval must be positive, got %s", every)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		err := s.Maintain(ctx, s.now())
		switch {
		case err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()):
			// Shutting down; not worth a warning.
		case err != nil:
			s.logger.Warn("store maintenance failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
