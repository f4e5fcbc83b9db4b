package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"warren/alerts"
)

// alertHistoryLimit bounds the history served by /api/alerts?state=all and
// the /alerts page: enough to see what happened overnight, small enough to
// render every refresh.
const alertHistoryLimit = 100

// alertsJSON is the body of GET /api/alerts.
type alertsJSON struct {
	Alerts []alerts.Alert `json:"alerts"`
}

// apiAlerts is GET /api/alerts: the alerts currently firing, or with
// ?state=all the recent history (firing and resolved, most recently changed
// first, at most alertHistoryLimit).
func (s *Server) apiAlerts(c echo.Context) error {
	ctx := c.Request().Context()
	var (
		list []alerts.Alert
		err  error
	)
	switch state := c.QueryParam("state"); state {
	case "", alerts.StateFiring:
		list, err = s.alerts.ActiveAlerts(ctx)
	case "all":
		list, err = s.alerts.AlertHistory(ctx, alertHistoryLimit)
	default:
		return jsonError(http.StatusBadRequest, "query parameter state: want %q or %q, got %q", alerts.StateFiring, "all", state)
	}
	if err != nil {
		// Details go to the log (handleError); the client gets a short message.
		return echo.NewHTTPError(http.StatusInternalServerError, "reading alerts failed").SetInternal(err)
	}
	if len(list) > alertHistoryLimit {
		list = list[:alertHistoryLimit]
	}
	if list == nil {
		list = []alerts.Alert{}
	}
	noStore(c)
	return c.JSON(http.StatusOK, alertsJSON{Alerts: list})
}

// AlertActions are the operator actions on alerts, kept in the store.
type AlertActions interface {
	// AckAlert records an acknowledgement; an unknown alert wraps
	// alerts.ErrAlertNotFound.
	AckAlert(ctx context.Context, ack alerts.Ack) error
	// AlertAck returns an alert's acknowledgement, ok false if it has none.
	AlertAck(ctx context.Context, alertID string) (alerts.Ack, bool, error)
	CreateSilence(ctx context.Context, sl alerts.Silence) (alerts.Silence, error)
	// ExpireSilence ends a silence at at and returns it as it was; an
	// unknown id wraps alerts.ErrSilenceNotFound, one no longer in force
	// alerts.ErrSilenceEnded.
	ExpireSilence(ctx context.Context, id int64, at time.Time) (alerts.Silence, error)
	ActiveSilences(ctx context.Context, now time.Time) ([]alerts.Silence, error)
	DeliveryLog(ctx context.Context, limit int) ([]alerts.Attempt, error)
}

// WebhookTester sends a test notification to one webhook; an unknown name
// wraps alerts.ErrUnknownWebhook. The alerts Dispatcher is one.
type WebhookTester interface {
	SendTest(ctx context.Context, name string) (alerts.Attempt, error)
}

// decodeStrict decodes one JSON object into dst, refusing unknown fields
// and trailing data.
func decodeStrict(c echo.Context, dst any) error {
	body, err := io.ReadAll(io.LimitReader(c.Request().Body, 64<<10))
	if err != nil {
		return jsonError(http.StatusBadRequest, "reading request body: %v", err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		// No body is an empty object: `curl -X POST …/ack` with the
		// signed-in user needs nothing else; missing fields say so below.
		body = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return jsonError(http.StatusBadRequest, "request body: %s", jsonErrText(err))
	}
	if dec.More() {
		return jsonError(http.StatusBadRequest, "request body: data after the JSON object")
	}
	return nil
}

func (s *Server) needActions() error {
	if s.alertActions == nil {
		return jsonError(http.StatusServiceUnavailable, "alert actions are not available")
	}
	return nil
}

// apiAckAlert is POST /api/alerts/{id}/ack with {"by": "...", "note": "..."}.
func (s *Server) apiAckAlert(c echo.Context) error {
	if err := s.needActions(); err != nil {
		return err
	}
	var in struct {
		By   string `json:"by"`
		Note string `json:"note"`
	}
	target := c.Param("id")
	if err := decodeStrict(c, &in); err != nil {
		return s.rejectAction(c, auditAlertAck, target, err)
	}
	by, err := s.actingAs(c, "by", in.By)
	if err != nil {
		return s.rejectAction(c, auditAlertAck, target, jsonError(http.StatusBadRequest, "%s", err.Error()))
	}
	if by == "" {
		return s.rejectAction(c, auditAlertAck, target, jsonError(http.StatusBadRequest, "by: is required (who acknowledges)"))
	}
	ack := alerts.Ack{AlertID: c.Param("id"), By: by, Note: in.Note, At: time.Now().UTC().Truncate(time.Millisecond)}
	if err := s.ackAlert(c, ack); err != nil {
		if errors.Is(err, alerts.ErrAlertNotFound) {
			return jsonError(http.StatusNotFound, "no alert %q", ack.AlertID)
		}
		return echo.NewHTTPError(http.StatusInternalServerError, "acknowledging failed").SetInternal(err)
	}
	return c.JSON(http.StatusOK, ack)
}

// apiCreateSilence is POST /api/silences with {"rule", "vhost", "queue",
// "ends_at" (RFC 3339) or "duration" ("2h"), "owner", "reason"}.
func (s *Server) apiCreateSilence(c echo.Context) error {
	if err := s.needActions(); err != nil {
		return err
	}
	var in struct {
		Rule     string    `json:"rule"`
		Vhost    string    `json:"vhost"`
		Queue    string    `json:"queue"`
		EndsAt   time.Time `json:"ends_at"`
		Duration string    `json:"duration"`
		Owner    string    `json:"owner"`
		Reason   string    `json:"reason"`
	}
	if err := decodeStrict(c, &in); err != nil {
		return s.rejectAction(c, auditSilenceCreate, "", err)
	}
	target := silenceTarget(alerts.Silence{Rule: in.Rule, Vhost: in.Vhost, Queue: in.Queue})
	owner, err := s.actingAs(c, "owner", in.Owner)
	if err != nil {
		return s.rejectAction(c, auditSilenceCreate, target, jsonError(http.StatusBadRequest, "%s", err.Error()))
	}
	sl, err := newSilence(silenceInput{Rule: in.Rule, Vhost: in.Vhost, Queue: in.Queue, EndsAt: in.EndsAt,
		Duration: in.Duration, Owner: owner, Reason: in.Reason}, time.Now())
	if err != nil {
		return s.rejectAction(c, auditSilenceCreate, target, jsonError(http.StatusBadRequest, "%s", err.Error()))
	}
	sl, err = s.createSilence(c, sl)
	if err != nil {
		return echo.NewHTTPError(http.StatusInternalServerError, "creating silence failed").SetInternal(err)
	}
	return c.JSON(http.StatusCreated, sl)
}

// apiExpireSilence is DELETE /api/silences/{id}: ends a silence in force
// now (204). The row stays as history. An unknown id is 404; one that has
// already ended (expired or run out) is 409.
func (s *Server) apiExpireSilence(c echo.Context) error {
	if err := s.needActions(); err != nil {
		return err
	}
	id, err := silenceID(c)
	if err != nil {
		return err
	}
	if _, err := s.expireSilence(c, id); err != nil {
		switch {
		case errors.Is(err, alerts.ErrSilenceNotFound):
			return jsonError(http.StatusNotFound, "no silence %d", id)
		case errors.Is(err, alerts.ErrSilenceEnded):
			return jsonError(http.StatusConflict, "silence %d has already ended", id)
		}
		return echo.NewHTTPError(http.StatusInternalServerError, "ending silence failed").SetInternal(err)
	}
	return c.NoContent(http.StatusNoContent)
}

// silenceID reads the {id} of a silence route: a positive integer, else 400.
func silenceID(c echo.Context) (int64, error) {
	v := c.Param("id")
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id < 1 {
		return 0, jsonError(http.StatusBadRequest, "silence id: want a positive integer, got %q", clip(v, 40))
	}
	return id, nil
}

// apiSilences is GET /api/silences: the silences in force.
func (s *Server) apiSilences(c echo.Context) error {
	if err := s.needActions(); err != nil {
		return err
	}
	list, err := s.alertActions.ActiveSilences(c.Request().Context(), time.Now())
	if err != nil {
		return echo.NewHTTPError(http.StatusInternalServerError, "reading silences failed").SetInternal(err)
	}
	noStore(c)
	return c.JSON(http.StatusOK, map[string][]alerts.Silence{"silences": list})
}

// apiDeliveries is GET /api/deliveries?limit=N: the delivery log, most
// recent attempt first (default 100, at most 1000).
func (s *Server) apiDeliveries(c echo.Context) error {
	if err := s.needActions(); err != nil {
		return err
	}
	limit := 100
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return jsonError(http.StatusBadRequest, "query parameter limit: want 1..1000, got %q", v)
		}
		limit = n
	}
	list, err := s.alertActions.DeliveryLog(c.Request().Context(), limit)
	if err != nil {
		return echo.NewHTTPError(http.StatusInternalServerError, "reading delivery log failed").SetInternal(err)
	}
	noStore(c)
	return c.JSON(http.StatusOK, map[string][]alerts.Attempt{"deliveries": list})
}

// apiTestWebhook is POST /api/webhooks/{name}/test: 200 with the attempt
// when the receiver accepted it, 502 with the attempt when it did not.
func (s *Server) apiTestWebhook(c echo.Context) error {
	if s.webhookTester == nil {
		return jsonError(http.StatusServiceUnavailable, "webhook tests are not available")
	}
	name := c.Param("name")
	a, err := s.sendWebhookTest(c, name)
	if errors.Is(err, alerts.ErrUnknownWebhook) {
		return jsonError(http.StatusNotFound, "no webhook %q", name)
	}
	if err != nil {
		return echo.NewHTTPError(http.StatusInternalServerError, "sending test notification failed").SetInternal(err)
	}
	if a.Outcome != "delivered" {
		return c.JSON(http.StatusBadGateway, a)
	}
	return c.JSON(http.StatusOK, a)
}

// silenceInput is a silence as an operator asked for it, from the API body
// or the alerts page's form.
type silenceInput struct {
	Rule, Vhost, Queue string
	EndsAt             time.Time
	Duration           string
	Owner, Reason      string
}

// newSilence checks a requested silence; an error names the field that was
// wrong and nothing is stored.
func newSilence(in silenceInput, now time.Time) (alerts.Silence, error) {
	switch {
	case strings.TrimSpace(in.Owner) == "":
		return alerts.Silence{}, errors.New("owner: is required")
	case strings.TrimSpace(in.Reason) == "":
		return alerts.Silence{}, errors.New("reason: is required")
	case in.Rule != "" && !slices.Contains(alerts.RuleKinds, in.Rule):
		return alerts.Silence{}, fmt.Errorf("rule: unknown rule %q", clip(in.Rule, 40))
	case in.Duration != "" && !in.EndsAt.IsZero():
		return alerts.Silence{}, errors.New("give either ends_at or duration, not both")
	}
	if _, err := path.Match(in.Queue, ""); err != nil {
		return alerts.Silence{}, fmt.Errorf("queue: bad glob %q", clip(in.Queue, 80))
	}
	if in.Duration != "" {
		d, err := time.ParseDuration(in.Duration)
		if err != nil || d <= 0 {
			return alerts.Silence{}, fmt.Errorf("duration: want a positive duration such as 2h, got %q", clip(in.Duration, 40))
		}
		if d > alerts.MaxSilence {
			return alerts.Silence{}, fmt.Errorf("duration: at most %s, got %q", maxSilenceLabel(), clip(in.Duration, 40))
		}
		in.EndsAt = now.Add(d)
	}
	switch {
	case in.EndsAt.IsZero():
		return alerts.Silence{}, errors.New("ends_at or duration: give one (ends_at in RFC 3339, or duration such as 2h)")
	case !in.EndsAt.After(now):
		return alerts.Silence{}, errors.New("ends_at: must be in the future (or give duration)")
	case in.EndsAt.Sub(now) > alerts.MaxSilence:
		return alerts.Silence{}, fmt.Errorf("ends_at: at most %s from now, got %s", maxSilenceLabel(), in.EndsAt.UTC().Format(time.RFC3339))
	}
	return alerts.Silence{Rule: in.Rule, Vhost: in.Vhost, Queue: in.Queue, EndsAt: in.EndsAt.UTC(),
		Owner: strings.TrimSpace(in.Owner), Reason: strings.TrimSpace(in.Reason)}, nil
}

// maxSilenceLabel writes alerts.MaxSilence as the form offers it, and in
// days: "168h (7 days)".
func maxSilenceLabel() string {
	h := alerts.MaxSilence.Hours()
	return strconv.FormatFloat(h, 'f', -1, 64) + "h (" + strconv.FormatFloat(h/24, 'f', -1, 64) + " days)"
}

// alertActor is who acts on the alerts page: the signed-in user ("local"
// without authentication).
func alertActor(c echo.Context) string { return signedInUser(c) }

// actingAs is the name an action is recorded under when the request names
// one (an ack's "by", a silence's "owner"). With authentication it is the
// signed-in user: empty means them, and another name is refused rather than
// ignored, so nobody acts in someone else's name and no client believes it
// did. Without authentication (loopback clients only) the name is taken as
// given, as before.
func (s *Server) actingAs(c echo.Context, field, given string) (string, error) {
	given = strings.TrimSpace(given)
	if !s.auth.cfg.enabled() {
		return given, nil
	}
	user := signedInUser(c)
	if given != "" && given != user {
		return "", fmt.Errorf("%s: must be the signed-in user %q (or left out) when authentication is on, got %q",
			field, user, clip(given, 40))
	}
	return user, nil
}

// The /alerts page: firing alerts (acknowledge), acknowledged ones, the
// silences in force (add one), the history, and the webhook targets (send a
// test notification) with the delivery log. Each panel refreshes itself; each
// control answers with its panel re-rendered, the result or the error next
// to the control.

// Limits of the page: enough for an incident, small enough to refresh.
const (
	deliveryLogRows = 50
	maxAckNote      = 500
	maxSilenceText  = 500
)

// silenceDurations are the choices of the silence form.
var silenceDurations = []string{"30m", "1h", "2h", "4h", "8h", "24h", "72h", "168h"}

type alertsPageView struct {
	Panel      alertsPanelView
	Silences   silencesView
	Deliveries deliveriesView
}

// alertsPanelView is the #alerts panel of the alerts page.
type alertsPanelView struct {
	Firing     []firingAlertRow // firing, not acknowledged
	Acked      []firingAlertRow // firing, acknowledged
	Err        string
	History    []alertRow
	HistoryErr string
	// ActionErr is an action's error that has no row to stand next to
	// (the alert is gone, actions are unavailable).
	ActionErr string
	CanAck    bool
}

type firingAlertRow struct {
	alertRow
	ID, AckURL                string
	AckedBy, AckedAt, AckNote string
	Silenced                  string // the silence covering it, if any
	Note, Error               string // the note typed and the error of a failed ack
}

type silencesView struct {
	Available bool
	Rows      []silenceRow
	Err       string
	Form      silenceFormView
	// ActionDone and ActionErr are the outcome of ending a silence; the
	// error stands next to the row when the silence is still listed.
	ActionDone, ActionErr string
}

type silenceRow struct {
	ID                                            int64
	Rule, Vhost, Queue, Ends, Left, Owner, Reason string
	ExpireURL, Error                              string
}

type silenceFormView struct {
	URL                                    string
	Rules, Durations                       []string
	Rule, Vhost, Queue, For, Owner, Reason string
	// OwnerFixed: with authentication the owner is the signed-in user.
	OwnerFixed  bool
	Error, Done string
}

type deliveriesView struct {
	Available bool
	Targets   []webhookTargetView
	Rows      []deliveryRow
	Err       string
	ActionErr string
}

type webhookTargetView struct {
	Name, TestURL string
	CanTest       bool
	Result, Error string
}

type deliveryRow struct {
	At, Webhook, AlertID, Status, Outcome, Latency, Error string
}

// alertUnit is the unit of a rule's value and threshold.
func alertUnit(rule string) string {
	switch rule {
	case "time_to_drain":
		return " s"
	case "consumer_p95_latency":
		return " ms"
	case "consumer_error_rate", "consumer_slow_rate":
		return "/s"
	case alerts.RuleQueueDepth, "no_consumer", "queue_growing", "dead_letter_not_empty":
		return " msgs"
	default:
		return ""
	}
}

func alertControlURL(id, action string) string {
	return "/ui/alerts/" + url.PathEscape(id) + "/" + action
}

func silenceExpireURL(id int64) string {
	return "/ui/silences/" + strconv.FormatInt(id, 10) + "/expire"
}

func webhookTestURL(name string) string {
	return "/ui/webhooks/" + url.PathEscape(name) + "/test"
}

// alertsPanel reads what the #alerts panel shows. Failures become messages
// in the panel, never a failed page.
func (s *Server) alertsPanel(ctx context.Context) alertsPanelView {
	now := time.Now()
	v := alertsPanelView{CanAck: s.alertActions != nil}
	firing, err := s.alerts.ActiveAlerts(ctx)
	if err != nil {
		s.log.Warn("reading active alerts", "error", err)
		v.Err = "could not read the firing alerts"
	}
	var silences []alerts.Silence
	if s.alertActions != nil {
		if silences, err = s.alertActions.ActiveSilences(ctx, now); err != nil {
			s.log.Warn("reading silences", "error", err)
		}
	}
	for _, a := range firing {
		r := firingAlertRow{alertRow: newAlertRow(a, now), ID: a.ID, AckURL: alertControlURL(a.ID, "ack")}
		for _, sl := range silences {
			if sl.Matches(a, now) {
				r.Silenced = "silenced until " + clock(sl.EndsAt) + " by " + sl.Owner
				break
			}
		}
		if s.alertActions != nil {
			ack, ok, err := s.alertActions.AlertAck(ctx, a.ID)
			if err != nil {
				s.log.Warn("reading alert ack", "alert", a.ID, "error", err)
			}
			// An ack older than the alert's start belongs to an earlier
			// firing of the same target.
			if ok && !ack.At.Before(a.StartedAt) {
				r.AckedBy, r.AckedAt, r.AckNote = ack.By, dateTime(ack.At), ack.Note
				v.Acked = append(v.Acked, r)
				continue
			}
		}
		v.Firing = append(v.Firing, r)
	}
	history, err := s.alerts.AlertHistory(ctx, alertHistoryLimit)
	if err != nil {
		s.log.Warn("reading alert history", "error", err)
		v.HistoryErr = "could not read the alert history"
	}
	for _, a := range history {
		v.History = append(v.History, newAlertRow(a, now))
	}
	return v
}

func (s *Server) silencesPanel(c echo.Context, form silenceFormView) silencesView {
	form.URL = "/ui/silences"
	form.Rules = alerts.RuleKinds
	form.Durations = silenceDurations
	if form.For == "" {
		form.For = "2h"
	}
	if form.Owner == "" {
		form.Owner = alertActor(c)
	}
	form.OwnerFixed = s.auth.cfg.enabled()
	v := silencesView{Available: s.alertActions != nil, Form: form}
	if s.alertActions == nil {
		return v
	}
	now := time.Now()
	list, err := s.alertActions.ActiveSilences(c.Request().Context(), now)
	if err != nil {
		s.log.Warn("reading silences", "error", err)
		v.Err = "could not read the silences"
	}
	for _, sl := range list {
		r := silenceRow{ID: sl.ID, Rule: sl.Rule, Vhost: sl.Vhost, Queue: sl.Queue, Ends: dateTime(sl.EndsAt),
			Left: humanDuration(sl.EndsAt.Sub(now)) + " left", Owner: sl.Owner, Reason: sl.Reason,
			ExpireURL: silenceExpireURL(sl.ID)}
		if r.Rule == "" {
			r.Rule = "any rule"
		}
		if r.Vhost == "" {
			r.Vhost = "any vhost"
		}
		if r.Queue == "" {
			r.Queue = "any queue"
		}
		v.Rows = append(v.Rows, r)
	}
	return v
}

func (s *Server) deliveriesPanel(ctx context.Context) deliveriesView {
	v := deliveriesView{Available: s.alertActions != nil}
	for _, name := range s.webhooks {
		v.Targets = append(v.Targets, webhookTargetView{Name: name, TestURL: webhookTestURL(name), CanTest: s.webhookTester != nil})
	}
	if s.alertActions == nil {
		return v
	}
	list, err := s.alertActions.DeliveryLog(ctx, deliveryLogRows)
	if err != nil {
		s.log.Warn("reading delivery log", "error", err)
		v.Err = "could not read the delivery log"
	}
	for _, a := range list {
		v.Rows = append(v.Rows, deliveryRow{At: dateTime(a.At), Webhook: a.Webhook, AlertID: a.AlertID, Status: a.Status,
			Outcome: a.Outcome, Latency: latencyText(a.LatencyMs), Error: a.Error})
	}
	return v
}

func latencyText(ms float64) string {
	if ms < 10 {
		return strconv.FormatFloat(ms, 'f', 1, 64) + " ms"
	}
	return groupDigits(int64(ms+0.5)) + " ms"
}

// alertsFullPage is GET /alerts (without ?recent): the page, or with
// HX-Request the panel named by ?part (alerts, silences, deliveries).
func (s *Server) alertsFullPage(c echo.Context) error {
	ctx := c.Request().Context()
	if isHX(c) {
		switch c.QueryParam("part") {
		case "silences":
			return render(c, http.StatusOK, silencesSection(s.silencesPanel(c, silenceFormView{})))
		case "deliveries":
			return render(c, http.StatusOK, deliveriesSection(s.deliveriesPanel(ctx)))
		default:
			return render(c, http.StatusOK, alertsPanelSection(s.alertsPanel(ctx)))
		}
	}
	v := alertsPageView{
		Panel:      s.alertsPanel(ctx),
		Silences:   s.silencesPanel(c, silenceFormView{}),
		Deliveries: s.deliveriesPanel(ctx),
	}
	return render(c, http.StatusOK, page(s.pageView(c, "alerts"), alertsPage(v)))
}

// uiAckAlert is POST /ui/alerts/{id}/ack with an optional note; it answers
// with the #alerts panel.
func (s *Server) uiAckAlert(c echo.Context) error {
	ctx := c.Request().Context()
	id, err := pathParam(c, "id")
	if err != nil {
		return err
	}
	note := strings.TrimSpace(c.FormValue("note"))
	fail := func(code int, msg string) error {
		v := s.alertsPanel(ctx)
		// Next to the row's ack form when it has one (only unacknowledged
		// rows do), else at the top of the panel.
		if v.CanAck {
			for i := range v.Firing {
				if v.Firing[i].ID == id {
					v.Firing[i].Error, v.Firing[i].Note = msg, note
					return render(c, code, alertsPanelSection(v))
				}
			}
		}
		v.ActionErr = msg
		return render(c, code, alertsPanelSection(v))
	}
	if s.alertActions == nil {
		return fail(http.StatusServiceUnavailable, "acknowledging is not available")
	}
	if utf8.RuneCountInString(note) > maxAckNote {
		return fail(http.StatusUnprocessableEntity, fmt.Sprintf("note: at most %d characters", maxAckNote))
	}
	ack := alerts.Ack{AlertID: id, By: alertActor(c), Note: note, At: time.Now().UTC().Truncate(time.Millisecond)}
	if err := s.ackAlert(c, ack); err != nil {
		if errors.Is(err, alerts.ErrAlertNotFound) {
			return fail(http.StatusNotFound, "alert "+clip(id, 40)+" no longer exists")
		}
		s.log.Error("acknowledging alert", "alert", id, "error", err)
		return fail(http.StatusInternalServerError, "acknowledging failed")
	}
	return render(c, http.StatusOK, alertsPanelSection(s.alertsPanel(ctx)))
}

// uiCreateSilence is POST /ui/silences with rule, vhost, queue, for, owner
// and reason; it answers with the #silences panel. A refused form keeps what
// was typed, with the reason next to it.
func (s *Server) uiCreateSilence(c echo.Context) error {
	form := silenceFormView{
		Rule:   c.FormValue("rule"),
		Vhost:  strings.TrimSpace(c.FormValue("vhost")),
		Queue:  strings.TrimSpace(c.FormValue("queue")),
		For:    strings.TrimSpace(c.FormValue("for")),
		Owner:  strings.TrimSpace(c.FormValue("owner")),
		Reason: strings.TrimSpace(c.FormValue("reason")),
	}
	fail := func(code int, msg string) error {
		form.Error = msg
		return render(c, code, silencesSection(s.silencesPanel(c, form)))
	}
	if s.alertActions == nil {
		return fail(http.StatusServiceUnavailable, "silences are not available")
	}
	for name, v := range map[string]string{"vhost": form.Vhost, "queue": form.Queue, "owner": form.Owner, "reason": form.Reason} {
		if utf8.RuneCountInString(v) > maxSilenceText {
			return fail(http.StatusUnprocessableEntity, fmt.Sprintf("%s: at most %d characters", name, maxSilenceText))
		}
	}
	if form.For == "" {
		return fail(http.StatusUnprocessableEntity, "for: choose how long the silence lasts")
	}
	owner, err := s.actingAs(c, "owner", form.Owner)
	if err != nil {
		form.Owner = alertActor(c)
		return fail(http.StatusUnprocessableEntity, err.Error())
	}
	form.Owner = owner
	sl, err := newSilence(silenceInput{Rule: form.Rule, Vhost: form.Vhost, Queue: form.Queue, Duration: form.For,
		Owner: form.Owner, Reason: form.Reason}, time.Now())
	if err != nil {
		return fail(http.StatusUnprocessableEntity, strings.Replace(err.Error(), "duration:", "for:", 1))
	}
	sl, err = s.createSilence(c, sl)
	if err != nil {
		s.log.Error("creating silence", "error", err)
		return fail(http.StatusInternalServerError, "creating the silence failed")
	}
	return render(c, http.StatusOK, silencesSection(s.silencesPanel(c, silenceFormView{
		Done: "silence " + strconv.FormatInt(sl.ID, 10) + " added, until " + clock(sl.EndsAt),
	})))
}

// uiExpireSilence is POST /ui/silences/{id}/expire: ends a silence now; it
// answers with the #silences panel, the outcome above the list (or the
// error next to the silence's row while it is still listed).
func (s *Server) uiExpireSilence(c echo.Context) error {
	id, err := silenceID(c)
	if err != nil {
		return err
	}
	fail := func(code int, msg string) error {
		v := s.silencesPanel(c, silenceFormView{})
		for i := range v.Rows {
			if v.Rows[i].ID == id {
				v.Rows[i].Error = msg
				return render(c, code, silencesSection(v))
			}
		}
		v.ActionErr = msg
		return render(c, code, silencesSection(v))
	}
	if s.alertActions == nil {
		return fail(http.StatusServiceUnavailable, "silences are not available")
	}
	if _, err := s.expireSilence(c, id); err != nil {
		switch {
		case errors.Is(err, alerts.ErrSilenceNotFound):
			return fail(http.StatusNotFound, "silence "+strconv.FormatInt(id, 10)+" does not exist")
		case errors.Is(err, alerts.ErrSilenceEnded):
			return fail(http.StatusConflict, "silence "+strconv.FormatInt(id, 10)+" has already ended")
		}
		s.log.Error("ending silence", "silence_id", id, "error", err)
		return fail(http.StatusInternalServerError, "ending the silence failed")
	}
	v := s.silencesPanel(c, silenceFormView{})
	v.ActionDone = "silence " + strconv.FormatInt(id, 10) + " ended"
	return render(c, http.StatusOK, silencesSection(v))
}

// uiTestWebhook is POST /ui/webhooks/{name}/test; it answers with the
// #deliveries panel, the outcome next to the target's button.
func (s *Server) uiTestWebhook(c echo.Context) error {
	ctx := c.Request().Context()
	name, err := pathParam(c, "name")
	if err != nil {
		return err
	}
	v := s.deliveriesPanel(ctx)
	set := func(code int, result, msg string) error {
		for i := range v.Targets {
			if v.Targets[i].Name == name {
				v.Targets[i].Result, v.Targets[i].Error = result, msg
				return render(c, code, deliveriesSection(v))
			}
		}
		v.ActionErr = msg
		if msg == "" {
			v.ActionErr = result
		}
		return render(c, code, deliveriesSection(v))
	}
	if s.webhookTester == nil {
		return set(http.StatusServiceUnavailable, "", "test notifications are not available")
	}
	a, err := s.sendWebhookTest(c, name)
	switch {
	case errors.Is(err, alerts.ErrUnknownWebhook):
		return set(http.StatusNotFound, "", "no webhook named "+clip(name, 40))
	case err != nil:
		s.log.Error("sending test notification", "webhook", name, "error", err)
		return set(http.StatusInternalServerError, "", "sending the test notification failed")
	case a.Outcome != "delivered":
		return set(http.StatusBadGateway, "", "not delivered: "+clip(a.Error, 200))
	}
	return set(http.StatusOK, "delivered in "+latencyText(a.LatencyMs)+" at "+clock(a.At), "")
}

// deliveryOutcomeClass keeps a stored outcome out of class names unless styled.
func deliveryOutcomeClass(s string) string {
	switch s {
	case "delivered", "retry", "abandoned":
		return s
	default:
		return "unknown"
	}
}

// countOf writes "1 target", "3 targets".
func countOf(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
