package web

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"warren/consumers"
	"warren/monitor"
	"warren/store"
)

// History is the stored history behind the charts and the slow-message
// lists (the store).
type History interface {
	QueueSeries(ctx context.Context, vhost, name string, from, to time.Time) ([]store.QueuePoint, store.Resolution, error)
	ConsumerSeries(ctx context.Context, consumer string, from, to time.Time) ([]store.ConsumerPoint, store.Resolution, error)
	SlowMessages(ctx context.Context, consumer string, limit int) ([]consumers.SlowMessage, error)
}

// MessageTypeSource gives a consumer's per-message-type breakdown (the
// consumer manager).
type MessageTypeSource interface {
	MessageTypes(name string) ([]consumers.TypeStatus, error) // wraps consumers.ErrNotFound
}

// slowMessagesShown is how many recent slow messages a page lists.
const slowMessagesShown = 10

// chartsView is the charts panel of a queue or a consumer page.
type chartsView struct {
	ID         string // element id, the htmx target of the range links
	RefreshURL string // this panel at the current range
	Range      string
	Ranges     []rangeLink
	Resolution string // "raw", "1m", "6h", ...
	Charts     []chart
	Err        string
	Slow       []slowRow
	SlowErr    string
	ShowSlow   bool
}

// rangeLink is one range choice: Href is the full page (works without
// JavaScript and is the URL pushed to the address bar), Fragment the panel.
type rangeLink struct {
	Key, Href, Fragment string
	Current             bool
}

type slowRow struct {
	At, Consumer, Type, MessageID, Handler, EndToEnd string
}

func rangeLinks(pageURL, fragmentURL, current string) []rangeLink {
	out := make([]rangeLink, len(chartRanges))
	for i, r := range chartRanges {
		q := "?range=" + url.QueryEscape(r.Key)
		out[i] = rangeLink{Key: r.Key, Href: pageURL + q, Fragment: fragmentURL + q, Current: r.Key == current}
	}
	return out
}

// chartRangeParam reads ?range= of a request; a bad one is a 400 naming the
// allowed values.
func chartRangeParam(c echo.Context) (chartRange, error) {
	r, err := parseChartRange(c.QueryParam("range"))
	if err != nil {
		return r, echo.NewHTTPError(http.StatusBadRequest, err.Error())
	}
	return r, nil
}

func resolutionText(r store.Resolution) string {
	if r == store.ResolutionRaw {
		return "every sample"
	}
	return "per " + string(r)
}

// queueCharts builds the chart panel of one queue: depth and rates, and for
// each managed consumer on it, its handler latency and slow messages.
func (s *Server) queueCharts(ctx context.Context, vhost, name string, r chartRange, managed []consumers.Status) chartsView {
	page := queueHref(vhost, name)
	frag := page + "/charts"
	v := chartsView{
		ID:         "charts",
		RefreshURL: frag + "?range=" + url.QueryEscape(r.Key),
		Range:      r.Key,
		Ranges:     rangeLinks(page, frag, r.Key),
		ShowSlow:   len(managed) > 0,
	}
	if s.history == nil {
		v.Err = "no history store is configured"
		return v
	}
	to := time.Now()
	from := to.Add(-r.Span)
	pts, res, err := s.history.QueueSeries(ctx, vhost, name, from, to)
	if err != nil {
		s.log.Warn("reading queue history", "vhost", vhost, "queue", name, "error", err)
		v.Err = "could not read the history of this queue"
		return v
	}
	v.Resolution = resolutionText(res)
	ready := chartSeries{Label: "ready"}
	unacked := chartSeries{Label: "unacked"}
	in := chartSeries{Label: "ingress"}
	out := chartSeries{Label: "egress"}
	for _, p := range pts {
		ready.Points = append(ready.Points, chartPoint{p.At, intToFloat(p.Ready)})
		unacked.Points = append(unacked.Points, chartPoint{p.At, intToFloat(p.Unacked)})
		in.Points = append(in.Points, chartPoint{p.At, p.IngressRate})
		out.Points = append(out.Points, chartPoint{p.At, p.EgressRate})
	}
	var marks []chartMark
	if s.thresholds != nil {
		l := s.thresholds.For(name)
		marks = []chartMark{{Label: "warning", V: float64(l.Warning), Class: "warning"}, {Label: "critical", V: float64(l.Critical), Class: "critical"}}
	}
	v.Charts = append(v.Charts,
		chart{Title: "depth", Unit: unitMessages, From: from, To: to, Tick: r.Tick, Series: []chartSeries{ready, unacked}, Marks: marks},
		chart{Title: "ingress / egress", Unit: unitRate, From: from, To: to, Tick: r.Tick, Series: []chartSeries{in, out}},
	)
	for _, st := range managed {
		lat, err := s.consumerLatencyCharts(ctx, st.Name, from, to, r, false)
		if err != nil {
			v.Err = "could not read the latency history of consumer " + st.Name
			continue
		}
		v.Charts = append(v.Charts, lat...)
		s.addSlow(ctx, &v, st.Name)
	}
	return v
}

// consumerLatencyCharts reads one consumer's history as charts: handler
// latency, and with full (the consumer page) also end-to-end latency and
// throughput.
func (s *Server) consumerLatencyCharts(ctx context.Context, name string, from, to time.Time, r chartRange, full bool) ([]chart, error) {
	pts, _, err := s.history.ConsumerSeries(ctx, name, from, to)
	if err != nil {
		s.log.Warn("reading consumer history", "consumer", name, "error", err)
		return nil, err
	}
	p50 := chartSeries{Label: "p50"}
	p95 := chartSeries{Label: "p95"}
	p99 := chartSeries{Label: "p99"}
	e50 := chartSeries{Label: "e2e p50"}
	e95 := chartSeries{Label: "e2e p95"}
	e99 := chartSeries{Label: "e2e p99"}
	ok := chartSeries{Label: "handled"}
	bad := chartSeries{Label: "failed"}
	for _, p := range pts {
		p50.Points = append(p50.Points, chartPoint{p.At, p.P50Ms})
		p95.Points = append(p95.Points, chartPoint{p.At, p.P95Ms})
		p99.Points = append(p99.Points, chartPoint{p.At, p.P99Ms})
		e50.Points = append(e50.Points, chartPoint{p.At, p.E2EP50Ms})
		e95.Points = append(e95.Points, chartPoint{p.At, p.E2EP95Ms})
		e99.Points = append(e99.Points, chartPoint{p.At, p.E2EP99Ms})
		ok.Points = append(ok.Points, chartPoint{p.At, p.Rate})
		var failed *float64
		if p.Rate != nil && p.Processed > 0 {
			f := *p.Rate * float64(p.Failed) / float64(p.Processed)
			failed = &f
		} else if p.Rate != nil && p.Failed == 0 {
			zero := 0.0
			failed = &zero
		}
		bad.Points = append(bad.Points, chartPoint{p.At, failed})
	}
	charts := []chart{{Title: "handler latency of consumer " + name, Unit: unitMs, From: from, To: to, Tick: r.Tick,
		Series: []chartSeries{p50, p95, p99}}}
	if full {
		charts = append(charts,
			chart{Title: "end-to-end latency (publish to handled)", Unit: unitMs, From: from, To: to, Tick: r.Tick, Series: []chartSeries{e50, e95, e99}},
			chart{Title: "throughput", Unit: unitRate, From: from, To: to, Tick: r.Tick, Series: []chartSeries{ok, bad}},
		)
	}
	return charts, nil
}

// addSlow appends a consumer's recent slow messages to v.
func (s *Server) addSlow(ctx context.Context, v *chartsView, name string) {
	msgs, err := s.history.SlowMessages(ctx, name, slowMessagesShown)
	if err != nil {
		s.log.Warn("reading slow messages", "consumer", name, "error", err)
		v.SlowErr = "could not read the slow messages"
		return
	}
	for _, m := range msgs {
		row := slowRow{At: dateTime(m.At), Consumer: m.Consumer, Type: m.Type, MessageID: m.MessageID,
			Handler: durationMs(m.Duration), EndToEnd: "n/a"}
		if m.EndToEnd > 0 {
			row.EndToEnd = durationMs(m.EndToEnd)
		}
		if row.Type == "" {
			row.Type = "(none)"
		}
		v.Slow = append(v.Slow, row)
	}
}

// consumerCharts builds the chart panel of one consumer page.
func (s *Server) consumerCharts(ctx context.Context, name string, r chartRange) chartsView {
	page := consumerHref(name)
	frag := page + "/charts"
	v := chartsView{
		ID:         "charts",
		RefreshURL: frag + "?range=" + url.QueryEscape(r.Key),
		Range:      r.Key,
		Ranges:     rangeLinks(page, frag, r.Key),
		ShowSlow:   true,
	}
	if s.history == nil {
		v.Err = "no history store is configured"
		return v
	}
	to := time.Now()
	from := to.Add(-r.Span)
	charts, err := s.consumerLatencyCharts(ctx, name, from, to, r, true)
	if err != nil {
		v.Err = "could not read the history of this consumer"
		return v
	}
	v.Charts = charts
	s.addSlow(ctx, &v, name)
	return v
}

// queueChartsFragment is GET /queues/{vhost}/{name}/charts?range=R: the
// charts panel alone, for the range links and its own refresh.
func (s *Server) queueChartsFragment(c echo.Context) error {
	vhost, name, err := queueParams(c)
	if err != nil {
		return err
	}
	r, err := chartRangeParam(c)
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, chartsPanel(s.queueCharts(c.Request().Context(), vhost, name, r, s.managedOn(vhost, name))))
}

// consumerChartsFragment is GET /consumers/{name}/charts?range=R.
func (s *Server) consumerChartsFragment(c echo.Context) error {
	name, err := pathParam(c, "name")
	if err != nil {
		return err
	}
	r, err := chartRangeParam(c)
	if err != nil {
		return err
	}
	if _, err := s.consumers.Get(name); err != nil {
		return consumerError(name, err)
	}
	return render(c, http.StatusOK, chartsPanel(s.consumerCharts(c.Request().Context(), name, r)))
}

// managedOn lists the managed consumers of one queue.
func (s *Server) managedOn(vhost, name string) []consumers.Status {
	var out []consumers.Status
	for _, st := range s.consumers.List() {
		if st.Vhost == vhost && st.Queue == name {
			out = append(out, st)
		}
	}
	return out
}

// typesJSON is the body of GET /api/consumers/{name}/types.
type typesJSON struct {
	Consumer string                 `json:"consumer"`
	Types    []consumers.TypeStatus `json:"types"`
}

// apiConsumerTypes is GET /api/consumers/{name}/types: the per-message-type
// breakdown since start.
func (s *Server) apiConsumerTypes(c echo.Context) error {
	name, err := pathParam(c, "name")
	if err != nil {
		return err
	}
	if _, err := s.consumers.Get(name); err != nil {
		return consumerError(name, err)
	}
	types := []consumers.TypeStatus{}
	if s.types != nil {
		list, err := s.types.MessageTypes(name)
		if err != nil {
			return consumerError(name, err)
		}
		types = append(types, list...)
	}
	noStore(c)
	return c.JSON(http.StatusOK, typesJSON{Consumer: name, Types: types})
}

// typeRow is one message type of a consumer.
type typeRow struct {
	Type                                   string
	Processed, Failed, Retried, DeadLetter cell
	ErrorRate                              cell
	P50, P95, P99                          cell
}

func newTypeRows(list []consumers.TypeStatus) []typeRow {
	var out []typeRow
	for _, t := range list {
		name := t.Type
		if name == "" {
			name = "(none)"
		}
		out = append(out, typeRow{
			Type:       name,
			Processed:  cell{Text: groupDigits(clampUint(t.Processed)), Known: true},
			Failed:     cell{Text: groupDigits(clampUint(t.Failed)), Known: true},
			Retried:    cell{Text: groupDigits(clampUint(t.Retried)), Known: true},
			DeadLetter: cell{Text: groupDigits(clampUint(t.DeadLettered)), Known: true},
			ErrorRate:  errorRateCell(t.Processed, t.Failed),
			P50:        msCell(t.LatencyP50Ms),
			P95:        msCell(t.LatencyP95Ms),
			P99:        msCell(t.LatencyP99Ms),
		})
	}
	return out
}

// errorRateCell is failed / (processed + failed) as a percentage; n/a
// before any message.
func errorRateCell(processed, failed uint64) cell {
	total := float64(processed) + float64(failed)
	if total == 0 {
		return naCell
	}
	pct := 100 * float64(failed) / total
	prec := 1
	if pct > 0 && pct < 0.1 {
		prec = 2
	}
	return cell{Text: strconv.FormatFloat(pct, 'f', prec, 64) + " %", Known: true}
}

func intToFloat(p *int64) *float64 {
	if p == nil {
		return nil
	}
	f := float64(*p)
	return &f
}

func durationMs(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	return msCell(&v).Text
}

// throttleText describes the live throttle: "off", "max 5", "every 100 ms",
// or both.
func throttleText(maxConcurrent int, delayMs float64) string {
	var parts []string
	if maxConcurrent > 0 {
		parts = append(parts, "max "+strconv.Itoa(maxConcurrent))
	}
	if delayMs > 0 {
		parts = append(parts, "every "+msCell(&delayMs).Text)
	}
	if len(parts) == 0 {
		return "off"
	}
	return strings.Join(parts, ", ")
}

// queueSettings fills in the thresholds in force for the queue of v and
// where its dead letters go: each managed consumer's dead-letter queue, and
// the queue's x-dead-letter-exchange when the last poll reported one.
func (s *Server) queueSettings(v *queueDetailView, snap monitor.Snapshot, managed []consumers.Status) {
	if s.thresholds != nil {
		l := s.thresholds.For(v.Row.Name)
		v.Warning, v.Critical = groupDigits(l.Warning), groupDigits(l.Critical)
		if s.depthAlert != nil {
			// Alert overrides may differ from the status thresholds: say
			// which levels page someone.
			switch eff := s.depthAlert(v.Row.Vhost, v.Row.Name); {
			case !eff.Enabled:
				v.AlertLevels = "off"
			case eff.Warning != float64(l.Warning) || !eff.HasCrit || eff.Critical != float64(l.Critical):
				v.AlertLevels = "warning at " + groupDigits(int64(eff.Warning))
				if eff.HasCrit {
					v.AlertLevels += " · critical at " + groupDigits(int64(eff.Critical))
				}
				v.AlertLevels += " messages"
			}
		}
	}
	seen := map[string]bool{}
	for _, st := range managed {
		dlq := s.deadLetterQueue(st)
		if seen[dlq] {
			continue
		}
		seen[dlq] = true
		v.DeadLetters = append(v.DeadLetters, deadLetterLink{Text: dlq, Href: queueHref(st.Vhost, dlq), Via: "consumer " + st.Name})
	}
	if !v.Found {
		return
	}
	for _, q := range snap.Queues {
		if q.Vhost != v.Row.Vhost || q.Name != v.Row.Name || q.DeadLetterExchange == nil {
			continue
		}
		ex := *q.DeadLetterExchange
		text := "exchange " + ex
		if ex == "" {
			text = "the default exchange"
		}
		v.DeadLetters = append(v.DeadLetters, deadLetterLink{Text: text, Via: "x-dead-letter-exchange"})
		break
	}
}

// deadLetterQueue is a managed consumer's dead-letter queue: configured, or
// warren's default name.
func (s *Server) deadLetterQueue(st consumers.Status) string {
	if q := s.deadLetters[st.Name]; q != "" {
		return q
	}
	return st.Queue + ".warren.dlq"
}

// consumerDetail builds the page of one consumer.
func (s *Server) consumerDetail(ctx context.Context, st consumers.Status, r chartRange) consumerDetailView {
	v := consumerDetailView{
		Row:             newConsumerRow(st),
		Status:          st,
		E2EP50:          msCell(st.E2EP50Ms),
		E2EP95:          msCell(st.E2EP95Ms),
		E2EP99:          msCell(st.E2EP99Ms),
		DeadLetterQueue: s.deadLetterQueue(st),
		Charts:          s.consumerCharts(ctx, st.Name, r),
	}
	v.DeadLetterHref = queueHref(st.Vhost, v.DeadLetterQueue)
	if s.types == nil {
		v.TypesErr = "the per-type breakdown is not available"
		return v
	}
	list, err := s.types.MessageTypes(st.Name)
	if err != nil {
		s.log.Warn("reading message types", "consumer", st.Name, "error", err)
		v.TypesErr = "could not read the per-type breakdown"
		return v
	}
	v.Types = newTypeRows(list)
	return v
}

// circuitClass keeps a breaker state out of class names unless it is one
// we style.
func circuitClass(s string) string {
	switch s {
	case "closed", "open", "half_open":
		return s
	default:
		return "unknown"
	}
}
