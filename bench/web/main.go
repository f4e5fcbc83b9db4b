// Command web measures the dashboard's queue list and the JSON API at
// 10,000 queues: a load client with 32 connections against the real web
// handler (web.New, served on loopback), fed by a fake queue source holding
// one 10,000-queue snapshot (a real broker with that many queues is not a
// bench fixture on this machine). It prints p50/p99 latency and bytes per
// response, and with -write replaces its section of BENCHMARKS.md.
//
//	go run ./bench/web [-duration 10s] [-conns 32] [-queues 10000] [-write]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"warren/monitor"
	"warren/web"
)

func main() {
	duration := flag.Duration("duration", 10*time.Second, "how long each case runs")
	conns := flag.Int("conns", 32, "concurrent connections (one client goroutine each)")
	queues := flag.Int("queues", 10000, "queues in the snapshot")
	write := flag.Bool("write", false, "replace the bench:web section of BENCHMARKS.md")
	file := flag.String("file", "BENCHMARKS.md", "the file -write rewrites")
	flag.Parse()
	if err := run(*duration, *conns, *queues, *write, *file); err != nil {
		fmt.Fprintln(os.Stderr, "bench/web:", err)
		os.Exit(1)
	}
}

// source is the fake queue source: the snapshot the web handler reads.
type source struct {
	mu   sync.Mutex
	snap monitor.Snapshot
}

func (s *source) Latest() monitor.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap
}

// renew publishes the same queues as a new poll (a new slice), which makes
// the web layer build its sorted index again.
func (s *source) renew() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snap.Queues = slices.Clone(s.snap.Queues)
	s.snap.At = s.snap.At.Add(time.Second)
}

// snapshot makes n queues shaped like a busy broker's: four vhosts, dotted
// names, most queues small, a few deep, some growing, some values unknown.
func snapshot(n int) monitor.Snapshot {
	i64 := func(v int64) *int64 { return &v }
	f64 := func(v float64) *float64 { return &v }
	b := func(v bool) *bool { return &v }
	s := monitor.Snapshot{At: time.Now().UTC().Truncate(time.Second)}
	vhosts := []string{"/", "billing", "orders", "tenant/eu-west"}
	for i := range n {
		q := monitor.QueueSample{
			Vhost:  vhosts[i%len(vhosts)],
			Name:   fmt.Sprintf("svc-%02d.events.%s.shard-%05d", i%37, []string{"created", "updated", "deleted"}[i%3], i),
			Status: monitor.StatusOK,
		}
		if i%50 != 0 {
			depth := int64((i * 7919) % 2000)
			if i%97 == 0 {
				depth *= 40
			}
			q.Messages, q.Ready, q.Unacked, q.Consumers = i64(depth), i64(depth*9/10), i64(depth-depth*9/10), i64(int64(i%5))
			in, out := float64(i%23), float64(i%19)
			q.IngressRate, q.EgressRate = f64(in), f64(out)
			q.Growing = b(out <= in && depth > 0)
			if out > in {
				q.TimeToDrainSeconds = f64(float64(*q.Ready) / (out - in))
			}
			switch {
			case depth >= 50000:
				q.Status = monitor.StatusCritical
			case depth >= 10000:
				q.Status = monitor.StatusWarning
			}
		} else {
			q.Status = monitor.StatusUnknown
		}
		s.Queues = append(s.Queues, q)
	}
	return s
}

// benchCase is one request shape.
type benchCase struct {
	name, path string
	header     map[string]string
}

// result is one case's measurements.
type result struct {
	benchCase
	requests     int
	errors       int
	p50, p99, mx time.Duration
	bytes        int
	rate         float64
}

func run(duration time.Duration, conns, queues int, write bool, file string) error {
	src := &source{snap: snapshot(queues)}
	srv := web.New(web.Deps{
		Queues: src,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	base := "http://" + ln.Addr().String()

	client := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			DisableCompression:  true, // bytes as sent, not gzip (pages are not compressed)
		},
	}
	hx := map[string]string{"HX-Request": "true", "HX-Target": "queue-list"}
	cases := []benchCase{
		{name: "GET /queues (first page, full HTML)", path: "/queues"},
		{name: "GET /queues fragment (HX-Request)", path: "/queues", header: hx},
		{name: "GET /queues?sort=ready&order=desc&q=shard-0&status=ok (filtered)", path: "/queues?sort=ready&order=desc&q=shard-0&status=ok", header: hx},
		{name: "GET /api/queues?page=1", path: "/api/queues?page=1"},
		{name: "GET /api/queues (all)", path: "/api/queues"},
		{name: "GET / (overview)", path: "/"},
	}
	var results []result
	for _, c := range cases {
		// Warm up: connections, and the sorted index of this snapshot.
		if _, _, err := fetch(client, base, c); err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		r := load(client, base, c, conns, duration)
		results = append(results, r)
		fmt.Fprintf(os.Stderr, "%-70s %8d req  p50 %8s  p99 %8s  %9d B\n", c.name, r.requests, r.p50, r.p99, r.bytes)
	}
	cold, err := coldSort(client, base, src)
	if err != nil {
		return err
	}
	var costs []cost
	for _, c := range cases {
		r := inProcess(srv.Handler(), c)
		costs = append(costs, r)
		fmt.Fprintf(os.Stderr, "%-70s %8.0f µs/op %8d B/op %6d allocs/op\n", c.name, r.usPerOp, r.bytesPerOp, r.allocsPerOp)
	}

	section := report(results, costs, cold, duration, conns, queues)
	fmt.Print(section)
	cancel()
	if err := <-served; err != nil {
		return err
	}
	if write {
		return rewriteSection(file, "web", section)
	}
	return nil
}

// fetch does one request and returns its status and body size.
func fetch(client *http.Client, base string, c benchCase) (int, int, error) {
	req, err := http.NewRequest(http.MethodGet, base+c.path, nil)
	if err != nil {
		return 0, 0, err
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return 0, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, int(n), fmt.Errorf("status %d", resp.StatusCode)
	}
	return resp.StatusCode, int(n), nil
}

// load runs c from conns goroutines for d and collects every latency.
func load(client *http.Client, base string, c benchCase, conns int, d time.Duration) result {
	var (
		mu    sync.Mutex
		lat   []time.Duration
		errs  int
		bytes int
		wg    sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(d)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			myErrs, myBytes := 0, 0
			for time.Now().Before(deadline) {
				t0 := time.Now()
				_, n, err := fetch(client, base, c)
				mine = append(mine, time.Since(t0))
				if err != nil {
					myErrs++
				}
				myBytes = n
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += myErrs
			bytes = max(bytes, myBytes)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	return result{
		benchCase: c,
		requests:  len(lat),
		errors:    errs,
		p50:       quantile(lat, 0.50),
		p99:       quantile(lat, 0.99),
		mx:        lat[len(lat)-1],
		bytes:     bytes,
		rate:      float64(len(lat)) / elapsed.Seconds(),
	}
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * q)
	return sorted[i]
}

// coldSort times the first sorted page after a new poll, when the index of
// that sort must be built: one request at a time, 20 polls.
func coldSort(client *http.Client, base string, src *source) ([]time.Duration, error) {
	c := benchCase{path: "/queues?sort=total&order=desc", header: map[string]string{"HX-Request": "true", "HX-Target": "queue-list"}}
	var out []time.Duration
	for range 20 {
		src.renew()
		t0 := time.Now()
		if _, _, err := fetch(client, base, c); err != nil {
			return nil, fmt.Errorf("cold sort: %w", err)
		}
		out = append(out, time.Since(t0))
	}
	slices.Sort(out)
	return out, nil
}

// cost is the server's own work for one request, measured in process with
// no network and no other request in flight.
type cost struct {
	usPerOp                 float64
	bytesPerOp, allocsPerOp int64
}

func inProcess(h http.Handler, c benchCase) cost {
	r := testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			req := httptest.NewRequest(http.MethodGet, "http://127.0.0.1"+c.path, nil)
			req.RemoteAddr = "127.0.0.1:40000"
			for k, v := range c.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatalf("GET %s = %d", c.path, rec.Code)
			}
		}
	})
	return cost{
		usPerOp:     float64(r.NsPerOp()) / 1000,
		bytesPerOp:  r.AllocedBytesPerOp(),
		allocsPerOp: r.AllocsPerOp(),
	}
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func kb(n int) string { return fmt.Sprintf("%.1f KB", float64(n)/1000) }

// report is the BENCHMARKS.md section, between its markers.
func report(rs []result, costs []cost, cold []time.Duration, d time.Duration, conns, queues int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<!-- bench:web -->\n## Dashboard and API at %s queues (%s)\n\n", group(queues), time.Now().UTC().Format("2006-01-02"))
	fmt.Fprintf(&b, "```sh\nmake bench-web   # go run ./bench/web -duration %s -conns %d -queues %d -write\n```\n\n", d, conns, queues)
	fmt.Fprintf(&b, "The real web handler (`web.New`, served on loopback by `Server.Serve`) with a **fake** queue source\n")
	fmt.Fprintf(&b, "holding one snapshot of %s queues over 4 vhosts (a real broker with that many queues is no fixture\n", group(queues))
	fmt.Fprintf(&b, "for this machine; the monitor's own cost at 10,000 queues is in \"Monitor and store\"). A Go load\n")
	fmt.Fprintf(&b, "client keeps %d connections busy for %s per row, one request after another on each; latency is\n", conns, d)
	fmt.Fprintf(&b, "request to last byte. Bytes are the uncompressed body. Machine: %s, %d cores seen by Go, load\n", cpuModel(), runtime.NumCPU())
	fmt.Fprintf(&b, "average %s at the end (the cores are shared with other work, so the client competes with the\n", loadAvg())
	fmt.Fprintf(&b, "server it measures). Targets: p99 under 100 ms for a page of results, first page under 100 KB.\n\n")
	b.WriteString("| request | requests/s | p50 | p99 | max | bytes | errors | server CPU/request | allocs/request |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for i, r := range rs {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s | %s | %d | %s µs | %s (%s) |\n", r.name, group(int(r.rate)), ms(r.p50), ms(r.p99), ms(r.mx),
			kb(r.bytes), r.errors, group(int(costs[i].usPerOp)), group(int(costs[i].allocsPerOp)), kb(int(costs[i].bytesPerOp)))
	}
	b.WriteString("\n\"Server CPU/request\" is the same request in process (`testing.Benchmark` on the handler, no network,\n")
	b.WriteString("one at a time): the work the latency above queues behind. Its bytes include the recorder's copy of\n")
	b.WriteString("the body. Rendered rows and the body of the whole list are kept per poll, so a page formats\n")
	b.WriteString("nothing it served before.\n")
	fmt.Fprintf(&b, "\nEach poll replaces the snapshot; the first request for a sort order after it builds that order's\n")
	fmt.Fprintf(&b, "index (one sort of %s queues, kept until the next poll; later requests for it only scan or slice\n", group(queues))
	fmt.Fprintf(&b, "it). That first sorted page, alone on the server, over 20 new snapshots: p50 %s, max %s.\n", ms(quantile(cold, 0.5)), ms(cold[len(cold)-1]))
	b.WriteString("<!-- /bench:web -->\n")
	return b.String()
}

func group(n int) string {
	s := fmt.Sprint(n)
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "unknown"
}

// rewriteSection replaces the text between <!-- bench:NAME --> and
// <!-- /bench:NAME --> (markers included) with section, or appends it.
func rewriteSection(file, name, section string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	text := string(b)
	open, end := "<!-- bench:"+name+" -->", "<!-- /bench:"+name+" -->\n"
	i := strings.Index(text, open)
	j := strings.Index(text, end)
	switch {
	case i >= 0 && j > i:
		text = text[:i] + section + text[j+len(end):]
	case i < 0 && j < 0:
		text = strings.TrimRight(text, "\n") + "\n\n" + section
	default:
		return errors.New(file + ": unbalanced bench:" + name + " markers")
	}
	return os.WriteFile(file, []byte(text), 0o644)
}
