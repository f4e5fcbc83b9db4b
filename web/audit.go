package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"warren/alerts"
	"warren/consumers"
	"warren/store"
)

// AuditLog keeps the operator actions (the store is one). Optional: without
// it actions are still logged, and /audit says the log is not kept.
type AuditLog interface {
	RecordAudit(ctx context.Context, e store.AuditEntry) (store.AuditEntry, error)
	AuditLog(ctx context.Context, q store.AuditQuery) ([]store.AuditEntry, error)
}

// Audited actions; the consumer ones end in the field they change.
const (
	auditConcurrency    = "consumer.concurrency"
	auditPrefetch       = "consumer.prefetch"
	auditThrottleMax    = "consumer.throttle_max_concurrent"
	auditThrottleDelay  = "consumer.throttle_delay_ms"
	auditPause          = "consumer.pause"
	auditResume         = "consumer.resume"
	auditAlertAck       = "alert.ack"
	auditSilenceCreate  = "silence.create"
	auditSilenceExpire  = "silence.expire"
	auditWebhookTest    = "webhook.test"
	auditRequestDenied  = "request.denied"
	auditWriteTimeout   = 5 * time.Second
	auditPageLimit      = 100
	auditMaxValueLength = 500
)

// auditActions are the actions the page's filter offers.
var auditActions = []string{auditConcurrency, auditPrefetch, auditThrottleMax, auditThrottleDelay, auditPause,
	auditResume, auditAlertAck, auditSilenceCreate, auditSilenceExpire, auditWebhookTest, auditRequestDenied}

// recordAction logs one operator action and stores it in the audit log.
// result is the action's error (nil: it took effect). It never fails the
// request: the action has already happened, so a lost row is logged loudly
// instead.
func (s *Server) recordAction(c echo.Context, action, target, oldValue, newValue string, result error) {
	p := principalOf(c.Request().Context())
	e := store.AuditEntry{
		At:         time.Now().UTC(),
		Actor:      p.User,
		Role:       string(p.Role),
		Action:     action,
		Target:     target,
		OldValue:   clip(oldValue, auditMaxValueLength),
		NewValue:   clip(newValue, auditMaxValueLength),
		Outcome:    auditOutcome(result),
		RemoteAddr: p.Remote,
	}
	if result != nil {
		e.Detail = clip(auditDetail(result), auditMaxValueLength)
	}
	s.log.Info("operator action", "actor", e.Actor, "role", e.Role, "action", e.Action, "target", e.Target,
		"old", e.OldValue, "new", e.NewValue, "outcome", e.Outcome, "detail", e.Detail, "remote_addr", e.RemoteAddr)
	if s.audit == nil {
		return
	}
	// The row is written even if the client has gone away meanwhile.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), auditWriteTimeout)
	defer cancel()
	if _, err := s.audit.RecordAudit(ctx, e); err != nil {
		s.log.Error("audit entry not stored", "action", e.Action, "target", e.Target, "actor", e.Actor, "error", err)
	}
}

// rejectAction audits an operator action refused before it reached what it
// would change (a malformed body, an invalid value) and returns err.
func (s *Server) rejectAction(c echo.Context, action, target string, err error) error {
	s.recordAction(c, action, target, "", "", err)
	return err
}

// auditOutcome classifies an action's result.
func auditOutcome(err error) string {
	var he *echo.HTTPError
	switch {
	case err == nil:
		return store.AuditOK
	case errors.Is(err, errRoleDenied):
		return store.AuditDenied
	case isNotFound(err), isInvalid(err), errors.Is(err, errBadForm),
		errors.Is(err, alerts.ErrAlertNotFound), errors.Is(err, alerts.ErrUnknownWebhook),
		errors.Is(err, alerts.ErrSilenceNotFound), errors.Is(err, alerts.ErrSilenceEnded),
		errors.As(err, &he) && he.Code < 500:
		return store.AuditRejected
	default:
		return store.AuditFailed
	}
}

func auditDetail(err error) string {
	if errors.Is(err, errRoleDenied) {
		return strings.TrimSuffix(err.Error(), ": "+errRoleDenied.Error())
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		if m, ok := he.Message.(string); ok {
			return m
		}
	}
	return strings.TrimSuffix(err.Error(), ": "+errBadForm.Error())
}

// auditDenied records a state-changing request refused for the caller's
// role (the roles check runs before any handler).
func (s *Server) auditDenied(c echo.Context, p principal) {
	r := c.Request()
	s.recordAction(c, auditRequestDenied, r.Method+" "+r.URL.EscapedPath(), "", "",
		fmt.Errorf("role %s may not change anything: %w", p.Role, errRoleDenied))
}

// errRoleDenied marks a request refused for the caller's role.
var errRoleDenied = errors.New("denied")

// updateConsumer applies a live change through the controller and records
// one audit entry per changed field, with the value before and the value
// asked for. UI and API handlers call it instead of Update.
func (s *Server) updateConsumer(c echo.Context, name string, ch consumers.Change) (consumers.Status, error) {
	before, berr := s.consumers.Get(name)
	st, err := s.consumers.Update(c.Request().Context(), name, ch)
	old := func(v string) string {
		if berr != nil {
			return ""
		}
		return v
	}
	if ch.Concurrency != nil {
		s.recordAction(c, auditConcurrency, name, old(strconv.Itoa(before.Concurrency)), strconv.Itoa(*ch.Concurrency), err)
	}
	if ch.Prefetch != nil {
		s.recordAction(c, auditPrefetch, name, old(strconv.Itoa(before.Prefetch)), strconv.Itoa(*ch.Prefetch), err)
	}
	if ch.ThrottleMaxConcurrent != nil {
		s.recordAction(c, auditThrottleMax, name, old(strconv.Itoa(before.ThrottleMaxConcurrent)), strconv.Itoa(*ch.ThrottleMaxConcurrent), err)
	}
	if ch.ThrottleDelay != nil {
		s.recordAction(c, auditThrottleDelay, name, old(strconv.FormatFloat(before.ThrottleDelayMs, 'f', -1, 64)),
			strconv.FormatInt(ch.ThrottleDelay.Milliseconds(), 10), err)
	}
	return st, err
}

// consumerStateAction wraps Pause or Resume so the call is audited with the
// state before and after. action is auditPause or auditResume.
func (s *Server) consumerStateAction(c echo.Context, action string, do func(context.Context, string) (consumers.Status, error)) func(context.Context, string) (consumers.Status, error) {
	return func(ctx context.Context, name string) (consumers.Status, error) {
		before, berr := s.consumers.Get(name)
		st, err := do(ctx, name)
		oldState, newState := "", st.State
		if berr == nil {
			oldState = before.State
		}
		if err != nil {
			newState = strings.TrimPrefix(action, "consumer.") + "d"
		}
		s.recordAction(c, action, name, oldState, newState, err)
		return st, err
	}
}

// ackAlert records an acknowledgement through the alert actions and audits
// it with the acknowledgement it replaces, if any. Handlers call it instead
// of AlertActions.AckAlert.
func (s *Server) ackAlert(c echo.Context, ack alerts.Ack) error {
	ctx := c.Request().Context()
	old := ""
	if prev, found, err := s.alertActions.AlertAck(ctx, ack.AlertID); err == nil && found {
		old = ackText(prev)
	}
	err := s.alertActions.AckAlert(ctx, ack)
	s.recordAction(c, auditAlertAck, ack.AlertID, old, ackText(ack), err)
	return err
}

func ackText(a alerts.Ack) string {
	s := "acknowledged by " + a.By
	if a.Note != "" {
		s += ": " + a.Note
	}
	return s
}

// createSilence stores a silence through the alert actions and audits it.
// Handlers call it instead of AlertActions.CreateSilence.
func (s *Server) createSilence(c echo.Context, sl alerts.Silence) (alerts.Silence, error) {
	out, err := s.alertActions.CreateSilence(c.Request().Context(), sl)
	if err == nil {
		sl = out
	}
	newValue := fmt.Sprintf("until %s by %s: %s", dateTime(sl.EndsAt), sl.Owner, sl.Reason)
	if sl.ID > 0 {
		newValue = fmt.Sprintf("silence #%d %s", sl.ID, newValue)
	}
	s.recordAction(c, auditSilenceCreate, silenceTarget(sl), "", newValue, err)
	return out, err
}

// expireSilence ends a silence now through the alert actions and audits it
// with its end before and after. Handlers call it instead of
// AlertActions.ExpireSilence.
func (s *Server) expireSilence(c echo.Context, id int64) (alerts.Silence, error) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	old, err := s.alertActions.ExpireSilence(c.Request().Context(), id, now)
	target, oldValue, newValue := fmt.Sprintf("silence #%d", id), "", ""
	if err == nil {
		target += " " + silenceTarget(old)
		oldValue, newValue = "until "+dateTime(old.EndsAt), "until "+dateTime(now)
	}
	s.recordAction(c, auditSilenceExpire, target, oldValue, newValue, err)
	return old, err
}

// silenceTarget writes a silence's matchers; empty ones match everything.
func silenceTarget(sl alerts.Silence) string {
	or := func(v string) string {
		if v == "" {
			return "*"
		}
		return v
	}
	return "rule=" + or(sl.Rule) + " vhost=" + or(sl.Vhost) + " queue=" + or(sl.Queue)
}

// sendWebhookTest sends a test notification through the tester and audits
// its outcome. Handlers call it instead of WebhookTester.SendTest.
func (s *Server) sendWebhookTest(c echo.Context, name string) (alerts.Attempt, error) {
	a, err := s.webhookTester.SendTest(c.Request().Context(), name)
	newValue := ""
	if err == nil {
		newValue = "test notification " + a.Outcome
		if a.Error != "" {
			newValue += ": " + a.Error
		}
	}
	result := err
	if err == nil && a.Outcome != "delivered" {
		// Sent but not accepted: the action did not do what was asked.
		result = fmt.Errorf("the receiver did not accept it (%s)", a.Outcome)
	}
	s.recordAction(c, auditWebhookTest, name, "", newValue, result)
	return a, err
}

// auditQuery reads the audit filter and paging from the query string; bad
// values are a 400 naming the parameter.
func auditQuery(c echo.Context) (store.AuditQuery, error) {
	q := store.AuditQuery{
		Limit:  auditPageLimit,
		Actor:  strings.TrimSpace(c.QueryParam("actor")),
		Action: strings.TrimSpace(c.QueryParam("action")),
		Target: strings.TrimSpace(c.QueryParam("target")),
	}
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return q, jsonError(http.StatusBadRequest, "query parameter limit: want 1..1000, got %q", clip(v, 20))
		}
		q.Limit = n
	}
	if v := c.QueryParam("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return q, jsonError(http.StatusBadRequest, "query parameter before: want an entry id (a positive integer), got %q", clip(v, 20))
		}
		q.Before = n
	}
	return q, nil
}

// auditJSON is the body of GET /api/audit.
type auditJSON struct {
	Entries []store.AuditEntry `json:"entries"`
	// NextBefore pages further back (?before=), 0 when there is no more.
	NextBefore int64 `json:"next_before"`
}

// apiAudit is GET /api/audit?actor=&action=&target=&limit=&before=: the
// audit log, newest first.
func (s *Server) apiAudit(c echo.Context) error {
	if s.audit == nil {
		return jsonError(http.StatusServiceUnavailable, "the audit log is not kept by this server")
	}
	q, err := auditQuery(c)
	if err != nil {
		return err
	}
	list, next, err := s.readAudit(c.Request().Context(), q)
	if err != nil {
		return echo.NewHTTPError(http.StatusInternalServerError, "reading the audit log failed").SetInternal(err)
	}
	noStore(c)
	return c.JSON(http.StatusOK, auditJSON{Entries: list, NextBefore: next})
}

// readAudit reads one page, and one row more to know whether there is a next.
func (s *Server) readAudit(ctx context.Context, q store.AuditQuery) ([]store.AuditEntry, int64, error) {
	want := q.Limit
	q.Limit++
	list, err := s.audit.AuditLog(ctx, q)
	if err != nil {
		return nil, 0, err
	}
	var next int64
	if len(list) > want {
		list = list[:want]
		next = list[want-1].ID
	}
	return list, next, nil
}

// auditView is the audit page.
type auditView struct {
	Unavailable bool
	Err         string
	Actor       string
	Action      string
	Target      string
	Actions     []string
	Rows        []auditRow
	OlderHref   string
	NewestHref  string // set when the page is not the newest
}

type auditRow struct {
	At, Actor, Role, Action, Target, Old, New, Outcome, Detail, Remote string
}

// auditPage is GET /audit: the newest operator actions, filterable by actor,
// action and target, paged back with ?before=.
func (s *Server) auditPage(c echo.Context) error {
	q, err := auditQuery(c)
	if err != nil {
		return err
	}
	v := auditView{Actor: q.Actor, Action: q.Action, Target: q.Target, Actions: auditActions, Unavailable: s.audit == nil}
	if !v.Unavailable {
		list, next, err := s.readAudit(c.Request().Context(), q)
		if err != nil {
			s.log.Warn("reading the audit log", "error", err)
			v.Err = "could not read the audit log"
		}
		for _, e := range list {
			v.Rows = append(v.Rows, auditRow{At: dateTime(e.At), Actor: e.Actor, Role: e.Role, Action: e.Action,
				Target: e.Target, Old: e.OldValue, New: e.NewValue, Outcome: e.Outcome, Detail: e.Detail, Remote: e.RemoteAddr})
		}
		link := func(before int64) string {
			vals := url.Values{}
			for k, val := range map[string]string{"actor": q.Actor, "action": q.Action, "target": q.Target} {
				if val != "" {
					vals.Set(k, val)
				}
			}
			if before > 0 {
				vals.Set("before", strconv.FormatInt(before, 10))
			}
			if len(vals) == 0 {
				return "/audit"
			}
			return "/audit?" + vals.Encode()
		}
		if next > 0 {
			v.OlderHref = link(next)
		}
		if q.Before > 0 {
			v.NewestHref = link(0)
		}
	}
	body := auditSection(v)
	return s.respond(c, http.StatusOK, "audit log", body, body)
}

// outcomeClass keeps stored outcomes out of class names unless styled.
func outcomeClass(o string) string {
	switch o {
	case store.AuditOK, store.AuditRejected, store.AuditFailed, store.AuditDenied:
		return "outcome outcome-" + o
	default:
		return "outcome"
	}
}
