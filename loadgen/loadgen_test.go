package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

const testURL = "amqp://guest:guest@127.0.0.1:5672/"

func testQueue(t *testing.T) (string, *amqp.Channel) {
	t.Helper()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := "loadgen-test-" + hex.EncodeToString(b)
	conn, err := amqp.Dial(testURL)
	if err != nil {
		t.Fatalf("the tests need RabbitMQ on 127.0.0.1:5672: %v", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = ch.QueueDelete(name, false, false, false)
		conn.Close()
	})
	return name, ch
}

func TestRunPublishesExactlyCountAndTheBrokerHasThem(t *testing.T) {
	q, ch := testQueue(t)
	var progress int
	rep, err := Run(context.Background(), Config{URL: testURL, Queue: q, Count: 500, Rate: 0, Size: 100, Declare: true, Progress: func(Report) { progress++ }})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sent != 500 || rep.Confirmed != 500 || rep.Nacked != 0 || rep.Errors != 0 {
		t.Fatalf("report %+v, want 500 sent and confirmed", rep)
	}
	got, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Messages != 500 {
		t.Fatalf("broker holds %d messages, want 500", got.Messages)
	}
	msg, ok, err := ch.Get(q, true)
	if err != nil || !ok {
		t.Fatalf("get: %v %v", ok, err)
	}
	if len(msg.Body) != 100 || msg.DeliveryMode != amqp.Persistent || msg.MessageId == "" {
		t.Fatalf("message: size %d, mode %d, id %q; want 100 bytes, persistent, an id", len(msg.Body), msg.DeliveryMode, msg.MessageId)
	}
}

func TestRunPacesToTheRate(t *testing.T) {
	q, _ := testQueue(t)
	// 40 messages at 100/s are scheduled over 390 ms: the run cannot end sooner.
	rep, err := Run(context.Background(), Config{URL: testURL, Queue: q, Count: 40, Rate: 100, Declare: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Confirmed != 40 || rep.Elapsed < 390*time.Millisecond {
		t.Fatalf("report %+v: want 40 confirmed over at least 390ms", rep)
	}
}

func TestRunCountsUnroutableMessages(t *testing.T) {
	rep, err := Run(context.Background(), Config{URL: testURL, Queue: "loadgen-test-no-such-queue-" + time.Now().Format("150405.000"), Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Errors != 3 {
		t.Fatalf("report %+v: want the 3 unroutable messages counted as errors", rep)
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	q, _ := testQueue(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancelled := make(chan Report, 1)
	go func() {
		rep, _ := Run(ctx, Config{URL: testURL, Queue: q, Duration: time.Hour, Rate: 50, Declare: true})
		cancelled <- rep
	}()
	cancel()
	select {
	case rep := <-cancelled:
		if rep.Sent != rep.Confirmed+rep.Nacked {
			t.Fatalf("report after cancel %+v: every sent message must be accounted for", rep)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not stop after cancel")
	}
}

func TestValidateNamesTheFlag(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Count: 1}, "--queue"},
		{Config{Queue: "q", Count: 1, Rate: -1}, "--rate"},
		{Config{Queue: "q", Duration: -time.Second}, "--duration"},
		{Config{Queue: "q", Count: -1}, "--count"},
		{Config{Queue: "q"}, "--duration or --count"},
		{Config{Queue: "q", Count: 1, Size: -1}, "--size"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want an error naming %s", tc.cfg, err, tc.want)
		}
	}
}
