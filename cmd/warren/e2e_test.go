package main

// End-to-end tests: the real `warren serve` (through run) against the local
// RabbitMQ and its management API, a real SQLite file and a real HTTP webhook
// receiver. Every queue is uniquely named and deleted afterwards.

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	amqp "github.com/rabbitmq/amqp091-go"

	"warren/loadgen"
)

const (
	testAMQPURL = "amqp://guest:guest@127.0.0.1:5672/"
	testMgmtURL = "http://127.0.0.1:15672"
)

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func uniqueName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// broker is a test's AMQP connection for declaring, publishing and cleaning up.
type broker struct {
	t    *testing.T
	conn *amqp.Connection
	ch   *amqp.Channel
}

func newBroker(t *testing.T) *broker {
	t.Helper()
	conn, err := amqp.Dial(testAMQPURL)
	if err != nil {
		t.Fatalf("the tests need RabbitMQ on 127.0.0.1:5672 (make test starts it): %v", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	b := &broker{t: t, conn: conn, ch: ch}
	t.Cleanup(func() { conn.Close() })
	return b
}

// declare creates a durable queue and deletes it when the test ends.
func (b *broker) declare(name string) {
	b.t.Helper()
	if _, err := b.ch.QueueDeclare(name, true, false, false, false, nil); err != nil {
		b.t.Fatalf("declaring %q: %v", name, err)
	}
	b.t.Cleanup(func() {
		conn, err := amqp.Dial(testAMQPURL)
		if err != nil {
			return
		}
		defer conn.Close()
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(name, false, false, false)
		}
	})
}

func (b *broker) publish(queue string, n int) {
	b.t.Helper()
	rep, err := loadgen.Run(context.Background(), loadgen.Config{URL: testAMQPURL, Queue: queue, Count: int64(n), Size: 64})
	if err != nil || rep.Confirmed != int64(n) || rep.Errors != 0 {
		b.t.Fatalf("publishing %d to %q: %+v, %v", n, queue, rep, err)
	}
}

// depth is the broker's own count of ready messages (no stats lag).
func (b *broker) depth(queue string) int {
	b.t.Helper()
	ch, err := b.conn.Channel()
	if err != nil {
		b.t.Fatal(err)
	}
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		b.t.Fatalf("inspecting %q: %v", queue, err)
	}
	return q.Messages
}

// mgmtGet decodes a management API answer.
func mgmtGet(t *testing.T, path string, out any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, testMgmtURL+path, nil)
	req.SetBasicAuth("guest", "guest")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("management API: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("management API %s: %s", path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatal(err)
	}
}

// webhookReceiver is a real HTTP receiver that verifies signatures.
type webhookReceiver struct {
	srv    *httptest.Server
	secret string
	mu     sync.Mutex
	got    []receivedHook
}

type receivedHook struct {
	Delivery string
	Body     struct {
		Version string `json:"version"`
		Status  string `json:"status"`
		Alert   struct {
			ID        string  `json:"id"`
			Rule      string  `json:"rule"`
			Severity  string  `json:"severity"`
			State     string  `json:"state"`
			Vhost     string  `json:"vhost"`
			Queue     string  `json:"queue"`
			Value     float64 `json:"value"`
			Threshold float64 `json:"threshold"`
		} `json:"alert"`
	}
	SignatureOK bool
}

func newWebhookReceiver(t *testing.T, secret string) *webhookReceiver {
	r := &webhookReceiver{secret: secret}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		raw, _ := io.ReadAll(req.Body)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(raw)
		want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
		h := receivedHook{Delivery: req.Header.Get("X-Warren-Delivery"), SignatureOK: hmac.Equal([]byte(want), []byte(req.Header.Get("X-Warren-Signature")))}
		if err := json.Unmarshal(raw, &h.Body); err != nil || req.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.got = append(r.got, h)
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// forQueue returns the notifications received about one queue.
func (r *webhookReceiver) forQueue(q string) []receivedHook {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []receivedHook
	for _, h := range r.got {
		if h.Body.Alert.Queue == q {
			out = append(out, h)
		}
	}
	return out
}

// server runs `warren serve` in the background for one test.
type server struct {
	t    *testing.T
	base string
	logs *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startServer(t *testing.T, yamlBody string) *server {
	t.Helper()
	addr := freePort(t)
	dir := t.TempDir()
	cfg := fmt.Sprintf("listen: %s\nstore: {path: %s}\nmanagement: {poll_interval: 500ms}\nperformance: {sample_interval: 1s}\nlog: {level: debug}\n%s",
		addr, filepath.Join(dir, "warren.db"), yamlBody)
	p := filepath.Join(dir, "warren.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{t: t, base: "http://" + addr, logs: &syncBuffer{}}
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"warren", "serve", "--config", p}, noEnv, io.Discard, s.logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("warren serve exited with %d; log:\n%s", code, s.logs.String())
			}
		case <-time.After(60 * time.Second):
			t.Errorf("warren serve did not stop within 60s of cancel")
		}
		if t.Failed() {
			t.Logf("server log:\n%s", s.logs.String())
		}
	})
	eventually(t, 30*time.Second, "the server to answer /healthz", func() bool {
		select {
		case code := <-done:
			t.Fatalf("warren serve exited early with %d:\n%s", code, s.logs.String())
		default:
		}
		resp, err := http.Get(s.base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return s
}

// do sends a request and decodes a JSON answer; it returns the status.
func (s *server) do(method, path string, body string, out any) int {
	s.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			s.t.Fatalf("%s %s: %d, not JSON: %q", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode
}

type apiConsumer struct {
	Name            string  `json:"name"`
	State           string  `json:"state"`
	Concurrency     int     `json:"concurrency"`
	Prefetch        int     `json:"prefetch"`
	AppliedPrefetch int     `json:"applied_prefetch"`
	InFlight        int64   `json:"in_flight"`
	Processed       uint64  `json:"processed"`
	Failed          uint64  `json:"failed"`
	Rate            float64 `json:"rate"`
}

func (s *server) consumer(name string) apiConsumer {
	s.t.Helper()
	var c apiConsumer
	if code := s.do(http.MethodGet, "/api/consumers/"+url.PathEscape(name), "", &c); code != 200 {
		s.t.Fatalf("GET consumer %s: %d", name, code)
	}
	return c
}

type apiQueue struct {
	Vhost     string `json:"vhost"`
	Name      string `json:"name"`
	Messages  *int64 `json:"messages"`
	Ready     *int64 `json:"messages_ready"`
	Unacked   *int64 `json:"messages_unacknowledged"`
	Consumers *int64 `json:"consumers"`
	Status    string `json:"status"`
}

func (s *server) queues() map[string]apiQueue {
	s.t.Helper()
	var body struct {
		Queues []apiQueue `json:"queues"`
	}
	if code := s.do(http.MethodGet, "/api/queues", "", &body); code != 200 {
		s.t.Fatalf("GET /api/queues: %d", code)
	}
	out := map[string]apiQueue{}
	for _, q := range body.Queues {
		out[q.Vhost+"\x00"+q.Name] = q
	}
	return out
}

func TestEndToEndConsumeTuneAndAlert(t *testing.T) {
	b := newBroker(t)
	work := uniqueName("e2e-work")
	alerting := uniqueName("e2e-alert")
	b.declare(work)
	b.declare(alerting)

	// The alert queue is over its critical threshold before warren starts,
	// and the management API already shows it, so the first poll that sees
	// the queue sees the final depth: exactly one firing notification.
	b.publish(alerting, 12)
	eventually(t, 30*time.Second, "the management API to report 12 messages", func() bool {
		var q struct {
			Messages *int64 `json:"messages"`
		}
		mgmtGet(t, "/api/queues/%2F/"+url.PathEscape(alerting), &q)
		return q.Messages != nil && *q.Messages == 12
	})

	hooks := newWebhookReceiver(t, "s3cret")
	srv := startServer(t, fmt.Sprintf(`
health:
  queues:
    %q: { warning: 5, critical: 10 }
consumers:
  - name: worker
    queue: %q
    max_concurrent_messages: 2
    prefetch_count: 4
    max_concurrency: 50
    handler: { type: sleep, duration: 20ms }
alerts:
  webhooks:
    - { name: test, url: %q, secret: s3cret }
`, alerting, work, hooks.srv.URL))

	t.Run("messages are processed and the queue drains", func(t *testing.T) {
		b.publish(work, 200)
		eventually(t, 60*time.Second, "200 messages processed", func() bool { return srv.consumer("worker").Processed >= 200 })
		if c := srv.consumer("worker"); c.Processed != 200 || c.Failed != 0 {
			t.Fatalf("processed %d failed %d, want 200 and 0", c.Processed, c.Failed)
		}
		eventually(t, 10*time.Second, "the queue to drain", func() bool { return b.depth(work) == 0 })
	})

	t.Run("bad live changes are refused and change nothing", func(t *testing.T) {
		before := srv.consumer("worker")
		for _, body := range []string{`{"concurrency":0}`, `{"concurrency":-1}`, `{"concurrency":"ten"}`, `{"concurrency":1000000000}`, `{"prefetch":0}`, `{"concurrency":3,"color":"red"}`, `{}`, `not json`} {
			var e struct {
				Error string `json:"error"`
			}
			if code := srv.do(http.MethodPatch, "/api/consumers/worker", body, &e); code != 400 || e.Error == "" {
				t.Errorf("PATCH %s: %d %q, want 400 with a message", body, code, e.Error)
			}
		}
		after := srv.consumer("worker")
		if after.Concurrency != before.Concurrency || after.Prefetch != before.Prefetch {
			t.Fatalf("a refused change changed the consumer: %+v -> %+v", before, after)
		}
		var e struct {
			Error string `json:"error"`
		}
		if code := srv.do(http.MethodPatch, "/api/consumers/nobody", `{"concurrency":2}`, &e); code != 404 {
			t.Fatalf("unknown consumer: %d, want 404", code)
		}
	})

	t.Run("concurrency and prefetch change live", func(t *testing.T) {
		var c apiConsumer
		if code := srv.do(http.MethodPatch, "/api/consumers/worker", `{"concurrency":8,"prefetch":16}`, &c); code != 200 {
			t.Fatalf("PATCH: %d", code)
		}
		if c.Concurrency != 8 || c.Prefetch != 16 {
			t.Fatalf("PATCH answered %+v", c)
		}
		// The broker enforces the new prefetch on the live subscription.
		eventually(t, 30*time.Second, "the management API to list the consumer with prefetch 16", func() bool {
			var list []struct {
				Queue struct {
					Name string `json:"name"`
				} `json:"queue"`
				PrefetchCount int `json:"prefetch_count"`
			}
			mgmtGet(t, "/api/consumers/%2F", &list)
			n, ok := 0, false
			for _, x := range list {
				if x.Queue.Name == work {
					n++
					ok = x.PrefetchCount == 16
				}
			}
			return n == 1 && ok
		})
		eventually(t, 10*time.Second, "applied prefetch 16", func() bool { return srv.consumer("worker").AppliedPrefetch == 16 })
		// Under a backlog, in-flight reaches the new concurrency and never passes it.
		b.publish(work, 600)
		var peak int64
		eventually(t, 60*time.Second, "in-flight to reach 8", func() bool {
			f := srv.consumer("worker").InFlight
			peak = max(peak, f)
			return f == 8
		})
		eventually(t, 90*time.Second, "the backlog to be processed", func() bool { return srv.consumer("worker").Processed >= 800 })
		if c := srv.consumer("worker"); c.Processed != 800 || peak > 8 {
			t.Fatalf("processed %d (want 800), in-flight peak %d (max 8)", c.Processed, peak)
		}
	})

	t.Run("metrics parse and carry the consumer and queue series", func(t *testing.T) {
		resp, err := http.Get(srv.base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(resp.Body)
		if err != nil {
			t.Fatalf("/metrics does not parse: %v", err)
		}
		for _, name := range []string{"warren_consumer_messages_processed_total", "warren_consumer_handler_duration_seconds",
			"warren_consumer_messages_dead_lettered_total", "warren_consumer_state", "warren_queue_messages", "warren_monitor_last_poll_success"} {
			if _, ok := fams[name]; !ok {
				t.Errorf("/metrics lacks %s", name)
			}
		}
		for _, m := range fams["warren_consumer_handler_duration_seconds"].GetMetric() {
			if h := m.GetHistogram(); h.GetSampleCount() < 800 {
				t.Errorf("handler histogram counts %d messages, want at least the 800 processed", h.GetSampleCount())
			}
		}
	})

	t.Run("one signed firing webhook, then one resolved", func(t *testing.T) {
		eventually(t, 30*time.Second, "a firing webhook", func() bool { return len(hooks.forQueue(alerting)) >= 1 })
		fired := hooks.forQueue(alerting)[0]
		if !fired.SignatureOK || fired.Delivery == "" || fired.Body.Version != "1" || fired.Body.Status != "firing" ||
			fired.Body.Alert.Severity != "critical" || fired.Body.Alert.Value != 12 || fired.Body.Alert.Threshold != 10 || fired.Body.Alert.Vhost != "/" {
			t.Fatalf("unexpected firing notification: %+v", fired)
		}
		var alertsBody struct {
			Alerts []struct {
				ID    string `json:"id"`
				Queue string `json:"queue"`
				State string `json:"state"`
			} `json:"alerts"`
		}
		srv.do(http.MethodGet, "/api/alerts", "", &alertsBody)
		found := false
		for _, a := range alertsBody.Alerts {
			found = found || (a.Queue == alerting && a.State == "firing" && a.ID == fired.Body.Alert.ID)
		}
		if !found {
			t.Fatalf("/api/alerts does not list the firing alert: %+v", alertsBody)
		}

		if _, err := b.ch.QueuePurge(alerting, false); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "a resolved webhook", func() bool { return len(hooks.forQueue(alerting)) >= 2 })
		resolved := hooks.forQueue(alerting)[1]
		if !resolved.SignatureOK || resolved.Body.Status != "resolved" || resolved.Body.Alert.ID != fired.Body.Alert.ID || resolved.Delivery == fired.Delivery {
			t.Fatalf("unexpected resolved notification: %+v", resolved)
		}
		// Let several more polls pass: nothing else may arrive.
		polls := 0
		var last string
		eventually(t, 30*time.Second, "four more polls", func() bool {
			var body struct {
				PolledAt string `json:"polled_at"`
			}
			srv.do(http.MethodGet, "/api/queues", "", &body)
			if body.PolledAt != last {
				last = body.PolledAt
				polls++
			}
			return polls > 4
		})
		if n := len(hooks.forQueue(alerting)); n != 2 {
			t.Fatalf("want exactly 2 notifications (firing, resolved), got %d: %+v", n, hooks.forQueue(alerting))
		}
	})
}

func TestEndToEndOddQueueNames(t *testing.T) {
	b := newBroker(t)
	base := uniqueName("e2e odd")
	names := []string{base + " space", base + "/slash", base + "#hash", base + "?q", base + "+plus", base + "<b>bold</b>", base + "/é ü 漢"}
	for i, n := range names {
		b.declare(n)
		b.publish(n, i+1)
	}
	srv := startServer(t, "")
	eventually(t, 30*time.Second, "every odd queue with its depth in /api/queues", func() bool {
		qs := srv.queues()
		for i, n := range names {
			q, ok := qs["/\x00"+n]
			if !ok || q.Messages == nil || *q.Messages != int64(i+1) || q.Ready == nil || *q.Ready != int64(i+1) {
				return false
			}
		}
		return true
	})
}
