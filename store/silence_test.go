package store

import (
	"errors"
	"testing"
	"time"

	"warren/alerts"
)

// Expiring a silence ends it now and keeps the row; an unknown id and one
// that already ended are told apart and change nothing.
func TestExpireSilence(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	sl, err := s.CreateSilence(ctx, alerts.Silence{Queue: "orders.*", EndsAt: now.Add(2 * time.Hour), Owner: "ana", Reason: "deploy"})
	if err != nil {
		t.Fatalf("CreateSilence: %v", err)
	}
	old, err := s.ExpireSilence(ctx, sl.ID, now)
	if err != nil {
		t.Fatalf("ExpireSilence: %v", err)
	}
	if !old.EndsAt.Equal(sl.EndsAt) || old.Queue != "orders.*" || old.Owner != "ana" {
		t.Errorf("ExpireSilence returned %+v, want the silence as it was (ends %s)", old, sl.EndsAt)
	}
	if list, err := s.ActiveSilences(ctx, now); err != nil || len(list) != 0 {
		t.Errorf("ActiveSilences after expiry = %+v, %v; want none", list, err)
	}
	var ends int64
	if err := s.reader.QueryRowContext(ctx, `SELECT ends_at FROM alert_silences WHERE id = ?`, sl.ID).Scan(&ends); err != nil || ends != ms(now) {
		t.Errorf("stored ends_at = %d, %v; want the row kept with ends_at %d", ends, err, ms(now))
	}

	t.Run("already ended", func(t *testing.T) {
		_, err := s.ExpireSilence(ctx, sl.ID, now.Add(time.Second))
		if !errors.Is(err, alerts.ErrSilenceEnded) || errors.Is(err, ErrNotFound) {
			t.Errorf("second expiry = %v, want ErrSilenceEnded", err)
		}
		var after int64
		_ = s.reader.QueryRowContext(ctx, `SELECT ends_at FROM alert_silences WHERE id = ?`, sl.ID).Scan(&after)
		if after != ms(now) {
			t.Errorf("a refused expiry moved ends_at from %d to %d", ms(now), after)
		}
	})
	t.Run("unknown id", func(t *testing.T) {
		if _, err := s.ExpireSilence(ctx, sl.ID+100, now); !errors.Is(err, alerts.ErrSilenceNotFound) || !errors.Is(err, ErrNotFound) {
			t.Errorf("expiry of an unknown id = %v, want ErrSilenceNotFound", err)
		}
	})
	t.Run("others stay in force", func(t *testing.T) {
		other, err := s.CreateSilence(ctx, alerts.Silence{EndsAt: now.Add(time.Hour), Owner: "bo", Reason: "r"})
		if err != nil {
			t.Fatal(err)
		}
		if list, _ := s.ActiveSilences(ctx, now); len(list) != 1 || list[0].ID != other.ID {
			t.Errorf("ActiveSilences = %+v, want only silence %d", list, other.ID)
		}
	})
}
