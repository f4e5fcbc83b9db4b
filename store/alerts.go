package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"warren/alerts"
)

// Compile-time check: the store is the alerts evaluator's and dispatcher's persistence.
var _ alerts.Store = (*Store)(nil)

// RecordTransition upserts the alert row and inserts one outbox row per
// notification in a single transaction: either the new state and every
// delivery to make are stored, or nothing is. Each outbox row is due at once
// (next_attempt_at = the earlier of its CreatedAt and now). Its payload is the notification's Alert
// as JSON, frozen at the transition, so a retry sends what happened then even
// if the alert has changed since; a notification with an empty Alert.ID
// carries a instead. A delivery id that already exists is an error and
// nothing is stored.
func (s *Store) RecordTransition(ctx context.Context, a alerts.Alert, outbox []alerts.Notification) error {
	if a.ID == "" {
		return errors.New("recording alert transition: alert has no id")
	}
	now := s.now()
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var resolved sql.NullInt64
		if a.ResolvedAt != nil {
			resolved = sql.NullInt64{Int64: ms(*a.ResolvedAt), Valid: true}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO alerts
				(id, rule, severity, state, vhost, queue, value, threshold, started_at, resolved_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET
				rule = excluded.rule, severity = excluded.severity, state = excluded.state,
				vhost = excluded.vhost, queue = excluded.queue, value = excluded.value,
				threshold = excluded.threshold, started_at = excluded.started_at,
				resolved_at = excluded.resolved_at, updated_at = excluded.updated_at`,
			a.ID, a.Rule, a.Severity, a.State, a.Vhost, a.Queue, a.Value, a.Threshold,
			ms(a.StartedAt), resolved, ms(now)); err != nil {
			return fmt.Errorf("saving alert: %w", err)
		}
		if len(outbox) == 0 {
			return nil
		}
		stmt, err := tx.PrepareContext(ctx, `INSERT INTO alert_outbox
				(delivery_id, webhook, status, alert_id, payload, created_at, attempts, next_attempt_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return fmt.Errorf("preparing outbox insert: %w", err)
		}
		defer stmt.Close()
		for _, n := range outbox {
			if n.DeliveryID == "" {
				return fmt.Errorf("outbox row for webhook %q has no delivery id", n.Webhook)
			}
			payloadAlert := n.Alert
			if payloadAlert.ID == "" {
				payloadAlert = a
			}
			payload, err := json.Marshal(payloadAlert)
			if err != nil {
				return fmt.Errorf("encoding outbox payload %s: %w", n.DeliveryID, err)
			}
			created := n.CreatedAt
			if created.IsZero() {
				created = now
			}
			// Due at once: at its creation, or now if CreatedAt lies ahead
			// of the store's clock (a snapshot time from a skewed or test
			// clock must not hold a notification back).
			due := min(ms(created), ms(now))
			if _, err := stmt.ExecContext(ctx, n.DeliveryID, n.Webhook, n.Status, a.ID,
				string(payload), ms(created), n.Attempts, due); err != nil {
				return fmt.Errorf("queueing delivery %s to webhook %q: %w", n.DeliveryID, n.Webhook, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recording transition of alert %s to %s: %w", a.ID, a.State, err)
	}
	return nil
}

// alertColumns is the column list scanAlert reads.
const alertColumns = `id, rule, severity, state, vhost, queue, value, threshold, started_at, resolved_at`

func scanAlert(rows *sql.Rows) (alerts.Alert, error) {
	var (
		a        alerts.Alert
		started  int64
		resolved sql.NullInt64
	)
	if err := rows.Scan(&a.ID, &a.Rule, &a.Severity, &a.State, &a.Vhost, &a.Queue,
		&a.Value, &a.Threshold, &started, &resolved); err != nil {
		return a, err
	}
	a.StartedAt = fromMs(started)
	if resolved.Valid {
		t := fromMs(resolved.Int64)
		a.ResolvedAt = &t
	}
	return a, nil
}

func (s *Store) queryAlerts(ctx context.Context, query string, args ...any) ([]alerts.Alert, error) {
	rows, err := s.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []alerts.Alert{}
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// ActiveAlerts returns the alerts currently firing, oldest first.
func (s *Store) ActiveAlerts(ctx context.Context) ([]alerts.Alert, error) {
	out, err := s.queryAlerts(ctx, `SELECT `+alertColumns+` FROM alerts
		WHERE state = 'firing' ORDER BY started_at, id`)
	if err != nil {
		return nil, fmt.Errorf("reading active alerts: %w", err)
	}
	return out, nil
}

// AlertHistory returns up to limit alerts, firing or resolved, the most
// recently changed first. limit <= 0 means 100.
func (s *Store) AlertHistory(ctx context.Context, limit int) ([]alerts.Alert, error) {
	if limit <= 0 {
		limit = 100
	}
	out, err := s.queryAlerts(ctx, `SELECT `+alertColumns+` FROM alerts
		ORDER BY updated_at DESC, started_at DESC, id LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("reading alert history: %w", err)
	}
	return out, nil
}

// PendingNotifications returns up to limit outbox rows that are neither
// delivered nor abandoned and are due at now, oldest first. limit <= 0 means
// no limit.
func (s *Store) PendingNotifications(ctx context.Context, now time.Time, limit int) ([]alerts.Notification, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := s.reader.QueryContext(ctx, `SELECT delivery_id, webhook, status, payload, created_at, attempts
		FROM alert_outbox
		WHERE delivered_at IS NULL AND failed_permanently = 0 AND next_attempt_at <= ?
		ORDER BY created_at, delivery_id LIMIT ?`, ms(now), limit)
	if err != nil {
		return nil, fmt.Errorf("reading pending notifications: %w", err)
	}
	defer rows.Close()
	var out []alerts.Notification
	for rows.Next() {
		var (
			n       alerts.Notification
			payload string
			created int64
		)
		if err := rows.Scan(&n.DeliveryID, &n.Webhook, &n.Status, &payload, &created, &n.Attempts); err != nil {
			return nil, fmt.Errorf("reading pending notifications: %w", err)
		}
		if err := json.Unmarshal([]byte(payload), &n.Alert); err != nil {
			return nil, fmt.Errorf("decoding payload of delivery %s: %w", n.DeliveryID, err)
		}
		n.CreatedAt = fromMs(created)
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading pending notifications: %w", err)
	}
	return out, nil
}

// MarkDelivered records a successful delivery (counted as an attempt); the
// row leaves the pending set. Marking a row already delivered or abandoned
// changes nothing; an unknown id is ErrNotFound.
func (s *Store) MarkDelivered(ctx context.Context, deliveryID string, at time.Time) error {
	return s.updatePending(ctx, "marking delivery "+deliveryID+" delivered",
		`UPDATE alert_outbox SET delivered_at = ?, attempts = attempts + 1
		WHERE delivery_id = ? AND delivered_at IS NULL AND failed_permanently = 0`,
		deliveryID, ms(at), deliveryID)
}

// MarkFailed records a failed attempt: attempts+1, the error, and when the
// row is due again.
func (s *Store) MarkFailed(ctx context.Context, deliveryID string, attemptErr string, next time.Time) error {
	return s.updatePending(ctx, "marking delivery "+deliveryID+" failed",
		`UPDATE alert_outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?
		WHERE delivery_id = ? AND delivered_at IS NULL AND failed_permanently = 0`,
		deliveryID, attemptErr, ms(next), deliveryID)
}

// MarkAbandoned records a final failed attempt (e.g. the receiver answered
// 4xx): the row is kept with its reason but is never retried.
func (s *Store) MarkAbandoned(ctx context.Context, deliveryID, reason string) error {
	return s.updatePending(ctx, "abandoning delivery "+deliveryID,
		`UPDATE alert_outbox SET attempts = attempts + 1, last_error = ?, failed_permanently = 1
		WHERE delivery_id = ? AND delivered_at IS NULL AND failed_permanently = 0`,
		deliveryID, reason, deliveryID)
}

// updatePending runs an update that only touches pending rows. When it
// touches none, it tells an unknown id (ErrNotFound) from a row that already
// left the pending set (nil: the caller's view is simply stale).
func (s *Store) updatePending(ctx context.Context, what, query, deliveryID string, args ...any) error {
	res, err := s.writer.ExecContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n > 0 {
		return nil
	}
	var exists int
	err = s.writer.QueryRowContext(ctx, `SELECT 1 FROM alert_outbox WHERE delivery_id = ?`, deliveryID).Scan(&exists)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
