package monitor

// Tests against the real RabbitMQ at 127.0.0.1 (AMQP 5672, management API
// 15672, guest/guest). Every test uses its own queue names and deletes them.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

const (
	brokerAMQP = "amqp://guest:guest@127.0.0.1:5672/"
	brokerMgmt = "http://127.0.0.1:15672"
	// statsWait covers the management API's statistics lag (~5 s) with margin.
	statsWait = 30 * time.Second
)

func randSuffix(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// testBroker is one AMQP connection for declaring, filling and deleting the
// test's queues in vhost "/".
type testBroker struct {
	t  *testing.T
	ch *amqp.Channel
}

func newTestBroker(t *testing.T) *testBroker {
	t.Helper()
	conn, err := amqp.Dial(brokerAMQP)
	if err != nil {
		t.Fatalf("connecting to RabbitMQ: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	return &testBroker{t: t, ch: ch}
}

// declare creates a durable queue and deletes it when the test ends.
func (b *testBroker) declare(name string) {
	b.t.Helper()
	if _, err := b.ch.QueueDeclare(name, true, false, false, false, nil); err != nil {
		b.t.Fatalf("declaring %q: %v", name, err)
	}
	b.t.Cleanup(func() {
		if _, err := b.ch.QueueDelete(name, false, false, false); err != nil {
			b.t.Errorf("deleting %q: %v", name, err)
		}
	})
}

// publish sends n persistent messages to queue and waits for the confirms.
func (b *testBroker) publish(queue string, n int) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range n {
		conf, err := b.ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, true, false, amqp.Publishing{
			DeliveryMode: amqp.Persistent,
			Body:         fmt.Appendf(nil, "message %d", i),
		})
		if err != nil {
			b.t.Fatalf("publishing to %q: %v", queue, err)
		}
		if ok, err := conf.WaitContext(ctx); err != nil || !ok {
			b.t.Fatalf("publish to %q not confirmed: %v", queue, err)
		}
	}
}

func brokerPoller(t *testing.T, cfg PollerConfig, w SampleWriter, obs ...Observer) *Poller {
	t.Helper()
	cfg.URL = brokerMgmt
	if cfg.Username == "" {
		cfg.Username, cfg.Password = "guest", "guest"
	}
	p, err := NewPoller(cfg, w, obs, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func find(qs []QueueSample, vhost, name string) (QueueSample, int) {
	var found QueueSample
	n := 0
	for _, q := range qs {
		if q.Vhost == vhost && q.Name == name {
			found = q
			n++
		}
	}
	return found, n
}

func TestBrokerOddQueueNamesDepth(t *testing.T) {
	b := newTestBroker(t)
	prefix := fmt.Sprintf("warren %s %s ", t.Name(), randSuffix(t))
	names := []string{
		prefix + "with space",
		prefix + "a/b/c",
		prefix + "#hash",
		prefix + "what?now",
		prefix + "a+b",
		prefix + "<b>bold</b>",
		prefix + "ünïcødé 日本語 ✓",
		prefix + "%2F percent",
	}
	want := map[string]int64{}
	for i, n := range names {
		b.declare(n)
		want[n] = int64(i + 1)
		b.publish(n, i+1)
	}
	p := brokerPoller(t, PollerConfig{Thresholds: Thresholds{Default: Level{Warning: 3, Critical: 6}}}, nil)

	var last Snapshot
	eventually(t, statsWait, func() bool {
		last = p.runOnce(t.Context())
		if last.Err != nil {
			t.Fatalf("poll failed: %v", last.Err)
		}
		for _, n := range names {
			q, count := find(last.Queues, "/", n)
			if count != 1 || q.Messages == nil || *q.Messages != want[n] ||
				q.Ready == nil || *q.Ready != want[n] || q.Unacked == nil || *q.Unacked != 0 ||
				q.Consumers == nil || *q.Consumers != 0 {
				return false
			}
		}
		return true
	})
	for _, n := range names {
		q, _ := find(last.Queues, "/", n)
		wantStatus := StatusOK
		switch {
		case want[n] >= 6:
			wantStatus = StatusCritical
		case want[n] >= 3:
			wantStatus = StatusWarning
		}
		if q.Status != wantStatus {
			t.Errorf("%q: status %s with %d messages, want %s", n, q.Status, want[n], wantStatus)
		}
	}
}

func TestBrokerPagesReturnEveryQueueOnce(t *testing.T) {
	b := newTestBroker(t)
	prefix := fmt.Sprintf("warren-%s-%s-", t.Name(), randSuffix(t))
	var names []string
	for i := range 25 {
		n := fmt.Sprintf("%s%02d", prefix, i)
		b.declare(n)
		names = append(names, n)
	}
	p := brokerPoller(t, PollerConfig{PageSize: 10}, nil)
	queues, stats, err := p.listQueues(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if stats.pages < 3 {
		t.Errorf("read %d pages of 10 for at least 25 queues, want >= 3", stats.pages)
	}
	for _, n := range names {
		if _, count := find(queues, "/", n); count != 1 {
			t.Errorf("%q listed %d times, want once", n, count)
		}
	}
}

// TestBrokerNewQueueCountsUnknown checks what RabbitMQ 3.10 really sends for a
// brand-new idle queue before its first statistics emission: only name and
// vhost. Those counts must be nil (unknown), not 0. Once statistics arrive,
// a real 0 must be reported as 0.
func TestBrokerNewQueueCountsUnknown(t *testing.T) {
	b := newTestBroker(t)
	p := brokerPoller(t, PollerConfig{}, nil)
	prefix := fmt.Sprintf("warren-%s-%s-", t.Name(), randSuffix(t))
	// The first statistics emission may land between declare and poll; a few
	// fresh queues make it practically certain one is seen before it.
	var fresh string
	for i := range 5 {
		n := fmt.Sprintf("%s%d", prefix, i)
		b.declare(n)
		snap := p.runOnce(t.Context())
		if snap.Err != nil {
			t.Fatal(snap.Err)
		}
		q, count := find(snap.Queues, "/", n)
		if count != 1 {
			t.Fatalf("new queue %q listed %d times", n, count)
		}
		if q.Messages == nil && q.Ready == nil && q.Unacked == nil && q.Consumers == nil {
			if q.Status != StatusUnknown {
				t.Errorf("status of a queue without counts = %s, want unknown", q.Status)
			}
			fresh = n
			break
		}
		t.Logf("%q already had statistics: m=%s r=%s u=%s c=%s", n,
			ptrStr(q.Messages), ptrStr(q.Ready), ptrStr(q.Unacked), ptrStr(q.Consumers))
	}
	if fresh == "" {
		t.Fatal("no brand-new queue came back with unknown counts")
	}
	// The counts (queue_coarse_metrics) and the consumer count (queue
	// metrics) reach the management database in separate emissions, so one
	// may be known while the other is not yet: wait for both.
	eventually(t, statsWait, func() bool {
		snap := p.runOnce(t.Context())
		q, _ := find(snap.Queues, "/", fresh)
		return q.Messages != nil && q.Consumers != nil
	})
	snap := p.runOnce(t.Context())
	q, _ := find(snap.Queues, "/", fresh)
	for field, v := range map[string]*int64{"messages": q.Messages, "ready": q.Ready, "unacked": q.Unacked, "consumers": q.Consumers} {
		if v == nil || *v != 0 {
			t.Errorf("%s of an idle queue with statistics = %s, want 0", field, ptrStr(v))
		}
	}
	if q.Status != StatusOK {
		t.Errorf("status = %s, want ok", q.Status)
	}
}

func TestBrokerWrongPassword(t *testing.T) {
	password := "wrong-" + randSuffix(t)
	w := &recordingWriter{}
	obs := &recordingObserver{}
	p := brokerPoller(t, PollerConfig{Username: "guest", Password: password}, w, obs)
	snap := p.runOnce(t.Context())
	checkFailedPoll(t, p, snap, w, obs, password, ErrCredentialsRejected, "credentials rejected", "guest")
}

func TestBrokerClosedPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	w := &recordingWriter{}
	obs := &recordingObserver{}
	p, err := NewPoller(PollerConfig{URL: "http://" + addr, Username: "guest", Password: "guest"}, w, []Observer{obs}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	snap := p.runOnce(t.Context())
	checkFailedPoll(t, p, snap, w, obs, "", ErrUnreachable, "management API unreachable", "connection refused", addr)
}

func TestBrokerRun(t *testing.T) {
	w := &recordingWriter{}
	obs := &recordingObserver{}
	p := brokerPoller(t, PollerConfig{Interval: 50 * time.Millisecond}, w, obs)
	if err := p.Ready(t.Context()); err == nil || !strings.Contains(err.Error(), "not polled yet") {
		t.Errorf("Ready before the first poll = %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	eventually(t, statsWait, func() bool { return len(obs.all()) >= 3 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run returned %v after cancel, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	for i, s := range obs.all() {
		if s.Err != nil && !errors.Is(s.Err, context.Canceled) {
			t.Errorf("poll %d failed: %v", i, s.Err)
		}
	}
	if w.count() < 3 {
		t.Errorf("%d sample batches written, want >= 3", w.count())
	}
	if err := p.Ready(t.Context()); err != nil {
		t.Errorf("Ready after good polls: %v", err)
	}
}
