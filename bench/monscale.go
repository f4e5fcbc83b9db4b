package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"warren/monitor"
	"warren/store"
)

// fakeManagementArg makes this program serve a fake management API instead
// of benchmarking (see main).
const fakeManagementArg = "-internal-fake-management"

// fakeVhosts is how many vhosts the fake queues are spread over.
const fakeVhosts = 20

// fakeManagementBodies pre-renders the answers of a management API holding
// n queues, in the JSON RabbitMQ 3.10 sends for the columns warren asks for,
// so serving them costs next to nothing. Every tenth queue has a
// dead-letter exchange, every third a consumer.
func fakeManagementBodies(n int) (pages [][]byte, consumers, overview, nodes []byte, err error) {
	type stats struct {
		Publish int64 `json:"publish"`
	}
	type item struct {
		Name      string         `json:"name"`
		Vhost     string         `json:"vhost"`
		Messages  int64          `json:"messages"`
		Ready     int64          `json:"messages_ready"`
		Unacked   int64          `json:"messages_unacknowledged"`
		Consumers int64          `json:"consumers"`
		Util      float64        `json:"consumer_utilisation"`
		Stats     stats          `json:"message_stats"`
		Arguments map[string]any `json:"arguments"`
		Policy    map[string]any `json:"effective_policy_definition"`
	}
	name := func(i int) (string, string) {
		return fmt.Sprintf("billing.worker-%05d.commands", i), fmt.Sprintf("vhost-%02d", i%fakeVhosts)
	}
	const size = monitor.MaxPageSize
	count := (n + size - 1) / size
	for p := range count {
		items := make([]item, 0, size)
		for i := p * size; i < min(n, (p+1)*size); i++ {
			qn, vh := name(i)
			it := item{Name: qn, Vhost: vh, Messages: int64(i % 700), Ready: int64(i % 600), Unacked: int64(i%700 - i%600),
				Consumers: int64(min(1, i%3)), Util: 0.5, Stats: stats{Publish: int64(i) * 100},
				Arguments: map[string]any{"x-queue-type": "classic"}, Policy: map[string]any{}}
			if i%10 == 0 {
				it.Arguments["x-dead-letter-exchange"] = ""
				it.Arguments["x-dead-letter-routing-key"] = qn + ".dlq"
			}
			items = append(items, it)
		}
		body, err := json.Marshal(map[string]any{"filtered_count": n, "item_count": len(items), "page": p + 1,
			"page_count": count, "page_size": size, "total_count": n, "items": items})
		if err != nil {
			return nil, nil, nil, nil, err
		}
		pages = append(pages, body)
	}
	var cs []map[string]any
	for i := 0; i < n; i += 3 {
		qn, vh := name(i)
		cs = append(cs, map[string]any{
			"queue":           map[string]string{"name": qn, "vhost": vh},
			"consumer_tag":    "amq.ctag-" + strconv.Itoa(i),
			"channel_details": map[string]string{"name": fmt.Sprintf("10.1.0.7:%d -> 10.1.0.2:5672 (1)", 30000+i%30000)},
			"prefetch_count":  20, "ack_required": true, "active": true,
		})
	}
	if consumers, err = json.Marshal(cs); err != nil {
		return nil, nil, nil, nil, err
	}
	overview = fmt.Appendf(nil, `{"cluster_name":"rabbit@fake","rabbitmq_version":"3.10.8","queue_totals":{"messages":1,"messages_ready":1,"messages_unacknowledged":0},"object_totals":{"queues":%d,"connections":50,"channels":100,"consumers":%d,"exchanges":20},"message_stats":{"publish_details":{"rate":10.0},"deliver_get_details":{"rate":10.0}}}`, n, len(cs))
	nodes = []byte(`[{"name":"rabbit@fake","running":true,"mem_used":1,"mem_limit":2,"mem_alarm":false,"disk_free":3,"disk_free_limit":1,"disk_free_alarm":false,"fd_used":10,"fd_total":1024,"partitions":[]}]`)
	return pages, consumers, overview, nodes, nil
}

// serveFakeManagement is the child process: it serves a fake management API
// with n queues on a loopback port, writes "URL BYTES_PER_POLL" to out, and
// stops when in reaches EOF (the parent closed it, or died).
func serveFakeManagement(n string, in io.Reader, out io.Writer) error {
	count, err := strconv.Atoi(n)
	if err != nil || count < 1 {
		return fmt.Errorf("queue count %q: want a positive whole number", n)
	}
	pages, consumers, overview, nodes, err := fakeManagementBodies(count)
	if err != nil {
		return err
	}
	total := len(consumers) + len(overview) + len(nodes)
	for _, p := range pages {
		total += len(p)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/queues":
			p, err := strconv.Atoi(r.URL.Query().Get("page"))
			if err != nil || p < 1 || p > len(pages) {
				http.Error(w, `{"error":"bad_request","reason":"page out of range"}`, http.StatusBadRequest)
				return
			}
			_, _ = w.Write(pages[p-1])
		case "/api/consumers":
			_, _ = w.Write(consumers)
		case "/api/overview":
			_, _ = w.Write(overview)
		case "/api/nodes":
			_, _ = w.Write(nodes)
		default:
			http.NotFound(w, r)
		}
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Fprintf(out, "http://%s %d\n", ln.Addr(), total)
	_, _ = io.Copy(io.Discard, in)
	return srv.Close()
}

// fakeManagement is a running child serving n queues.
type fakeManagement struct {
	url         string
	bytesPerSet int // bytes of one full set of answers (one poll without retries)
	cmd         *exec.Cmd
	stdin       io.WriteCloser
}

func startFakeManagement(ctx context.Context, n int) (*fakeManagement, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, fakeManagementArg, strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	f := &fakeManagement{cmd: cmd, stdin: stdin}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err == nil {
		_, err = fmt.Sscan(line, &f.url, &f.bytesPerSet)
	}
	if err != nil {
		f.stop()
		return nil, fmt.Errorf("fake management API did not start: %w", err)
	}
	return f, nil
}

func (f *fakeManagement) stop() {
	_ = f.stdin.Close()
	_ = f.cmd.Wait()
}

// writeTimer measures the store's write of each poll.
type writeTimer struct {
	st    *store.Store
	total time.Duration
}

func (w *writeTimer) WriteQueueSamples(ctx context.Context, at time.Time, qs []monitor.QueueSample) error {
	t0 := time.Now()
	err := w.st.WriteQueueSamples(ctx, at, qs)
	w.total += time.Since(t0)
	return err
}

type scalePoint struct {
	queues    int
	polls     int
	wall      time.Duration // per poll
	worstWall time.Duration
	cpu       time.Duration // per poll, this process (the fake runs in another)
	write     time.Duration // per poll, the store's share of wall time
	allocs    float64       // per poll
	bytes     float64       // allocated per poll
	heapAfter uint64        // live heap after the polls and a GC
	served    int           // bytes of JSON the fake serves per poll
}

type scaleResult struct {
	points  []scalePoint
	elapsed time.Duration
}

func monitorScale(ctx context.Context, o options, logger *slog.Logger) (scaleResult, error) {
	began := time.Now()
	var res scaleResult
	dir, err := os.MkdirTemp("", "warren-bench-monitor-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	for _, n := range o.monQueues {
		pt, err := pollCost(ctx, n, o.monPolls, filepath.Join(dir, fmt.Sprintf("poll-%d.db", n)))
		if err != nil {
			return res, fmt.Errorf("%d queues: %w", n, err)
		}
		res.points = append(res.points, pt)
		logger.Info("poll cost", "queues", n, "wall", pt.wall.Round(time.Microsecond), "cpu", pt.cpu.Round(time.Microsecond),
			"write", pt.write.Round(time.Microsecond), "allocs", int(pt.allocs))
	}
	res.elapsed = time.Since(began)
	return res, nil
}

// pollCost polls a fake management API with n queues into a real store:
// one warm-up poll (it creates the queue rows), then polls measured ones.
func pollCost(ctx context.Context, n, polls int, dbPath string) (scalePoint, error) {
	pt := scalePoint{queues: n, polls: polls}
	fake, err := startFakeManagement(ctx, n)
	if err != nil {
		return pt, err
	}
	defer fake.stop()
	pt.served = fake.bytesPerSet
	st, err := store.Open(ctx, dbPath, nil)
	if err != nil {
		return pt, err
	}
	defer st.Close()
	w := &writeTimer{st: st}
	p, err := monitor.NewPoller(monitor.PollerConfig{URL: fake.url, Username: "bench", Password: "bench"}, w, nil, nil)
	if err != nil {
		return pt, err
	}
	check := func(s monitor.Snapshot) error {
		if s.Err != nil {
			return s.Err
		}
		if len(s.Queues) != n {
			return fmt.Errorf("poll returned %d queues, want %d", len(s.Queues), n)
		}
		return nil
	}
	if err := check(p.PollOnce(ctx)); err != nil {
		return pt, fmt.Errorf("warm-up poll: %w", err)
	}
	w.total = 0
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu0 := readMeter().cpu
	for range polls {
		t0 := time.Now()
		if err := check(p.PollOnce(ctx)); err != nil {
			return pt, err
		}
		pt.worstWall = max(pt.worstWall, time.Since(t0))
		pt.wall += time.Since(t0)
		if ctx.Err() != nil {
			return pt, ctx.Err()
		}
	}
	cpu := readMeter().cpu - cpu0
	runtime.ReadMemStats(&after)
	pt.wall /= time.Duration(polls)
	pt.cpu = cpu / time.Duration(polls)
	pt.write = w.total / time.Duration(polls)
	pt.allocs = float64(after.Mallocs-before.Mallocs) / float64(polls)
	pt.bytes = float64(after.TotalAlloc-before.TotalAlloc) / float64(polls)
	runtime.GC()
	runtime.ReadMemStats(&after)
	pt.heapAfter = after.HeapAlloc
	return pt, nil
}

func (r scaleResult) markdown(env environment, command string, o options) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Monitor cost vs number of queues\n\n")
	fmt.Fprintf(&b, "%s\n\n```sh\n%s\n```\n\n", env, command)
	fmt.Fprintf(&b, "A **fake** management API (only a fake can hold 10,000 queues on this machine without disturbing\n")
	fmt.Fprintf(&b, "the broker the other suites and tests use): pre-rendered JSON as RabbitMQ 3.10 sends it for warren's\n")
	fmt.Fprintf(&b, "columns, queues spread over %d vhosts, a dead-letter exchange on every tenth, a consumer on every\n", fakeVhosts)
	fmt.Fprintf(&b, "third, served by a separate process so the figures are warren's alone. Each poll is\n")
	fmt.Fprintf(&b, "`Poller.PollOnce` (every page of `/api/queues`, consumers, overview, nodes; decoding, dead-letter\n")
	fmt.Fprintf(&b, "recognition, rate derivation) written to a real SQLite store, as `warren serve` polls (without the\n")
	fmt.Fprintf(&b, "alerts evaluator). One warm-up poll, then %d measured polls per size; means per poll. The suite took %s.\n\n", o.monPolls, r.elapsed.Round(time.Second))
	fmt.Fprintf(&b, "| queues | JSON served | wall time | worst | CPU (poll + store write) | store write | allocations | bytes allocated | live heap after |\n")
	fmt.Fprintf(&b, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, p := range r.points {
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", p.queues, fmtBytes(float64(p.served)), fmtMs(p.wall), fmtMs(p.worstWall),
			fmtMs(p.cpu), fmtMs(p.write), fmtCount(p.allocs), fmtBytes(p.bytes), fmtBytes(float64(p.heapAfter)))
	}
	if len(r.points) >= 2 {
		first, last := r.points[0], r.points[len(r.points)-1]
		grow := float64(last.queues) / float64(first.queues)
		fmt.Fprintf(&b, "\nFrom %d to %d queues (%.0f×) the CPU per poll grew %.0f× and the allocations %.0f×.\n",
			first.queues, last.queues, grow, float64(last.cpu)/float64(first.cpu), last.allocs/first.allocs)
	}
	fmt.Fprintf(&b, "\n")
	return b.String()
}

func fmtBytes(v float64) string {
	switch {
	case v >= 1<<20:
		return fmt.Sprintf("%.1f MB", v/(1<<20))
	case v >= 1<<10:
		return fmt.Sprintf("%.0f kB", v/(1<<10))
	}
	return fmt.Sprintf("%.0f B", v)
}

func fmtCount(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2f M", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1f k", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}
