package monitor

// Fake management API (testdata/honest_*.json): a real RabbitMQ never sends
// negative or absurd counts, nor a node answering "running":"yes".

import (
	"context"
	"log/slog"
	"math"
	"slices"
	"sync"
	"testing"
	"time"
)

// logRecorder is a slog handler keeping every record, to count warnings.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r.Clone())
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

// count returns how many records have msg, and the value of attr in each.
func (l *logRecorder) count(msg, attr string) (int, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	var vals []string
	for _, r := range l.records {
		if r.Message != msg {
			continue
		}
		n++
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == attr {
				vals = append(vals, a.Value.String())
			}
			return true
		})
	}
	return n, vals
}

const oddMsg = "broker sent an unusable value; treating it as unknown (logged once per queue and field)"

func TestHonestValuesAndExtras(t *testing.T) {
	f, srv := newFakeAPI(t, "honest")
	rec := &logRecorder{}
	w := &recordingWriter{}
	p, err := NewPoller(PollerConfig{URL: srv.URL, Username: fakeUser, Password: fakePass,
		DeadLetterQueues: []QueueRef{{Vhost: "/", Name: "configured"}}}, w, nil, slog.New(rec))
	if err != nil {
		t.Fatal(err)
	}
	snap := p.runOnce(t.Context())
	if snap.Err != nil {
		t.Fatal(snap.Err)
	}
	get := func(vhost, name string) QueueSample {
		t.Helper()
		q, n := find(snap.Queues, vhost, name)
		if n != 1 {
			t.Fatalf("%s/%s listed %d times", vhost, name, n)
		}
		return q
	}

	// Negative and absurd values: unknown and flagged, the rest kept.
	neg := get("/", "negative")
	if neg.Messages != nil || neg.Ready != nil || neg.Consumers != nil || !ptrEq(neg.Unacked, i64(0)) {
		t.Errorf("negative: m=%s r=%s u=%s c=%s", ptrStr(neg.Messages), ptrStr(neg.Ready), ptrStr(neg.Unacked), ptrStr(neg.Consumers))
	}
	if want := []string{"messages", "messages_ready", "consumers"}; !slices.Equal(neg.Flagged, want) {
		t.Errorf("negative flagged %v, want %v", neg.Flagged, want)
	}
	if neg.Status != StatusUnknown {
		t.Errorf("negative status %s", neg.Status)
	}
	abs := get("/", "absurd")
	if abs.Messages != nil || !ptrEq(abs.Ready, i64(3)) || abs.ConsumerUtilisation != nil ||
		!slices.Equal(abs.Flagged, []string{"messages", "consumer_utilisation"}) {
		t.Errorf("absurd: m=%s r=%s util=%v flagged=%v", ptrStr(abs.Messages), ptrStr(abs.Ready), abs.ConsumerUtilisation, abs.Flagged)
	}
	work := get("v/1", "work")
	if work.ConsumerUtilisation == nil || *work.ConsumerUtilisation != 0.25 || !ptrEq(work.PublishedTotal, i64(100)) {
		t.Errorf("work: util=%v published=%s", work.ConsumerUtilisation, ptrStr(work.PublishedTotal))
	}
	// Consumers per queue, and "known: none" for a queue without any. The
	// broker sends "channel_details": [] for a consumer whose channel is
	// closing: that entry keeps an unknown channel, the list survives.
	if len(work.ConsumerDetails) != 2 || work.ConsumerDetails[0].Tag != "ctag-1" ||
		!ptrEq(work.ConsumerDetails[0].Prefetch, i64(20)) || work.ConsumerDetails[0].Channel == "" ||
		work.ConsumerDetails[1].Tag != "ctag-2" || work.ConsumerDetails[1].Channel != "" {
		t.Errorf("work consumers: %+v", work.ConsumerDetails)
	}
	if c := get("/", "absurd").ConsumerDetails; c == nil || len(c) != 0 {
		t.Errorf("queue without consumers: %#v, want an empty list", c)
	}

	// Dead-letter queues: a named DLX's binding with the routing key, a
	// default-exchange DLX from a policy, a naming pattern, the configuration.
	for _, c := range []struct {
		vhost, name string
		want        bool
	}{
		{"v/1", "work-failed", true}, {"v/1", "parked", true}, {"/", "orders.DLQ", true}, {"/", "configured", true},
		{"v/1", "work", false}, {"v/1", "by-default-exchange", false}, {"/", "negative", false},
	} {
		if got := get(c.vhost, c.name).IsDeadLetter; got != c.want {
			t.Errorf("%s/%s IsDeadLetter = %v, want %v", c.vhost, c.name, got, c.want)
		}
	}
	if x := work.DeadLetterExchange; x == nil || *x != "dlx" {
		t.Errorf("work dead-letter exchange = %v", x)
	}
	if !slices.Contains(f.paths, "/api/exchanges/v%2F1/dlx/bindings/source") {
		t.Errorf("no binding lookup with an escaped vhost in %v", f.paths)
	}

	// Overview and nodes: odd values unknown, the rest kept.
	ov := snap.Overview
	if ov == nil || ov.ClusterName != "rabbit@test" || !ptrEq(ov.Messages, i64(21)) || !ptrEq(ov.Exchanges, i64(9)) ||
		ov.PublishRate == nil || *ov.PublishRate != 1.5 || ov.DeliverGetRate != nil {
		t.Errorf("overview = %+v", ov)
	}
	if len(snap.Nodes) != 2 || snap.Nodes[0].Name != "rabbit@a" || !ptrEq(snap.Nodes[0].FDUsed, i64(38)) ||
		snap.Nodes[1].Running != nil || snap.Nodes[1].FDUsed != nil {
		t.Errorf("nodes = %+v", snap.Nodes)
	}
	if a := snap.Alarms(); !slices.Equal(a, []string{"memory alarm on rabbit@a", "network partition seen by rabbit@a", "disk alarm on rabbit@b"}) {
		t.Errorf("alarms = %v", a)
	}

	// Each oddity is logged once, however many polls repeat it.
	n1, fields := rec.count(oddMsg, "field")
	if n1 != 5 {
		t.Errorf("%d oddity warnings after one poll, want 5: %v", n1, fields)
	}
	for range 3 {
		if s := p.runOnce(t.Context()); s.Err != nil {
			t.Fatal(s.Err)
		}
	}
	if n, _ := rec.count(oddMsg, "field"); n != n1 {
		t.Errorf("%d oddity warnings after four polls, want still %d", n, n1)
	}
	if w.count() != 4 {
		t.Errorf("%d polls written, want 4", w.count())
	}
}

func TestDeriveRates(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	q := func(published, messages, ready int64) []QueueSample {
		return []QueueSample{{Vhost: "/", Name: "q", PublishedTotal: i64(published), Messages: i64(messages), Ready: i64(ready)}}
	}
	// First poll: no previous one, rates unknown.
	qs := q(100, 50, 50)
	st, odd := deriveRates(nil, qs, t0)
	if qs[0].IngressRate != nil || qs[0].TimeToDrainSeconds != nil || qs[0].Growing != nil || len(odd) != 0 {
		t.Fatalf("first poll derived %+v", qs[0])
	}
	// 5 s later: 50 published (10/s), depth 50 -> 25 (egress 15/s).
	qs = q(150, 25, 25)
	st, _ = deriveRates(st, qs, t0.Add(5*time.Second))
	if in, out := *qs[0].IngressRate, *qs[0].EgressRate; in != 10 || out != 15 {
		t.Errorf("rates = %v in, %v out; want 10, 15", in, out)
	}
	if d := qs[0].TimeToDrainSeconds; d == nil || *d != 5 || *qs[0].Growing {
		t.Errorf("drain = %v growing %v, want 5 s", d, *qs[0].Growing)
	}
	// Smoothed: a jump to 0 in / 0 out moves part of the way only.
	qs = q(150, 25, 25)
	st, _ = deriveRates(st, qs, t0.Add(10*time.Second))
	alpha := 1 - math.Exp(-5.0/rateSmoothing.Seconds())
	if in := *qs[0].IngressRate; math.Abs(in-10*(1-alpha)) > 1e-9 {
		t.Errorf("smoothed ingress = %v, want %v", in, 10*(1-alpha))
	}
	// Growing: publishes and depth rise together.
	qs = q(1150, 1025, 1025)
	st, _ = deriveRates(st, qs, t0.Add(15*time.Second))
	if g := qs[0].Growing; g == nil || !*g || qs[0].TimeToDrainSeconds != nil {
		t.Errorf("growing = %v, drain %v", g, qs[0].TimeToDrainSeconds)
	}
	prevIn := *qs[0].IngressRate
	// Counter reset (queue re-created): no negative rate, the last one kept.
	qs = q(3, 3, 3)
	st, odd = deriveRates(st, qs, t0.Add(20*time.Second))
	if *qs[0].IngressRate != prevIn || len(odd) != 0 {
		t.Errorf("after a reset: ingress %v (want %v kept), oddities %v", *qs[0].IngressRate, prevIn, odd)
	}
	// Depth grew more than was published: sampling skew, smoothed in (not
	// dropped, which would bias egress upwards), never shown below 0.
	qs = q(4, 100, 100)
	_, odd = deriveRates(st, qs, t0.Add(25*time.Second))
	if len(odd) != 0 || qs[0].EgressRate == nil || *qs[0].EgressRate < 0 || *qs[0].IngressRate >= prevIn {
		t.Errorf("negative egress sample: oddities %v, egress %v, ingress %v (was %v)", odd, *qs[0].EgressRate, *qs[0].IngressRate, prevIn)
	}
	// A queue never published to: ingress 0, egress 0 once two polls saw it.
	idle := []QueueSample{{Vhost: "/", Name: "idle", Messages: i64(0), Ready: i64(0)}}
	st2, _ := deriveRates(nil, idle, t0)
	idle = []QueueSample{{Vhost: "/", Name: "idle", Messages: i64(0), Ready: i64(0)}}
	deriveRates(st2, idle, t0.Add(5*time.Second))
	if idle[0].IngressRate == nil || *idle[0].IngressRate != 0 || *idle[0].TimeToDrainSeconds != 0 || *idle[0].Growing {
		t.Errorf("idle queue: %+v", idle[0])
	}
}

func TestRunSkipsOverrunTicks(t *testing.T) {
	// A fake that answers slower than the interval: only a fake can be made
	// slow on purpose.
	_, srv := newFakeAPI(t, "honest")
	rec := &logRecorder{}
	p, err := NewPoller(PollerConfig{URL: srv.URL, Username: fakeUser, Password: fakePass, Interval: 10 * time.Millisecond},
		nil, nil, slog.New(rec))
	if err != nil {
		t.Fatal(err)
	}
	var clock sync.Mutex
	fake := time.Now()
	// Every call to now advances 15 ms: each poll "takes" longer than 10 ms.
	p.now = func() time.Time {
		clock.Lock()
		defer clock.Unlock()
		fake = fake.Add(15 * time.Millisecond)
		return fake
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	eventually(t, 10*time.Second, func() bool {
		n, _ := rec.count("poll took longer than the poll interval; skipping ticks", "ticks_skipped")
		return n >= 2
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
