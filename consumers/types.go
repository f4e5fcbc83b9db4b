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
	StateStopped      = "stopped"
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
	Handler                 HandlerConfig
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
	AppliedPrefetch int      `json:"applied_prefetch"`
	MaxConcurrency  int      `json:"max_concurrency"`
	MaxPrefetch     int      `json:"max_prefetch"`
	InFlight        int64    `json:"in_flight"`
	Processed       uint64   `json:"processed"`
	Failed          uint64   `json:"failed"`
	Slow            uint64   `json:"slow"`
	Rate            float64  `json:"rate"` // messages/s over the last few seconds
	LatencyP50Ms    *float64 `json:"latency_p50_ms"`
	LatencyP95Ms    *float64 `json:"latency_p95_ms"`
	LatencyP99Ms    *float64 `json:"latency_p99_ms"`
	LastError       string   `json:"last_error,omitempty"`
}

// Change is a live update; nil fields are left as they are.
type Change struct {
	Concurrency *int
	Prefetch    *int
}

// Errors returned by Manager methods; web maps them to HTTP status codes.
var (
	ErrNotFound = errors.New("consumer not found")
	ErrInvalid  = errors.New("invalid value")
)

// Sample summarises one consumer over one interval (not one row per message).
type Sample struct {
	Consumer                                               string
	At                                                     time.Time // end of the interval
	Interval                                               time.Duration
	Processed                                              int64
	Failed                                                 int64
	Slow                                                   int64
	LatencyP50Ms, LatencyP95Ms, LatencyP99Ms, LatencyMaxMs *float64 // nil when nothing was handled
}

// SampleWriter stores consumer samples.
type SampleWriter interface {
	WriteConsumerSamples(ctx context.Context, samples []Sample) error
}
