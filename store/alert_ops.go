package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"warren/alerts"
)

var (
	_ alerts.SilenceSource   = (*Store)(nil)
	_ alerts.AttemptRecorder = (*Store)(nil)
	_ alerts.AckSource       = (*Store)(nil)
)

// AckAlert records who acknowledged an alert, when and why; a later ack
// replaces it. An unknown alert id is ErrNotFound.
func (s *Store) AckAlert(ctx context.Context, ack alerts.Ack) error {
	var exists int
	err := s.writer.QueryRowContext(ctx, `SELECT 1 FROM alerts WHERE id = ?`, ack.AlertID).Scan(&exists)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("acknowledging alert %s: %w: %w", ack.AlertID, ErrNotFound, alerts.ErrAlertNotFound)
	}
	if err != nil {
		return fmt.Errorf("acknowledging alert %s: %w", ack.AlertID, err)
	}
	if _, err := s.writer.ExecContext(ctx, `INSERT INTO alert_acks (alert_id, acked_by, acked_at, note) VALUES (?, ?, ?, ?)
		ON CONFLICT (alert_id) DO UPDATE SET acked_by = excluded.acked_by, acked_at = excluded.acked_at, note = excluded.note`,
		ack.AlertID, ack.By, ms(ack.At), ack.Note); err != nil {
		return fmt.Errorf("acknowledging alert %s: %w", ack.AlertID, err)
	}
	return nil
}

// AlertAck returns an alert's acknowledgement, or ok false if it has none.
func (s *Store) AlertAck(ctx context.Context, alertID string) (alerts.Ack, bool, error) {
	a := alerts.Ack{AlertID: alertID}
	var at int64
	err := s.reader.QueryRowContext(ctx, `SELECT acked_by, acked_at, note FROM alert_acks WHERE alert_id = ?`, alertID).
		Scan(&a.By, &at, &a.Note)
	if errors.Is(err, sql.ErrNoRows) {
		return a, false, nil
	}
	if err != nil {
		return a, false, fmt.Errorf("reading ack of alert %s: %w", alertID, err)
	}
	a.At = fromMs(at)
	return a, true, nil
}

// CreateSilence stores a silence and returns it with its id.
func (s *Store) CreateSilence(ctx context.Context, sl alerts.Silence) (alerts.Silence, error) {
	if sl.CreatedAt.IsZero() {
		sl.CreatedAt = s.now()
	}
	res, err := s.writer.ExecContext(ctx, `INSERT INTO alert_silences (rule, vhost, queue, ends_at, owner, reason, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, sl.Rule, sl.Vhost, sl.Queue, ms(sl.EndsAt), sl.Owner, sl.Reason, ms(sl.CreatedAt))
	if err != nil {
		return sl, fmt.Errorf("creating silence: %w", err)
	}
	if sl.ID, err = res.LastInsertId(); err != nil {
		return sl, fmt.Errorf("creating silence: %w", err)
	}
	sl.EndsAt, sl.CreatedAt = fromMs(ms(sl.EndsAt)), fromMs(ms(sl.CreatedAt))
	return sl, nil
}

// ActiveSilences returns the silences that end after now, soonest end first.
func (s *Store) ActiveSilences(ctx context.Context, now time.Time) ([]alerts.Silence, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT id, rule, vhost, queue, ends_at, owner, reason, created_at
		FROM alert_silences WHERE ends_at > ? ORDER BY ends_at, id`, ms(now))
	if err != nil {
		return nil, fmt.Errorf("reading silences: %w", err)
	}
	defer rows.Close()
	out := []alerts.Silence{}
	for rows.Next() {
		var (
			sl           alerts.Silence
			ends, create int64
		)
		if err := rows.Scan(&sl.ID, &sl.Rule, &sl.Vhost, &sl.Queue, &ends, &sl.Owner, &sl.Reason, &create); err != nil {
			return nil, fmt.Errorf("reading silences: %w", err)
		}
		sl.EndsAt, sl.CreatedAt = fromMs(ends), fromMs(create)
		out = append(out, sl)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading silences: %w", err)
	}
	return out, nil
}

// ExpireSilence ends a silence in force at at: its ends_at becomes at and
// the row stays as history. It returns the silence as it was before. An
// unknown id wraps ErrNotFound and alerts.ErrSilenceNotFound; one that had
// already ended by at wraps alerts.ErrSilenceEnded, and nothing changes.
func (s *Store) ExpireSilence(ctx context.Context, id int64, at time.Time) (alerts.Silence, error) {
	sl := alerts.Silence{ID: id}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var ends, created int64
		err := tx.QueryRowContext(ctx, `SELECT rule, vhost, queue, ends_at, owner, reason, created_at
			FROM alert_silences WHERE id = ?`, id).
			Scan(&sl.Rule, &sl.Vhost, &sl.Queue, &ends, &sl.Owner, &sl.Reason, &created)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: %w", ErrNotFound, alerts.ErrSilenceNotFound)
		}
		if err != nil {
			return err
		}
		sl.EndsAt, sl.CreatedAt = fromMs(ends), fromMs(created)
		if ends <= ms(at) {
			return fmt.Errorf("%w at %s", alerts.ErrSilenceEnded, sl.EndsAt.Format(time.RFC3339))
		}
		_, err = tx.ExecContext(ctx, `UPDATE alert_silences SET ends_at = ? WHERE id = ?`, ms(at), id)
		return err
	})
	if err != nil {
		return sl, fmt.Errorf("expiring silence %d: %w", id, err)
	}
	return sl, nil
}

// RecordAttempt adds one delivery attempt to the delivery log.
func (s *Store) RecordAttempt(ctx context.Context, a alerts.Attempt) error {
	if _, err := s.writer.ExecContext(ctx, `INSERT INTO alert_delivery_attempts
		(delivery_id, webhook, alert_id, status, at, outcome, latency_ms, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		a.DeliveryID, a.Webhook, a.AlertID, a.Status, ms(a.At), a.Outcome, a.LatencyMs, a.Error); err != nil {
		return fmt.Errorf("recording delivery attempt %s: %w", a.DeliveryID, err)
	}
	return nil
}

// DeliveryLog returns up to limit attempts, most recent first (limit <= 0
// means 100).
func (s *Store) DeliveryLog(ctx context.Context, limit int) ([]alerts.Attempt, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.reader.QueryContext(ctx, `SELECT delivery_id, webhook, alert_id, status, at, outcome, latency_ms, error
		FROM alert_delivery_attempts ORDER BY at DESC, rowid DESC LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("reading delivery log: %w", err)
	}
	defer rows.Close()
	out := []alerts.Attempt{}
	for rows.Next() {
		var (
			a  alerts.Attempt
			at int64
		)
		if err := rows.Scan(&a.DeliveryID, &a.Webhook, &a.AlertID, &a.Status, &at, &a.Outcome, &a.LatencyMs, &a.Error); err != nil {
			return nil, fmt.Errorf("reading delivery log: %w", err)
		}
		a.At = fromMs(at)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading delivery log: %w", err)
	}
	return out, nil
}

// LastNotified returns, for each firing alert, when its last firing
// notification entered the outbox (alerts.NotifiedSource).
func (s *Store) LastNotified(ctx context.Context) (map[string]time.Time, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT o.alert_id, max(o.created_at) FROM alert_outbox o
		JOIN alerts a ON a.id = o.alert_id
		WHERE a.state = 'firing' AND o.status = 'firing' GROUP BY o.alert_id`)
	if err != nil {
		return nil, fmt.Errorf("reading last notifications: %w", err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var (
			id string
			at int64
		)
		if err := rows.Scan(&id, &at); err != nil {
			return nil, fmt.Errorf("reading last notifications: %w", err)
		}
		out[id] = fromMs(at)
	}
	return out, rows.Err()
}
