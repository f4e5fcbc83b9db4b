package loadgen

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
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
		{Config{Queue: "q", Count: 1, Size: 300, SizeMax: 100}, "--size 300-100"},
		{Config{Queue: "q", Exchange: "x", Count: 1}, "cannot be combined"},
		{Config{Queue: "q", RoutingKey: "k", Count: 1}, "--routing-key"},
		{Config{Exchange: "x", Declare: true, Count: 1}, "--declare"},
		{Config{Queue: "q", Rate: 5, Phases: []Phase{{time.Second, 1}}}, "--phase cannot be combined"},
		{Config{Queue: "q", Phases: []Phase{{0, 1}, {time.Second, 1}}, Count: 5}, "--phase 1 has no duration"},
		{Config{Queue: "q", Count: 1, Publishers: -1}, "--publishers"},
		{Config{Queue: "q", Count: 1, Types: []MessageType{{Name: "A"}}}, "--type"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want an error naming %s", tc.cfg, err, tc.want)
		}
	}
}

// bindQueue returns a fresh queue bound to a fresh direct exchange with key.
func bindQueue(t *testing.T, ch *amqp.Channel, q, key string) string {
	t.Helper()
	ex := q + "-x"
	if err := ch.ExchangeDeclare(ex, "direct", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ch.ExchangeDelete(ex, false, false) })
	if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q, key, ex, false, nil); err != nil {
		t.Fatal(err)
	}
	return ex
}

func brokerCount(t *testing.T, ch *amqp.Channel, q string) int {
	t.Helper()
	got, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return got.Messages
}

func within(got, want, tol int64) bool { return got >= want-tol && got <= want+tol }

func TestRunPhasesRunInOrderWithTheirCounts(t *testing.T) {
	q, ch := testQueue(t)
	phases := []Phase{{Duration: 200 * time.Millisecond, Rate: 100}, {Duration: 300 * time.Millisecond, Rate: 200}}
	rep, err := Run(context.Background(), Config{URL: testURL, Queue: q, Phases: phases, Size: 10, Declare: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Phases) != 2 {
		t.Fatalf("report has %d phases, want 2: %+v", len(rep.Phases), rep)
	}
	for i, want := range []int64{20, 60} {
		p := rep.Phases[i]
		if p.Phase != phases[i] || !within(p.Confirmed, want, 1) || p.Sent != p.Confirmed || p.Errors != 0 {
			t.Errorf("phase %d: %+v, want %s with %d±1 confirmed", i+1, p, phases[i], want)
		}
		if p.ConfirmP50 <= 0 || p.ConfirmP99 < p.ConfirmP50 {
			t.Errorf("phase %d: confirm latency p50 %s p99 %s, want 0 < p50 <= p99", i+1, p.ConfirmP50, p.ConfirmP99)
		}
	}
	if rep.Confirmed != rep.Phases[0].Confirmed+rep.Phases[1].Confirmed {
		t.Errorf("overall confirmed %d is not the sum of the phases", rep.Confirmed)
	}
	if n := brokerCount(t, ch, q); int64(n) != rep.Confirmed {
		t.Fatalf("broker holds %d messages, the report says %d confirmed", n, rep.Confirmed)
	}
	// The second phase's messages come after the first's: ids are sequence numbers.
	first, _, _ := ch.Get(q, true)
	if first.MessageId != "0" {
		t.Fatalf("first message id %q, want 0", first.MessageId)
	}
}

func TestRunSizeRangeTypesAndGzip(t *testing.T) {
	q, ch := testQueue(t)
	types := []MessageType{{Name: "OrderCreated", Weight: 3}, {Name: "OrderShipped", Weight: 1}}
	rep, err := Run(context.Background(), Config{URL: testURL, Queue: q, Count: 200, Size: 100, SizeMax: 300,
		Types: types, Gzip: true, Transient: true, Declare: true})
	if err != nil || rep.Confirmed != 200 {
		t.Fatalf("report %+v, err %v; want 200 confirmed", rep, err)
	}
	sizes := map[int]bool{}
	seen := map[string]int{}
	for range 200 {
		m, ok, err := ch.Get(q, true)
		if err != nil || !ok {
			t.Fatalf("get: %v %v", ok, err)
		}
		if m.ContentEncoding != "gzip" || m.DeliveryMode != amqp.Transient {
			t.Fatalf("content-encoding %q, mode %d; want gzip, transient", m.ContentEncoding, m.DeliveryMode)
		}
		zr, err := gzip.NewReader(bytes.NewReader(m.Body))
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		if len(body) < 100 || len(body) > 300 {
			t.Fatalf("decoded body of %d bytes, want 100-300", len(body))
		}
		sizes[len(body)] = true
		if m.Headers[MessageTypeHeader] != m.Type || m.Type == "" {
			t.Fatalf("type %q, header %v; want both set and equal", m.Type, m.Headers[MessageTypeHeader])
		}
		seen[m.Type]++
		if _, ok := m.Headers[PublishedAtHeader].(int64); !ok {
			t.Fatalf("%s header %v (%T), want unix milliseconds", PublishedAtHeader, m.Headers[PublishedAtHeader], m.Headers[PublishedAtHeader])
		}
	}
	if len(sizes) < 20 {
		t.Errorf("only %d distinct sizes in 200 messages drawn from 100-300", len(sizes))
	}
	// 3:1 weights over 200 draws: OrderShipped is ~50; far below 100 with any sane RNG.
	if seen["OrderCreated"] <= seen["OrderShipped"] || seen["OrderShipped"] == 0 || len(seen) != 2 {
		t.Errorf("types drawn %v, want both, OrderCreated about 3x as often", seen)
	}
}

func TestRunSeveralPublishersSendExactTotals(t *testing.T) {
	q, ch := testQueue(t)
	rep, err := Run(context.Background(), Config{URL: testURL, Queue: q, Publishers: 3,
		Phases: []Phase{{Duration: 300 * time.Millisecond, Rate: 300}}, Count: 0, Declare: true})
	if err != nil {
		t.Fatal(err)
	}
	if !within(rep.Confirmed, 90, 1) || rep.Sent != rep.Confirmed {
		t.Fatalf("report %+v, want 90±1 confirmed from three publishers sharing 300/s", rep)
	}
	if n := brokerCount(t, ch, q); int64(n) != rep.Confirmed {
		t.Fatalf("broker holds %d, report says %d", n, rep.Confirmed)
	}
	rep, err = Run(context.Background(), Config{URL: testURL, Queue: q, Publishers: 3, Count: 301})
	if err != nil || rep.Confirmed != 301 {
		t.Fatalf("count 301 over 3 publishers: %+v, %v", rep, err)
	}
}

func TestRunPublishesToAnExchangeWithRoutingKey(t *testing.T) {
	q, ch := testQueue(t)
	ex := bindQueue(t, ch, q, "orders.created")
	rep, err := Run(context.Background(), Config{URL: testURL, Exchange: ex, RoutingKey: "orders.created", Count: 25})
	if err != nil || rep.Confirmed != 25 || rep.Errors != 0 {
		t.Fatalf("report %+v, err %v; want 25 routed", rep, err)
	}
	rep, err = Run(context.Background(), Config{URL: testURL, Exchange: ex, RoutingKey: "orders.other", Count: 5})
	if err != nil || rep.Errors != 5 {
		t.Fatalf("report %+v, err %v; want the 5 unbound-key messages counted as errors", rep, err)
	}
	if n := brokerCount(t, ch, q); n != 25 {
		t.Fatalf("broker holds %d, want 25", n)
	}
}

func TestRunWithoutConfirms(t *testing.T) {
	q, ch := testQueue(t)
	rep, err := Run(context.Background(), Config{URL: testURL, Queue: q, Count: 50, NoConfirms: true, Declare: true})
	if err != nil || rep.Sent != 50 || rep.Confirmed != 0 || rep.Confirms {
		t.Fatalf("report %+v, err %v; want 50 sent, none confirmed", rep, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for brokerCount(t, ch, q) != 50 {
		if time.Now().After(deadline) {
			t.Fatalf("broker holds %d, want 50", brokerCount(t, ch, q))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRunCancelMidPhaseReports(t *testing.T) {
	q, ch := testQueue(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Report, 1)
	go func() {
		rep, _ := Run(ctx, Config{URL: testURL, Queue: q, Phases: []Phase{{Duration: time.Hour, Rate: 200}}, Declare: true,
			Progress: func(r Report) {
				if r.Confirmed >= 10 {
					cancel()
				}
			}})
		done <- rep
	}()
	select {
	case rep := <-done:
		if rep.Confirmed < 10 || rep.Sent != rep.Confirmed || len(rep.Phases) != 1 || rep.Phases[0].Elapsed >= time.Hour {
			t.Fatalf("report after cancel %+v: want the messages so far, all confirmed, and the phase cut short", rep)
		}
		if n := brokerCount(t, ch, q); int64(n) != rep.Confirmed {
			t.Fatalf("broker holds %d, report says %d", n, rep.Confirmed)
		}
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("Run did not stop after cancel")
	}
}

func TestParsers(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Phase
		err  string
	}{
		{"60s@100/s", Phase{60 * time.Second, 100}, ""},
		{"2m@1000", Phase{2 * time.Minute, 1000}, ""},
		{"1s@max", Phase{time.Second, 0}, ""},
		{"60s@fast", Phase{}, `rate "fast"`},
		{"60s", Phase{}, "DURATION@RATE"},
		{"soon@10/s", Phase{}, `duration "soon"`},
		{"0s@10/s", Phase{}, `duration "0s"`},
		{"1s@-3/s", Phase{}, `rate "-3/s"`},
	} {
		t.Run("phase "+tc.in, func(t *testing.T) {
			got, err := ParsePhase(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParsePhase(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParsePhase(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
	phases, err := ParsePhasesYAML([]byte("- {duration: 60s, rate: 100}\n- duration: 2m\n  rate: 1000/s\n"))
	if err != nil || len(phases) != 2 || phases[1] != (Phase{2 * time.Minute, 1000}) {
		t.Fatalf("ParsePhasesYAML = %v, %v", phases, err)
	}
	if _, err := ParsePhasesYAML([]byte("- {duration: 60s, rte: 100}\n")); err == nil || !strings.Contains(err.Error(), "rte") {
		t.Fatalf("unknown key: %v, want an error naming it", err)
	}
	if r, err := ParseSize("100-2000"); err != nil || r != (SizeRange{100, 2000}) {
		t.Fatalf("ParseSize = %v, %v", r, err)
	}
	for _, bad := range []string{"big", "10-", "300-100", "-5"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
	if mt, err := ParseMessageType("A:3"); err != nil || mt != (MessageType{"A", 3}) {
		t.Fatalf("ParseMessageType = %v, %v", mt, err)
	}
	for _, bad := range []string{"", ":3", "A:0", "A:x"} {
		if _, err := ParseMessageType(bad); err == nil {
			t.Errorf("ParseMessageType(%q) accepted", bad)
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h latencyHistogram
	for i := 1; i <= 1000; i++ {
		h.observe(time.Duration(i) * time.Millisecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.99, 990 * time.Millisecond}} {
		got := h.quantile(tc.q)
		if got < tc.want || float64(got) > float64(tc.want)*1.13 {
			t.Errorf("quantile(%g) = %s, want within 13%% above %s", tc.q, got, tc.want)
		}
	}
}

// A phase the broker cannot keep up with ends shortly after its window
// instead of running until its whole schedule is sent, and the next phase
// still runs.
func TestRunCutsOffAPhaseThatCannotKeepUp(t *testing.T) {
	q, ch := testQueue(t)
	begin := time.Now()
	rep, err := Run(context.Background(), Config{URL: testURL, Queue: q, Declare: true, MaxOutstanding: 1,
		Phases: []Phase{{Duration: 300 * time.Millisecond, Rate: 1e6}, {Duration: 200 * time.Millisecond, Rate: 50}}})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(begin); took > 20*time.Second {
		t.Fatalf("run took %s: the overloaded phase was not cut off", took)
	}
	if len(rep.Phases) != 2 || rep.Phases[0].Confirmed >= 300000 || rep.Phases[0].Confirmed == 0 || !within(rep.Phases[1].Confirmed, 10, 1) {
		t.Fatalf("report %+v: want a short first phase and 10±1 in the second", rep)
	}
	if n := brokerCount(t, ch, q); int64(n) != rep.Confirmed {
		t.Fatalf("broker holds %d, report says %d", n, rep.Confirmed)
	}
}
