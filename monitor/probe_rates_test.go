package monitor

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// freshProber stands in for the AMQP probe: it reports queue "q" at the
// depths given per poll, ahead of the management API.
type freshProber struct {
	poll  int
	ready map[int]int64
}

func (f *freshProber) refresh(_ context.Context, qs []QueueSample, th Thresholds) int {
	f.poll++
	r, ok := f.ready[f.poll]
	if !ok {
		return 0
	}
	for i := range qs {
		if q := &qs[i]; q.Name == "q" && q.Unacked != nil {
			m := r + *q.Unacked
			q.Ready, q.Messages = &r, &m
			q.Status = th.Classify(q.Name, q.Messages)
		}
	}
	return 1
}
func (f *freshProber) close() {}

// A fresh depth must not feed the rates. The management API's depths and
// publish counter lag together; mixing in a fresh depth made egress appear
// on a queue nothing consumes from (a trial saw egress equal to ingress on a
// queue with no consumer): a queue probed at one poll and not at the next
// (the probe takes queues in turn) seemed to drop by what the management
// API had not seen yet. Management API: a fake, to control its lag; probe:
// a fake that sees 1,000 unseen messages at poll 1 only.
func TestProbedDepthDoesNotMakeRates(t *testing.T) {
	var polls atomic.Int64
	mgmt := []struct{ depth, published int64 }{{10, 100}, {10, 100}, {10, 100}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/queues" {
			http.NotFound(w, r) // overview, nodes, consumers: optional
			return
		}
		n := min(int(polls.Add(1))-1, len(mgmt)-1)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"page":1,"page_count":1,"page_size":500,"total_count":1,"filtered_count":1,"item_count":1,"items":[
			{"name":"q","vhost":"/","messages":%d,"messages_ready":%d,"messages_unacknowledged":0,"consumers":0,"message_stats":{"publish":%d}}]}`,
			mgmt[n].depth, mgmt[n].depth, mgmt[n].published)
	}))
	t.Cleanup(srv.Close)
	p := newTestPoller(t, PollerConfig{URL: srv.URL}, nil)
	p.probe = &freshProber{ready: map[int]int64{1: 1010}}
	at := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for i := range len(mgmt) {
		p.now = func() time.Time { return at.Add(time.Duration(i) * 5 * time.Second) }
		snap := p.runOnce(context.Background())
		if snap.Err != nil {
			t.Fatal(snap.Err)
		}
		q, _ := find(snap.Queues, "/", "q")
		if want := map[bool]int64{true: 1010, false: 10}[i == 0]; q.Ready == nil || *q.Ready != want {
			t.Fatalf("poll %d: ready %s, want %d", i+1, ptrStr(q.Ready), want)
		}
		if q.EgressRate != nil && *q.EgressRate > 0 {
			t.Errorf("poll %d: egress %.1f/s on a queue with no consumer", i+1, *q.EgressRate)
		}
	}
}
