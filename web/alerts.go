package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

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
	CreateSilence(ctx context.Context, sl alerts.Silence) (alerts.Silence, error)
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
	if err := decodeStrict(c, &in); err != nil {
		return err
	}
	if strings.TrimSpace(in.By) == "" {
		return jsonError(http.StatusBadRequest, "by: is required (who acknowledges)")
	}
	ack := alerts.Ack{AlertID: c.Param("id"), By: in.By, Note: in.Note, At: time.Now().UTC().Truncate(time.Millisecond)}
	if err := s.alertActions.AckAlert(c.Request().Context(), ack); err != nil {
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
		return err
	}
	now := time.Now()
	switch {
	case strings.TrimSpace(in.Owner) == "":
		return jsonError(http.StatusBadRequest, "owner: is required")
	case strings.TrimSpace(in.Reason) == "":
		return jsonError(http.StatusBadRequest, "reason: is required")
	case in.Rule != "" && !slices.Contains(alerts.RuleKinds, in.Rule):
		return jsonError(http.StatusBadRequest, "rule: unknown rule %q", in.Rule)
	case in.Duration != "" && !in.EndsAt.IsZero():
		return jsonError(http.StatusBadRequest, "give either ends_at or duration, not both")
	}
	if _, err := path.Match(in.Queue, ""); err != nil {
		return jsonError(http.StatusBadRequest, "queue: bad glob %q", in.Queue)
	}
	if in.Duration != "" {
		d, err := time.ParseDuration(in.Duration)
		if err != nil || d <= 0 {
			return jsonError(http.StatusBadRequest, "duration: want a positive duration such as 2h, got %q", in.Duration)
		}
		in.EndsAt = now.Add(d)
	}
	if !in.EndsAt.After(now) {
		return jsonError(http.StatusBadRequest, "ends_at: must be in the future (or give duration)")
	}
	sl, err := s.alertActions.CreateSilence(c.Request().Context(), alerts.Silence{Rule: in.Rule, Vhost: in.Vhost, Queue: in.Queue,
		EndsAt: in.EndsAt.UTC(), Owner: in.Owner, Reason: in.Reason})
	if err != nil {
		return echo.NewHTTPError(http.StatusInternalServerError, "creating silence failed").SetInternal(err)
	}
	return c.JSON(http.StatusCreated, sl)
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
	a, err := s.webhookTester.SendTest(c.Request().Context(), name)
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
