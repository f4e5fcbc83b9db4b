package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/net/html"

	"warren/consumers"
	"warren/internal/browsertest"
	"warren/monitor"
)

// manyQueues is a snapshot of n queues over two vhosts, with depths spread
// so every sort has something to order, and every seventh queue's values
// unknown. A fake source: a real broker with thousands of queues is not a
// test fixture (DESIGN.md, "How it is tested").
func manyQueues(n int) monitor.Snapshot {
	s := monitor.Snapshot{At: pollTime}
	for i := range n {
		vhost := "/"
		if i%3 == 0 {
			vhost = "tenant"
		}
		q := monitor.QueueSample{Vhost: vhost, Name: fmt.Sprintf("Queue-%05d", i), Status: monitor.StatusOK}
		if i%7 != 0 {
			depth := int64((i * 7919) % 1000)
			q.Messages, q.Ready, q.Unacked, q.Consumers = i64(depth), i64(depth), i64(0), i64(int64(i%4))
			q.IngressRate, q.EgressRate = f64(float64(i%10)), f64(float64(i%5))
			switch {
			case depth >= 900:
				q.Status = monitor.StatusCritical
			case depth >= 700:
				q.Status = monitor.StatusWarning
			}
		} else {
			q.Status = monitor.StatusUnknown
		}
		s.Queues = append(s.Queues, q)
	}
	return s
}

type apiQueueList struct {
	Queues []struct {
		Vhost    string `json:"vhost"`
		Name     string `json:"name"`
		Messages *int64 `json:"messages"`
		Status   string `json:"status"`
	} `json:"queues"`
	Total   *int `json:"total"`
	Page    *int `json:"page"`
	PerPage *int `json:"per_page"`
}

func getQueueList(t *testing.T, f *fixture, query string) apiQueueList {
	t.Helper()
	code, _, body := do(t, f.client(t), http.MethodGet, f.http.URL+"/api/queues"+query, "", "", nil)
	if code != http.StatusOK {
		t.Fatalf("GET /api/queues%s = %d %s", query, code, body)
	}
	var got apiQueueList
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("decoding %s: %v", body, err)
	}
	return got
}

func TestAPIQueuesSortFilterPage(t *testing.T) {
	f := newFixture(t)
	f.queues.set(manyQueues(250))

	t.Run("no parameters: every queue, no paging fields", func(t *testing.T) {
		got := getQueueList(t, f, "")
		if len(got.Queues) != 250 || got.Total != nil || got.Page != nil || got.PerPage != nil {
			t.Fatalf("%d queues, total %v page %v per_page %v", len(got.Queues), got.Total, got.Page, got.PerPage)
		}
		for i := 1; i < len(got.Queues); i++ {
			a, b := got.Queues[i-1], got.Queues[i]
			if a.Vhost > b.Vhost || (a.Vhost == b.Vhost && a.Name >= b.Name) {
				t.Fatalf("not in vhost, name order at %d: %s/%s then %s/%s", i, a.Vhost, a.Name, b.Vhost, b.Name)
			}
		}
	})

	t.Run("the whole list follows a new poll", func(t *testing.T) {
		// The body without parameters is kept per snapshot; a new poll
		// must not be answered from the old one.
		f.queues.set(manyQueues(10))
		if got := getQueueList(t, f, ""); len(got.Queues) != 10 {
			t.Errorf("after a poll of 10 queues: %d", len(got.Queues))
		}
		f.queues.set(manyQueues(250))
		if got := getQueueList(t, f, ""); len(got.Queues) != 250 {
			t.Errorf("after a poll of 250 queues: %d", len(got.Queues))
		}
	})

	t.Run("page", func(t *testing.T) {
		got := getQueueList(t, f, "?page=3&per_page=100")
		if len(got.Queues) != 50 || *got.Total != 250 || *got.Page != 3 || *got.PerPage != 100 {
			t.Fatalf("page 3: %d queues, total %d page %d per_page %d", len(got.Queues), *got.Total, *got.Page, *got.PerPage)
		}
		all := getQueueList(t, f, "")
		if got.Queues[0].Name != all.Queues[200].Name {
			t.Errorf("page 3 starts with %s, want %s", got.Queues[0].Name, all.Queues[200].Name)
		}
		if past := getQueueList(t, f, "?page=9"); len(past.Queues) != 0 || *past.Total != 250 {
			t.Errorf("past the end: %d queues, total %d", len(past.Queues), *past.Total)
		}
	})

	t.Run("sort by total, largest first, unknown last", func(t *testing.T) {
		got := getQueueList(t, f, "?sort=total&order=desc")
		if *got.Total != 250 || got.Page != nil || len(got.Queues) != 250 {
			t.Fatalf("sorted without paging: total %v page %v, %d queues", got.Total, got.Page, len(got.Queues))
		}
		seenUnknown := false
		for i, q := range got.Queues {
			if q.Messages == nil {
				seenUnknown = true
				continue
			}
			if seenUnknown {
				t.Fatalf("known depth %d of %s after an unknown one", *q.Messages, q.Name)
			}
			if i > 0 && got.Queues[i-1].Messages != nil && *got.Queues[i-1].Messages < *q.Messages {
				t.Fatalf("not descending at %d", i)
			}
		}
		if !seenUnknown {
			t.Fatal("fixture has no unknown depths")
		}
		asc := getQueueList(t, f, "?sort=total")
		if asc.Queues[0].Messages == nil || asc.Queues[249].Messages != nil {
			t.Errorf("ascending: unknown depths should come last")
		}
	})

	t.Run("filters", func(t *testing.T) {
		// Case-insensitive name substring, exact vhost and status together.
		got := getQueueList(t, f, "?q=queue-001&vhost=tenant&status=critical&per_page=5")
		if got.Total == nil || *got.Total == 0 {
			t.Fatal("nothing matched")
		}
		want := 0
		for _, q := range manyQueues(250).Queues {
			if strings.Contains(strings.ToLower(q.Name), "queue-001") && q.Vhost == "tenant" && q.Status == monitor.StatusCritical {
				want++
			}
		}
		if *got.Total != want || len(got.Queues) != min(want, 5) {
			t.Errorf("total %d with %d shown, want %d", *got.Total, len(got.Queues), want)
		}
		for _, q := range got.Queues {
			if !strings.Contains(q.Name, "Queue-001") || q.Vhost != "tenant" || q.Status != "critical" {
				t.Errorf("%s/%s (%s) does not match", q.Vhost, q.Name, q.Status)
			}
		}
		if none := getQueueList(t, f, "?q=nothing-like-this"); len(none.Queues) != 0 || *none.Total != 0 {
			t.Errorf("no match: %d queues, total %d", len(none.Queues), *none.Total)
		}
	})

	t.Run("the order does not depend on the page size", func(t *testing.T) {
		whole := getQueueList(t, f, "?sort=ingress&order=desc&per_page=1000")
		var pieced []string
		for p := 1; p <= 3; p++ {
			for _, q := range getQueueList(t, f, fmt.Sprintf("?sort=ingress&order=desc&per_page=100&page=%d", p)).Queues {
				pieced = append(pieced, q.Vhost+"/"+q.Name)
			}
		}
		for i, q := range whole.Queues {
			if pieced[i] != q.Vhost+"/"+q.Name {
				t.Fatalf("position %d: %s paged, %s whole", i, pieced[i], q.Vhost+"/"+q.Name)
			}
		}
	})
}

func TestQueueListBadParams(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	for _, tc := range []struct{ query, param string }{
		{"page=0", "page"},
		{"page=-1", "page"},
		{"page=two", "page"},
		{"per_page=0", "per_page"},
		{"per_page=1001", "per_page"},
		{"per_page=1.5", "per_page"},
		{"sort=colour", "sort"},
		{"sort=ready&order=up", "order"},
		{"status=fine", "status"},
		{"q=" + strings.Repeat("x", 201), "q"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			code, hdr, body := do(t, c, http.MethodGet, f.http.URL+"/api/queues?"+tc.query, "", "", nil)
			var e errorBody
			if code != http.StatusBadRequest || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") ||
				json.Unmarshal([]byte(body), &e) != nil || !strings.HasPrefix(e.Error, "parameter "+tc.param+":") {
				t.Errorf("GET /api/queues?%s = %d %s, want 400 naming %s", tc.query, code, body, tc.param)
			}
			for _, hx := range []map[string]string{nil, {"HX-Request": "true", "HX-Target": "queue-list"}} {
				code, hdr, body := do(t, c, http.MethodGet, f.http.URL+"/queues?"+tc.query, "", "", hx)
				if code != http.StatusBadRequest || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") ||
					!strings.Contains(body, "parameter "+tc.param+":") {
					t.Errorf("GET /queues?%s (hx %v) = %d, want 400 naming %s: %.300s", tc.query, hx != nil, code, tc.param, body)
				}
			}
		})
	}
	// The bad value is echoed as text, not markup.
	_, _, body := do(t, c, http.MethodGet, f.http.URL+"/queues?sort="+url.QueryEscape("<b>x</b>"), "", "", nil)
	if strings.Contains(body, "<b>x</b>") || len(findAll(parseHTML(t, body), func(n *html.Node) bool { return n.Data == "b" })) > 0 {
		t.Error("a bad parameter was written as markup")
	}
}

// queueNames returns the names of the queue rows in a page or fragment.
func queueNames(t *testing.T, body string) []string {
	t.Helper()
	var names []string
	for _, r := range findAll(parseHTML(t, body), func(n *html.Node) bool { return n.Data == "tr" && hasClass(n, "queue") }) {
		name, _ := attr(r, "data-queue")
		names = append(names, name)
	}
	return names
}

func byID(t *testing.T, body, id string) *html.Node {
	t.Helper()
	return section(t, parseHTML(t, body), id)
}

func TestQueuesPageSortFilterPage(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	f.queues.set(manyQueues(250))

	t.Run("first page by default", func(t *testing.T) {
		code, _, body := do(t, c, http.MethodGet, f.http.URL+"/queues", "", "", nil)
		if code != http.StatusOK {
			t.Fatalf("GET /queues = %d", code)
		}
		if n := len(queueNames(t, body)); n != 100 {
			t.Errorf("%d rows, want 100", n)
		}
		if got := strings.TrimSpace(textOf(findAll(parseHTML(t, body), func(n *html.Node) bool { return hasClass(n, "list-summary") })[0])); got != "1–100 of 250" {
			t.Errorf("summary %q", got)
		}
		if meta := textOf(byID(t, body, "queues-meta")); !strings.HasPrefix(meta, "250 queues · polled") {
			t.Errorf("meta %q", meta)
		}
		pager := findAll(parseHTML(t, body), func(n *html.Node) bool { return n.Data == "nav" && hasClass(n, "pager") })
		if len(pager) != 1 {
			t.Fatal("no pager")
		}
		var labels []string
		for _, n := range findAll(pager[0], func(n *html.Node) bool { return n.Data == "a" || n.Data == "span" }) {
			labels = append(labels, strings.TrimSpace(textOf(n)))
		}
		if got := strings.Join(labels, " "); got != "1 2 3 next ›" {
			t.Errorf("pager %q", got)
		}
	})

	t.Run("sorted, filtered and paged", func(t *testing.T) {
		api := getQueueList(t, f, "?sort=ready&order=desc&vhost=/&per_page=20&page=2")
		_, _, body := do(t, c, http.MethodGet, f.http.URL+"/queues?sort=ready&order=desc&vhost=/&per_page=20&page=2", "", "", nil)
		names := queueNames(t, body)
		if len(names) != 20 || len(api.Queues) != 20 {
			t.Fatalf("%d rows, api %d", len(names), len(api.Queues))
		}
		for i, n := range names {
			if n != api.Queues[i].Name {
				t.Fatalf("row %d is %s, the API says %s", i, n, api.Queues[i].Name)
			}
		}
		summary := textOf(findAll(parseHTML(t, body), func(n *html.Node) bool { return hasClass(n, "list-summary") })[0])
		if want := fmt.Sprintf("21–40 of %d matching", *api.Total); summary != want {
			t.Errorf("summary %q, want %q", summary, want)
		}
		// The form keeps the filter and carries the sort and page size.
		form := byID(t, body, "queue-filter")
		values := map[string]string{}
		for _, in := range findAll(form, func(n *html.Node) bool { return n.Data == "input" }) {
			name, _ := attr(in, "name")
			v, _ := attr(in, "value")
			values[name] = v
		}
		for _, opt := range findAll(form, func(n *html.Node) bool { _, sel := attr(n, "selected"); return n.Data == "option" && sel }) {
			v, _ := attr(opt, "value")
			values["selected:"+v] = "yes"
		}
		if values["sort"] != "ready" || values["order"] != "desc" || values["per_page"] != "20" || values["selected:/"] != "yes" {
			t.Errorf("form state %v", values)
		}
		if _, ok := values["page"]; ok {
			t.Error("the form keeps the page: a new filter must start at page 1")
		}
		// The list refreshes itself with the same state.
		list := byID(t, body, "queue-list")
		refresh, _ := attr(list, "hx-get")
		u, err := url.Parse(refresh)
		if err != nil {
			t.Fatal(err)
		}
		want := url.Values{"sort": {"ready"}, "order": {"desc"}, "vhost": {"/"}, "per_page": {"20"}, "page": {"2"}}
		if u.Path != "/queues" || u.Query().Encode() != want.Encode() {
			t.Errorf("refresh URL %q", refresh)
		}
		// The ready heading is sorted descending; its link sorts ascending.
		for _, th := range findAll(list, func(n *html.Node) bool { return n.Data == "th" }) {
			label := strings.TrimSpace(textOf(th))
			sortAttr, _ := attr(th, "aria-sort")
			href, _ := attr(findAll(th, func(n *html.Node) bool { return n.Data == "a" })[0], "href")
			hu, _ := url.Parse(href)
			switch label {
			case "ready":
				if sortAttr != "descending" || hu.Query().Get("order") != "" || hu.Query().Get("sort") != "ready" {
					t.Errorf("ready heading: aria-sort %q, link %q", sortAttr, href)
				}
			case "total":
				if sortAttr != "none" || hu.Query().Get("order") != "desc" || hu.Query().Get("page") != "" || hu.Query().Get("vhost") != "/" {
					t.Errorf("total heading: aria-sort %q, link %q", sortAttr, href)
				}
			}
		}
	})

	t.Run("fragment for the list's own requests", func(t *testing.T) {
		hx := map[string]string{"HX-Request": "true", "HX-Target": "queue-list", "HX-Trigger": "queue-filter"}
		code, hdr, frag := do(t, c, http.MethodGet, f.http.URL+"/queues?q=queue-002&vhost=&status=&sort=name", "", "", hx)
		if code != http.StatusOK || !strings.HasPrefix(frag, `<div id="queue-list"`) {
			t.Fatalf("%d %.80s", code, frag)
		}
		if got := hdr.Get("HX-Replace-Url"); got != "/queues?q=queue-002&sort=name" {
			t.Errorf("HX-Replace-Url %q", got)
		}
		for _, id := range []string{"queues-meta", "queue-sort-state", "broker"} {
			if v, _ := attr(byID(t, frag, id), "hx-swap-oob"); v != "true" {
				t.Errorf("%s is not swapped out of band", id)
			}
		}
		if names := queueNames(t, frag); len(names) != 50 || names[0] != "Queue-00200" {
			t.Errorf("rows %v", names)
		}
		// A refresh (no trigger from the form) does not touch the address bar.
		delete(hx, "HX-Trigger")
		_, hdr, _ = do(t, c, http.MethodGet, f.http.URL+"/queues?q=queue-002", "", "", hx)
		if hdr.Get("HX-Replace-Url") != "" {
			t.Error("a refresh rewrote the URL")
		}
	})

	t.Run("past the last page", func(t *testing.T) {
		code, _, body := do(t, c, http.MethodGet, f.http.URL+"/queues?page=7", "", "", nil)
		if code != http.StatusOK || len(queueNames(t, body)) != 0 || !strings.Contains(body, "page 7 is past the end (3 pages of 250)") {
			t.Errorf("%d %v", code, queueNames(t, body))
		}
	})
}

// TestQueuesPageEscapesOddNamesWhenFiltered filters the list down to the
// names that are markup, URLs or unicode and checks text and links.
func TestQueuesPageEscapesOddNamesWhenFiltered(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	snap := manyQueues(300)
	odd := []string{"<img src=x onerror=alert(1)>", "a/b?c#d&e=f", "with space+plus%2F", "ünï ✓ <b>"}
	for _, n := range odd {
		snap.Queues = append(snap.Queues, monitor.QueueSample{Vhost: "odd/<vh>", Name: n, Status: monitor.StatusWarning, Messages: i64(1)})
	}
	f.queues.set(snap)

	query := "/queues?" + url.Values{"vhost": {"odd/<vh>"}, "status": {"warning"}, "per_page": {"2"}}.Encode()
	seen := map[string]string{}
	for page := 1; page <= 2; page++ {
		code, _, body := do(t, c, http.MethodGet, f.http.URL+query+fmt.Sprintf("&page=%d", page), "", "", nil)
		if code != http.StatusOK {
			t.Fatalf("GET %s = %d", query, code)
		}
		doc := parseHTML(t, body)
		if n := findAll(doc, func(n *html.Node) bool { return n.Data == "img" || n.Data == "b" || n.Data == "vh" }); len(n) > 0 {
			t.Fatalf("%d elements injected by names", len(n))
		}
		for _, r := range findAll(doc, func(n *html.Node) bool { return n.Data == "tr" && hasClass(n, "queue") }) {
			name, _ := attr(r, "data-queue")
			a := findAll(r, func(n *html.Node) bool { return n.Data == "a" })
			href, _ := attr(a[0], "href")
			if textOf(a[0]) != name {
				t.Errorf("link text %q for %q", textOf(a[0]), name)
			}
			seen[name] = href
		}
		// The pager links keep the odd vhost, encoded.
		for _, a := range findAll(doc, func(n *html.Node) bool { return n.Data == "a" && hasClass(n, "page") }) {
			href, _ := attr(a, "href")
			u, err := url.Parse(href)
			if err != nil || u.Query().Get("vhost") != "odd/<vh>" {
				t.Errorf("pager link %q loses the vhost", href)
			}
		}
	}
	for _, n := range odd {
		href, ok := seen[n]
		if !ok {
			t.Errorf("%q not listed", n)
			continue
		}
		if want := queueHref("odd/<vh>", n); href != want {
			t.Errorf("href of %q = %q, want %q", n, href, want)
		}
	}

	// A name filter with markup finds the name and stays text.
	code, _, body := do(t, c, http.MethodGet, f.http.URL+"/queues?q="+url.QueryEscape("<IMG"), "", "", nil)
	if code != http.StatusOK || strings.Contains(body, "<img") {
		t.Fatalf("%d, or markup in the page", code)
	}
	if names := queueNames(t, body); len(names) != 1 || names[0] != odd[0] {
		t.Errorf("filter <IMG found %q", names)
	}
	in := findAll(parseHTML(t, body), func(n *html.Node) bool { name, _ := attr(n, "name"); return n.Data == "input" && name == "q" })
	if v, _ := attr(in[0], "value"); v != "<IMG" {
		t.Errorf("filter box shows %q", v)
	}
}

// TestQueueIndexReusedPerSnapshot: requests for the same poll share one
// sorted index; a new poll builds a new one.
func TestQueueIndexReusedPerSnapshot(t *testing.T) {
	var x queueIndex
	s1 := manyQueues(50)
	a := x.order(s1, sortSpec{"ready", true})
	b := x.order(s1, sortSpec{"ready", true})
	if &a[0] != &b[0] {
		t.Error("the same snapshot and order were sorted twice")
	}
	if c := x.order(s1, sortSpec{"ready", false}); &c[0] == &a[0] {
		t.Error("ascending and descending share an index")
	}
	s2 := manyQueues(50) // a new poll: new slice, same contents
	if d := x.order(s2, sortSpec{"ready", true}); &d[0] == &a[0] {
		t.Error("a new snapshot reused the old index")
	}
}

// TestQueueIndexConcurrentPolls: requests in parallel while polls replace
// the snapshot each get a consistent page (run with -race).
func TestQueueIndexConcurrentPolls(t *testing.T) {
	var x queueIndex
	snaps := []monitor.Snapshot{manyQueues(300), manyQueues(200)}
	done := make(chan error)
	for g := range 8 {
		go func() {
			var err error
			for i := range 50 {
				s := snaps[(g+i)%2]
				q := queueListQuery{Page: 2, PerPage: 50, Sort: queueSortKeys[(g+i)%len(queueSortKeys)], Desc: i%2 == 0, Q: "queue-0"}
				res := x.list(s, q)
				if res.Matched != len(s.Queues) || len(res.Page) != 50 {
					err = fmt.Errorf("%d queues: matched %d, page of %d", len(s.Queues), res.Matched, len(res.Page))
				}
				for _, idx := range res.Page {
					if int(idx) >= len(s.Queues) {
						err = fmt.Errorf("index %d from another snapshot", idx)
					}
				}
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func TestOverview(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	snap := defaultSnapshot()
	snap.Overview = &monitor.Overview{ClusterName: "rabbit@prod", RabbitMQVersion: "4.1.0", PublishRate: f64(120.5), DeliverGetRate: f64(100), Connections: i64(7)}
	snap.Nodes = []monitor.Node{
		{Name: "rabbit@a", Running: boolp(true), MemUsed: i64(512 << 20), MemLimit: i64(1 << 30), MemAlarm: boolp(false), DiskFree: i64(5 << 30), DiskFreeAlarm: boolp(false), FDUsed: i64(100), FDTotal: i64(1000)},
		{Name: "rabbit@b", Running: boolp(true), MemAlarm: boolp(true)},
	}
	// Growth: in 30/s, out 5/s.
	snap.Queues = append(snap.Queues, monitor.QueueSample{Vhost: "/", Name: "<i>filling</i>", Messages: i64(10), Ready: i64(10), Unacked: i64(0),
		Consumers: i64(0), IngressRate: f64(30), EgressRate: f64(5), Growing: boolp(true), Status: monitor.StatusOK})
	f.queues.set(snap)
	list := defaultConsumers()
	list[0].Circuit = consumers.CircuitOpen
	list = append(list, consumers.Status{Name: "fine", Queue: "orders", Vhost: "/", State: consumers.StateRunning})
	f.consumers = newFakeConsumers(list...)
	f.server.consumers = f.consumers

	code, _, body := do(t, c, http.MethodGet, f.http.URL+"/", "", "", nil)
	if code != http.StatusOK {
		t.Fatalf("GET / = %d", code)
	}
	doc := parseHTML(t, body)
	if n := findAll(doc, func(n *html.Node) bool { return n.Data == "i" || n.Data == "b" }); len(n) > 0 {
		t.Fatalf("%d elements injected by names", len(n))
	}
	health := textOf(section(t, doc, "health"))
	for _, want := range []string{"rabbit@prod", "RabbitMQ 4.1.0", "memory alarm on rabbit@b", "512.0 MiB / 1.0 GiB (50%)", "5.0 GiB", "100 / 1,000 (10%)"} {
		if !strings.Contains(health, want) {
			t.Errorf("health lacks %q: %q", want, health)
		}
	}
	if n := findAll(section(t, doc, "health"), func(n *html.Node) bool { return n.Data == "tr" && hasClass(n, "problem") }); len(n) != 1 {
		t.Errorf("%d nodes marked as a problem, want rabbit@b", len(n))
	}
	totals := map[string]string{}
	for _, d := range findAll(section(t, doc, "totals"), func(n *html.Node) bool { return n.Data == "div" }) {
		dts := findAll(d, func(n *html.Node) bool { return n.Data == "dt" })
		dds := findAll(d, func(n *html.Node) bool { return n.Data == "dd" })
		totals[textOf(dts[0])] = textOf(dds[0])
	}
	for k, want := range map[string]string{"queues": "7", "messages": "101,254", "ready": "101,218", "unacked": "36", "consumers": "4", "publish": "120.5/s", "deliver": "100.0/s", "connections": "7"} {
		if totals[k] != want {
			t.Errorf("total %s = %q, want %q", k, totals[k], want)
		}
	}
	if meta := textOf(findAll(section(t, doc, "totals"), func(n *html.Node) bool { return hasClass(n, "meta") })[0]); meta != "1 critical · 1 warning · 1 unknown" {
		t.Errorf("status line %q", meta)
	}

	queues := section(t, doc, "queues")
	var worst []string
	for _, r := range findAll(queues, func(n *html.Node) bool { return n.Data == "tr" && hasClass(n, "worst-queue") }) {
		name, _ := attr(r, "data-queue")
		worst = append(worst, name)
	}
	if got := strings.Join(worst, ","); got != "with space+plus,orders,<i>filling</i>" {
		t.Errorf("worst queues %q, want the critical, the warning, then the growing one", got)
	}
	if !strings.Contains(textOf(queues), "+25.0/s") || !strings.Contains(textOf(queues), "7 queues · polled 03:04:05 UTC") {
		t.Errorf("worst queues panel: %q", textOf(queues))
	}

	var attention []string
	for _, r := range findAll(section(t, doc, "attention"), func(n *html.Node) bool { return n.Data == "tr" }) {
		var cells []string
		for _, td := range findAll(r, func(n *html.Node) bool { return n.Data == "td" }) {
			cells = append(cells, strings.TrimSpace(textOf(td)))
		}
		attention = append(attention, strings.Join(cells, " "))
	}
	if got := strings.Join(attention, " | "); got != "demo running circuit open | odd/<i>name</i>?# paused not running" {
		t.Errorf("attention %q", got)
	}

	alertsPanel := section(t, doc, "alerts")
	if rows := findAll(alertsPanel, func(n *html.Node) bool { return n.Data == "tr" && hasClass(n, "alert") }); len(rows) != 1 ||
		!strings.Contains(textOf(alertsPanel), "1 firing") {
		t.Errorf("alerts panel: %q", textOf(alertsPanel))
	}

	// The refresh is the overview alone, with the header badge.
	_, _, frag := do(t, c, http.MethodGet, f.http.URL+"/", "", "", map[string]string{"HX-Request": "true"})
	if !strings.HasPrefix(frag, `<div id="overview"`) || !strings.Contains(frag, `id="broker" class="broker broker-ok" hx-swap-oob="true"`) {
		t.Errorf("overview fragment: %.200s", frag)
	}

	// Alerts unreadable: said so, the rest of the page still there.
	f.alerts.mu.Lock()
	f.alerts.err = errBoom
	f.alerts.mu.Unlock()
	code, _, body = do(t, c, http.MethodGet, f.http.URL+"/", "", "", nil)
	if code != http.StatusOK || !strings.Contains(body, "could not read the firing alerts") || strings.Contains(body, "10.0.0.1") ||
		!strings.Contains(body, "with space+plus") {
		t.Errorf("alerts failure on the overview: %d", code)
	}
}

// TestQueueListInBrowser filters, pages and sorts the queue list in a real
// headless Chromium: htmx swaps the list, the address bar follows, and the
// live refresh keeps the page, sort and filter.
func TestQueueListInBrowser(t *testing.T) {
	f := newFixture(t)
	f.queues.set(manyQueues(250))
	ctx := browsertest.New(t)
	problems := watchConsole(t, ctx)

	if err := chromedp.Do(ctx, chromedp.Navigate(f.http.URL+"/queues?per_page=20")); err != nil {
		t.Fatalf("loading the queue list: %v", err)
	}
	summary := `document.querySelector(".list-summary").textContent`
	rows := `document.querySelectorAll("#queue-list tr.queue")`
	browsertest.WaitJS(t, ctx, 20*time.Second, "htmx and the list", `typeof htmx !== "undefined" && `+rows+`.length === 20`)
	if got := browsertest.JS[string](t, ctx, summary); got != "1–20 of 250" {
		t.Fatalf("summary %q", got)
	}

	// Typing filters after a pause; the URL shows the filter, short.
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(`#queue-filter input[name="q"]`), "queue-001")); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitJS(t, ctx, 10*time.Second, "the filtered list", summary+` === "1–20 of 100 matching"`)
	if got := browsertest.JS[string](t, ctx, `location.pathname + location.search`); got != "/queues?per_page=20&q=queue-001" {
		t.Errorf("address after filtering %q", got)
	}
	allMatch := `Array.from(` + rows + `).every(function (r) { return r.getAttribute("data-queue").indexOf("Queue-001") === 0 })`
	if !browsertest.JS[bool](t, ctx, allMatch) {
		t.Error("a row does not match the filter")
	}

	// Next page, then sort by ready (largest first, back to page 1).
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#queue-list nav.pager a.next`))); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitJS(t, ctx, 10*time.Second, "page 2", summary+` === "21–40 of 100 matching"`)
	if got := browsertest.JS[string](t, ctx, `location.search`); got != "?page=2&per_page=20&q=queue-001" {
		t.Errorf("address on page 2 %q", got)
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#queue-list th[aria-sort] a[href*="sort=ready"]`))); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitJS(t, ctx, 10*time.Second, "sorted by ready", `document.querySelector("#queue-list th[aria-sort=descending]") !== null && `+summary+` === "1–20 of 100 matching"`)
	if got := browsertest.JS[string](t, ctx, `location.search`); got != "?order=desc&per_page=20&q=queue-001&sort=ready" {
		t.Errorf("address after sorting %q", got)
	}
	readyCol := `Array.from(` + rows + `).map(function (r) { return Number(r.cells[2].textContent.replace(/,/g, "")) })`
	if !browsertest.JS[bool](t, ctx, `(function(){ var v = `+readyCol+`; for (var i = 1; i < v.length; i++) if (v[i-1] < v[i]) return false; return v.length === 20 })()`) {
		t.Errorf("ready column not descending: %v", browsertest.JS[[]float64](t, ctx, readyCol))
	}

	// The form carries the new sort: filtering again keeps it.
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(`#queue-filter input[name="q"]`), "2")); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitJS(t, ctx, 10*time.Second, "the narrower filter", summary+` === "1–10 of 10 matching"`)
	if got := browsertest.JS[string](t, ctx, `location.search`); got != "?order=desc&per_page=20&q=queue-0012&sort=ready" {
		t.Errorf("address after the second filter %q", got)
	}

	// Two live refreshes later the list still shows the same state.
	browsertest.JS[bool](t, ctx, `(function(){ window.__listSwaps = 0; document.body.addEventListener("htmx:afterSettle", function(e){ if (e.detail.target && e.detail.target.id === "queue-list") window.__listSwaps++ }); return true })()`)
	browsertest.WaitJS(t, ctx, 20*time.Second, "two refreshes of the list", `window.__listSwaps >= 2`)
	if got := browsertest.JS[string](t, ctx, summary); got != "1–10 of 10 matching" {
		t.Errorf("after refreshes the summary is %q", got)
	}
	if got := browsertest.JS[string](t, ctx, `document.querySelector("#queue-filter input[name=q]").value`); got != "queue-0012" {
		t.Errorf("after refreshes the filter box holds %q", got)
	}
	if n := browsertest.JS[int](t, ctx, `document.querySelectorAll("#queue-list").length`); n != 1 {
		t.Errorf("%d lists after refreshes", n)
	}

	// Picking a status filters too (a select fires "input" like the box).
	browsertest.JS[bool](t, ctx, `(function(){ var s = document.querySelector("#queue-filter select[name=status]"); s.value = "ok"; s.dispatchEvent(new Event("input", {bubbles: true})); return true })()`)
	browsertest.WaitJS(t, ctx, 10*time.Second, "the status filter", `location.search.indexOf("status=ok") >= 0`)
	okOnly := `Array.from(` + rows + `).every(function (r) { return r.querySelector(".status").textContent === "ok" })`
	if !browsertest.JS[bool](t, ctx, okOnly) || browsertest.JS[int](t, ctx, rows+`.length`) == 0 {
		t.Errorf("status filter: %q", browsertest.JS[string](t, ctx, summary))
	}
	for _, p := range problems.list() {
		t.Errorf("browser reported: %s", p)
	}
}

// BenchmarkQueuesPage renders one page of a 10,000-queue list in process
// (no network): the server's CPU and allocations per request. `make
// bench-web` runs it with the load client in bench/web.
func BenchmarkQueuesPage(b *testing.B) {
	s := New(Deps{Queues: &fakeQueues{snap: manyQueues(10000)}, Logger: testLogger()})
	h := s.Handler()
	for _, tc := range []struct {
		name, path string
		hx         bool
	}{
		{"full", "/queues", false},
		{"fragment", "/queues", true},
		{"filtered", "/queues?sort=ready&order=desc&q=queue-0&status=ok", true},
		{"api-page", "/api/queues?page=1", false},
		{"overview", "/", false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1"+tc.path, nil)
				req.RemoteAddr = "127.0.0.1:40000" // loopback: no sign-in needed
				if tc.hx {
					req.Header.Set("HX-Request", "true")
					req.Header.Set("HX-Target", queueListTarget)
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("GET %s = %d", tc.path, rec.Code)
				}
			}
		})
	}
}
