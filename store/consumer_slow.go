package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"warren/consumers"
)

// MaxSlowMessagesPerConsumer bounds the consumer_slow_messages table: only
// the most recent rows of each consumer are kept.
const MaxSlowMessagesPerConsumer = 1000

var _ consumers.SlowMessageWriter = (*Store)(nil)

// WriteSlowMessages stores slow-message samples in one transaction and trims
// each consumer named in msgs to its MaxSlowMessagesPerConsumer most recent
// rows.
func (s *Store) WriteSlowMessages(ctx context.Context, msgs []consumers.SlowMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		ins, err := tx.PrepareContext(ctx, `INSERT INTO consumer_slow_messages
			(consumer, message_type, message_id, duration_ms, e2e_ms, ts) VALUES (?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return fmt.Errorf("preparing slow-message insert: %w", err)
		}
		defer ins.Close()
		touched := map[string]bool{}
		for _, m := range msgs {
			var e2e sql.NullFloat64
			if m.EndToEnd > 0 {
				e2e = sql.NullFloat64{Float64: slowMs(m.EndToEnd), Valid: true}
			}
			if _, err := ins.ExecContext(ctx, m.Consumer, m.Type, m.MessageID, slowMs(m.Duration), e2e, ms(m.At)); err != nil {
				return fmt.Errorf("storing slow message of consumer %q: %w", m.Consumer, err)
			}
			touched[m.Consumer] = true
		}
		for name := range touched {
			if _, err := tx.ExecContext(ctx, `DELETE FROM consumer_slow_messages
				WHERE consumer = ? AND id <= (
					SELECT id FROM consumer_slow_messages WHERE consumer = ?
					ORDER BY id DESC LIMIT 1 OFFSET ?)`, name, name, MaxSlowMessagesPerConsumer); err != nil {
				return fmt.Errorf("trimming slow messages of consumer %q: %w", name, err)
			}
		}
		return nil
	})
}

// SlowMessages returns up to limit of a consumer's most recent slow-message
// samples, newest first.
func (s *Store) SlowMessages(ctx context.Context, consumer string, limit int) ([]consumers.SlowMessage, error) {
	rows, err := s.reader.QueryContext(ctx, `SELECT message_type, message_id, duration_ms, e2e_ms, ts
		FROM consumer_slow_messages WHERE consumer = ? ORDER BY id DESC LIMIT ?`, consumer, limit)
	if err != nil {
		return nil, fmt.Errorf("reading slow messages of consumer %q: %w", consumer, err)
	}
	defer rows.Close()
	var out []consumers.SlowMessage
	for rows.Next() {
		var (
			m      = consumers.SlowMessage{Consumer: consumer}
			durMsV float64
			e2e    sql.NullFloat64
			ts     int64
		)
		if err := rows.Scan(&m.Type, &m.MessageID, &durMsV, &e2e, &ts); err != nil {
			return nil, fmt.Errorf("reading slow messages of consumer %q: %w", consumer, err)
		}
		m.Duration = time.Duration(durMsV * float64(time.Millisecond))
		if e2e.Valid {
			m.EndToEnd = time.Duration(e2e.Float64 * float64(time.Millisecond))
		}
		m.At = fromMs(ts)
		out = append(out, m)
	}
	return out, rows.Err()
}

func slowMs(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
