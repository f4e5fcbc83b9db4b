package alerts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// DeliveryStore is the outbox as the dispatcher uses it.
type DeliveryStore interface {
	// PendingNotifications returns outbox rows due at now, oldest first.
	PendingNotifications(ctx context.Context, now time.Time, limit int) ([]Notification, error)
	// MarkDelivered removes a notification from the pending set.
	MarkDelivered(ctx context.Context, deliveryID string, at time.Time) error
	// MarkFailed records a failed attempt and when to try next.
	MarkFailed(ctx context.Context, deliveryID string, attemptErr string, next time.Time) error
	// MarkAbandoned removes a notification that will never be delivered
	// (the receiver refused it, or its webhook is no longer configured).
	MarkAbandoned(ctx context.Context, deliveryID string, reason string) error
}

// Dispatcher defaults.
const (
	DefaultPollInterval = time.Second
	DefaultBackoffBase  = time.Second
	DefaultBackoffMax   = 5 * time.Minute
	// DefaultMaxAge is how long a notification is retried when its
	// webhook sets no MaxAge: a page a day late helps nobody, and an
	// endless retry would hold back every later notification of the webhook.
	DefaultMaxAge = 24 * time.Hour
	defaultBatch  = 100
	// bookkeepingTimeout bounds the store write after an attempt; it runs
	// even during shutdown so a delivered notification is not sent again.
	bookkeepingTimeout = 5 * time.Second
	// catchUpHorizon is how far ahead the first poll looks: rows a previous
	// run left in backoff are taken up at once, in order, rather than
	// letting a newer row for the same webhook overtake them.
	catchUpHorizon = 24 * time.Hour
)

// DispatcherOption configures a Dispatcher.
type DispatcherOption func(*Dispatcher)

// WithPollInterval sets how often the outbox is polled when nobody calls Wake.
func WithPollInterval(d time.Duration) DispatcherOption {
	return func(x *Dispatcher) {
		if d > 0 {
			x.pollInterval = d
		}
	}
}

// WithBackoff sets the retry delay after the first failed attempt (base)
// and its cap (max); the delay doubles with each further failure.
func WithBackoff(base, max time.Duration) DispatcherOption {
	return func(x *Dispatcher) {
		if base > 0 {
			x.backoffBase = base
		}
		if max > 0 {
			x.backoffMax = max
		}
	}
}

// WithHTTPClient sets the client webhook notifiers use (transport, proxy,
// TLS). Redirects are never followed whatever the client says.
func WithHTTPClient(c *http.Client) DispatcherOption {
	return func(x *Dispatcher) { x.client = c }
}

// Dispatcher delivers the outbox. Each webhook has its own worker and queue,
// so a dead or slow receiver only delays its own notifications, which it
// receives strictly in order. Delivery is at least once: the row leaves the
// outbox only after the receiver answered 2xx, so a crash in between resends
// it with the same delivery id.
type Dispatcher struct {
	st           DeliveryStore
	log          *slog.Logger
	client       *http.Client
	pollInterval time.Duration
	backoffBase  time.Duration
	backoffMax   time.Duration
	batch        int
	now          func() time.Time

	webhooks []WebhookConfig
	queues   map[string]*webhookQueue
	wake     chan struct{}

	// mu is held across a poll (query + enqueue) and across each final
	// MarkDelivered/MarkAbandoned + forget. Otherwise a poll that read a
	// row just before it was marked could enqueue it again after it was
	// forgotten, and send it twice.
	mu       sync.Mutex
	inFlight map[string]struct{}
	caughtUp bool

	attempts attemptCounts
}

// NewDispatcher returns a dispatcher for webhooks reading the outbox in st.
// It fails if a webhook is invalid (see ValidateWebhooks).
func NewDispatcher(st DeliveryStore, webhooks []WebhookConfig, logger *slog.Logger, opts ...DispatcherOption) (*Dispatcher, error) {
	if err := ValidateWebhooks(webhooks); err != nil {
		return nil, fmt.Errorf("configuring webhook dispatcher: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	d := &Dispatcher{
		st:           st,
		log:          logger.With("component", "alerts.dispatcher"),
		pollInterval: DefaultPollInterval,
		backoffBase:  DefaultBackoffBase,
		backoffMax:   DefaultBackoffMax,
		batch:        defaultBatch,
		now:          time.Now,
		webhooks:     webhooks,
		queues:       make(map[string]*webhookQueue, len(webhooks)),
		wake:         make(chan struct{}, 1),
		inFlight:     make(map[string]struct{}),
	}
	for _, o := range opts {
		o(d)
	}
	for _, w := range webhooks {
		n, err := NewNotifier(w, d.client)
		if err != nil {
			return nil, fmt.Errorf("configuring webhook dispatcher: %w", err)
		}
		maxAge := w.MaxAge
		if maxAge <= 0 {
			maxAge = DefaultMaxAge
		}
		d.queues[w.Name] = &webhookQueue{
			name:     w.Name,
			notifier: n,
			maxAge:   maxAge,
			log:      d.log.With("webhook", w.Name, "url", RedactURL(w.URL)),
			signal:   make(chan struct{}, 1),
		}
	}
	return d, nil
}

// Wake asks for an outbox poll now. It never blocks.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run polls the outbox on Wake and every poll interval and delivers until
// ctx ends; it then returns nil. Notifications not yet delivered stay in the
// outbox for the next run. Run must be called once.
func (d *Dispatcher) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, q := range d.queues {
		g.Go(func() error { return d.work(ctx, q) })
	}
	g.Go(func() error {
		t := time.NewTicker(d.pollInterval)
		defer t.Stop()
		for {
			if err := d.runOnce(ctx); err != nil && ctx.Err() == nil {
				// The store may come back; the next tick tries again.
				d.log.Error("polling the alert outbox", "err", err)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			case <-d.wake:
			}
		}
	})
	return g.Wait()
}

// runOnce reads due outbox rows and hands each new one to its webhook's queue.
func (d *Dispatcher) runOnce(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	horizon := now
	if !d.caughtUp {
		horizon = now.Add(catchUpHorizon)
	}
	// Rows already queued here come back from the query too (they stay
	// pending until delivered); asking for that many more guarantees that a
	// backlog for one dead webhook never hides new rows of another.
	rows, err := d.st.PendingNotifications(ctx, horizon, len(d.inFlight)+d.batch)
	if err != nil {
		return fmt.Errorf("reading pending notifications: %w", err)
	}
	d.caughtUp = true
	for _, n := range rows {
		if _, ok := d.inFlight[n.DeliveryID]; ok {
			continue
		}
		q, ok := d.queues[n.Webhook]
		if !ok {
			reason := fmt.Sprintf("webhook %q is not configured", n.Webhook)
			if err := d.st.MarkAbandoned(ctx, n.DeliveryID, reason); err != nil {
				return fmt.Errorf("abandoning notification %s: %w", n.DeliveryID, err)
			}
			d.log.Warn("abandoned notification for unknown webhook",
				"delivery_id", n.DeliveryID, "webhook", n.Webhook, "alert_id", n.Alert.ID)
			continue
		}
		d.inFlight[n.DeliveryID] = struct{}{}
		q.push(n)
	}
	return nil
}

// work delivers one webhook's queue in order: the head is retried (with
// backoff) until it is delivered or abandoned before the next is tried.
func (d *Dispatcher) work(ctx context.Context, q *webhookQueue) error {
	for {
		n, ok := q.head()
		if !ok {
			select {
			case <-ctx.Done():
				return nil
			case <-q.signal:
				continue
			}
		}
		wait, done := d.attempt(ctx, q, n)
		if ctx.Err() != nil {
			return nil
		}
		if done {
			q.pop()
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// attempt sends n once and records the outcome. done means n left the
// queue (delivered or abandoned); otherwise wait says when to try again.
func (d *Dispatcher) attempt(ctx context.Context, q *webhookQueue, n Notification) (wait time.Duration, done bool) {
	log := q.log.With("delivery_id", n.DeliveryID, "alert_id", n.Alert.ID, "status", n.Status)
	// A row without a creation time (a store that keeps none) cannot age.
	expires := time.Time{}
	if !n.CreatedAt.IsZero() {
		expires = n.CreatedAt.Add(q.maxAge)
	}
	if now := d.now(); !expires.IsZero() && !now.Before(expires) {
		return d.expire(ctx, q, n, now, log)
	}
	began := time.Now()
	retry, err := q.notifier.Notify(ctx, n)
	latency := time.Since(began)
	if ctx.Err() != nil {
		// Shutting down mid-attempt: whatever happened, the row stays
		// pending and the next run resends it under the same id.
		return 0, false
	}
	outcome := "delivered"
	switch {
	case err != nil && retry:
		outcome = "retry"
	case err != nil:
		outcome = "abandoned"
	}
	d.attempts.add(n.Webhook, outcome)
	d.recordAttempt(ctx, n, began, latency, outcome, err)
	switch {
	case err == nil:
		if !d.finish(ctx, q, n, func(c context.Context) error {
			return d.st.MarkDelivered(c, n.DeliveryID, d.now())
		}) {
			return 0, false
		}
		log.Info("webhook delivered", "attempts", n.Attempts+1)
		return 0, true
	case !retry:
		if !d.finish(ctx, q, n, func(c context.Context) error {
			return d.st.MarkAbandoned(c, n.DeliveryID, err.Error())
		}) {
			return 0, false
		}
		log.Error("webhook refused the notification; not retrying", "attempts", n.Attempts+1, "err", err)
		return 0, true
	default:
		attempts := n.Attempts + 1
		wait := d.backoff(attempts)
		now := d.now()
		// Never wait past the max age: the row is then abandoned on time
		// instead of after a long backoff.
		if !expires.IsZero() {
			wait = max(0, min(wait, expires.Sub(now)))
		}
		next := now.Add(wait)
		// Recorded even if shutdown starts now, so the next run knows.
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
		defer cancel()
		if merr := d.st.MarkFailed(bctx, n.DeliveryID, err.Error(), next); merr != nil {
			log.Error("recording failed webhook attempt", "err", merr)
		}
		q.setAttempts(attempts)
		log.Warn("webhook attempt failed; will retry", "attempts", attempts, "retry_in", wait, "err", err)
		return wait, false
	}
}

// reasonMaxAge starts the reason recorded for a notification abandoned
// because it stayed undelivered longer than its webhook's max_age.
const reasonMaxAge = "older than max_age"

// expire abandons n without sending it: it was created longer than the
// webhook's max age ago. It is logged and counted like any abandon.
func (d *Dispatcher) expire(ctx context.Context, q *webhookQueue, n Notification, now time.Time, log *slog.Logger) (time.Duration, bool) {
	reason := fmt.Sprintf("%s (%s): queued at %s, %d attempts", reasonMaxAge, q.maxAge,
		n.CreatedAt.UTC().Format(time.RFC3339), n.Attempts)
	d.attempts.add(n.Webhook, "abandoned")
	d.recordAttempt(ctx, n, now, 0, "abandoned", errors.New(reason))
	if !d.finish(ctx, q, n, func(c context.Context) error {
		return d.st.MarkAbandoned(c, n.DeliveryID, reason)
	}) {
		return 0, false
	}
	log.Error("notification undelivered for longer than max_age; abandoned",
		"attempts", n.Attempts, "max_age", q.maxAge, "created_at", n.CreatedAt)
	return 0, true
}

// recordAttempt adds the attempt to the delivery log, if the store keeps
// one. The log is for people; failing to write it never affects delivery.
func (d *Dispatcher) recordAttempt(ctx context.Context, n Notification, at time.Time, latency time.Duration, outcome string, err error) {
	rec, ok := d.st.(AttemptRecorder)
	if !ok {
		return
	}
	a := Attempt{DeliveryID: n.DeliveryID, Webhook: n.Webhook, AlertID: n.Alert.ID, Status: n.Status,
		At: at.UTC(), Outcome: outcome, LatencyMs: float64(latency.Microseconds()) / 1000}
	if err != nil {
		a.Error = err.Error() // notifier errors are already free of secrets
	}
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
	defer cancel()
	if rerr := rec.RecordAttempt(bctx, a); rerr != nil {
		d.log.Warn("writing the delivery log", "delivery_id", n.DeliveryID, "err", rerr)
	}
}

// ErrUnknownWebhook is returned by SendTest for a name not configured.
var ErrUnknownWebhook = errors.New("unknown webhook")

// SendTest sends a test notification (rule "test", not stored in the
// outbox, not retried) to the named webhook now and reports the attempt.
func (d *Dispatcher) SendTest(ctx context.Context, name string) (Attempt, error) {
	q, ok := d.queues[name]
	if !ok {
		return Attempt{}, fmt.Errorf("sending test notification to %q: %w", name, ErrUnknownWebhook)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	id := "test-" + randomHex(8)
	n := Notification{DeliveryID: id, Webhook: name, Status: StateFiring, CreatedAt: now, Alert: Alert{
		ID: id, Rule: "test", Severity: SeverityWarning, State: StateFiring, StartedAt: now,
	}}
	_, err := q.notifier.Notify(ctx, n)
	a := Attempt{DeliveryID: id, Webhook: name, AlertID: id, Status: StateFiring, At: now, Outcome: "delivered",
		LatencyMs: float64(time.Since(now).Microseconds()) / 1000}
	if err != nil {
		a.Outcome, a.Error = "abandoned", err.Error()
	}
	return a, nil
}

// finish records a final outcome and forgets the row, under d.mu (see
// there). A store error is retried with backoff rather than resending: the
// receiver already has its answer. It gives up only when ctx ends (the row
// then stays pending and is resent by the next run, at least once).
func (d *Dispatcher) finish(ctx context.Context, q *webhookQueue, n Notification, mark func(context.Context) error) bool {
	for failures := 1; ; failures++ {
		err := func() error {
			// Runs even if shutdown has begun, so an answered
			// notification is not sent again.
			bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
			defer cancel()
			d.mu.Lock()
			defer d.mu.Unlock()
			if err := mark(bctx); err != nil {
				return err
			}
			delete(d.inFlight, n.DeliveryID)
			return nil
		}()
		if err == nil {
			return true
		}
		wait := d.backoff(failures)
		q.log.Error("recording webhook outcome; retrying", "delivery_id", n.DeliveryID, "retry_in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

// backoff is the delay after the given number of failed attempts:
// base, 2*base, 4*base ... capped at max.
func (d *Dispatcher) backoff(failures int) time.Duration {
	wait := d.backoffBase
	for i := 1; i < failures && wait < d.backoffMax; i++ {
		wait *= 2
	}
	return min(wait, d.backoffMax)
}

// webhookQueue is the in-memory, ordered queue of one webhook's notifications.
type webhookQueue struct {
	name     string
	notifier Notifier
	maxAge   time.Duration
	log      *slog.Logger
	signal   chan struct{}

	mu    sync.Mutex
	items []Notification
}

func (q *webhookQueue) push(n Notification) {
	q.mu.Lock()
	q.items = append(q.items, n)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

func (q *webhookQueue) head() (Notification, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.items) == 0 {
		return Notification{}, false
	}
	return q.items[0], true
}

func (q *webhookQueue) pop() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.items[0] = Notification{}
	q.items = q.items[1:]
}

func (q *webhookQueue) setAttempts(n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.items[0].Attempts = n
}
