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
	// IngressRate and EgressRate are messages per second into and out of the
	// queue, derived by warren from its own deltas between polls (smoothed);
	// nil until two consecutive polls reported the queue.
	IngressRate *float64
	EgressRate  *float64
	// TimeToDrainSeconds is Ready divided by the net egress rate, when the
	// queue is shrinking (0 when it holds nothing ready); nil when unknown
	// or growing.
	TimeToDrainSeconds *float64
	// Growing is true when messages are ready and the net egress is not
	// positive (the queue will not drain at the current rates); nil when
	// the rates are unknown.
	Growing *bool
	// ConsumerUtilisation is the broker's consumer_utilisation (0..1, the
	// share of time consumers could take new messages); nil if not reported.
	ConsumerUtilisation *float64
	// IsDeadLetter marks a queue recognised as a dead-letter queue: configured
	// as one, bound to (or named by) another queue's x-dead-letter-exchange,
	// or named *.dlq, *.dead-letter, *.warren.dlq.
	IsDeadLetter bool
	// DeadLetterExchange is the queue's x-dead-letter-exchange (argument or
	// policy); nil when it has none. "" is the default exchange.
	DeadLetterExchange *string
	// PublishedTotal is the broker's cumulative message_stats.publish, the
	// counter IngressRate is derived from; nil before the first publish.
	PublishedTotal *int64
	// ConsumerDetails lists the queue's consumers (from GET /api/consumers);
	// nil when the consumer listing was not available.
	ConsumerDetails []ConsumerInfo
	// deadLetterRoutingKey is the x-dead-letter-routing-key, used to find
	// the queue a dead-letter exchange routes to.
	deadLetterRoutingKey *string
	// Flagged names the broker fields that were sent but not usable (odd
	// type, negative, absurd) and are therefore nil here.
	Flagged []string
	// Status is derived from Messages and the thresholds in force for this queue.
	Status string
}

// ConsumerInfo is one consumer of a queue as the broker reports it.
type ConsumerInfo struct {
	Tag         string
	Channel     string // channel name, e.g. "127.0.0.1:50000 -> 127.0.0.1:5672 (1)"
	Prefetch    *int64 // per-consumer prefetch; 0 = unlimited
	AckRequired *bool
	Active      *bool
}

// Overview is the broker-wide picture from GET /api/overview.
type Overview struct {
	ClusterName     string
	RabbitMQVersion string
	Messages        *int64 // queue_totals.messages
	MessagesReady   *int64
	MessagesUnacked *int64
	Queues          *int64 // object_totals
	Connections     *int64
	Channels        *int64
	Consumers       *int64
	Exchanges       *int64
	PublishRate     *float64 // broker-computed message_stats rates, msg/s
	DeliverGetRate  *float64
}

// Node is one cluster node from GET /api/nodes.
type Node struct {
	Name          string
	Running       *bool
	MemUsed       *int64
	MemLimit      *int64
	MemAlarm      *bool
	DiskFree      *int64
	DiskFreeLimit *int64
	DiskFreeAlarm *bool
	FDUsed        *int64
	FDTotal       *int64
	// Partitions names the nodes this node cannot reach (network partition).
	Partitions []string
}

// Alarms lists the resource alarms in force, e.g. "memory alarm on rabbit@a".
func (s Snapshot) Alarms() []string {
	var out []string
	for _, n := range s.Nodes {
		if n.MemAlarm != nil && *n.MemAlarm {
			out = append(out, "memory alarm on "+n.Name)
		}
		if n.DiskFreeAlarm != nil && *n.DiskFreeAlarm {
			out = append(out, "disk alarm on "+n.Name)
		}
		if len(n.Partitions) > 0 {
			out = append(out, "network partition seen by "+n.Name)
		}
	}
	return out
}

// Snapshot is the result of one poll. When Err is set the poll failed and
// Queues is empty: nothing from a failed poll is stored or alerted on.
type Snapshot struct {
	At     time.Time
	Queues []QueueSample
	Err    error
	// Overview and Nodes are nil when the broker did not answer those
	// requests usefully (the queue listing alone decides success).
	Overview *Overview
	Nodes    []Node
	// Duration is how long the poll took.
	Duration time.Duration
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
