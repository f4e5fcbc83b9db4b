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
	return pageView{
		Title:   title,
		Version: s.version,
		CSRF:    token,
		Asset:   s.assetURL,
		Broker:  brokerFromSnapshot(s.queues.Latest()),
	}
}

// respond renders fragment for htmx requests and the full page otherwise.
func (s *Server) respond(c echo.Context, code int, title string, fragment, full templ.Component) error {
	if isHX(c) {
		return render(c, code, fragment)
	}
	return render(c, code, page(s.pageView(c, title), full))
}

// dashboard is GET /: queues, consumers and active alerts on one page.
func (s *Server) dashboard(c echo.Context) error {
	q := newQueuesView(s.queues.Latest(), false)
	cons := newConsumersView(s.consumers.List())
	a := s.alertsView(c, dashboardRecentAlerts)
	body := dashboard(q, cons, a)
	return s.respond(c, http.StatusOK, "dashboard", body, body)
}

// queuesPage is GET /queues: the queue table, refreshed by the dashboard.
func (s *Server) queuesPage(c echo.Context) error {
	snap := s.queues.Latest()
	if isHX(c) {
		return render(c, http.StatusOK, queuesSection(newQueuesView(snap, true)))
	}
	return render(c, http.StatusOK, page(s.pageView(c, "queues"), queuesSection(newQueuesView(snap, false))))
}

// queuePage is GET /queues/{vhost}/{name}: one queue.
func (s *Server) queuePage(c echo.Context) error {
	vhost, err := pathParam(c, "vhost")
	if err != nil {
		return err
	}
	name, err := pathParam(c, "name")
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
	if isHX(c) {
		return render(c, http.StatusOK, queueSection(v))
	}
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
	st, err := s.consumers.Get(name)
	if err != nil {
		if isNotFound(err) {
			return s.respond(c, http.StatusNotFound, "not found", consumerGoneRow(name), notFound("No consumer named "+name+"."))
		}
		return err
	}
	row := newConsumerRow(st)
	return s.respond(c, http.StatusOK, "consumer "+name, consumerRowView(row), consumerDetail(consumerDetailView{Row: row}))
}

// dashboardRecentAlerts is how much alert history the dashboard shows; the
// /alerts page has the rest.
const dashboardRecentAlerts = 10

// alertsPage is GET /alerts: the firing alerts and the recent history.
// ?recent=N (1..100) shortens the history; the dashboard's panel refreshes
// itself with it.
func (s *Server) alertsPage(c echo.Context) error {
	limit := alertHistoryLimit
	if n, err := strconv.Atoi(c.QueryParam("recent")); err == nil && n >= 1 && n < limit {
		limit = n
	}
	body := alertsSection(s.alertsView(c, limit))
	return s.respond(c, http.StatusOK, "alerts", body, body)
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
