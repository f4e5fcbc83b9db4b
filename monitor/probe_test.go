package monitor

import (
	"fmt"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// TestBrokerProbeGivesFreshDepth: right after a burst of confirmed publishes
// the management API still reports the queue's previous statistics (they are
// emitted every 5 s); the depth probe reports the burst at the next poll.
func TestBrokerProbeGivesFreshDepth(t *testing.T) {
	b := newTestBroker(t)
	name := fmt.Sprintf("warren-%s-%s", t.Name(), randSuffix(t))
	b.declare(name)
	th := Thresholds{Default: Level{Warning: 10000, Critical: 50000}, Queues: map[string]Level{name: {Warning: 100, Critical: 400}}}
	plain := brokerPoller(t, PollerConfig{Thresholds: th}, nil)
	// The probe only refreshes queues the management API has counts for.
	eventually(t, statsWait, func() bool {
		q, _ := find(plain.runOnce(t.Context()).Queues, "/", name)
		return q.Ready != nil && q.Unacked != nil
	})
	p := brokerPoller(t, PollerConfig{Thresholds: th, Probe: ProbeConfig{AMQPURL: brokerAMQP, MaxQueues: 5, Pinned: []QueueRef{{"/", name}}}}, nil)
	defer p.Close()

	b.publish(name, 450)
	snap := p.runOnce(t.Context())
	if snap.Err != nil {
		t.Fatal(snap.Err)
	}
	q, _ := find(snap.Queues, "/", name)
	if q.Messages == nil || *q.Messages != 450 || q.Ready == nil || *q.Ready != 450 {
		t.Fatalf("probed queue: messages %s ready %s, want 450 just after publishing 450", ptrStr(q.Messages), ptrStr(q.Ready))
	}
	if q.Status != StatusCritical {
		t.Errorf("status = %s, want critical (450 >= 400)", q.Status)
	}
}

// TestBrokerProbeSurvivesBadQueues: a queue that is gone and one exclusive to
// another connection each close the probe's channel; the probe reopens it,
// refreshes the good queue, leaves the others' counts alone and stops asking
// for the exclusive one.
func TestBrokerProbeSurvivesBadQueues(t *testing.T) {
	b := newTestBroker(t)
	suffix := randSuffix(t)
	good := "warren-probe-good-" + suffix
	b.declare(good)
	b.publish(good, 7)

	other, err := amqp.Dial(brokerAMQP)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	och, err := other.Channel()
	if err != nil {
		t.Fatal(err)
	}
	excl := "warren-probe-exclusive-" + suffix
	if _, err := och.QueueDeclare(excl, false, true, true, false, nil); err != nil {
		t.Fatal(err)
	}

	pr, err := newProber(ProbeConfig{AMQPURL: brokerAMQP, MaxQueues: 10}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pr.close()
	stale := func(name string) QueueSample {
		return QueueSample{Vhost: "/", Name: name, Ready: i64(3), Unacked: i64(2), Messages: i64(5)}
	}
	qs := []QueueSample{stale("warren-probe-gone-" + suffix), stale(excl), stale(good)}
	th := Thresholds{Default: Level{Warning: 10000, Critical: 50000}}
	if n := pr.refresh(t.Context(), qs, th); n != 1 {
		t.Fatalf("refreshed %d queues, want 1", n)
	}
	if got := qs[2]; *got.Ready != 7 || *got.Messages != 9 {
		t.Errorf("good queue: ready %s messages %s, want 7 and 9 (7 fresh + 2 unacked)", ptrStr(got.Ready), ptrStr(got.Messages))
	}
	for _, q := range qs[:2] {
		if *q.Ready != 3 || *q.Messages != 5 {
			t.Errorf("%s: counts changed to ready %s messages %s, want the management API's 3 and 5", q.Name, ptrStr(q.Ready), ptrStr(q.Messages))
		}
	}
	if !pr.failed[QueueRef{"/", excl}] {
		t.Error("the exclusive queue is not remembered as unprobeable")
	}
	// Second round: the exclusive queue is skipped; the good one still works.
	qs = []QueueSample{stale(excl), stale(good)}
	if got := pr.choose(qs, th); len(got) != 1 || got[0] != 1 {
		t.Errorf("chosen %v, want only the good queue (index 1)", got)
	}
	if n := pr.refresh(t.Context(), qs, th); n != 1 || *qs[1].Ready != 7 {
		t.Errorf("second round refreshed %d, good ready %s; want 1 and 7", n, ptrStr(qs[1].Ready))
	}
}

func TestProbeWrongPasswordIsNotInTheError(t *testing.T) {
	pr, err := newProber(ProbeConfig{AMQPURL: "amqp://guest:Secret-pw-93@127.0.0.1:5672/", MaxQueues: 1}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pr.close()
	_, err = pr.probe(t.Context(), "/", "anything")
	if err == nil {
		t.Fatal("probe with a wrong password worked")
	}
	if strings.Contains(err.Error(), "Secret-pw-93") {
		t.Errorf("error holds the password: %v", err)
	}
}

// TestProbeChoose (no broker): pinned queues first, then the deepest relative
// to their warning level, then round-robin so every queue is probed in turn.
func TestProbeChoose(t *testing.T) {
	var qs []QueueSample
	for i := range 10 {
		qs = append(qs, QueueSample{Vhost: "/", Name: fmt.Sprintf("q%d", i), Ready: i64(int64(i)), Unacked: i64(0)})
	}
	qs[3].Unacked = nil // no total known: never probed
	pr := &prober{cfg: ProbeConfig{MaxQueues: 4}, pinned: map[QueueRef]bool{{"/", "q1"}: true}, failed: map[QueueRef]bool{}}
	th := Thresholds{Default: Level{Warning: 100, Critical: 200}, Queues: map[string]Level{"q2": {Warning: 1, Critical: 2}}}
	got := pr.choose(qs, th)
	// q1 pinned; of the 3 left, 1 goes to the nearest (q2: 2/1), 2 round-robin from 0.
	want := []int{1, 2, 0, 4}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("first choice %v, want %v", got, want)
	}
	covered := map[int]bool{}
	for range 10 {
		for _, i := range pr.choose(qs, th) {
			covered[i] = true
		}
	}
	for i := range qs {
		if i != 3 && !covered[i] {
			t.Errorf("queue q%d never probed over 10 polls", i)
		}
	}
	if covered[3] {
		t.Error("q3 (unacked unknown) was probed")
	}
}
