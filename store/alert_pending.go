package store

import (
	"context"
	"fmt"

	"warren/alerts"
)

// SavePending records (or refreshes) a condition waiting out its rule's
// "for" duration (alerts.PendingStore).
func (s *Store) SavePending(ctx context.Context, w alerts.PendingWait) error {
	if _, err := s.writer.ExecContext(ctx, `INSERT INTO alert_pending (rule, vhost, queue, since, seen_at)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (rule, vhost, queue) DO UPDATE SET since = excluded.since, seen_at = excluded.seen_at`,
		w.Rule, w.Vhost, w.Queue, ms(w.Since), ms(w.SeenAt)); err != nil {
		return fmt.Errorf("saving pending %s for %q: %w", w.Rule, w.Queue, err)
	}
	return nil
}

// DeletePending forgets a waiting condition: it cleared, fired or its
// target is gone.
func (s *Store) DeletePending(ctx context.Context, rule, vhost, queue string) error {
	if _, err := s.writer.ExecContext(ctx, `DELETE FROM alert_pending WHERE rule = ? AND vhost = ? AND queue = ?`,
		rule, vhost, queue); err != nil {
		return fmt.Errorf("deleting pending %s for %q: %w", rule, queue, err)
	}
	return nil
}

// PendingWaits returns every waiting condition.
func (s *Store) PendingWaits(ctx context.Context) ([]alerts.PendingWait, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT rule, vhost, queue, since, seen_at FROM alert_pending`)
	if err != nil {
		return nil, fmt.Errorf("reading pending alert waits: %w", err)
	}
	defer rows.Close()
	var out []alerts.PendingWait
	for rows.Next() {
		var (
			w           alerts.PendingWait
			since, seen int64
		)
		if err := rows.Scan(&w.Rule, &w.Vhost, &w.Queue, &since, &seen); err != nil {
			return nil, fmt.Errorf("reading pending alert waits: %w", err)
		}
		w.Since, w.SeenAt = fromMs(since), fromMs(seen)
		out = append(out, w)
	}
	return out, rows.Err()
}
