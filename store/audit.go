package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// AuditEntry is one operator action in the audit log: who did what to which
// target, when, from where, the value before and the value asked for, and
// whether it took effect.
type AuditEntry struct {
	ID     int64     `json:"id"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Role   string    `json:"role"`
	Action string    `json:"action"`
	Target string    `json:"target"`
	// OldValue and NewValue are what the target had before and what the
	// action set (or tried to set); empty when they do not apply.
	OldValue string `json:"old_value"`
	NewValue string `json:"new_value"`
	// Outcome is AuditOK, AuditRejected, AuditFailed or AuditDenied.
	Outcome    string `json:"outcome"`
	Detail     string `json:"detail"`
	RemoteAddr string `json:"remote_addr"`
}

// Outcomes of an audited action.
const (
	AuditOK       = "ok"       // applied
	AuditRejected = "rejected" // refused as invalid (bad value, unknown target); nothing changed
	AuditFailed   = "failed"   // an error while applying it
	AuditDenied   = "denied"   // the caller's role may not do it; nothing changed
)

// DefaultAuditRetention is how long audit rows are kept: a year of operator
// actions is a few thousand small rows, and audits look back that far.
const DefaultAuditRetention = 365 * 24 * time.Hour

// AuditQuery selects audit rows, newest first. Empty strings match
// everything; Before (an id) pages back from an earlier answer.
type AuditQuery struct {
	Limit  int // default 100, at most 1000
	Before int64
	Actor  string
	Action string
	Target string
}

// RecordAudit appends an entry (its ID and At are filled in: At from the
// store's clock when zero) and returns it as stored.
func (s *Store) RecordAudit(ctx context.Context, e AuditEntry) (AuditEntry, error) {
	if e.At.IsZero() {
		e.At = s.now()
	}
	e.At = fromMs(ms(e.At))
	res, err := s.writer.ExecContext(ctx, `INSERT INTO audit_log
		(at, actor, role, action, target, old_value, new_value, outcome, detail, remote_addr)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		ms(e.At), e.Actor, e.Role, e.Action, e.Target, e.OldValue, e.NewValue, e.Outcome, e.Detail, e.RemoteAddr)
	if err != nil {
		return e, fmt.Errorf("recording audit entry %s on %q: %w", e.Action, e.Target, err)
	}
	if e.ID, err = res.LastInsertId(); err != nil {
		return e, fmt.Errorf("recording audit entry %s on %q: %w", e.Action, e.Target, err)
	}
	return e, nil
}

// AuditLog returns the entries matching q, newest first.
func (s *Store) AuditLog(ctx context.Context, q AuditQuery) ([]AuditEntry, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	q.Limit = min(q.Limit, 1000)
	var (
		where []string
		args  []any
	)
	if q.Before > 0 {
		where, args = append(where, "id < ?"), append(args, q.Before)
	}
	for col, v := range map[string]string{"actor": q.Actor, "action": q.Action, "target": q.Target} {
		if v != "" {
			where, args = append(where, col+" = ?"), append(args, v)
		}
	}
	query := `SELECT id, at, actor, role, action, target, old_value, new_value, outcome, detail, remote_addr FROM audit_log`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY id DESC LIMIT ?"
	args = append(args, q.Limit)
	rows, err := s.reader.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("reading audit log: %w", err)
	}
	defer rows.Close()
	out := []AuditEntry{}
	for rows.Next() {
		var (
			e  AuditEntry
			at int64
		)
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Role, &e.Action, &e.Target, &e.OldValue, &e.NewValue,
			&e.Outcome, &e.Detail, &e.RemoteAddr); err != nil {
			return nil, fmt.Errorf("reading audit log: %w", err)
		}
		e.At = fromMs(at)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading audit log: %w", err)
	}
	return out, nil
}

// PruneAudit deletes audit entries older than olderThan, in batches so the
// writer is never held for long, and returns how many it removed.
func (s *Store) PruneAudit(ctx context.Context, olderThan time.Time) (int64, error) {
	var total int64
	for {
		res, err := s.writer.ExecContext(ctx, `DELETE FROM audit_log WHERE id IN
			(SELECT id FROM audit_log WHERE at < ? LIMIT ?)`, ms(olderThan), pruneBatch)
		if err != nil {
			return total, fmt.Errorf("pruning audit log older than %s: %w", olderThan.UTC().Format(time.RFC3339), err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("pruning audit log: %w", err)
		}
		total += n
		if n < pruneBatch {
			return total, nil
		}
	}
}
