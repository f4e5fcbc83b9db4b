package store

import (
	"testing"
	"time"

	"warren/alerts"
)

// The delivery log is pruned with the hour rollups' retention: an attempt
// older than that goes, a younger one stays.
func TestPruneAllDropsOldDeliveryAttempts(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	s.retention = Retention{Raw: time.Hour, Minute: 3 * time.Hour, Hour: 24 * time.Hour}
	for i, at := range []time.Time{now.Add(-25 * time.Hour), now.Add(-23 * time.Hour)} {
		if err := s.RecordAttempt(ctx, alerts.Attempt{DeliveryID: string(rune('a' + i)), Webhook: "ops", AlertID: "x",
			Status: "firing", At: at, Outcome: "delivered"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.PruneAll(ctx, now); err != nil {
		t.Fatal(err)
	}
	left, err := s.DeliveryLog(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0].DeliveryID != "b" {
		t.Fatalf("after pruning: %+v, want only attempt b (23 h old)", left)
	}
}
