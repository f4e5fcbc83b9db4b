package store

import (
	"fmt"
	"testing"
	"time"

	"warren/consumers"
)

func TestSlowMessagesRoundTripAndBound(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	in := []consumers.SlowMessage{
		{Consumer: "a", Type: "OrderPlaced", MessageID: "m1", Duration: 3500 * time.Millisecond, EndToEnd: 4 * time.Second, At: tm(1000)},
		{Consumer: "a", Type: "(none)", MessageID: "m2", Duration: 5 * time.Second, At: tm(2000)},
		{Consumer: "b", Type: "X", MessageID: "m3", Duration: time.Second, At: tm(3000)},
	}
	if err := s.WriteSlowMessages(ctx, in); err != nil {
		t.Fatal(err)
	}
	got, err := s.SlowMessages(ctx, "a", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].MessageID != "m2" || got[1].MessageID != "m1" {
		t.Fatalf("got %+v, want m2 then m1", got)
	}
	if got[1].Type != "OrderPlaced" || got[1].Duration != 3500*time.Millisecond || got[1].EndToEnd != 4*time.Second || !got[1].At.Equal(tm(1000)) {
		t.Errorf("m1 round trip: %+v", got[1])
	}
	if got[0].EndToEnd != 0 {
		t.Errorf("unknown end-to-end must stay 0, got %s", got[0].EndToEnd)
	}

	// The table keeps only the most recent rows per consumer.
	batch := make([]consumers.SlowMessage, MaxSlowMessagesPerConsumer+50)
	for i := range batch {
		batch[i] = consumers.SlowMessage{Consumer: "a", Type: "T", MessageID: fmt.Sprintf("n%d", i), Duration: time.Second, At: tm(int64(10000 + i))}
	}
	if err := s.WriteSlowMessages(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, s, "SELECT count(*) FROM consumer_slow_messages WHERE consumer = 'a'"); n != MaxSlowMessagesPerConsumer {
		t.Errorf("consumer a keeps %d rows, want %d", n, MaxSlowMessagesPerConsumer)
	}
	if n := countRows(t, s, "SELECT count(*) FROM consumer_slow_messages WHERE consumer = 'b'"); n != 1 {
		t.Errorf("consumer b keeps %d rows, want 1 (trimming is per consumer)", n)
	}
	latest, err := s.SlowMessages(ctx, "a", 1)
	if err != nil || len(latest) != 1 || latest[0].MessageID != fmt.Sprintf("n%d", len(batch)-1) {
		t.Errorf("newest = %+v, %v", latest, err)
	}
}
