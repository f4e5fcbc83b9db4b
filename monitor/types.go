// Package monitor polls the RabbitMQ management API and turns each poll into a
// Snapshot of every queue of every vhost. Values the broker did not send stay
// nil: an idle or brand-new queue is "unknown", never 0.
package monitor

import (
	"context"
	"time"
)

// Queue status values, shared with the JSON API and the dashboard.
const (
	StatusOK       = "ok"
	StatusWarning  = "warning"
	StatusCritical = "critical"
	StatusUnknown  = "unknown"
)

// QueueSample is one queue as seen by one poll. Pointers are nil when the
// management API did not report the field.
type QueueSample struct {
	Vhost     string
	Name      string
	Messages  *int64 // ready + unacknowledged
	Ready     *int64
	Unacked   *int64
	Consumers *int64
	// Status is derived from Messages and the thresholds in force for this queue.
	Status string
}

// Snapshot is the result of one poll. When Err is set the poll failed and
// Queues is empty: nothing from a failed poll is stored or alerted on.
type Snapshot struct {
	At     time.Time
	Queues []QueueSample
	Err    error
}

// Level is a warning/critical pair of queue-depth thresholds (messages).
type Level struct {
	Warning  int64
	Critical int64
}

// Thresholds classify queue depth. Queues overrides Default by queue name.
type Thresholds struct {
	Default Level
	Queues  map[string]Level
}

// For returns the thresholds in force for a queue.
func (t Thresholds) For(name string) Level {
	if l, ok := t.Queues[name]; ok {
		return l
	}
	return t.Default
}

// Classify returns the status of a queue holding messages (nil = unknown).
func (t Thresholds) Classify(name string, messages *int64) string {
	if messages == nil {
		return StatusUnknown
	}
	l := t.For(name)
	switch {
	case *messages >= l.Critical:
		return StatusCritical
	case *messages >= l.Warning:
		return StatusWarning
	default:
		return StatusOK
	}
}

// SampleWriter stores the queue samples of one successful poll.
type SampleWriter interface {
	WriteQueueSamples(ctx context.Context, at time.Time, queues []QueueSample) error
}

// Observer is told about every poll, failed ones included (alerts, metrics).
type Observer interface {
	ObserveSnapshot(ctx context.Context, s Snapshot)
}
