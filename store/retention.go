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

// Prune deletes raw queue and consumer samples taken before olderThan and
// returns how many rows it removed. Alerts and the outbox are kept.
func (s *Store) Prune(ctx context.Context, olderThan time.Time) (int64, error) {
	cutoff := ms(olderThan)
	var total int64
	for _, table := range []string{"queue_samples", "consumer_samples"} {
		// The table name comes from the fixed list above, never from input.
		q := `DELETE FROM ` + table + ` WHERE rowid IN
			(SELECT rowid FROM ` + table + ` WHERE ts < ? LIMIT ?)`
		for {
			res, err := s.writer.ExecContext(ctx, q, cutoff, pruneBatch)
			if err != nil {
				return total, fmt.Errorf("pruning %s older than %s: %w", table, olderThan.UTC().Format(time.RFC3339), err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return total, fmt.Errorf("pruning %s: %w", table, err)
			}
			total += n
			if n < pruneBatch {
				break
			}
		}
	}
	return total, nil
}

// RunRetention prunes samples older than keep at start and then every every,
// until ctx ends (it then returns nil). A failed pass is logged and retried at
// the next tick: retention falling behind must not stop the server.
func (s *Store) RunRetention(ctx context.Context, every, keep time.Duration) error {
	if every <= 0 {
		return fmt.Errorf("running retention: interval must be positive, got %s", every)
	}
	if keep <= 0 {
		return fmt.Errorf("running retention: keep must be positive, got %s", keep)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		s.retentionOnce(ctx, keep)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// retentionOnce is one retention pass.
func (s *Store) retentionOnce(ctx context.Context, keep time.Duration) {
	cutoff := s.now().Add(-keep)
	n, err := s.Prune(ctx, cutoff)
	switch {
	case err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()):
		// Shutting down; not worth a warning.
	case err != nil:
		s.logger.Warn("retention failed", "error", err, "deleted", n)
	default:
		s.logger.Debug("retention pass", "deleted", n, "cutoff", cutoff.UTC())
	}
}
