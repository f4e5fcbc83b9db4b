package web

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"

	"warren/monitor"
)

// queueJSON is one queue in the API. Pointers stay nil (JSON null) when the
// broker did not report the value: unknown is never 0.
type queueJSON struct {
	Vhost                  string `json:"vhost"`
	Name                   string `json:"name"`
	Messages               *int64 `json:"messages"`
	MessagesReady          *int64 `json:"messages_ready"`
	MessagesUnacknowledged *int64 `json:"messages_unacknowledged"`
	Consumers              *int64 `json:"consumers"`
	// Warren's own estimates from deltas between polls (messages/s), and
	// the time to drain the ready messages; null when unknown.
	IngressRate        *float64 `json:"ingress_rate"`
	EgressRate         *float64 `json:"egress_rate"`
	TimeToDrainSeconds *float64 `json:"time_to_drain_seconds"`
	Growing            *bool    `json:"growing"`
	IsDeadLetter       bool     `json:"is_dead_letter"`
	Status             string   `json:"status"`
}

// queuesJSON is the body of GET /api/queues. Total counts the queues that
// match the request's filter (present when it asks for a page, a sort or a
// filter); Page and PerPage are present when it asks for a page.
type queuesJSON struct {
	Queues   []queueJSON `json:"queues"`
	PolledAt *time.Time  `json:"polled_at"` // null before the first poll
	Error    *string     `json:"error"`     // null unless the last poll failed
	Total    *int        `json:"total,omitempty"`
	Page     *int        `json:"page,omitempty"`
	PerPage  *int        `json:"per_page,omitempty"`
}

func newQueueJSON(q monitor.QueueSample) queueJSON {
	return queueJSON{
		Vhost:                  q.Vhost,
		Name:                   q.Name,
		Messages:               q.Messages,
		MessagesReady:          q.Ready,
		MessagesUnacknowledged: q.Unacked,
		Consumers:              q.Consumers,
		IngressRate:            q.IngressRate,
		EgressRate:             q.EgressRate,
		TimeToDrainSeconds:     q.TimeToDrainSeconds,
		Growing:                q.Growing,
		IsDeadLetter:           q.IsDeadLetter,
		Status:                 statusClass(q.Status),
	}
}

// apiQueues is GET /api/queues: every queue of the last poll, ordered by
// vhost and name, unless the query asks for a page, a sort or a filter (the
// same parameters as the /queues page).
func (s *Server) apiQueues(c echo.Context) error {
	lq, err := parseQueueListQuery(c.QueryParams())
	if err != nil {
		return jsonError(http.StatusBadRequest, "%s", err.Error())
	}
	snap := s.queues.Latest()
	if snap.Err != nil {
		// A failed poll carries no queues (monitor.Snapshot).
		snap.Queues = nil
	}
	build := func() queuesJSON {
		var res queueListResult
		if lq.Paged {
			res = s.queueIndex.list(snap, lq)
		} else {
			res = s.queueIndex.all(snap, lq)
		}
		body := queuesJSON{Queues: make([]queueJSON, 0, len(res.Page))}
		for _, i := range res.Page {
			body.Queues = append(body.Queues, newQueueJSON(snap.Queues[i]))
		}
		if lq.Given {
			body.Total = &res.Matched
		}
		if lq.Paged {
			body.Page, body.PerPage = &lq.Page, &lq.PerPage
		}
		if !snap.At.IsZero() {
			at := snap.At.UTC()
			body.PolledAt = &at
		}
		if snap.Err != nil {
			msg := shortError(snap.Err)
			body.Error = &msg
		}
		return body
	}
	noStore(c)
	if lq.Given || snap.Err != nil || len(snap.Queues) == 0 {
		return c.JSON(http.StatusOK, build())
	}
	// The whole list is the same for every request until the next poll.
	b, err := s.queueIndex.allQueuesJSON(snap, func() ([]byte, error) {
		b, err := json.Marshal(build())
		return append(b, '\n'), err
	})
	if err != nil {
		return fmt.Errorf("encoding the queue list: %w", err)
	}
	return c.JSONBlob(http.StatusOK, b)
}

// apiQueue is GET /api/queues/{vhost}/{name}: one queue of the last poll.
func (s *Server) apiQueue(c echo.Context) error {
	vhost, name, err := queueParams(c)
	if err != nil {
		return err
	}
	snap := s.queues.Latest()
	switch p := newPollView(snap); p.State {
	case pollFailed, pollPending:
		// Not knowing is not "not found": the queue may well be there.
		msg := "queue depths unknown: no poll of the management API yet"
		if p.State == pollFailed {
			msg = p.unknownText("queue depths")
		}
		noStore(c)
		return c.JSON(http.StatusServiceUnavailable, errorBody{Error: msg})
	}
	for _, q := range snap.Queues {
		if q.Vhost == vhost && q.Name == name {
			noStore(c)
			return c.JSON(http.StatusOK, newQueueJSON(q))
		}
	}
	return jsonError(http.StatusNotFound, "queue %q in vhost %q was not in the last poll", name, vhost)
}

// The queue list (GET /queues and GET /api/queues) at 10,000 queues: one
// sorted index per snapshot and sort order, built on first use and shared by
// every request until the next poll; a request then only scans that index
// for its filter and formats its page.

// Queue list parameters.
const (
	defaultPerPage = 100
	maxPerPage     = 1000
	maxFilterLen   = 200
	defaultSort    = "vhost"
)

// queueSortKeys are the columns the list sorts by, in table order.
var queueSortKeys = [...]string{"vhost", "name", "ready", "unacked", "total", "consumers", "ingress", "egress", "drain", "status"}

func validSortKey(k string) bool { return slices.Contains(queueSortKeys[:], k) }

// queueListQuery is what a request asks of the queue list.
type queueListQuery struct {
	Page, PerPage int
	Sort          string // one of queueSortKeys
	Desc          bool
	Q             string // name substring, case-insensitive
	Vhost         string // exact
	Status        string // ok | warning | critical | unknown
	Given         bool   // any list parameter was given
	Paged         bool   // page or per_page was given
}

// paramError is a bad query parameter; its message starts with the name.
type paramError struct{ param, msg string }

func (e *paramError) Error() string { return "parameter " + e.param + ": " + e.msg }

// parseQueueListQuery reads the list parameters. Empty values count as not
// given (an HTML form sends q= when the box is empty).
func parseQueueListQuery(v url.Values) (queueListQuery, error) {
	q := queueListQuery{Page: 1, PerPage: defaultPerPage, Sort: defaultSort}
	get := func(name string) string {
		s := v.Get(name)
		if s != "" {
			q.Given = true
		}
		return s
	}
	whole := func(name string, lo, hi int) (int, error) {
		s := get(name)
		if s == "" {
			return 0, nil
		}
		q.Paged = true
		n, err := strconv.Atoi(s)
		if err != nil || n < lo || n > hi {
			want := fmt.Sprintf("want a whole number from %d to %d", lo, hi)
			if hi == math.MaxInt32 {
				want = fmt.Sprintf("want a whole number of at least %d", lo)
			}
			return 0, &paramError{name, fmt.Sprintf("%s, got %q", want, clipParam(s))}
		}
		return n, nil
	}
	if n, err := whole("page", 1, math.MaxInt32); err != nil {
		return q, err
	} else if n > 0 {
		q.Page = n
	}
	if n, err := whole("per_page", 1, maxPerPage); err != nil {
		return q, err
	} else if n > 0 {
		q.PerPage = n
	}
	if s := get("sort"); s != "" {
		if !validSortKey(s) {
			return q, &paramError{"sort", fmt.Sprintf("want one of %s, got %q", strings.Join(queueSortKeys[:], ", "), clipParam(s))}
		}
		q.Sort = s
	}
	switch s := get("order"); s {
	case "", "asc":
	case "desc":
		q.Desc = true
	default:
		return q, &paramError{"order", fmt.Sprintf("want asc or desc, got %q", clipParam(s))}
	}
	q.Q = get("q")
	if len(q.Q) > maxFilterLen {
		return q, &paramError{"q", fmt.Sprintf("at most %d bytes, got %d", maxFilterLen, len(q.Q))}
	}
	q.Vhost = get("vhost")
	if len(q.Vhost) > maxFilterLen {
		return q, &paramError{"vhost", fmt.Sprintf("at most %d bytes, got %d", maxFilterLen, len(q.Vhost))}
	}
	switch s := get("status"); s {
	case "", monitor.StatusOK, monitor.StatusWarning, monitor.StatusCritical, monitor.StatusUnknown:
		q.Status = s
	default:
		return q, &paramError{"status", fmt.Sprintf("want ok, warning, critical or unknown, got %q", clipParam(s))}
	}
	return q, nil
}

// clipParam bounds a bad value echoed in an error message.
func clipParam(s string) string {
	if len(s) <= 40 {
		return s
	}
	cut := 40
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// filtered reports whether the query narrows the list.
func (q queueListQuery) filtered() bool { return q.Q != "" || q.Vhost != "" || q.Status != "" }

// values are the query's parameters that differ from the defaults, so links
// stay short and equal states have equal URLs.
func (q queueListQuery) values() url.Values {
	v := url.Values{}
	if q.Q != "" {
		v.Set("q", q.Q)
	}
	if q.Vhost != "" {
		v.Set("vhost", q.Vhost)
	}
	if q.Status != "" {
		v.Set("status", q.Status)
	}
	if q.Sort != defaultSort {
		v.Set("sort", q.Sort)
	}
	if q.Desc {
		v.Set("order", "desc")
	}
	if q.PerPage != defaultPerPage {
		v.Set("per_page", strconv.Itoa(q.PerPage))
	}
	if q.Page > 1 {
		v.Set("page", strconv.Itoa(q.Page))
	}
	return v
}

// href is the /queues URL of the query.
func (q queueListQuery) href() string {
	if e := q.values().Encode(); e != "" {
		return "/queues?" + e
	}
	return "/queues"
}

// statusRank orders statuses from harmless to bad.
func statusRank(s string) float64 {
	switch s {
	case monitor.StatusCritical:
		return 3
	case monitor.StatusWarning:
		return 2
	case monitor.StatusOK:
		return 1
	default:
		return 0
	}
}

// sortValue is a queue's value in a numeric column; false when unknown. A
// growing queue never drains: it sorts as the longest time to drain.
func sortValue(key string, q *monitor.QueueSample) (float64, bool) {
	i := func(p *int64) (float64, bool) {
		if p == nil {
			return 0, false
		}
		return float64(*p), true
	}
	f := func(p *float64) (float64, bool) {
		if p == nil || math.IsNaN(*p) {
			return 0, false
		}
		return *p, true
	}
	switch key {
	case "ready":
		return i(q.Ready)
	case "unacked":
		return i(q.Unacked)
	case "total":
		return i(q.Messages)
	case "consumers":
		return i(q.Consumers)
	case "ingress":
		return f(q.IngressRate)
	case "egress":
		return f(q.EgressRate)
	case "drain":
		if q.Growing != nil && *q.Growing {
			return math.Inf(1), true
		}
		return f(q.TimeToDrainSeconds)
	case "status":
		return statusRank(statusClass(q.Status)), true
	}
	return 0, false
}

// sortSpec is one order of the list.
type sortSpec struct {
	key  string
	desc bool
}

// snapshotKey identifies a snapshot without comparing its queues: a poll
// publishes a new slice, so its first element's address, its length and the
// poll time change together.
type snapshotKey struct {
	first *monitor.QueueSample
	n     int
	at    time.Time
}

func keyOf(s monitor.Snapshot) snapshotKey {
	k := snapshotKey{n: len(s.Queues), at: s.At}
	if len(s.Queues) > 0 {
		k.first = &s.Queues[0]
	}
	return k
}

// queueIndex caches, for the latest snapshot, its orders, lower-case names
// and vhosts. The zero value is ready to use; slices it hands out are never
// changed afterwards.
type queueIndex struct {
	mu      sync.Mutex
	key     snapshotKey
	orders  map[sortSpec][]int32
	lower   []string
	vhosts  []string
	rowHTML []string // rendered rows, filled as pages ask for them
	allJSON []byte   // the body of GET /api/queues without parameters
}

// reset forgets everything when the snapshot changed. x.mu is held.
func (x *queueIndex) reset(k snapshotKey) {
	if x.key == k && x.orders != nil {
		return
	}
	x.key = k
	x.orders = map[sortSpec][]int32{}
	x.lower, x.vhosts, x.rowHTML, x.allJSON = nil, nil, nil, nil
}

// rows returns the rendered rows of the queues at idx, rendering (once per
// snapshot) those not asked for before.
func (x *queueIndex) rows(s monitor.Snapshot, idx []int32) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.reset(keyOf(s))
	if x.rowHTML == nil {
		x.rowHTML = make([]string, len(s.Queues))
	}
	out := make([]string, len(idx))
	for j, i := range idx {
		if x.rowHTML[i] == "" {
			x.rowHTML[i] = queueRowHTML(newQueueRow(s.Queues[i]))
		}
		out[j] = x.rowHTML[i]
	}
	return out
}

// allQueuesJSON returns the body of GET /api/queues for the snapshot,
// encoding it with encode on first use: scripts polling the whole list
// then cost a copy, not 10,000 encodings each. encode runs without x.mu
// held (it reads the index itself); two first requests may both encode.
func (x *queueIndex) allQueuesJSON(s monitor.Snapshot, encode func() ([]byte, error)) ([]byte, error) {
	k := keyOf(s)
	x.mu.Lock()
	x.reset(k)
	b := x.allJSON
	x.mu.Unlock()
	if b != nil {
		return b, nil
	}
	b, err := encode()
	if err != nil {
		return nil, err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.key == k {
		x.allJSON = b
	}
	return b, nil
}

// order returns the queues' indexes in the order of spec.
func (x *queueIndex) order(s monitor.Snapshot, spec sortSpec) []int32 {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.reset(keyOf(s))
	if o, ok := x.orders[spec]; ok {
		return o
	}
	o := sortQueues(s.Queues, spec)
	x.orders[spec] = o
	return o
}

// lowerNames returns the queues' names in lower case, for the name filter.
func (x *queueIndex) lowerNames(s monitor.Snapshot) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.reset(keyOf(s))
	if x.lower == nil {
		x.lower = make([]string, len(s.Queues))
		for i := range s.Queues {
			x.lower[i] = strings.ToLower(s.Queues[i].Name)
		}
	}
	return x.lower
}

// vhostList returns the snapshot's vhosts, sorted.
func (x *queueIndex) vhostList(s monitor.Snapshot) []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.reset(keyOf(s))
	if x.vhosts == nil {
		seen := map[string]bool{}
		x.vhosts = []string{}
		for i := range s.Queues {
			if v := s.Queues[i].Vhost; !seen[v] {
				seen[v] = true
				x.vhosts = append(x.vhosts, v)
			}
		}
		slices.Sort(x.vhosts)
	}
	return x.vhosts
}

// sortQueues orders qs by spec. Unknown values go last in either direction;
// ties keep vhost and name order, so the list is stable between polls.
func sortQueues(qs []monitor.QueueSample, spec sortSpec) []int32 {
	idx := make([]int32, len(qs))
	for i := range idx {
		idx[i] = int32(i)
	}
	byName := func(a, b int32) int {
		if c := cmp.Compare(qs[a].Vhost, qs[b].Vhost); c != 0 {
			return c
		}
		return cmp.Compare(qs[a].Name, qs[b].Name)
	}
	sign := 1
	if spec.desc {
		sign = -1
	}
	switch spec.key {
	case "vhost":
		slices.SortFunc(idx, func(a, b int32) int { return sign * byName(a, b) })
		return idx
	case "name":
		slices.SortFunc(idx, func(a, b int32) int {
			if c := cmp.Compare(qs[a].Name, qs[b].Name); c != 0 {
				return sign * c
			}
			return sign * cmp.Compare(qs[a].Vhost, qs[b].Vhost)
		})
		return idx
	}
	// Extract the column once rather than in every comparison.
	vals := make([]float64, len(qs))
	known := make([]bool, len(qs))
	for i := range qs {
		vals[i], known[i] = sortValue(spec.key, &qs[i])
	}
	slices.SortFunc(idx, func(a, b int32) int {
		switch {
		case known[a] && !known[b]:
			return -1
		case !known[a] && known[b]:
			return 1
		case known[a] && vals[a] != vals[b]:
			return sign * cmp.Compare(vals[a], vals[b])
		}
		return byName(a, b)
	})
	return idx
}

// queueListResult is one request's share of the list: indexes into the
// snapshot's queues, and how many queues matched the filter.
type queueListResult struct {
	Page    []int32
	Matched int
}

// list returns the page the query asks for.
func (x *queueIndex) list(s monitor.Snapshot, q queueListQuery) queueListResult {
	from := (q.Page - 1) * q.PerPage
	if q.Page-1 > len(s.Queues)/q.PerPage { // also guards the product against overflow
		from = len(s.Queues)
	}
	return x.slice(s, q, from, q.PerPage)
}

// all returns every queue that matches the query, in its order.
func (x *queueIndex) all(s monitor.Snapshot, q queueListQuery) queueListResult {
	return x.slice(s, q, 0, len(s.Queues))
}

func (x *queueIndex) slice(s monitor.Snapshot, q queueListQuery, from, n int) queueListResult {
	order := x.order(s, sortSpec{q.Sort, q.Desc})
	if !q.filtered() {
		lo, hi := min(from, len(order)), min(from+n, len(order))
		return queueListResult{Page: order[lo:hi], Matched: len(order)}
	}
	var lower []string
	needle := strings.ToLower(q.Q)
	if needle != "" {
		lower = x.lowerNames(s)
	}
	res := queueListResult{Page: make([]int32, 0, min(n, len(order)))}
	for _, i := range order {
		qs := &s.Queues[i]
		if (q.Vhost != "" && qs.Vhost != q.Vhost) ||
			(q.Status != "" && statusClass(qs.Status) != q.Status) ||
			(needle != "" && !strings.Contains(lower[i], needle)) {
			continue
		}
		if res.Matched >= from && res.Matched < from+n {
			res.Page = append(res.Page, i)
		}
		res.Matched++
	}
	return res
}

// queuesView is the /queues page: one page of the list, its controls and
// what the last poll says.
type queuesView struct {
	Poll   pollView
	Broker brokerView
	// OOB marks a refresh of the list alone: the parts outside it that
	// change (header badge, panel meta, the form's sort state) come along
	// as htmx out-of-band swaps.
	OOB     bool
	Query   queueListQuery
	Rows    []string // the page's rows, rendered (see queueRowHTML)
	Total   int      // queues in the snapshot
	Matched int      // queues matching the filter
	From    int      // 1-based index of the first row shown; 0 when none
	To      int
	Pages   int
	Vhosts  []string
	SelfURL string // this state's URL: the refresh, and what the address bar shows
	Heads   []queueHead
	Pager   []pageLink
	Prev    string // URL of the previous page; empty on the first
	Next    string
	Err     string // a bad parameter
}

// queueHead is one column heading; a link sorts by it.
type queueHead struct {
	Label, Title string
	Num          bool
	Href         string
	Sort         string // ascending | descending | none (aria-sort)
}

// pageLink is one entry of the pager; Gap is an ellipsis.
type pageLink struct {
	Label   string
	Href    string
	Current bool
	Gap     bool
}

// meta is the summary next to the panel title; never a count of queues
// when the poll failed or has not happened.
func (v queuesView) meta() string { return v.Poll.queuesMeta(v.Total) }

// inPanel is the list as part of the whole panel: the parts the list
// alone would carry out of band are in the panel already.
func (v queuesView) inPanel() queuesView {
	v.OOB = false
	return v
}

// summary says which rows are shown, e.g. "1–100 of 10,000".
func (v queuesView) summary() string {
	of := groupDigits(int64(v.Matched))
	if v.Query.filtered() {
		of += " matching"
	}
	if v.From == 0 {
		if v.Matched == 0 {
			return "no queue matches"
		}
		return fmt.Sprintf("page %d is past the end (%d pages of %s)", v.Query.Page, v.Pages, of)
	}
	return groupDigits(int64(v.From)) + "–" + groupDigits(int64(v.To)) + " of " + of
}

// queueColumns are the list's columns: sort key, heading, tooltip, numeric.
func queueColumns() []queueHead {
	return []queueHead{
		{Label: "vhost"}, {Label: "name"},
		{Label: "ready", Num: true}, {Label: "unacked", Num: true}, {Label: "total", Num: true},
		{Label: "consumers", Num: true},
		{Label: "in", Title: "messages per second in, warren's estimate", Num: true},
		{Label: "out", Title: "messages per second out, warren's estimate", Num: true},
		{Label: "drain", Title: "time to drain the ready messages at the current rates", Num: true},
		{Label: "status"},
	}
}

// newQueuesView builds one page of the list.
func (s *Server) newQueuesView(snap monitor.Snapshot, q queueListQuery, oob bool) queuesView {
	v := queuesView{
		Poll:    newPollView(snap),
		Broker:  brokerFromSnapshot(snap),
		OOB:     oob,
		Query:   q,
		SelfURL: q.href(),
	}
	for i, h := range queueColumns() {
		key := queueSortKeys[i]
		next := q
		next.Page = 1
		next.Sort = key
		// Numbers are most often wanted biggest first; names A to Z.
		next.Desc = h.Num || key == "status"
		h.Sort = "none"
		if q.Sort == key {
			next.Desc = !q.Desc
			h.Sort = "ascending"
			if q.Desc {
				h.Sort = "descending"
			}
		}
		h.Href = next.href()
		v.Heads = append(v.Heads, h)
	}
	if v.Poll.State != pollOK {
		// A failed poll carries no queues (monitor.Snapshot); show none
		// rather than rows that would pass for current.
		return v
	}
	v.Total = len(snap.Queues)
	v.Vhosts = s.queueIndex.vhostList(snap)
	res := s.queueIndex.list(snap, q)
	v.Matched = res.Matched
	v.Rows = s.queueIndex.rows(snap, res.Page)
	v.Pages = (v.Matched + q.PerPage - 1) / q.PerPage
	if len(v.Rows) > 0 {
		v.From = (q.Page-1)*q.PerPage + 1
		v.To = v.From + len(v.Rows) - 1
	}
	v.Pager, v.Prev, v.Next = pager(q, v.Pages)
	return v
}

// pager links the first and last pages and two either side of the current
// one, with gaps between: a dozen links at most, whatever the count.
func pager(q queueListQuery, pages int) (links []pageLink, prev, next string) {
	if pages <= 1 {
		return nil, "", ""
	}
	at := func(n int) string {
		p := q
		p.Page = n
		return p.href()
	}
	if q.Page > 1 {
		prev = at(min(q.Page-1, pages))
	}
	if q.Page < pages {
		next = at(q.Page + 1)
	}
	nums := []int{1}
	for n := max(2, q.Page-2); n <= min(pages-1, q.Page+2); n++ {
		nums = append(nums, n)
	}
	nums = append(nums, pages)
	for i, n := range nums {
		if i > 0 && n > nums[i-1]+1 {
			links = append(links, pageLink{Label: "…", Gap: true})
		}
		links = append(links, pageLink{Label: groupDigits(int64(n)), Href: at(n), Current: n == q.Page})
	}
	return links, prev, next
}

// queueRowHTML renders one row of the queue list. It is Go rather than
// templ because it is the page's hot loop (templ formats every expression
// through fmt.Sprint, half the cost of a 100-row page), and its result is
// kept per snapshot (queueIndex.rows). Every value is escaped here with
// html.EscapeString (text and double-quoted attributes); hrefs come from
// queueHref, which path-escapes the names.
func queueRowHTML(r queueRow) string {
	var b strings.Builder
	b.Grow(512)
	b.WriteString(`<tr class="queue" data-vhost="`)
	b.WriteString(html.EscapeString(r.Vhost))
	b.WriteString(`" data-queue="`)
	b.WriteString(html.EscapeString(r.Name))
	b.WriteString(`"><td class="name">`)
	b.WriteString(html.EscapeString(r.Vhost))
	b.WriteString(`</td><td class="name"><a href="`)
	b.WriteString(html.EscapeString(r.Href))
	b.WriteString(`">`)
	b.WriteString(html.EscapeString(r.Name))
	b.WriteString(`</a>`)
	if r.DeadLetter {
		b.WriteString(` <span class="tag dlq" title="dead-letter queue">DLQ</span>`)
	}
	b.WriteString(`</td>`)
	for _, c := range [...]cell{r.Ready, r.Unacked, r.Messages, r.Consumers, r.Ingress, r.Egress, r.Drain} {
		if c.Known {
			b.WriteString(`<td class="num">`)
		} else {
			b.WriteString(`<td class="num na">`)
		}
		b.WriteString(html.EscapeString(c.Text))
		b.WriteString(`</td>`)
	}
	// statusClass keeps the status to four known words.
	st := statusClass(r.Status)
	b.WriteString(`<td><span class="status status-`)
	b.WriteString(st)
	b.WriteString(`">`)
	b.WriteString(st)
	b.WriteString("</span></td></tr>")
	return b.String()
}

// queueRows writes rows rendered by queueRowHTML.
func queueRows(rows []string) templ.Component {
	return templ.ComponentFunc(func(_ context.Context, w io.Writer) error {
		for _, r := range rows {
			if _, err := io.WriteString(w, r); err != nil {
				return err
			}
		}
		return nil
	})
}

// queueListTarget is the element the list's own links and form replace.
const queueListTarget = "queue-list"

// queuesPage is GET /queues: every queue, sorted, filtered and paged on the
// server. A request from the list's own links, form or refresh (HX-Target
// queue-list) gets the list alone; other htmx requests the whole panel.
func (s *Server) queuesPage(c echo.Context) error {
	q, err := parseQueueListQuery(c.QueryParams())
	list := isHX(c) && c.Request().Header.Get("HX-Target") == queueListTarget
	if err != nil {
		v := queuesView{Poll: pollView{State: pollOK}, Query: queueListQuery{Page: 1, PerPage: defaultPerPage, Sort: defaultSort},
			SelfURL: "/queues", Err: err.Error()}
		if list {
			return render(c, http.StatusBadRequest, queueList(v))
		}
		return s.respond(c, http.StatusBadRequest, "queues", queuesSection(v), queuesSection(v))
	}
	v := s.newQueuesView(s.queues.Latest(), q, isHX(c))
	if list {
		if c.Request().Header.Get("HX-Trigger") == queueFilterForm {
			// The form sends its empty fields too; show the short URL.
			c.Response().Header().Set("HX-Replace-Url", v.SelfURL)
		}
		return render(c, http.StatusOK, queueList(v))
	}
	return s.respond(c, http.StatusOK, "queues", queuesSection(v), queuesSection(v))
}

// queueFilterForm is the id of the filter form.
const queueFilterForm = "queue-filter"
