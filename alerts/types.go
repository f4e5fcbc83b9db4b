// Package alerts turns queue status changes into alert transitions, stores each
// transition in an outbox before sending it, and delivers it to webhooks at
// least once with a stable delivery id.
package alerts

import (
	"context"
	"time"
)

// Alert states and severities.
const (
	StateFiring   = "firing"
	StateResolved = "resolved"

	SeverityWarning  = "warning"
	SeverityCritical = "critical"

	RuleQueueDepth = "queue_depth"
)

// Alert is one alert instance, as served by /api/alerts and sent in webhooks.
type Alert struct {
	ID         string     `json:"id"`
	Rule       string     `json:"rule"`
	Severity   string     `json:"severity"`
	State      string     `json:"state"`
	Vhost      string     `json:"vhost"`
	Queue      string     `json:"queue"`
	Value      float64    `json:"value"`
	Threshold  float64    `json:"threshold"`
	StartedAt  time.Time  `json:"started_at"`
	ResolvedAt *time.Time `json:"resolved_at"`
}

// Notification is one transition of one alert, queued for one webhook.
// DeliveryID is stable across retries (X-Warren-Delivery).
type Notification struct {
	DeliveryID string
	Webhook    string // webhook name
	Status     string // firing | resolved
	Alert      Alert
	CreatedAt  time.Time
	Attempts   int
}

// WebhookConfig is one delivery target.
type WebhookConfig struct {
	Name    string
	URL     string
	Secret  string
	Format  string // generic | alertmanager | slack | template
	Timeout time.Duration
	// Headers are sent with every request (all formats); X-Warren-Delivery,
	// X-Warren-Signature and Content-Type stay warren's own, except that
	// the template format takes its Content-Type from here.
	Headers map[string]string
	// Template is the Go text/template body of the template format.
	Template string
	// ExternalURL is the alertmanager format's externalURL/generatorURL
	// (e.g. warren's dashboard address); may be empty.
	ExternalURL string
	// MaxAge is how long a notification may stay undelivered before the
	// dispatcher abandons it; zero means DefaultMaxAge.
	MaxAge time.Duration
}

// Store is what the evaluator and dispatcher need from persistence.
type Store interface {
	// ActiveAlerts returns the alerts currently firing (used at start and by the API).
	ActiveAlerts(ctx context.Context) ([]Alert, error)
	// RecordTransition saves the alert's new state and one outbox row per
	// notification in a single transaction, before anything is sent.
	RecordTransition(ctx context.Context, a Alert, outbox []Notification) error
	// PendingNotifications returns outbox rows due for delivery, oldest first.
	PendingNotifications(ctx context.Context, now time.Time, limit int) ([]Notification, error)
	// MarkDelivered removes a notification from the pending set.
	MarkDelivered(ctx context.Context, deliveryID string, at time.Time) error
	// MarkFailed records a failed attempt and when to try next.
	MarkFailed(ctx context.Context, deliveryID string, attemptErr string, next time.Time) error
}
