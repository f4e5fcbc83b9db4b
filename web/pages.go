package web

import (
	"net/http"
	"strconv"
	"time"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"
)

// pageView builds the layout data of a full page.
func (s *Server) pageView(c echo.Context, title string) pageView {
	token, _ := c.Get(csrfContextKey).(string)
	who := principalOf(c.Request().Context())
	return pageView{
		Title:   title,
		Version: s.version,
		CSRF:    token,
		Build:   s.buildID,
		Asset:   s.assetURL,
		Broker:  brokerFromSnapshot(s.queues.Latest()),

		User: who.User,
		Role: string(who.Role),
	}
}

// respond renders fragment for htmx requests and the full page otherwise.
func (s *Server) respond(c echo.Context, code int, title string, fragment, full templ.Component) error {
	if isHX(c) {
		return render(c, code, fragment)
	}
	return render(c, code, page(s.pageView(c, title), full))
}

// queuePage is GET /queues/{vhost}/{name}: one queue.
func (s *Server) queuePage(c echo.Context) error {
	vhost, name, err := queueParams(c)
	if err != nil {
		return err
	}
	rng, err := chartRangeParam(c)
	if err != nil {
		return err
	}
	snap := s.queues.Latest()
	v := queueDetailView{
		RefreshURL: queueHref(vhost, name),
		Row:        queueRow{Vhost: vhost, Name: name, Href: queueHref(vhost, name)},
		Poll:       newPollView(snap),
	}
	if v.Poll.State == pollOK {
		for _, q := range snap.Queues {
			if q.Vhost == vhost && q.Name == name {
				v.Row = newQueueRow(q)
				v.Found = true
				break
			}
		}
	}
	managed := s.managedOn(vhost, name)
	s.queueSettings(&v, snap, managed)
	if isHX(c) {
		return render(c, http.StatusOK, queueSection(v))
	}
	v.Charts = s.queueCharts(c.Request().Context(), vhost, name, rng, managed)
	for _, st := range s.consumers.List() {
		if st.Vhost == vhost && st.Queue == name {
			v.Consumers.Rows = append(v.Consumers.Rows, newConsumerRow(st))
		}
	}
	all := s.alertsView(c, alertHistoryLimit)
	v.Alerts = alertsView{Err: all.Err, RecentErr: all.RecentErr}
	for _, r := range all.Firing {
		if r.Vhost == vhost && r.Queue == name {
			v.Alerts.Firing = append(v.Alerts.Firing, r)
		}
	}
	for _, r := range all.Recent {
		if r.Vhost == vhost && r.Queue == name {
			v.Alerts.Recent = append(v.Alerts.Recent, r)
		}
	}
	code := http.StatusOK
	if !v.Found && v.Poll.State == pollOK {
		code = http.StatusNotFound
	}
	return render(c, code, page(s.pageView(c, "queue "+name), queueDetail(v)))
}

// consumersPage is GET /consumers: the consumer table.
func (s *Server) consumersPage(c echo.Context) error {
	body := consumersSection(newConsumersView(s.consumers.List()))
	return s.respond(c, http.StatusOK, "consumers", body, body)
}

// consumerPage is GET /consumers/{name}: the row (htmx refresh) or the page
// of one consumer.
func (s *Server) consumerPage(c echo.Context) error {
	name, err := pathParam(c, "name")
	if err != nil {
		return err
	}
	rng, err := chartRangeParam(c)
	if err != nil {
		return err
	}
	st, err := s.consumers.Get(name)
	if err != nil {
		if isNotFound(err) {
			return s.respond(c, http.StatusNotFound, "not found", consumerGoneRow(name), notFound("No consumer named "+name+"."))
		}
		return err
	}
	row := newConsumerRow(st)
	if isHX(c) {
		return render(c, http.StatusOK, consumerRowView(row))
	}
	return s.respond(c, http.StatusOK, "consumer "+name, consumerRowView(row), consumerDetail(s.consumerDetail(c.Request().Context(), st, rng)))
}

// alertsPage is GET /alerts: the alerts page (alertsFullPage). With
// ?recent=N (1..99) it is the dashboard's panel instead: the firing alerts
// and N alerts of history.
func (s *Server) alertsPage(c echo.Context) error {
	if n, err := strconv.Atoi(c.QueryParam("recent")); err == nil && n >= 1 && n < alertHistoryLimit {
		body := alertsSection(s.alertsView(c, n))
		return s.respond(c, http.StatusOK, "alerts", body, body)
	}
	return s.alertsFullPage(c)
}

// alertsView reads the firing alerts and up to recent alerts of history for
// a page; a failure shows up as a message in the panel rather than failing
// the whole page.
func (s *Server) alertsView(c echo.Context, recent int) alertsView {
	ctx := c.Request().Context()
	firing, err := s.alerts.ActiveAlerts(ctx)
	if err != nil {
		s.log.Warn("reading active alerts", "error", err)
	}
	// One more than shown tells whether there is more to link to.
	history, herr := s.alerts.AlertHistory(ctx, recent+1)
	if herr != nil {
		s.log.Warn("reading alert history", "error", herr)
	}
	now := time.Now()
	v := alertsView{Firing: newAlertRows(firing, now)}
	if err != nil {
		v.Err = "could not read the firing alerts"
	}
	if herr != nil {
		v.RecentErr = "could not read the alert history"
	}
	if len(history) > recent {
		history = history[:recent]
		if recent < alertHistoryLimit {
			v.MoreHref = "/alerts"
		}
	}
	v.Recent = newAlertRows(history, now)
	v.RefreshURL = "/alerts"
	if recent < alertHistoryLimit {
		v.RefreshURL = "/alerts?recent=" + strconv.Itoa(recent)
	}
	return v
}
