package alerts

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"warren/monitor"
)

// Waker is told that new notifications wait in the outbox. The Dispatcher is
// one; Wake must not block.
type Waker interface {
	Wake()
}

// EvaluatorOption configures an Evaluator.
type EvaluatorOption func(*Evaluator)

// WithThresholds sets the queue-depth thresholds whose warning or critical
// figure is reported as an alert's Threshold. The monitor classifies queues
// with the same thresholds; the evaluator trusts that classification and
// only uses these to fill in Threshold (and to classify a sample that
// arrives without a Status).
func WithThresholds(t monitor.Thresholds) EvaluatorOption {
	return func(e *Evaluator) { e.thresholds = t }
}

// WithWaker sets who is woken after a transition was stored, normally the
// Dispatcher, so notifications go out without waiting for its next poll.
func WithWaker(w Waker) EvaluatorOption {
	return func(e *Evaluator) { e.waker = w }
}

// queueKey identifies a queue across vhosts.
type queueKey struct {
	vhost, queue string
}

// Evaluator is the queue-depth alert state machine. It observes every poll of
// the monitor, compares each queue's status with the alert in force for it
// and records each transition (with one outbox notification per webhook)
// in the store before anything is sent.
type Evaluator struct {
	st         Store
	webhooks   []string
	log        *slog.Logger
	thresholds monitor.Thresholds
	waker      Waker

	// mu serialises snapshots against each other and against Load, so two
	// polls can never both fire the same alert.
	mu     sync.Mutex
	loaded bool
	active map[queueKey]Alert
	// queuedAt is when the last poll's notifications entered the outbox.
	queuedAt time.Time
}

var _ monitor.Observer = (*Evaluator)(nil)

// NewEvaluator returns an evaluator that records transitions in st and
// queues one notification per webhook for each of them. Call Load before
// the first snapshot (ObserveSnapshot loads on first use otherwise).
func NewEvaluator(st Store, webhooks []WebhookConfig, logger *slog.Logger, opts ...EvaluatorOption) *Evaluator {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	e := &Evaluator{
		st:     st,
		log:    logger.With("component", "alerts"),
		active: make(map[queueKey]Alert),
	}
	for _, w := range webhooks {
		e.webhooks = append(e.webhooks, w.Name)
	}
	for _, o := range opts {
		o(e)
	}
	return e
}

// Load reads the alerts still firing from the store, so that after a
// restart a queue that is still over its threshold does not notify again
// and one that cleared meanwhile resolves exactly once.
func (e *Evaluator) Load(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.loadLocked(ctx)
}

func (e *Evaluator) loadLocked(ctx context.Context) error {
	alerts, err := e.st.ActiveAlerts(ctx)
	if err != nil {
		return fmt.Errorf("loading active alerts: %w", err)
	}
	active := make(map[queueKey]Alert, len(alerts))
	for _, a := range alerts {
		if a.Rule != RuleQueueDepth || a.State != StateFiring {
			continue
		}
		active[queueKey{a.Vhost, a.Queue}] = a
	}
	e.active = active
	e.loaded = true
	e.log.Debug("loaded active alerts", "count", len(active))
	return nil
}

// ActiveAlerts returns the alerts currently firing, as the store has them.
func (e *Evaluator) ActiveAlerts(ctx context.Context) ([]Alert, error) {
	alerts, err := e.st.ActiveAlerts(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading active alerts: %w", err)
	}
	return alerts, nil
}

// ObserveSnapshot evaluates one poll. A failed poll changes nothing; a queue
// whose depth is unknown keeps whatever alert it has; a queue missing from a
// successful poll was deleted, so its alert resolves. A transition the store
// could not record is logged and left for the next poll to retry, so memory
// never runs ahead of the store.
func (e *Evaluator) ObserveSnapshot(ctx context.Context, s monitor.Snapshot) {
	if s.Err != nil {
		// Nothing is known about any queue; firing or resolving now would
		// be a guess.
		return
	}
	at := s.At
	if at.IsZero() {
		at = time.Now()
	}
	// The store keeps milliseconds; round here so that what we send and
	// what the API later serves are the same instant.
	at = at.UTC().Truncate(time.Millisecond)

	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.loaded {
		if err := e.loadLocked(ctx); err != nil {
			e.log.Error("skipping alert evaluation: active alerts unknown", "err", err)
			return
		}
	}

	// The outbox is ordered by CreatedAt (milliseconds). Each poll's rows
	// get a later instant than the previous poll's, so an alert's
	// transitions can never swap places even if polls come within one
	// millisecond. The wall clock, not the poll time, makes them due now.
	queuedAt := time.Now().UTC().Truncate(time.Millisecond)
	if !queuedAt.After(e.queuedAt) {
		queuedAt = e.queuedAt.Add(time.Millisecond)
	}
	e.queuedAt = queuedAt

	seen := make(map[queueKey]bool, len(s.Queues))
	for _, q := range s.Queues {
		key := queueKey{q.Vhost, q.Name}
		seen[key] = true
		e.evaluateQueue(ctx, key, q, at, queuedAt)
	}

	var gone []queueKey
	for key := range e.active {
		if !seen[key] {
			gone = append(gone, key)
		}
	}
	slices.SortFunc(gone, func(a, b queueKey) int {
		return cmp.Or(cmp.Compare(a.vhost, b.vhost), cmp.Compare(a.queue, b.queue))
	})
	for _, key := range gone {
		a := e.active[key]
		e.log.Info("queue no longer reported; resolving its alert", "vhost", key.vhost, "queue", key.queue, "alert_id", a.ID)
		e.resolve(ctx, key, a, a.Value, at, queuedAt)
	}
}

func (e *Evaluator) evaluateQueue(ctx context.Context, key queueKey, q monitor.QueueSample, at, queuedAt time.Time) {
	status := q.Status
	if status == "" {
		status = e.thresholds.Classify(q.Name, q.Messages)
	}
	cur, firing := e.active[key]
	switch status {
	case monitor.StatusOK:
		if firing && q.Messages != nil {
			e.resolve(ctx, key, cur, float64(*q.Messages), at, queuedAt)
		}
	case monitor.StatusWarning, monitor.StatusCritical:
		if q.Messages == nil {
			return // a level without a figure cannot be reported honestly
		}
		severity := SeverityWarning
		if status == monitor.StatusCritical {
			severity = SeverityCritical
		}
		value := float64(*q.Messages)
		switch {
		case !firing:
			a := Alert{
				ID:        newAlertID(key, at),
				Rule:      RuleQueueDepth,
				Severity:  severity,
				State:     StateFiring,
				Vhost:     key.vhost,
				Queue:     key.queue,
				Value:     value,
				Threshold: e.threshold(key.queue, severity),
				StartedAt: at,
			}
			e.transition(ctx, key, a, StateFiring, queuedAt)
		case cur.Severity != severity:
			a := cur
			a.Severity = severity
			a.Value = value
			a.Threshold = e.threshold(key.queue, severity)
			e.transition(ctx, key, a, StateFiring, queuedAt)
		}
	default:
		// unknown (the broker sent no depth) or anything new: no evidence
		// either way, so the alert stays as it is.
	}
}

func (e *Evaluator) resolve(ctx context.Context, key queueKey, cur Alert, value float64, at, queuedAt time.Time) {
	a := cur
	a.State = StateResolved
	a.Value = value
	resolvedAt := at
	a.ResolvedAt = &resolvedAt
	e.transition(ctx, key, a, StateResolved, queuedAt)
}

func (e *Evaluator) threshold(queue, severity string) float64 {
	l := e.thresholds.For(queue)
	if severity == SeverityCritical {
		return float64(l.Critical)
	}
	return float64(l.Warning)
}

// transition stores the alert's new state together with its outbox rows,
// and only then updates memory and wakes the dispatcher.
func (e *Evaluator) transition(ctx context.Context, key queueKey, a Alert, status string, queuedAt time.Time) {
	nonce := randomHex(8)
	outbox := make([]Notification, 0, len(e.webhooks))
	for _, name := range e.webhooks {
		outbox = append(outbox, Notification{
			DeliveryID: deliveryID(a.ID, nonce, name),
			Webhook:    name,
			Status:     status,
			Alert:      a,
			CreatedAt:  queuedAt,
		})
	}
	if err := e.st.RecordTransition(ctx, a, outbox); err != nil {
		e.log.Error("recording alert transition; will retry on the next poll",
			"alert_id", a.ID, "vhost", a.Vhost, "queue", a.Queue, "status", status, "severity", a.Severity, "err", err)
		return
	}
	if a.State == StateFiring {
		e.active[key] = a
	} else {
		delete(e.active, key)
	}
	e.log.Info("alert "+status,
		"alert_id", a.ID, "vhost", a.Vhost, "queue", a.Queue, "severity", a.Severity,
		"value", a.Value, "threshold", a.Threshold, "notifications", len(outbox))
	if e.waker != nil && len(outbox) > 0 {
		e.waker.Wake()
	}
}

// newAlertID names one alert instance. It hashes what identifies the
// instance plus a random salt: two instances on the same queue never share
// an id even if polls carried the same timestamp.
func newAlertID(key queueKey, at time.Time) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%d\x00%s", RuleQueueDepth, key.vhost, key.queue, at.UnixNano(), randomHex(8))
	return hex.EncodeToString(h.Sum(nil))[:24]
}

// deliveryID is unique per alert transition per webhook and readable: it
// starts with the alert id, then the transition, then which webhook.
func deliveryID(alertID, transition, webhook string) string {
	sum := sha256.Sum256([]byte(webhook))
	return alertID + "-" + transition + "-" + hex.EncodeToString(sum[:4])
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}
