package alerts_test

import (
	"context"
	"database/sql"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"warren/alerts"
)

// A receiver that keeps answering 503 gets a notification only until it is
// max_age old; then the row is abandoned (not retried forever), the delivery
// log says why, and no further request is made.
func TestDispatcherAbandonsNotificationOlderThanMaxAge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "warren.db")
	st := openStore(t, path)
	t.Cleanup(func() { _ = st.Close() })
	ctx := context.Background()
	rc := newReceiver(t, "k", func(int, request) int { return http.StatusServiceUnavailable })
	hook := rc.hook("ops")
	hook.MaxAge = 300 * time.Millisecond

	now := time.Now().UTC().Truncate(time.Millisecond)
	a := alerts.Alert{ID: "maxage-1", Rule: alerts.RuleQueueDepth, Severity: alerts.SeverityWarning,
		State: alerts.StateFiring, Vhost: "/", Queue: uniqueQueue(t, "q"), Value: 30, Threshold: 10, StartedAt: now}
	if err := st.RecordTransition(ctx, a, []alerts.Notification{{DeliveryID: "maxage-1-d", Webhook: "ops",
		Status: alerts.StateFiring, Alert: a, CreatedAt: now}}); err != nil {
		t.Fatalf("RecordTransition: %v", err)
	}
	_, stop := startDispatcher(t, st, []alerts.WebhookConfig{hook})
	eventually(t, 10*time.Second, "the notification to leave the outbox", func() bool { return len(pending(t, st)) == 0 })
	stop() // after Run returned nothing can send any more

	log, err := st.DeliveryLog(ctx, 1000)
	if err != nil {
		t.Fatalf("DeliveryLog: %v", err)
	}
	if len(log) < 2 {
		t.Fatalf("delivery log has %d attempts, want retries then an abandon: %+v", len(log), log)
	}
	last := log[0] // most recent first
	if last.Outcome != "abandoned" || !strings.Contains(last.Error, "older than max_age") {
		t.Errorf("last attempt = %+v, want abandoned as older than max_age", last)
	}
	retries := 0
	for _, at := range log[1:] {
		if at.Outcome != "retry" || at.DeliveryID != "maxage-1-d" {
			t.Errorf("earlier attempt = %+v, want a retry of maxage-1-d", at)
		}
		retries++
	}
	// Every request the receiver saw is a logged retry: the abandon sent nothing.
	if got := rc.count(); got != retries {
		t.Errorf("receiver got %d requests, delivery log has %d retries", got, retries)
	}
	for _, r := range rc.got() {
		if r.Delivery != "maxage-1-d" {
			t.Errorf("request with delivery id %q, want maxage-1-d", r.Delivery)
		}
	}
	var row struct {
		failed  int
		lastErr string
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatalf("opening database: %v", err)
	}
	defer db.Close()
	if err := db.QueryRowContext(ctx, `SELECT failed_permanently, last_error FROM alert_outbox WHERE delivery_id = ?`,
		"maxage-1-d").Scan(&row.failed, &row.lastErr); err != nil {
		t.Fatalf("reading outbox row: %v", err)
	}
	if row.failed != 1 || !strings.Contains(row.lastErr, "older than max_age") {
		t.Errorf("outbox row failed_permanently=%d last_error=%q, want abandoned as older than max_age", row.failed, row.lastErr)
	}
}

func TestValidateWebhooksRejectsNegativeMaxAge(t *testing.T) {
	err := alerts.ValidateWebhooks([]alerts.WebhookConfig{{Name: "a", URL: "http://127.0.0.1/x", MaxAge: -time.Second}})
	if err == nil || !strings.Contains(err.Error(), "max_age") {
		t.Errorf("ValidateWebhooks = %v, want an error naming max_age", err)
	}
}
