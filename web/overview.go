package web

import (
	"cmp"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"warren/alerts"
	"warren/consumers"
	"warren/monitor"
)

// The overview (GET /) is the page an on-call engineer keeps open: broker
// health, totals, the worst queues, the consumers and alerts that need a
// look. Each list is short; the full ones are a click away.

// Lengths of the overview's lists.
const (
	overviewWorstQueues = 10
	overviewFiringShown = 5
)

// overviewView is the whole overview; it refreshes itself as one piece.
type overviewView struct {
	Poll   pollView
	Broker brokerView
	OOB    bool // a refresh: also update the header badge

	// Broker health.
	Cluster, RabbitVersion string
	Alarms                 []string
	Nodes                  []nodeRow

	Totals []fact
	// Queues by status, for the totals line.
	Critical, Warning, Unknown int
	QueueCount                 int

	WorstByStatus []queueRow
	Growing       []growthRow

	Consumers int // managed consumers
	Attention []attentionRow

	Firing      []alertRow // the first few, worst first
	FiringCount int
	AlertsErr   string
}

// fact is one labelled number of the totals.
type fact struct {
	Label, Title string
	Value        cell
}

// nodeRow is one broker node.
type nodeRow struct {
	Name                string
	State               string // running | down | unknown
	Memory, Disk, Files cell
	Problem             bool // an alarm, a partition or not running
}

// growthRow is a queue growing: its row and the net rate in.
type growthRow struct {
	queueRow
	Net cell
}

// attentionRow is a consumer that needs a look and why.
type attentionRow struct {
	Name, Href, State, Why string
}

// meta is the summary next to the worst-queues title.
func (v overviewView) meta() string { return v.Poll.queuesMeta(v.QueueCount) }

// statusLine counts the queues that are not ok, e.g. "2 critical · 5 warning".
func (v overviewView) statusLine() string {
	var parts []string
	for _, p := range []struct {
		n    int
		what string
	}{{v.Critical, "critical"}, {v.Warning, "warning"}, {v.Unknown, "unknown"}} {
		if p.n > 0 {
			parts = append(parts, groupDigits(int64(p.n))+" "+p.what)
		}
	}
	if len(parts) == 0 {
		return "all ok"
	}
	return strings.Join(parts, " · ")
}

// overview is GET /: the overview page, or with HX-Request its refresh.
func (s *Server) overview(c echo.Context) error {
	v := s.newOverviewView(c, isHX(c))
	return s.respond(c, http.StatusOK, "overview", overviewBody(v), overviewBody(v))
}

func (s *Server) newOverviewView(c echo.Context, oob bool) overviewView {
	snap := s.queues.Latest()
	v := overviewView{Poll: newPollView(snap), Broker: brokerFromSnapshot(snap), OOB: oob}
	v.brokerHealth(snap)
	if v.Poll.State == pollOK {
		v.queues(snap)
	}
	v.totals(snap)
	v.consumers(s.consumers.List())

	firing, err := s.alerts.ActiveAlerts(c.Request().Context())
	if err != nil {
		s.log.Warn("reading active alerts", "error", err)
		v.AlertsErr = "could not read the firing alerts"
	}
	v.firing(firing, time.Now())
	return v
}

// brokerHealth fills the cluster, alarms and nodes.
func (v *overviewView) brokerHealth(snap monitor.Snapshot) {
	if snap.Overview != nil {
		v.Cluster = snap.Overview.ClusterName
		v.RabbitVersion = snap.Overview.RabbitMQVersion
	}
	v.Alarms = snap.Alarms()
	for _, n := range snap.Nodes {
		r := nodeRow{
			Name:   n.Name,
			State:  "unknown",
			Memory: ratioCell(n.MemUsed, n.MemLimit, formatBytes),
			Disk:   bytesCell(n.DiskFree),
			Files:  ratioCell(n.FDUsed, n.FDTotal, func(x int64) string { return groupDigits(x) }),
		}
		if n.Running != nil {
			r.State = "down"
			if *n.Running {
				r.State = "running"
			}
		}
		r.Problem = r.State == "down" || len(n.Partitions) > 0 ||
			(n.MemAlarm != nil && *n.MemAlarm) || (n.DiskFreeAlarm != nil && *n.DiskFreeAlarm)
		v.Nodes = append(v.Nodes, r)
	}
}

// queues counts the statuses and picks the worst queues by status and by
// growth: one pass over the snapshot keeping the top few of each.
func (v *overviewView) queues(snap monitor.Snapshot) {
	v.QueueCount = len(snap.Queues)
	var bad, growing []*monitor.QueueSample
	for i := range snap.Queues {
		q := &snap.Queues[i]
		switch statusClass(q.Status) {
		case monitor.StatusCritical:
			v.Critical++
		case monitor.StatusWarning:
			v.Warning++
		case monitor.StatusUnknown:
			v.Unknown++
		}
		if statusRank(statusClass(q.Status)) >= statusRank(monitor.StatusWarning) {
			bad = keepWorst(bad, q, overviewWorstQueues, worseStatus)
		}
		if net, ok := netGrowth(q); ok && net > 0 {
			growing = keepWorst(growing, q, overviewWorstQueues, fasterGrowth)
		}
	}
	for _, q := range bad {
		v.WorstByStatus = append(v.WorstByStatus, newQueueRow(*q))
	}
	for _, q := range growing {
		net, _ := netGrowth(q)
		v.Growing = append(v.Growing, growthRow{queueRow: newQueueRow(*q), Net: cell{Text: "+" + formatRate(net), Known: true}})
	}
}

// netGrowth is a queue's messages per second in minus out, when both are
// known.
func netGrowth(q *monitor.QueueSample) (float64, bool) {
	if q.IngressRate == nil || q.EgressRate == nil {
		return 0, false
	}
	net := *q.IngressRate - *q.EgressRate
	if math.IsNaN(net) || math.IsInf(net, 0) {
		return 0, false
	}
	return net, true
}

// worseStatus orders queues worst first: status, then depth, then name.
func worseStatus(a, b *monitor.QueueSample) int {
	if c := cmp.Compare(statusRank(statusClass(b.Status)), statusRank(statusClass(a.Status))); c != 0 {
		return c
	}
	if c := cmp.Compare(deref(b.Messages), deref(a.Messages)); c != 0 {
		return c
	}
	return byVhostName(a, b)
}

// fasterGrowth orders queues by net growth, fastest first.
func fasterGrowth(a, b *monitor.QueueSample) int {
	na, _ := netGrowth(a)
	nb, _ := netGrowth(b)
	if c := cmp.Compare(nb, na); c != 0 {
		return c
	}
	return byVhostName(a, b)
}

func byVhostName(a, b *monitor.QueueSample) int {
	if c := cmp.Compare(a.Vhost, b.Vhost); c != 0 {
		return c
	}
	return cmp.Compare(a.Name, b.Name)
}

func deref(p *int64) int64 {
	if p == nil {
		return -1
	}
	return *p
}

// keepWorst inserts q into top (ordered by less, at most n long), so a pass
// over 10,000 queues costs no sort and no more than n entries.
func keepWorst(top []*monitor.QueueSample, q *monitor.QueueSample, n int, order func(a, b *monitor.QueueSample) int) []*monitor.QueueSample {
	if len(top) == n && order(q, top[n-1]) >= 0 {
		return top
	}
	i, _ := slices.BinarySearchFunc(top, q, order)
	top = slices.Insert(top, i, q)
	if len(top) > n {
		top = top[:n]
	}
	return top
}

// totals sums the snapshot's queues; connection counts and the broker-wide
// rates come from the broker's overview.
func (v *overviewView) totals(snap monitor.Snapshot) {
	sum := func(get func(*monitor.QueueSample) *int64) cell {
		if v.Poll.State != pollOK {
			return naCell
		}
		var total int64
		known := false
		for i := range snap.Queues {
			if p := get(&snap.Queues[i]); p != nil {
				total += *p
				known = true
			}
		}
		if !known && len(snap.Queues) > 0 {
			return naCell
		}
		return cell{Text: groupDigits(total), Known: true}
	}
	queues := naCell
	if v.Poll.State == pollOK {
		queues = cell{Text: groupDigits(int64(len(snap.Queues))), Known: true}
	}
	v.Totals = []fact{
		{Label: "queues", Value: queues},
		{Label: "messages", Title: "ready + unacked, all queues", Value: sum(func(q *monitor.QueueSample) *int64 { return q.Messages })},
		{Label: "ready", Value: sum(func(q *monitor.QueueSample) *int64 { return q.Ready })},
		{Label: "unacked", Value: sum(func(q *monitor.QueueSample) *int64 { return q.Unacked })},
		{Label: "consumers", Title: "consumers attached to queues (any client)", Value: sum(func(q *monitor.QueueSample) *int64 { return q.Consumers })},
	}
	o := snap.Overview
	if o == nil || v.Poll.State != pollOK {
		o = &monitor.Overview{}
	}
	v.Totals = append(v.Totals,
		fact{Label: "publish", Title: "messages per second published, the broker's rate", Value: rateCell(o.PublishRate)},
		fact{Label: "deliver", Title: "messages per second delivered or got, the broker's rate", Value: rateCell(o.DeliverGetRate)},
		fact{Label: "connections", Value: intCell(o.Connections)},
	)
}

// consumers picks the managed consumers that need a look: not running, the
// circuit not closed, or an error.
func (v *overviewView) consumers(list []consumers.Status) {
	v.Consumers = len(list)
	for _, st := range list {
		var why []string
		if st.State != consumers.StateRunning {
			why = append(why, "not running")
		}
		if st.Circuit == consumers.CircuitOpen || st.Circuit == consumers.CircuitHalfOpen {
			why = append(why, "circuit "+strings.ReplaceAll(st.Circuit, "_", "-"))
		}
		if st.LastError != "" {
			why = append(why, "error: "+st.LastError)
		}
		if len(why) == 0 {
			continue
		}
		state := st.State
		if state == "" {
			state = "unknown"
		}
		v.Attention = append(v.Attention, attentionRow{Name: st.Name, Href: consumerHref(st.Name), State: state, Why: strings.Join(why, " · ")})
	}
}

// firing keeps the count and the worst few alerts, critical first, the
// longest firing first.
func (v *overviewView) firing(list []alerts.Alert, now time.Time) {
	v.FiringCount = len(list)
	sorted := slices.Clone(list)
	slices.SortStableFunc(sorted, func(a, b alerts.Alert) int {
		if c := cmp.Compare(statusRank(severityClass(b.Severity)), statusRank(severityClass(a.Severity))); c != 0 {
			return c
		}
		return a.StartedAt.Compare(b.StartedAt)
	})
	if len(sorted) > overviewFiringShown {
		sorted = sorted[:overviewFiringShown]
	}
	v.Firing = newAlertRows(sorted, now)
}

// ratioCell shows "used / limit (pct)", or what is known of it.
func ratioCell(used, limit *int64, format func(int64) string) cell {
	switch {
	case used == nil:
		return naCell
	case limit == nil || *limit <= 0:
		return cell{Text: format(*used), Known: true}
	}
	pct := float64(*used) / float64(*limit) * 100
	return cell{Text: fmt.Sprintf("%s / %s (%.0f%%)", format(*used), format(*limit), pct), Known: true}
}

func bytesCell(p *int64) cell {
	if p == nil {
		return naCell
	}
	return cell{Text: formatBytes(*p), Known: true}
}

// formatBytes writes a size with a binary unit: 512 B, 1.5 GiB.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
