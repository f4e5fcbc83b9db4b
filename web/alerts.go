package web

import (
	"net/http"

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
