package web

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"warren/alerts"
)

// alertsJSON is the body of GET /api/alerts.
type alertsJSON struct {
	Alerts []alerts.Alert `json:"alerts"`
}

// apiAlerts is GET /api/alerts: the alerts currently firing.
func (s *Server) apiAlerts(c echo.Context) error {
	list, err := s.alerts.ActiveAlerts(c.Request().Context())
	if err != nil {
		// Details go to the log (handleError); the client gets a short message.
		return echo.NewHTTPError(http.StatusInternalServerError, "reading alerts failed").SetInternal(err)
	}
	if list == nil {
		list = []alerts.Alert{}
	}
	noStore(c)
	return c.JSON(http.StatusOK, alertsJSON{Alerts: list})
}
