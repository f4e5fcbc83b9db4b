package monitor

import (
	"context"
	"testing"
)

// Found by a trial run: every source queue of a managed consumer was marked
// as a dead-letter queue because warren's retry delay queues dead-letter
// expired messages back to it.
func TestRetryDelayQueuesDoNotMakeTheirSourceADeadLetterQueue(t *testing.T) {
	str := func(s string) *string { return &s }
	queues := []QueueSample{
		{Vhost: "/", Name: "demo"},
		{Vhost: "/", Name: "demo.warren.retry.1s", DeadLetterExchange: str(""), deadLetterRoutingKey: str("demo")},
		{Vhost: "/", Name: "orders"},
		{Vhost: "/", Name: "orders-main", DeadLetterExchange: str(""), deadLetterRoutingKey: str("orders-parked")},
		{Vhost: "/", Name: "orders-parked"},
	}
	p := &Poller{logged: map[string]bool{}}
	if err := p.markDeadLetters(context.Background(), queues); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"demo": false, "demo.warren.retry.1s": false, "orders": false, "orders-main": false, "orders-parked": true}
	for _, q := range queues {
		if q.IsDeadLetter != want[q.Name] {
			t.Errorf("%s: IsDeadLetter %v, want %v", q.Name, q.IsDeadLetter, want[q.Name])
		}
	}
}

// Found by a trial run: an idle queue holding messages (0 in, 0 out) was
// reported as growing.
func TestDrainStandingStillIsNotGrowing(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	f := func(v float64) *float64 { return &v }
	cases := []struct {
		name            string
		ready           int64
		ingress, egress float64
		wantTTD         *float64
		wantGrowing     bool
	}{
		{"idle with messages", 12, 0, 0, nil, false},
		{"growing", 12, 5, 1, nil, true},
		{"draining", 100, 1, 11, f(10), false},
		{"empty", 0, 3, 3, f(0), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ttd, growing := drain(i64(tc.ready), f(tc.ingress), f(tc.egress))
			if growing == nil || *growing != tc.wantGrowing {
				t.Fatalf("growing %v, want %v", growing, tc.wantGrowing)
			}
			if (ttd == nil) != (tc.wantTTD == nil) || (ttd != nil && *ttd != *tc.wantTTD) {
				t.Fatalf("time to drain %v, want %v", ttd, tc.wantTTD)
			}
		})
	}
}
