package web

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/html"

	"warren/consumers"
	"warren/monitor"
	"warren/store"
)

// openStore opens a real SQLite store in a temporary directory.
func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "warren.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// fakeTypes stands in for the consumer manager's per-type breakdown: the
// rows (a type named with markup, a failing type) must be exact, which a
// real consumer would only give after a long, timing-dependent run.
type fakeTypes struct {
	mu    sync.Mutex
	types map[string][]consumers.TypeStatus
}

func (f *fakeTypes) MessageTypes(name string) ([]consumers.TypeStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	list, ok := f.types[name]
	if !ok {
		return nil, consumers.ErrNotFound
	}
	return list, nil
}

// historyFixture is the web fixture with a real store holding ten minutes of
// history of queue "orders" and consumer "demo".
func historyFixture(t *testing.T) (*fixture, *store.Store) {
	t.Helper()
	st := openStore(t)
	ctx := t.Context()
	now := time.Now()
	var samples []consumers.Sample
	for i := 0; i < 120; i++ {
		at := now.Add(-10*time.Minute + time.Duration(i)*5*time.Second)
		q := monitor.QueueSample{Vhost: "/", Name: "orders", Messages: i64(int64(100 + i)), Ready: i64(int64(90 + i)),
			Unacked: i64(10), Consumers: i64(1), IngressRate: f64(20), EgressRate: f64(18)}
		if i >= 40 && i < 50 {
			q.Ready = nil // the broker did not report it
		}
		if err := st.WriteQueueSamples(ctx, at, []monitor.QueueSample{q}); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			samples = append(samples, consumers.Sample{Consumer: "demo", At: at, Interval: 10 * time.Second, Processed: 50, Failed: 1,
				LatencyP50Ms: f64(12), LatencyP95Ms: f64(40), LatencyP99Ms: f64(80), LatencyMaxMs: f64(90),
				E2EP50Ms: f64(30), E2EP95Ms: f64(60), E2EP99Ms: f64(120)})
		}
	}
	if err := st.WriteConsumerSamples(ctx, samples); err != nil {
		t.Fatal(err)
	}
	if err := st.WriteSlowMessages(ctx, []consumers.SlowMessage{
		{Consumer: "demo", Type: "<i>Big</i>", MessageID: "m-<1>", Duration: 4200 * time.Millisecond, EndToEnd: 5 * time.Second, At: now.Add(-time.Minute)},
	}); err != nil {
		t.Fatal(err)
	}
	types := &fakeTypes{types: map[string][]consumers.TypeStatus{
		"demo": {
			{Type: "<i>Big</i>", Processed: 10, Failed: 2, Retried: 2, DeadLettered: 1, LatencyP50Ms: f64(3000), LatencyP95Ms: f64(4100), LatencyP99Ms: f64(4200)},
			{Type: "OrderCreated", Processed: 12335, Failed: 4, Retried: 4, LatencyP50Ms: f64(11), LatencyP95Ms: f64(38), LatencyP99Ms: f64(75)},
		},
		"odd/<i>name</i>?#": {},
	}}
	limits := monitor.Thresholds{Default: monitor.Level{Warning: 10000, Critical: 50000},
		Queues: map[string]monitor.Level{"orders": {Warning: 100, Critical: 500}}}
	f := newFixtureWith(t, func(d *Deps) {
		d.History = st
		d.Types = types
		d.Thresholds = &limits
		d.DeadLetterQueues = map[string]string{"demo": "orders.failed"}
	})
	snap := defaultSnapshot()
	snap.Queues[2].DeadLetterExchange = strp("dlx <&>")
	f.queues.set(snap)
	return f, st
}

func elementByID(n *html.Node, id string) *html.Node {
	els := findAll(n, func(e *html.Node) bool { v, _ := attr(e, "id"); return v == id })
	if len(els) == 0 {
		return nil
	}
	return els[0]
}

func TestQueuePageCharts(t *testing.T) {
	f, _ := historyFixture(t)
	c := f.client(t)

	t.Run("charts, thresholds and dead-letter queue", func(t *testing.T) {
		code, _, body := do(t, c, "GET", f.http.URL+"/queues/%2F/orders", "", "", nil)
		if code != http.StatusOK {
			t.Fatalf("status %d", code)
		}
		doc := parseHTML(t, body)
		charts := elementByID(doc, "charts")
		if charts == nil {
			t.Fatal("no charts panel")
		}
		svgs := findAll(charts, func(n *html.Node) bool { return n.Data == "svg" })
		if len(svgs) != 3 {
			t.Fatalf("%d charts, want depth, rates and the consumer's latency", len(svgs))
		}
		// Depth up to 209: the warning threshold (100) is drawn, the
		// critical one (500) would squash the chart and is not.
		marks := findAll(svgs[0], func(n *html.Node) bool { return n.Data == "line" && hasClass(n, "mark") })
		if len(marks) != 1 || !hasClass(marks[0], "mark-warning") {
			t.Errorf("%d threshold lines, want only the warning one", len(marks))
		}
		// The ten unknown ready values split the ready line in two.
		depthPaths := findAll(svgs[0], func(n *html.Node) bool { return n.Data == "path" && hasClass(n, "s1") })
		if len(depthPaths) != 2 {
			t.Errorf("ready drawn as %d segments, want 2 around the unknown values", len(depthPaths))
		}
		text := textOf(charts)
		for _, want := range []string{"ready", "unacked", "ingress", "egress", "p95", "Recent slow messages", "<i>Big</i>", "m-<1>", "4,200 ms"} {
			if !strings.Contains(text, want) {
				t.Errorf("charts panel lacks %q", want)
			}
		}
		if n := len(findAll(charts, func(n *html.Node) bool { return n.Data == "i" })); n != 0 {
			t.Errorf("a message type was rendered as markup (%d <i>)", n)
		}
		current := findAll(charts, func(n *html.Node) bool { return n.Data == "a" && hasClass(n, "current") })
		if len(current) != 1 || textOf(current[0]) != "1h" {
			t.Errorf("current range link: %d, want the default 1h", len(current))
		}
		settings := textOf(elementByID(doc, "queue"))
		if !strings.Contains(settings, "warning at 100") || !strings.Contains(settings, "critical at 500") {
			t.Errorf("queue thresholds not shown: %q", settings)
		}
		dl := findAll(doc, func(n *html.Node) bool {
			v, _ := attr(n, "href")
			return n.Data == "a" && v == "/queues/%2F/orders.failed"
		})
		if len(dl) != 1 {
			t.Error("no link to the consumer's dead-letter queue orders.failed")
		}
	})

	t.Run("range links swap the panel and push the page URL", func(t *testing.T) {
		code, _, body := do(t, c, "GET", f.http.URL+"/queues/%2F/orders/charts?range=7d", "", "", map[string]string{"HX-Request": "true"})
		if code != http.StatusOK {
			t.Fatalf("status %d", code)
		}
		doc := parseHTML(t, body)
		links := findAll(doc, func(n *html.Node) bool { return n.Data == "a" && hasClass(n, "range") })
		if len(links) != len(chartRanges) {
			t.Fatalf("%d range links, want %d", len(links), len(chartRanges))
		}
		for _, l := range links {
			href, _ := attr(l, "href")
			get, _ := attr(l, "hx-get")
			push, _ := attr(l, "hx-push-url")
			key := textOf(l)
			if href != "/queues/%2F/orders?range="+key || push != href || get != "/queues/%2F/orders/charts?range="+key {
				t.Errorf("link %s: href %q hx-get %q push %q", key, href, get, push)
			}
			if hasClass(l, "current") != (key == "7d") {
				t.Errorf("link %s current=%v", key, hasClass(l, "current"))
			}
		}
		if strings.Contains(body, "<html") {
			t.Error("the fragment is a whole page")
		}
	})

	t.Run("a bad range is a 400 naming the allowed ones", func(t *testing.T) {
		for _, u := range []string{"/queues/%2F/orders?range=2h", "/queues/%2F/orders/charts?range=%3Cb%3E", "/consumers/demo?range=1y", "/consumers/demo/charts?range=1d"} {
			code, _, body := do(t, c, "GET", f.http.URL+u, "", "", nil)
			if code != http.StatusBadRequest {
				t.Errorf("%s: status %d, want 400", u, code)
			}
			if !strings.Contains(body, "15m, 1h, 6h, 24h, 7d, 90d") || strings.Contains(body, "<b>") {
				t.Errorf("%s: body %q", u, body)
			}
		}
	})

	t.Run("a queue's dead-letter exchange is shown escaped", func(t *testing.T) {
		code, _, body := do(t, c, "GET", f.http.URL+"/queues/%2F/%3Cb%3Ex%3C%2Fb%3E", "", "", nil)
		if code != http.StatusOK {
			t.Fatalf("status %d", code)
		}
		doc := parseHTML(t, body)
		if !strings.Contains(textOf(elementByID(doc, "queue")), "exchange dlx <&>") {
			t.Error("dead-letter exchange not shown")
		}
		if len(findAll(doc, func(n *html.Node) bool { return n.Data == "b" })) != 0 {
			t.Error("the queue name was rendered as markup")
		}
		// Not managed: no slow-message list, and no data yet says so.
		charts := elementByID(doc, "charts")
		if strings.Contains(textOf(charts), "slow messages") {
			t.Error("an unmanaged queue lists slow messages")
		}
		if !strings.Contains(textOf(charts), "no data in this range") {
			t.Error("a queue without history does not say so")
		}
	})
}

func TestConsumerDetailPage(t *testing.T) {
	f, _ := historyFixture(t)
	c := f.client(t)

	t.Run("per-type rows, e2e beside handler latency, charts", func(t *testing.T) {
		code, _, body := do(t, c, "GET", f.http.URL+"/consumers/demo?range=15m", "", "", nil)
		if code != http.StatusOK {
			t.Fatalf("status %d", code)
		}
		doc := parseHTML(t, body)
		rows := findAll(doc, func(n *html.Node) bool { return n.Data == "tr" && hasClass(n, "type") })
		if len(rows) != 2 {
			t.Fatalf("%d type rows, want 2", len(rows))
		}
		cells := func(n *html.Node) []string {
			var out []string
			for _, td := range findAll(n, func(e *html.Node) bool { return e.Data == "td" }) {
				out = append(out, strings.TrimSpace(textOf(td)))
			}
			return out
		}
		got := strings.Join(cells(rows[0]), "|")
		if want := "<i>Big</i>|10|2|16.7 %|2|1|3,000 ms|4,100 ms|4,200 ms"; got != want {
			t.Errorf("first type row %q, want %q", got, want)
		}
		if got := cells(rows[1])[0]; got != "OrderCreated" {
			t.Errorf("second type %q", got)
		}
		if n := len(findAll(doc, func(n *html.Node) bool { return n.Data == "i" })); n != 0 {
			t.Errorf("%d <i> elements: a type name was rendered as markup", n)
		}
		e2e := findAll(doc, func(n *html.Node) bool { return n.Data == "dd" && hasClass(n, "latency-e2e") })
		if len(e2e) != 1 || !strings.Contains(textOf(e2e[0]), "n/a") {
			// The fixture's status has no e2e percentiles: unknown, not 0.
			t.Errorf("e2e latency cell %v", e2e)
		}
		charts := elementByID(doc, "charts")
		if charts == nil {
			t.Fatal("no charts panel")
		}
		if n := len(findAll(charts, func(n *html.Node) bool { return n.Data == "svg" })); n != 3 {
			t.Errorf("%d consumer charts, want handler latency, e2e latency and throughput", n)
		}
		if !strings.Contains(textOf(charts), "e2e p95 60 ms") {
			t.Errorf("e2e chart lacks its direct label with the last value")
		}
		if !strings.Contains(textOf(charts), "m-<1>") {
			t.Error("slow message missing")
		}
	})

	t.Run("types in JSON", func(t *testing.T) {
		code, _, body := do(t, c, "GET", f.http.URL+"/api/consumers/demo/types", "", "", nil)
		if code != http.StatusOK {
			t.Fatalf("status %d: %s", code, body)
		}
		var got typesJSON
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatal(err)
		}
		if got.Consumer != "demo" || len(got.Types) != 2 || got.Types[0].DeadLettered != 1 || got.Types[1].Processed != 12335 {
			t.Errorf("types %s", body)
		}
		code, _, body = do(t, c, "GET", f.http.URL+"/api/consumers/odd%2F%3Ci%3Ename%3C%2Fi%3E%3F%23/types", "", "", nil)
		if code != http.StatusOK || !strings.Contains(body, `"types":[]`) {
			t.Errorf("consumer without types: %d %s, want an empty list", code, body)
		}
		if code, _, _ := do(t, c, "GET", f.http.URL+"/api/consumers/nobody/types", "", "", nil); code != http.StatusNotFound {
			t.Errorf("unknown consumer: %d, want 404", code)
		}
	})
}

// newConsumerRow: "applying" while the broker's prefetch lags the desired.
func TestConsumerRowApplying(t *testing.T) {
	st := defaultConsumers()[0]
	if newConsumerRow(st).PrefetchApplying {
		t.Error("applied prefetch equal to desired shows applying")
	}
	st.Prefetch, st.PrefetchPending = 50, true
	if !newConsumerRow(st).PrefetchApplying {
		t.Error("applied 10, desired 50: not applying")
	}
	if got := throttleText(3, 250); got != "max 3, every 250 ms" {
		t.Errorf("throttle %q", got)
	}
	if got := errorRateCell(0, 0); got.Known {
		t.Error("error rate of nothing handled is known")
	}
}
