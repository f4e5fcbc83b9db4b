// Package consumers runs managed RabbitMQ consumers: a worker pool per
// configured queue with live concurrency and prefetch, manual acks only after
// the handler succeeded, and per-consumer counters and latency.
package consumers

import (
	"context"
	"errors"
	"time"
)

// Consumer states shown in the API and dashboard.
const (
	StateStarting     = "starting"
	StateRunning      = "running"
	StatePaused       = "paused"
	StateReconnecting = "reconnecting"
	// StateCancelled: the broker cancelled the consumer or refused it
	// because the queue is missing; warren retries with backoff until the
	// queue exists again (LastError says why).
	StateCancelled = "cancelled"
	// StateCircuitOpen: the circuit breaker stopped intake for its
	// cool-down after too many consecutive failures.
	StateCircuitOpen = "circuit_open"
	StateStopped     = "stopped"
)

// HandlerConfig selects and configures a built-in handler.
type HandlerConfig struct {
	Type         string        // sleep | log | http
	Duration     time.Duration // sleep: simulated work
	FailureRatio float64       // sleep: fraction of messages that fail, 0..1
	URL          string        // http: POST target; 2xx = success
	Timeout      time.Duration // http: request timeout
}

// Config is one managed consumer.
type Config struct {
	Name                    string
	Queue                   string
	Vhost                   string
	Declare                 bool // declare the queue (durable) if missing
	MaxConcurrentMessages   int  // live
	PrefetchCount           int  // live
	MaxConcurrency          int  // upper bound accepted for live changes
	MaxPrefetch             int  // upper bound accepted for live changes
	SlowProcessingThreshold time.Duration
	// HandlerTimeout bounds one handler call (0: no deadline). It must be
	// shorter than the broker's consumer timeout (30m by default), so a stuck
	// handler fails its message instead of getting its channel closed.
	HandlerTimeout time.Duration
	// Retry turns on delayed retries and dead-lettering for failed messages.
	// nil: a failed message is nacked with requeue (the broker redelivers it
	// at once).
	Retry *RetryConfig
	// CircuitBreaker stops intake after consecutive failures; nil: off.
	CircuitBreaker *BreakerConfig
	// Throttle limits calls into the handler; nil: off (changeable live).
	Throttle *ThrottleConfig
	// BatchSize > 1 hands up to BatchSize messages to a BatchHandlerFunc
	// at once (Options.BatchHandlers, else the handler type's per-message
	// handler in a loop); a partial batch waits at most BatchTimeout.
	BatchSize    int
	BatchTimeout time.Duration
	Handler      HandlerConfig
}

// RetryConfig is the failure policy of a consumer. A failed message is
// republished to a delay queue and comes back after
// InitialDelay*Multiplier^n (n = 0 for the first retry); after MaxAttempts
// retries, or at once when it is malformed, it goes to the dead-letter
// queue. The original is acked only once the broker confirmed the copy.
type RetryConfig struct {
	MaxAttempts  int           // retries before dead-lettering; 0 = dead-letter at the first failure
	InitialDelay time.Duration // delay before the first retry
	Multiplier   float64       // >= 1
	// DeadLetterQueue is where messages go in the end; empty:
	// "<queue>.warren.dlq". warren declares it (durable) if it is missing.
	DeadLetterQueue string
}

// Status is a point-in-time view of one consumer, as served by the JSON API.
type Status struct {
	Name        string `json:"name"`
	Queue       string `json:"queue"`
	Vhost       string `json:"vhost"`
	State       string `json:"state"`
	Concurrency int    `json:"concurrency"`
	Prefetch    int    `json:"prefetch"`
	// AppliedPrefetch is the prefetch the broker currently enforces on the
	// live subscription; it lags Prefetch while a re-subscribe is in progress.
	AppliedPrefetch int `json:"applied_prefetch"`
	// PrefetchPending: Prefetch is not yet in force (a re-subscribe is in
	// progress, or a change made while paused waits for the resume).
	PrefetchPending bool   `json:"prefetch_pending"`
	MaxConcurrency  int    `json:"max_concurrency"`
	MaxPrefetch     int    `json:"max_prefetch"`
	InFlight        int64  `json:"in_flight"`
	Processed       uint64 `json:"processed"`
	Failed          uint64 `json:"failed"`
	Slow            uint64 `json:"slow"`
	// Retried counts failed messages republished to a delay queue;
	// DeadLettered those moved to the dead-letter queue.
	Retried      uint64 `json:"retried"`
	DeadLettered uint64 `json:"dead_lettered"`
	// StaleAcks counts acks and nacks dropped because the channel that
	// delivered the message had died; the broker redelivers those messages.
	StaleAcks uint64 `json:"stale_acks"`
	BatchSize int    `json:"batch_size,omitempty"`
	// ThrottleMaxConcurrent and ThrottleDelayMs are the live throttle
	// (0: off).
	ThrottleMaxConcurrent int     `json:"throttle_max_concurrent"`
	ThrottleDelayMs       float64 `json:"throttle_delay_ms"`
	// Circuit is the breaker state (closed, open, half_open); empty without
	// a breaker. The counters are transitions into each state.
	Circuit           string   `json:"circuit,omitempty"`
	CircuitOpened     uint64   `json:"circuit_opened"`
	CircuitHalfOpened uint64   `json:"circuit_half_opened"`
	CircuitClosed     uint64   `json:"circuit_closed"`
	Rate              float64  `json:"rate"` // messages/s over the last few seconds
	LatencyP50Ms      *float64 `json:"latency_p50_ms"`
	LatencyP95Ms      *float64 `json:"latency_p95_ms"`
	LatencyP99Ms      *float64 `json:"latency_p99_ms"`
	// End-to-end latency (publish to handled, from x-warren-published-at).
	E2EP50Ms  *float64 `json:"e2e_p50_ms"`
	E2EP95Ms  *float64 `json:"e2e_p95_ms"`
	E2EP99Ms  *float64 `json:"e2e_p99_ms"`
	LastError string   `json:"last_error,omitempty"`
}

// Change is a live update; nil fields are left as they are.
type Change struct {
	Concurrency *int
	Prefetch    *int
	// ThrottleMaxConcurrent: 0 turns the limit off; at most max_concurrency.
	ThrottleMaxConcurrent *int
	// ThrottleDelay: minimum time between handler calls; 0 turns it off.
	ThrottleDelay *time.Duration
}

// Errors returned by Manager methods; web maps them to HTTP status codes.
var (
	ErrNotFound = errors.New("consumer not found")
	ErrInvalid  = errors.New("invalid value")
)

// ErrMalformed marks a message that can never succeed (undecodable body,
// bad encoding). A handler returns an error wrapping it (see Malformed) to
// send the message to the dead-letter queue at once, without retries.
var ErrMalformed = errors.New("malformed message")

// Malformed wraps err so that errors.Is(err, ErrMalformed) holds.
func Malformed(err error) error { return &malformedError{err: err} }

type malformedError struct{ err error }

func (e *malformedError) Error() string   { return "malformed message: " + e.err.Error() }
func (e *malformedError) Unwrap() []error { return []error{ErrMalformed, e.err} }

// Sample summarises one consumer over one interval (not one row per message).
type Sample struct {
	Consumer                                               string
	At                                                     time.Time // end of the interval
	Interval                                               time.Duration
	Processed                                              int64
	Failed                                                 int64
	Slow                                                   int64
	Retried                                                int64
	DeadLettered                                           int64
	LatencyP50Ms, LatencyP95Ms, LatencyP99Ms, LatencyMaxMs *float64 // nil when nothing was handled
	// End-to-end latency (publish to handled) of the messages that carried
	// the x-warren-published-at header; nil when none did.
	E2EP50Ms, E2EP95Ms, E2EP99Ms *float64
}

// SampleWriter stores consumer samples.
type SampleWriter interface {
	WriteConsumerSamples(ctx context.Context, samples []Sample) error
}
