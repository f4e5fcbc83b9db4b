package store

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"warren/monitor"
)

// fakeBroker serves a management API holding n queues with the JSON a
// RabbitMQ 3.10 sends for the columns warren asks for, pre-rendered so the
// benchmark measures warren, not the fake. Only a fake can hold 10,000
// queues on this machine without disturbing the other tests.
func fakeBroker(b *testing.B, n int) *httptest.Server {
	const pageSize = monitor.MaxPageSize
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
	pages := map[string][]byte{}
	pageCount := (n + pageSize - 1) / pageSize
	for p := range pageCount {
		var items []item
		for i := p * pageSize; i < min(n, (p+1)*pageSize); i++ {
			it := item{
				Name: fmt.Sprintf("orders.service-%05d.events", i), Vhost: fmt.Sprintf("tenant-%02d", i%20),
				Messages: int64(i % 1000), Ready: int64(i % 900), Unacked: int64(i%1000 - i%900),
				Consumers: int64(i % 3), Util: 0.75, Stats: stats{Publish: int64(i) * 1000},
				Arguments: map[string]any{"x-queue-type": "classic"}, Policy: map[string]any{},
			}
			if i%10 == 0 {
				it.Arguments["x-dead-letter-exchange"] = ""
				it.Arguments["x-dead-letter-routing-key"] = it.Name + ".dlq"
			}
			items = append(items, it)
		}
		body, err := json.Marshal(map[string]any{"filtered_count": n, "item_count": len(items), "page": p + 1,
			"page_count": pageCount, "page_size": pageSize, "total_count": n, "items": items})
		if err != nil {
			b.Fatal(err)
		}
		pages[strconv.Itoa(p+1)] = body
	}
	var consumers []map[string]any
	for i := 0; i < n; i += 3 {
		consumers = append(consumers, map[string]any{
			"queue":           map[string]string{"name": fmt.Sprintf("orders.service-%05d.events", i), "vhost": fmt.Sprintf("tenant-%02d", i%20)},
			"consumer_tag":    fmt.Sprintf("amq.ctag-%d", i),
			"channel_details": map[string]string{"name": fmt.Sprintf("10.0.0.1:%d -> 10.0.0.2:5672 (1)", 40000+i%20000)},
			"prefetch_count":  50, "ack_required": true, "active": true,
		})
	}
	consumersBody, _ := json.Marshal(consumers)
	overview := []byte(`{"cluster_name":"rabbit@bench","rabbitmq_version":"3.10.8","queue_totals":{"messages":1,"messages_ready":1,"messages_unacknowledged":0},"object_totals":{"queues":10000,"connections":100,"channels":200,"consumers":3334,"exchanges":20},"message_stats":{"publish_details":{"rate":100.0},"deliver_get_details":{"rate":100.0}}}`)
	nodes := []byte(`[{"name":"rabbit@bench","running":true,"mem_used":1,"mem_limit":2,"mem_alarm":false,"disk_free":3,"disk_free_limit":1,"disk_free_alarm":false,"fd_used":10,"fd_total":1024,"partitions":[]}]`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/queues":
			w.Write(pages[r.URL.Query().Get("page")])
		case "/api/consumers":
			w.Write(consumersBody)
		case "/api/overview":
			w.Write(overview)
		case "/api/nodes":
			w.Write(nodes)
		default:
			http.NotFound(w, r)
		}
	}))
	b.Cleanup(srv.Close)
	return srv
}

// timedWriter measures the store's write of each poll.
type timedWriter struct {
	s     *Store
	total time.Duration
}

func (w *timedWriter) WriteQueueSamples(ctx context.Context, at time.Time, qs []monitor.QueueSample) error {
	t0 := time.Now()
	err := w.s.WriteQueueSamples(ctx, at, qs)
	w.total += time.Since(t0)
	return err
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPoll10k polls a fake management API holding 10,000 queues (20
// pages, plus overview, nodes and 3,334 consumers) and stores every poll in
// a real store. It reports per poll: wall time (ns/op), bytes and
// allocations (whole process, -benchmem), CPU time of the process (cpu_ms,
// the fake server included), the store write time (write_ms), and the
// process's peak resident memory (maxrss_MB).
func BenchmarkPoll10k(b *testing.B) {
	srv := fakeBroker(b, 10000)
	s, err := Open(context.Background(), filepath.Join(b.TempDir(), "poll.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	w := &timedWriter{s: s}
	p, err := monitor.NewPoller(monitor.PollerConfig{URL: srv.URL, Username: "u", Password: "p"}, w, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	// One poll outside the timing: queue ids are created on the first write.
	if snap := p.PollOnce(ctx); snap.Err != nil || len(snap.Queues) != 10000 {
		b.Fatalf("warm-up poll: %d queues, %v", len(snap.Queues), snap.Err)
	}
	w.total = 0
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		if snap := p.PollOnce(ctx); snap.Err != nil {
			b.Fatal(snap.Err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Milliseconds())/float64(b.N), "cpu_ms/op")
	b.ReportMetric(float64(w.total.Microseconds())/1000/float64(b.N), "write_ms/op")
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		b.ReportMetric(float64(ru.Maxrss)/1024, "maxrss_MB")
	}
}
