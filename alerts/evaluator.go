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

// WithThresholds sets the queue_depth rule's levels (health.*): the default
// pair as its global default, per-queue pairs as exact-name overrides. Rules
// given with WithRules are layered over these.
func WithThresholds(t monitor.Thresholds) EvaluatorOption {
	return func(e *Evaluator) { e.thresholds = &t }
}

// WithRules sets the rules configuration (alerts.rules).
func WithRules(rs RuleSet) EvaluatorOption {
	return func(e *Evaluator) { e.userRules = rs }
}

// WithWaker sets who is woken after a transition was stored, normally the
// Dispatcher, so notifications go out without waiting for its next poll.
func WithWaker(w Waker) EvaluatorOption {
	return func(e *Evaluator) { e.waker = w }
}

// WithRepeatInterval makes a firing alert that nobody acknowledged notify
// again (status firing, a new delivery id) every d of poll time since its
// last notification; zero (the default) never repeats. Acknowledging the
// alert stops the repeats. The repeat clock lives in memory: after a
// restart the first repeat comes d after the first poll.
func WithRepeatInterval(d time.Duration) EvaluatorOption {
	return func(e *Evaluator) { e.repeatEvery = max(d, 0) }
}

// AckSource tells whether an alert was acknowledged; the evaluator consults
// it, when the store implements it, before repeating a notification.
type AckSource interface {
	AlertAck(ctx context.Context, alertID string) (Ack, bool, error)
}

// PendingWait is a condition waiting out its rule's "for" duration: seen
// since Since, last seen at SeenAt.
type PendingWait struct {
	Rule, Vhost, Queue string
	Since, SeenAt      time.Time
}

// PendingStore keeps the "for" waits across restarts. A wait last seen
// more than pendingGrace before the poll that sees its condition again
// (warren was down longer, so the condition may have cleared meanwhile)
// starts again.
type PendingStore interface {
	SavePending(ctx context.Context, w PendingWait) error
	DeletePending(ctx context.Context, rule, vhost, queue string) error
	PendingWaits(ctx context.Context) ([]PendingWait, error)
}

// pendingGrace bounds the downtime across which a "for" wait continues;
// pendingRefresh is how often a holding wait's SeenAt is written.
const (
	pendingGrace   = 5 * time.Minute
	pendingRefresh = time.Minute
)

// NotifiedSource tells, per firing alert id, when its last firing
// notification entered the outbox, so a restart keeps the repeat interval's
// rhythm instead of starting it afresh.
type NotifiedSource interface {
	LastNotified(ctx context.Context) (map[string]time.Time, error)
}

// alertKey identifies one alert target: a rule on a queue (or, for
// broker-wide rules, on a node or on nothing).
type alertKey struct {
	rule, vhost, queue string
}

// Evaluator is the alert rule engine. It observes every poll of the
// monitor, derives each enabled rule's value per target, applies the rule's
// "for" duration and clear-below hysteresis, and records each transition
// (with one outbox notification per webhook) in the store before anything
// is sent.
type Evaluator struct {
	st         Store
	webhooks   []string
	log        *slog.Logger
	thresholds *monitor.Thresholds
	userRules  RuleSet
	rules      RuleSet
	waker      Waker
	consumers  ConsumerSource
	counters   map[string]consumerCounters
	// repeatEvery is alerts.repeat_interval; zero means no repeats.
	repeatEvery time.Duration

	// mu serialises snapshots against each other and against Load, so two
	// polls can never both fire the same alert.
	mu     sync.Mutex
	loaded bool
	active map[alertKey]Alert
	// pending holds when each target's condition was first seen (without
	// an intervening known value below warning); mirrored in the store when
	// it is a PendingStore, so a short restart continues the wait.
	pending map[alertKey]time.Time
	// pendingSeen is the last poll that saw each wait's condition;
	// pendingSaved when that was last written to a PendingStore.
	pendingSeen  map[alertKey]time.Time
	pendingSaved map[alertKey]time.Time
	// notifiedAt is the poll time of each firing alert's last
	// notification (after Load: when its last one entered the outbox), for
	// repeats.
	notifiedAt map[alertKey]time.Time
	// unnotified holds the firing alerts none of whose firing notifications
	// was queued (a silence covered each one): their resolve is silenced
	// too. Every other resolve goes out whatever silences say, so a
	// receiver that was told of a firing always learns that it ended.
	unnotified map[alertKey]bool
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
		st:           st,
		log:          logger.With("component", "alerts"),
		active:       make(map[alertKey]Alert),
		pending:      make(map[alertKey]time.Time),
		pendingSeen:  make(map[alertKey]time.Time),
		pendingSaved: make(map[alertKey]time.Time),
		notifiedAt:   make(map[alertKey]time.Time),
		unnotified:   make(map[alertKey]bool),
	}
	for _, w := range webhooks {
		e.webhooks = append(e.webhooks, w.Name)
	}
	for _, o := range opts {
		o(e)
	}
	base := RuleSet{}
	if e.thresholds != nil {
		base = RuleSetFromThresholds(*e.thresholds)
	}
	e.rules = base.Layer(e.userRules)
	return e
}

// Load reads the alerts still firing from the store, so that after a
// restart a condition that still holds does not notify again and one that
// cleared meanwhile resolves exactly once (when fresh data shows it).
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
	active := make(map[alertKey]Alert, len(alerts))
	for _, a := range alerts {
		if a.State != StateFiring || !slices.Contains(RuleKinds, a.Rule) {
			continue
		}
		active[alertKey{a.Rule, a.Vhost, a.Queue}] = a
	}
	e.active = active
	e.notifiedAt = make(map[alertKey]time.Time)
	e.unnotified = make(map[alertKey]bool)
	// Without a NotifiedSource nothing counts as unnotified: every resolve
	// then goes out (a missed resolve keeps an incident open forever).
	if src, ok := e.st.(NotifiedSource); ok && len(active) > 0 {
		last, err := src.LastNotified(ctx)
		if err != nil {
			return fmt.Errorf("loading when alerts last notified: %w", err)
		}
		for key, a := range active {
			if t, ok := last[a.ID]; ok {
				e.notifiedAt[key] = t
			} else {
				e.unnotified[key] = true
			}
		}
	}
	if err := e.loadPending(ctx); err != nil {
		return err
	}
	e.loaded = true
	e.log.Debug("loaded active alerts", "count", len(active), "pending", len(e.pending))
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

// observation is one rule's figure for one target in one poll.
type observation struct {
	key   alertKey
	value float64
	known bool
}

// ObserveSnapshot evaluates one poll. A failed poll is only evidence for
// monitoring_blind; every other alert stays as it is. A value the broker did
// not report is unknown and neither fires nor resolves. A queue (or node)
// missing from a successful poll was deleted, so its alerts resolve. A
// transition the store could not record is logged and left for the next
// poll to retry, so memory never runs ahead of the store.
func (e *Evaluator) ObserveSnapshot(ctx context.Context, s monitor.Snapshot) {
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

	blind := 0.0
	if s.Err != nil {
		blind = 1
	}
	e.evaluate(ctx, observation{key: alertKey{rule: RuleMonitoringBlind}, value: blind, known: true}, at, queuedAt)
	// Consumers are warren's own: known whether or not the broker answered.
	e.observeConsumers(ctx, at, queuedAt)
	if s.Err != nil {
		return
	}

	seen := make(map[alertKey]bool)
	for _, q := range s.Queues {
		for _, o := range queueObservations(q) {
			seen[o.key] = true
			e.evaluate(ctx, o, at, queuedAt)
		}
	}
	if s.Nodes != nil {
		for _, n := range s.Nodes {
			o := observation{key: alertKey{rule: RuleBrokerAlarm, queue: n.Name}}
			if n.MemAlarm != nil || n.DiskFreeAlarm != nil {
				o.known = true
				if (n.MemAlarm != nil && *n.MemAlarm) || (n.DiskFreeAlarm != nil && *n.DiskFreeAlarm) {
					o.value = 1
				}
			}
			seen[o.key] = true
			e.evaluate(ctx, o, at, queuedAt)
		}
	}

	var gone []alertKey
	for key := range e.active {
		if seen[key] || key.rule == RuleMonitoringBlind || slices.Contains(consumerRules, key.rule) ||
			(key.rule == RuleBrokerAlarm && s.Nodes == nil) {
			continue
		}
		gone = append(gone, key)
	}
	for key := range e.pending {
		if !seen[key] && key.rule != RuleMonitoringBlind && !slices.Contains(consumerRules, key.rule) {
			e.clearPending(ctx, key)
		}
	}
	sortKeys(gone)
	for _, key := range gone {
		a := e.active[key]
		e.log.Info("target no longer reported; resolving its alert", "rule", key.rule, "vhost", key.vhost, "queue", key.queue, "alert_id", a.ID)
		e.resolve(ctx, key, a, a.Value, at, queuedAt)
	}
}

func sortKeys(keys []alertKey) {
	slices.SortFunc(keys, func(a, b alertKey) int {
		return cmp.Or(cmp.Compare(a.rule, b.rule), cmp.Compare(a.vhost, b.vhost), cmp.Compare(a.queue, b.queue))
	})
}

// queueObservations derives every queue-scoped rule's figure from q.
func queueObservations(q monitor.QueueSample) []observation {
	key := func(rule string) alertKey { return alertKey{rule, q.Vhost, q.Name} }
	out := make([]observation, 0, 5)

	depth := observation{key: key(RuleQueueDepth)}
	if q.Messages != nil {
		depth.value, depth.known = float64(*q.Messages), true
	}
	out = append(out, depth)

	noConsumer := observation{key: key(RuleNoConsumer)}
	switch {
	case q.Consumers != nil && *q.Consumers > 0:
		noConsumer.known = true
	case q.Consumers != nil && q.Messages != nil:
		noConsumer.value, noConsumer.known = float64(*q.Messages), true
	}
	out = append(out, noConsumer)

	growing := observation{key: key(RuleQueueGrowing)}
	ready := q.Ready
	if ready == nil {
		ready = q.Messages
	}
	switch {
	case q.Growing == nil:
	case !*q.Growing:
		growing.known = true
	case ready != nil:
		growing.value, growing.known = float64(*ready), true
	}
	out = append(out, growing)

	drain := observation{key: key(RuleTimeToDrain)}
	if q.TimeToDrainSeconds != nil {
		drain.value, drain.known = *q.TimeToDrainSeconds, true
	}
	out = append(out, drain)

	dlq := observation{key: key(RuleDeadLetterNotEmpty)}
	switch {
	case !q.IsDeadLetter:
		dlq.known = true
	case q.Messages != nil:
		dlq.value, dlq.known = float64(*q.Messages), true
	}
	out = append(out, dlq)
	return out
}

// evaluate applies one observation to its rule's state machine.
func (e *Evaluator) evaluate(ctx context.Context, o observation, at, queuedAt time.Time) {
	key := o.key
	eff := e.rules.Resolve(key.rule, key.vhost, key.queue)
	cur, firing := e.active[key]
	if !eff.Enabled {
		e.clearPending(ctx, key)
		if firing {
			// The rule was switched off: nothing watches the condition any
			// more, so the alert must not stay open forever.
			e.resolve(ctx, key, cur, cur.Value, at, queuedAt)
		}
		return
	}
	if !o.known {
		return // unknown: no evidence either way
	}
	v := o.value
	level := ""
	switch {
	case eff.HasCrit && v >= eff.Critical:
		level = SeverityCritical
	case v >= eff.Warning:
		level = SeverityWarning
	}
	if !firing {
		if level == "" {
			e.clearPending(ctx, key)
			return
		}
		since := e.notePending(ctx, key, at)
		if at.Sub(since) < eff.For {
			return
		}
		e.clearPending(ctx, key)
		a := Alert{
			ID:        newAlertID(key, at),
			Rule:      key.rule,
			Severity:  level,
			State:     StateFiring,
			Vhost:     key.vhost,
			Queue:     key.queue,
			Value:     v,
			Threshold: eff.threshold(level),
			StartedAt: at,
		}
		if e.transition(ctx, key, a, StateFiring, queuedAt) {
			e.notifiedAt[key] = at
		}
		return
	}
	if v < eff.ClearBelow {
		e.resolve(ctx, key, cur, v, at, queuedAt)
		return
	}
	severity := cur.Severity
	switch {
	case level == SeverityCritical:
		severity = SeverityCritical
	case !eff.HasCrit:
		severity = SeverityWarning
	case v < eff.Critical-(eff.Warning-eff.ClearBelow):
		// Below critical by at least the rule's hysteresis gap.
		severity = SeverityWarning
	}
	if severity != cur.Severity {
		a := cur
		a.Severity = severity
		a.Value = v
		a.Threshold = eff.threshold(severity)
		if e.transition(ctx, key, a, StateFiring, queuedAt) {
			e.notifiedAt[key] = at
		}
		return
	}
	if v != cur.Value {
		// Still firing at the same severity: no notification, but the API
		// and dashboard show the current value, not the one at firing.
		upd := cur
		upd.Value = v
		if err := e.st.RecordTransition(ctx, upd, nil); err != nil {
			e.log.Warn("updating the value of a firing alert", "alert_id", cur.ID, "err", err)
		} else {
			e.active[key] = upd
			cur = upd
		}
	}
	e.repeat(ctx, key, cur, v, at, queuedAt)
}

// repeat notifies again about a still-firing alert whose last notification
// is at least the repeat interval old, unless it was acknowledged. Like
// every notification it is stored in the outbox first, under a new
// delivery id (each repeat is its own notification; retries of it keep
// that id).
func (e *Evaluator) repeat(ctx context.Context, key alertKey, cur Alert, v float64, at, queuedAt time.Time) {
	if e.repeatEvery <= 0 {
		return
	}
	last, ok := e.notifiedAt[key]
	if !ok {
		// Loaded after a restart without a record of its last
		// notification: the interval starts now rather than repeating at once.
		e.notifiedAt[key] = at
		return
	}
	if at.Sub(last) < e.repeatEvery {
		return
	}
	if e.acknowledged(ctx, cur) {
		// Looked at again one interval later, not on every poll.
		e.notifiedAt[key] = at
		return
	}
	a := cur
	a.Value = v
	if e.transition(ctx, key, a, StateFiring, queuedAt) {
		e.notifiedAt[key] = at
		e.log.Info("alert still firing; repeated its notification", "alert_id", a.ID, "rule", a.Rule,
			"vhost", a.Vhost, "queue", a.Queue, "since", a.StartedAt, "repeat_interval", e.repeatEvery)
	}
}

// acknowledged reports whether an operator acknowledged a. If acks cannot
// be read the repeat goes out: a missed page is worse than an unwanted one.
func (e *Evaluator) acknowledged(ctx context.Context, a Alert) bool {
	src, ok := e.st.(AckSource)
	if !ok {
		return false
	}
	_, acked, err := src.AlertAck(ctx, a.ID)
	if err != nil {
		e.log.Error("reading alert acknowledgement; repeating anyway", "alert_id", a.ID, "err", err)
		return false
	}
	return acked
}

func (eff Effective) threshold(severity string) float64 {
	if severity == SeverityCritical && eff.HasCrit {
		return eff.Critical
	}
	return eff.Warning
}

func (e *Evaluator) resolve(ctx context.Context, key alertKey, cur Alert, value float64, at, queuedAt time.Time) {
	a := cur
	a.State = StateResolved
	a.Value = value
	resolvedAt := at
	a.ResolvedAt = &resolvedAt
	e.transition(ctx, key, a, StateResolved, queuedAt)
}

// transition stores the alert's new state together with its outbox rows,
// and only then updates memory and wakes the dispatcher. It reports whether
// the store took it. Silences hold back firing notifications, and the
// resolve of an alert whose firing was never notified; the resolve of one
// that was notified is always sent.
func (e *Evaluator) transition(ctx context.Context, key alertKey, a Alert, status string, queuedAt time.Time) bool {
	nonce := randomHex(8)
	outbox := make([]Notification, 0, len(e.webhooks))
	_, wasFiring := e.active[key]
	silenced := false
	if status == StateFiring || e.unnotified[key] {
		silenced = e.silenced(ctx, a)
	}
	for _, name := range e.webhooks {
		if silenced {
			break
		}
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
			"alert_id", a.ID, "rule", a.Rule, "vhost", a.Vhost, "queue", a.Queue, "status", status, "severity", a.Severity, "err", err)
		return false
	}
	if a.State == StateFiring {
		e.active[key] = a
		switch {
		case len(outbox) > 0:
			delete(e.unnotified, key)
		case !wasFiring:
			e.unnotified[key] = true
		}
	} else {
		delete(e.active, key)
		delete(e.notifiedAt, key)
		delete(e.unnotified, key)
	}
	e.log.Info("alert "+status,
		"alert_id", a.ID, "rule", a.Rule, "vhost", a.Vhost, "queue", a.Queue, "severity", a.Severity,
		"value", a.Value, "threshold", a.Threshold, "notifications", len(outbox))
	if e.waker != nil && len(outbox) > 0 {
		e.waker.Wake()
	}
	return true
}

// silenced reports whether a silence in force covers a. If silences
// cannot be read the notification goes out: a missed page is worse than an
// unwanted one.
func (e *Evaluator) silenced(ctx context.Context, a Alert) bool {
	src, ok := e.st.(SilenceSource)
	if !ok {
		return false
	}
	now := time.Now()
	list, err := src.ActiveSilences(ctx, now)
	if err != nil {
		e.log.Error("reading silences; notifying anyway", "alert_id", a.ID, "err", err)
		return false
	}
	for _, sl := range list {
		if sl.Matches(a, now) {
			e.log.Info("alert transition silenced", "alert_id", a.ID, "rule", a.Rule, "queue", a.Queue, "silence_id", sl.ID, "owner", sl.Owner)
			return true
		}
	}
	return false
}

// newAlertID names one alert instance. It hashes what identifies the
// instance plus a random salt: two instances on the same queue never share
// an id even if polls carried the same timestamp.
func newAlertID(key alertKey, at time.Time) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%d\x00%s", key.rule, key.vhost, key.queue, at.UnixNano(), randomHex(8))
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

// loadPending restores the "for" waits kept in the store. Whether one
// still counts is decided by the first poll that sees its condition again
// (see notePending); targets no poll reports are dropped like any wait.
func (e *Evaluator) loadPending(ctx context.Context) error {
	e.pending = make(map[alertKey]time.Time)
	e.pendingSeen = make(map[alertKey]time.Time)
	e.pendingSaved = make(map[alertKey]time.Time)
	ps, ok := e.st.(PendingStore)
	if !ok {
		return nil
	}
	waits, err := ps.PendingWaits(ctx)
	if err != nil {
		return fmt.Errorf("loading pending alert waits: %w", err)
	}
	for _, w := range waits {
		key := alertKey{w.Rule, w.Vhost, w.Queue}
		e.pending[key] = w.Since
		e.pendingSeen[key] = w.SeenAt
		e.pendingSaved[key] = w.SeenAt
	}
	return nil
}

// notePending records that key's condition holds at at and returns since
// when it has held. The store learns of a new wait at once and of a holding
// one at most every pendingRefresh; a failed write is logged, not fatal
// (the wait then only lives in memory).
func (e *Evaluator) notePending(ctx context.Context, key alertKey, at time.Time) time.Time {
	since, ok := e.pending[key]
	if ok && at.Sub(e.pendingSeen[key]) > pendingGrace {
		// Not seen for longer than the grace (warren was down, or polls
		// failed): the condition may have cleared meanwhile; wait afresh.
		ok = false
	}
	if !ok {
		since = at
		e.pending[key] = at
	}
	e.pendingSeen[key] = at
	ps, isPS := e.st.(PendingStore)
	if !isPS || (ok && at.Sub(e.pendingSaved[key]) < pendingRefresh) {
		return since
	}
	if err := ps.SavePending(ctx, PendingWait{Rule: key.rule, Vhost: key.vhost, Queue: key.queue, Since: since, SeenAt: at}); err != nil {
		e.log.Warn("saving a pending alert wait", "rule", key.rule, "queue", key.queue, "err", err)
		return since
	}
	e.pendingSaved[key] = at
	return since
}

// clearPending ends key's wait, in memory and in the store.
func (e *Evaluator) clearPending(ctx context.Context, key alertKey) {
	if _, ok := e.pending[key]; !ok {
		return
	}
	delete(e.pending, key)
	delete(e.pendingSeen, key)
	delete(e.pendingSaved, key)
	if ps, ok := e.st.(PendingStore); ok {
		if err := ps.DeletePending(ctx, key.rule, key.vhost, key.queue); err != nil {
			e.log.Warn("deleting a pending alert wait", "rule", key.rule, "queue", key.queue, "err", err)
		}
	}
}

// DepthLevels is the queue_depth rule in force for one queue (the rules do
// not change after NewEvaluator, so no lock is needed).
func (e *Evaluator) DepthLevels(vhost, queue string) Effective {
	return e.rules.Resolve(RuleQueueDepth, vhost, queue)
}
