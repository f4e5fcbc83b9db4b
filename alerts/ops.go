package alerts

import (
	"context"
	"errors"
	"path"
	"time"
)

// ErrAlertNotFound is wrapped by stores for an unknown alert id.
var ErrAlertNotFound = errors.New("alert not found")

// Errors of ending a silence early: stores wrap ErrSilenceNotFound for an
// unknown id and ErrSilenceEnded for one no longer in force.
var (
	ErrSilenceNotFound = errors.New("silence not found")
	ErrSilenceEnded    = errors.New("silence already ended")
)

// MaxSilence bounds how long a silence may last from its creation: a
// forgotten silence must not hide alerts for months.
const MaxSilence = 7 * 24 * time.Hour

// Silence suppresses the notifications of matching alert transitions until
// EndsAt; the transitions themselves are still recorded. It never holds back
// the resolve of an alert whose firing was notified. Empty Rule, Vhost
// or Queue match everything; Queue may be a glob.
type Silence struct {
	ID        int64     `json:"id"`
	Rule      string    `json:"rule"`
	Vhost     string    `json:"vhost"`
	Queue     string    `json:"queue"`
	EndsAt    time.Time `json:"ends_at"`
	Owner     string    `json:"owner"`
	Reason    string    `json:"reason"`
	CreatedAt time.Time `json:"created_at"`
}

// Matches reports whether s covers a at now.
func (s Silence) Matches(a Alert, now time.Time) bool {
	if !now.Before(s.EndsAt) {
		return false
	}
	if s.Rule != "" && s.Rule != a.Rule || s.Vhost != "" && s.Vhost != a.Vhost {
		return false
	}
	if s.Queue == "" || s.Queue == a.Queue {
		return true
	}
	ok, _ := path.Match(s.Queue, a.Queue)
	return ok
}

// SilenceSource lists the silences in force; the evaluator consults it when
// the store implements it.
type SilenceSource interface {
	ActiveSilences(ctx context.Context, now time.Time) ([]Silence, error)
}

// Attempt is one delivery attempt, as kept in the delivery log.
type Attempt struct {
	DeliveryID string    `json:"delivery_id"`
	Webhook    string    `json:"webhook"`
	AlertID    string    `json:"alert_id"`
	Status     string    `json:"status"` // firing | resolved
	At         time.Time `json:"at"`
	Outcome    string    `json:"outcome"` // delivered | retry | abandoned
	LatencyMs  float64   `json:"latency_ms"`
	Error      string    `json:"error"`
}

// AttemptRecorder keeps the delivery log; the dispatcher uses it when its
// store implements it.
type AttemptRecorder interface {
	RecordAttempt(ctx context.Context, a Attempt) error
}

// Ack is an operator's acknowledgement of an alert.
type Ack struct {
	AlertID string    `json:"alert_id"`
	By      string    `json:"acked_by"`
	At      time.Time `json:"acked_at"`
	Note    string    `json:"note"`
}
