package web

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"warren/alerts"
	"warren/consumers"
	"warren/monitor"
)

// View models: templ components get these plain structs, never the domain
// sources, so formatting ("n/a", digit grouping, URLs) happens in one place.

// pageView is what the page layout needs.
type pageView struct {
	Title   string
	Version string
	CSRF    string
	Build   string                   // the server's build id (see sendBuild)
	Asset   func(name string) string // cache-busted URL of a static file
	Broker  brokerView
	// User and Role are who is signed in, for the header. Whether controls
	// are rendered at all is canOperate(ctx) in the templates (auth.go).
	User string
	Role string
}

// brokerView is the broker/monitor state shown in the header.
type brokerView struct {
	State  string // ok | failed | pending
	Text   string
	Detail string // tooltip: the poll error, if any
}

// cell is one table value; Known=false renders as "n/a".
type cell struct {
	Text  string
	Known bool
}

var naCell = cell{Text: "n/a"}

func intCell(p *int64) cell {
	if p == nil {
		return naCell
	}
	return cell{Text: groupDigits(*p), Known: true}
}

// Poll states of the management API, as shown in the header and the queue
// panels.
const (
	pollOK      = "ok"
	pollFailed  = "failed"
	pollPending = "pending"
)

// pollView is what the last management-API poll says about queue depths.
// After a failed poll the depths are unknown: the panels say so instead of
// showing an empty table (a failed poll carries no queues, and "0 queues"
// would read as "the broker has none").
type pollView struct {
	State    string // pollOK | pollFailed | pollPending
	PolledAt string // time of the last poll, with its zone
	Reason   string // short reason of a failed poll (credentials rejected, unreachable, ...)
	Err      string // the poll error, bounded, for whoever must act on it
}

func newPollView(s monitor.Snapshot) pollView {
	v := pollView{State: pollOK, PolledAt: clock(s.At)}
	switch {
	case s.Err != nil:
		v.State = pollFailed
		v.Reason = pollFailureReason(s.Err)
		v.Err = shortError(s.Err)
	case s.At.IsZero():
		v.State = pollPending
	}
	return v
}

// queuesMeta is the summary next to a queue panel's title: a count of
// queues only when a poll produced one.
func (v pollView) queuesMeta(queues int) string {
	switch v.State {
	case pollFailed:
		return "depths unknown · poll failed " + v.PolledAt
	case pollPending:
		return "waiting for the first poll"
	default:
		return groupDigits(int64(queues)) + " queues · polled " + v.PolledAt
	}
}

// unknownText explains why depths are unknown after a failed poll.
func (v pollView) unknownText(what string) string {
	msg := what + " unknown: the last poll of the management API failed"
	if v.Reason != reasonPollFailed {
		msg += " (" + v.Reason + ")"
	}
	if v.PolledAt != "never" {
		msg += " at " + v.PolledAt
	}
	return msg + "."
}

type queueRow struct {
	Vhost, Name, Href                   string
	Ready, Unacked, Messages, Consumers cell
	// Ingress, Egress and Drain are warren's own rate estimates and the
	// time to drain ("growing" when the queue will not drain).
	Ingress, Egress, Drain cell
	DeadLetter             bool
	Status                 string
}

// consumersView is the consumer table.
type consumersView struct {
	Rows []consumerRow
}

type consumerRow struct {
	Name, Href, RowURL string
	Queue, Vhost       string
	QueueHref          string
	State              string
	Paused             bool

	Concurrency, MaxConcurrency int
	Prefetch, MaxPrefetch       int
	AppliedPrefetch             int

	InFlight, Processed, Failed, Slow cell
	Rate, P50, P95, P99               cell
	LastError                         string
	// ErrorRate is failed / (processed + failed) since start; Circuit the
	// breaker state ("" without one); Throttle the live throttle ("off").
	ErrorRate         cell
	Circuit, Throttle string
	// PrefetchApplying: the broker does not enforce Prefetch yet (a
	// re-subscribe is under way, or waits for the consumer to subscribe).
	PrefetchApplying bool

	ConcurrencyURL, PrefetchURL, PauseURL, ResumeURL string

	// Errors shown next to the control that caused them.
	ConcurrencyError, PrefetchError, StateError string
}

// alertsView is the alerts panel: the alerts firing now and, below them,
// the recent history (resolved ones included).
type alertsView struct {
	RefreshURL string // empty: the panel does not refresh itself
	Firing     []alertRow
	Err        string // the firing alerts could not be read
	Recent     []alertRow
	RecentErr  string // the history could not be read
	MoreHref   string // link to the longer history when Recent was cut short
}

type alertRow struct {
	Severity, State, Rule, Vhost, Queue, QueueHref string
	Value, Threshold, Started, Resolved, Since     string
}

// queueDetailView is the page of one queue.
type queueDetailView struct {
	RefreshURL string
	Found      bool
	Row        queueRow
	Poll       pollView
	Consumers  consumersView
	Alerts     alertsView
	Charts     chartsView
	// Warning and Critical are the depth thresholds in force ("" when the
	// server was not told them).
	Warning, Critical string
	// AlertLevels is the queue_depth alert rule's levels for this queue
	// when they differ from the thresholds above ("" otherwise), or "off".
	AlertLevels string
	// DeadLetters are where this queue's failed messages go.
	DeadLetters []deadLetterLink
}

// deadLetterLink is one dead-letter destination of a queue: a queue page
// (Href set) or an exchange the monitor knows only by name.
type deadLetterLink struct {
	Text, Href, Via string
}

// meta is the summary next to the queue's name.
func (v queueDetailView) meta() string {
	switch v.Poll.State {
	case pollFailed:
		return "vhost " + v.Row.Vhost + " · poll failed " + v.Poll.PolledAt
	case pollPending:
		return "vhost " + v.Row.Vhost + " · waiting for the first poll"
	default:
		return "vhost " + v.Row.Vhost + " · polled " + v.Poll.PolledAt
	}
}

// consumerDetailView is the page of one consumer.
type consumerDetailView struct {
	Row    consumerRow
	Status consumers.Status
	Types  []typeRow
	// TypesErr says why the breakdown is missing.
	TypesErr string
	Charts   chartsView
	// E2E* are the end-to-end latency percentiles, beside the handler's.
	E2EP50, E2EP95, E2EP99 cell
	DeadLetterQueue        string
	DeadLetterHref         string
}

func statusClass(s string) string {
	switch s {
	case monitor.StatusOK, monitor.StatusWarning, monitor.StatusCritical:
		return s
	default:
		return monitor.StatusUnknown
	}
}

// brokerFromSnapshot is the header badge. It names the management API, not
// the broker: a poll fails on wrong management credentials while AMQP (and
// every consumer) is fine.
func brokerFromSnapshot(s monitor.Snapshot) brokerView {
	p := newPollView(s)
	switch p.State {
	case pollFailed:
		return brokerView{State: pollFailed, Text: "management API: " + p.Reason, Detail: p.Err}
	case pollPending:
		return brokerView{State: pollPending, Text: "management API: waiting for first poll"}
	default:
		return brokerView{State: pollOK, Text: "management API: ok · polled " + p.PolledAt}
	}
}

// pollFailureReason names why a poll failed in a few words, from the errors
// the monitor wraps; the full message goes in the detail.
func pollFailureReason(err error) string {
	switch {
	case errors.Is(err, monitor.ErrCredentialsRejected):
		return "credentials rejected"
	case errors.Is(err, monitor.ErrPermissionDenied):
		return "permission denied"
	case errors.Is(err, monitor.ErrUnreachable):
		return "unreachable"
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	default:
		return reasonPollFailed
	}
}

// reasonPollFailed is the reason of a failure the monitor did not classify.
const reasonPollFailed = "poll failed"

func newQueueRow(q monitor.QueueSample) queueRow {
	return queueRow{
		Vhost:      q.Vhost,
		Name:       q.Name,
		Href:       queueHref(q.Vhost, q.Name),
		Ready:      intCell(q.Ready),
		Unacked:    intCell(q.Unacked),
		Messages:   intCell(q.Messages),
		Consumers:  intCell(q.Consumers),
		Ingress:    rateCell(q.IngressRate),
		Egress:     rateCell(q.EgressRate),
		Drain:      drainCell(q.TimeToDrainSeconds, q.Growing),
		DeadLetter: q.IsDeadLetter,
		Status:     statusClass(q.Status),
	}
}

// rateCell shows a rate in messages per second, n/a when unknown.
func rateCell(p *float64) cell {
	if p == nil || math.IsNaN(*p) || math.IsInf(*p, 0) {
		return naCell
	}
	return cell{Text: formatRate(*p), Known: true}
}

// drainCell shows the time to drain, "growing", or n/a when unknown.
func drainCell(seconds *float64, growing *bool) cell {
	switch {
	case growing != nil && *growing:
		return cell{Text: "growing", Known: true}
	case seconds == nil || math.IsNaN(*seconds) || math.IsInf(*seconds, 0):
		return naCell
	}
	d := time.Duration(math.Round(*seconds)) * time.Second
	switch {
	case d < time.Minute:
		return cell{Text: fmt.Sprintf("%ds", int(d.Seconds())), Known: true}
	case d < time.Hour:
		return cell{Text: fmt.Sprintf("%dm %02ds", int(d.Minutes()), int(d.Seconds())%60), Known: true}
	case d < 48*time.Hour:
		return cell{Text: fmt.Sprintf("%dh %02dm", int(d.Hours()), int(d.Minutes())%60), Known: true}
	default:
		return cell{Text: fmt.Sprintf("%dd", int(d.Hours()/24)), Known: true}
	}
}

func newConsumerRow(st consumers.Status) consumerRow {
	r := consumerRow{
		Name:            st.Name,
		Href:            consumerHref(st.Name),
		RowURL:          consumerHref(st.Name),
		Queue:           st.Queue,
		Vhost:           st.Vhost,
		QueueHref:       queueHref(st.Vhost, st.Queue),
		State:           st.State,
		Paused:          st.State == consumers.StatePaused,
		Concurrency:     st.Concurrency,
		MaxConcurrency:  st.MaxConcurrency,
		Prefetch:        st.Prefetch,
		MaxPrefetch:     st.MaxPrefetch,
		AppliedPrefetch: st.AppliedPrefetch,
		InFlight:        cell{Text: groupDigits(st.InFlight), Known: true},
		Processed:       cell{Text: groupDigits(clampUint(st.Processed)), Known: true},
		Failed:          cell{Text: groupDigits(clampUint(st.Failed)), Known: true},
		Slow:            cell{Text: groupDigits(clampUint(st.Slow)), Known: true},
		Rate:            cell{Text: formatRate(st.Rate), Known: true},
		P50:             msCell(st.LatencyP50Ms),
		P95:             msCell(st.LatencyP95Ms),
		P99:             msCell(st.LatencyP99Ms),
		LastError:       st.LastError,
		ConcurrencyURL:  consumerControlURL(st.Name, "concurrency"),
		PrefetchURL:     consumerControlURL(st.Name, "prefetch"),
		PauseURL:        consumerControlURL(st.Name, "pause"),
		ResumeURL:       consumerControlURL(st.Name, "resume"),
	}
	if r.State == "" {
		r.State = "unknown"
	}
	r.ErrorRate = errorRateCell(st.Processed, st.Failed)
	r.Circuit = st.Circuit
	r.Throttle = throttleText(st.ThrottleMaxConcurrent, st.ThrottleDelayMs)
	r.PrefetchApplying = st.PrefetchPending
	return r
}

func newConsumersView(list []consumers.Status) consumersView {
	v := consumersView{}
	for _, st := range list {
		v.Rows = append(v.Rows, newConsumerRow(st))
	}
	return v
}

// newAlertRow formats one alert; times are UTC like every time on the page.
func newAlertRow(a alerts.Alert, now time.Time) alertRow {
	r := alertRow{
		Severity:  a.Severity,
		State:     a.State,
		Rule:      a.Rule,
		Vhost:     a.Vhost,
		Queue:     a.Queue,
		QueueHref: queueHref(a.Vhost, a.Queue),
		Value:     formatFloat(a.Value) + alertUnit(a.Rule),
		Threshold: formatFloat(a.Threshold) + alertUnit(a.Rule),
		Started:   dateTime(a.StartedAt),
	}
	if a.ResolvedAt != nil && !a.ResolvedAt.IsZero() {
		r.Resolved = dateTime(*a.ResolvedAt)
		r.Since = "lasted " + humanDuration(max(a.ResolvedAt.Sub(a.StartedAt), 0))
	} else {
		r.Since = sinceText(now, a.StartedAt)
	}
	return r
}

func newAlertRows(list []alerts.Alert, now time.Time) []alertRow {
	var rows []alertRow
	for _, a := range list {
		rows = append(rows, newAlertRow(a, now))
	}
	return rows
}

// dateTime formats an alert time.
func dateTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05") + " UTC"
}

func severityClass(s string) string {
	switch s {
	case alerts.SeverityCritical:
		return monitor.StatusCritical
	case alerts.SeverityWarning:
		return monitor.StatusWarning
	default:
		return monitor.StatusUnknown
	}
}

// alertStateClass keeps an alert state from the store out of class names
// unless it is one we style.
func alertStateClass(s string) string {
	switch s {
	case alerts.StateFiring, alerts.StateResolved:
		return s
	default:
		return "unknown"
	}
}

func stateClass(s string) string {
	switch s {
	case consumers.StateRunning, consumers.StatePaused, consumers.StateStarting,
		consumers.StateReconnecting, consumers.StateStopped:
		return "state state-" + s
	default:
		return "state"
	}
}

// groupDigits writes 1234567 as 1,234,567.
func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func clampUint(u uint64) int64 {
	if u > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(u)
}

func formatRate(r float64) string {
	if math.IsNaN(r) || math.IsInf(r, 0) {
		return "n/a"
	}
	return strconv.FormatFloat(r, 'f', 1, 64) + "/s"
}

func msCell(p *float64) cell {
	if p == nil || math.IsNaN(*p) || math.IsInf(*p, 0) {
		return naCell
	}
	v := *p
	if v < 10 {
		return cell{Text: strconv.FormatFloat(v, 'f', 1, 64) + " ms", Known: true}
	}
	return cell{Text: groupDigits(int64(math.Round(v))) + " ms", Known: true}
}

func formatFloat(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return groupDigits(int64(f))
	}
	return strconv.FormatFloat(f, 'f', 2, 64)
}

func sinceText(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := now.Sub(t)
	if d < 0 {
		d = 0
	}
	return "for " + humanDuration(d)
}

// humanDuration writes a duration with its two largest units: 3d 4h, 5m 2s.
func humanDuration(d time.Duration) string {
	secs := int64(d / time.Second)
	days, hours, mins := secs/86400, secs%86400/3600, secs%3600/60
	secs %= 60
	switch {
	case days > 0:
		return fmt.Sprintf("%dd %dh", days, hours)
	case hours > 0:
		return fmt.Sprintf("%dh %dm", hours, mins)
	case mins > 0:
		return fmt.Sprintf("%dm %ds", mins, secs)
	default:
		return fmt.Sprintf("%ds", secs)
	}
}

// shortError bounds an error message shown to users: enough to act on, not
// a wall of text.
func shortError(err error) string {
	const max = 200
	msg := err.Error()
	if len(msg) > max {
		cut := max
		for cut > 0 && !utf8Start(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "…"
	}
	return msg
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

func maxText(n int) string {
	if n <= 0 {
		return ""
	}
	return fmt.Sprintf("max %d", n)
}
