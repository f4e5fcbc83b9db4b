package monitor

// More tests against the real RabbitMQ (see broker_test.go). Vhosts, users,
// exchanges and bindings are created through the management API with the
// guest account and removed when the test ends.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// mgmt sends one request as guest. path is already escaped.
func mgmt(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	// Not t.Context(): cleanups run after it is cancelled.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, brokerMgmt+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("guest", "guest")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// mustMgmt is mgmt that fails the test on a non-2xx answer.
func mustMgmt(t *testing.T, method, path string, body any) []byte {
	t.Helper()
	status, out := mgmt(t, method, path, body)
	if status < 200 || status > 299 {
		t.Fatalf("%s %s: HTTP %d: %s", method, path, status, out)
	}
	return out
}

// createVhost creates a vhost, grants guest full rights in it and deletes it
// (with everything in it) when the test ends.
func createVhost(t *testing.T, name string) {
	t.Helper()
	seg := url.PathEscape(name)
	mustMgmt(t, http.MethodPut, "/api/vhosts/"+seg, map[string]any{})
	t.Cleanup(func() {
		if status, out := mgmt(t, http.MethodDelete, "/api/vhosts/"+seg, nil); status != http.StatusNoContent && status != http.StatusNotFound {
			t.Errorf("deleting vhost %q: HTTP %d %s", name, status, out)
		}
	})
	mustMgmt(t, http.MethodPut, "/api/permissions/"+seg+"/guest", map[string]string{"configure": ".*", "write": ".*", "read": ".*"})
}

// vhostChannel opens an AMQP channel on vhost.
func vhostChannel(t *testing.T, vhost string) *amqp.Channel {
	t.Helper()
	conn, err := amqp.Dial("amqp://guest:guest@127.0.0.1:5672/" + url.PathEscape(vhost))
	if err != nil {
		t.Fatalf("connecting to vhost %q: %v", vhost, err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func TestBrokerVhostsAndManyQueues(t *testing.T) {
	suffix := randSuffix(t)
	vPlain, vSlash := "warren-"+suffix, "warren/"+suffix+"/inner"
	createVhost(t, vPlain)
	createVhost(t, vSlash)
	same := "warren-same-" + suffix
	want := map[string]int{"/": 1, vPlain: 2, vSlash: 3}
	for vhost, n := range want {
		ch := vhostChannel(t, vhost)
		if _, err := ch.QueueDeclare(same, false, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if err := ch.Publish("", same, true, false, amqp.Publishing{Body: fmt.Appendf(nil, "%d", i)}); err != nil {
				t.Fatal(err)
			}
		}
		if vhost == "/" {
			t.Cleanup(func() { ch.QueueDelete(same, false, false, false) })
		}
	}

	// 1,234 queues in "/", declared without waiting on one channel; the
	// passive declare of the last one waits for all of them.
	ch := vhostChannel(t, "/")
	prefix := "warren-many-" + suffix + "-"
	const many = 1234
	names := make([]string, many)
	for i := range names {
		names[i] = fmt.Sprintf("%s%04d", prefix, i)
		if _, err := ch.QueueDeclare(names[i], false, false, false, true, nil); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, n := range names {
			ch.QueueDelete(n, false, false, true)
		}
		// A synchronous call after the no-wait deletes waits for them.
		if _, err := ch.QueueDeclarePassive(same, false, false, false, false, nil); err != nil {
			t.Logf("sync after deletes: %v", err)
		}
	})
	if _, err := ch.QueueDeclarePassive(names[many-1], false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}

	p := brokerPoller(t, PollerConfig{}, nil)
	queues, stats, err := p.listQueues(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if stats.pages < 3 {
		t.Errorf("read %d pages of 500 for at least %d queues, want >= 3", stats.pages, many)
	}
	for _, n := range names {
		if _, c := find(queues, "/", n); c != 1 {
			t.Fatalf("%q listed %d times, want once", n, c)
		}
	}
	eventually(t, statsWait, func() bool {
		snap := p.runOnce(t.Context())
		if snap.Err != nil {
			t.Fatal(snap.Err)
		}
		for vhost, n := range want {
			q, c := find(snap.Queues, vhost, same)
			if c != 1 || q.Messages == nil || *q.Messages != int64(n) {
				return false
			}
		}
		return true
	})
}

// hookTransport calls after once, after the first answer whose body
// contains marker (the page a given queue is on).
type hookTransport struct {
	base   http.RoundTripper
	marker []byte
	after  func()
	once   sync.Once
}

func (h *hookTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := h.base.RoundTrip(r)
	if err != nil || r.URL.Path != "/api/queues" {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if bytes.Contains(body, h.marker) {
		h.once.Do(h.after)
	}
	return resp, nil
}

func TestBrokerQueueCreatedAndDeletedMidPoll(t *testing.T) {
	b := newTestBroker(t)
	prefix := "warren-midpoll-" + randSuffix(t) + "-"
	var names []string
	for i := range 30 {
		n := fmt.Sprintf("%s%02d", prefix, i)
		b.declare(n)
		names = append(names, n)
	}
	doomed, born := names[3], prefix+"new"
	p := brokerPoller(t, PollerConfig{PageSize: 10}, nil)
	// A first poll, so the poller knows which queues existed.
	if snap := p.runOnce(t.Context()); snap.Err != nil {
		t.Fatal(snap.Err)
	}
	p.base = &hookTransport{
		base:   p.base,
		marker: []byte(`"` + doomed + `"`),
		// Right after the page holding doomed is read: it goes, and a queue
		// sorted after every other one comes. The total stays the same, the
		// later pages shift left by one, and the queue pushed onto the page
		// already read is found only by the recheck of queues missing since
		// the last poll.
		after: func() {
			if _, err := b.ch.QueueDelete(doomed, false, false, false); err != nil {
				t.Errorf("deleting %q: %v", doomed, err)
			}
			if _, err := b.ch.QueueDeclare(born, true, false, false, false, nil); err != nil {
				t.Errorf("declaring %q: %v", born, err)
			}
			t.Cleanup(func() { b.ch.QueueDelete(born, false, false, false) })
		},
	}
	snap := p.runOnce(t.Context())
	if snap.Err != nil {
		t.Fatal(snap.Err)
	}
	// How the listing got there (a restart because the total changed, or
	// the recheck of queues missing since the last poll) depends on what
	// other tests do on the shared broker at the same time, so only the
	// outcome is asserted: the queue pushed onto the page already read is
	// among those listed exactly once below.
	// Every queue that existed throughout is listed exactly once; the
	// doomed one may still be (it existed when page 1 was read).
	for _, n := range names {
		if _, c := find(snap.Queues, "/", n); c != 1 && n != doomed {
			t.Errorf("%q listed %d times, want once", n, c)
		}
	}
	if _, c := find(snap.Queues, "/", born); c > 1 {
		t.Errorf("new queue %q listed %d times", born, c)
	}
	// The next poll is exact.
	snap = p.runOnce(t.Context())
	if snap.Err != nil {
		t.Fatal(snap.Err)
	}
	if _, c := find(snap.Queues, "/", doomed); c != 0 {
		t.Errorf("deleted queue %q listed %d times", doomed, c)
	}
	if _, c := find(snap.Queues, "/", born); c != 1 {
		t.Errorf("new queue %q listed %d times, want once", born, c)
	}
	// The doomed queue is gone: do not fail its cleanup.
	b.declare(doomed)
}

// recordingTransport keeps the escaped path of every request as sent.
type recordingTransport struct {
	base  http.RoundTripper
	mu    sync.Mutex
	paths []string
}

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.paths = append(r.paths, req.URL.EscapedPath())
	r.mu.Unlock()
	return r.base.RoundTrip(req)
}

// TestBrokerExactPaths checks, on the wire and against the real broker, that
// a vhost and names holding '/', ' ', '+', '?', '#', '%' and non-ASCII are
// each sent as exactly one path segment, and that the broker finds them.
func TestBrokerExactPaths(t *testing.T) {
	suffix := randSuffix(t)
	vhost := "warren/" + suffix + " x+y?#%ü"
	exchange := "dlx/ a+b?#%é"
	parked := "parked/ +?#%日本"
	createVhost(t, vhost)
	vseg := "warren%2F" + suffix + "%20x%2By%3F%23%25%C3%BC"
	xseg := "dlx%2F%20a%2Bb%3F%23%25%C3%A9"
	qseg := "parked%2F%20%2B%3F%23%25%E6%97%A5%E6%9C%AC"
	// Set up through the management API with hand-escaped paths.
	mustMgmt(t, http.MethodPut, "/api/exchanges/"+vseg+"/"+xseg, map[string]any{"type": "direct", "durable": false})
	mustMgmt(t, http.MethodPut, "/api/queues/"+vseg+"/"+qseg, map[string]any{"durable": false})
	mustMgmt(t, http.MethodPut, "/api/queues/"+vseg+"/work", map[string]any{"durable": false,
		"arguments": map[string]any{"x-dead-letter-exchange": exchange, "x-dead-letter-routing-key": "failed"}})
	mustMgmt(t, http.MethodPost, "/api/bindings/"+vseg+"/e/"+xseg+"/q/"+qseg, map[string]any{"routing_key": "failed"})

	rec := &recordingTransport{base: http.DefaultTransport}
	p := brokerPoller(t, PollerConfig{}, nil)
	p.base = rec
	snap := p.runOnce(t.Context())
	if snap.Err != nil {
		t.Fatal(snap.Err)
	}
	wantPath := "/api/exchanges/" + vseg + "/" + xseg + "/bindings/source"
	if !slices.Contains(rec.paths, wantPath) {
		t.Errorf("no request for %s in %v", wantPath, rec.paths)
	}
	q, c := find(snap.Queues, vhost, parked)
	if c != 1 || !q.IsDeadLetter {
		t.Errorf("%q in %q: listed %d times, IsDeadLetter %v (the broker did not resolve the escaped path?)", parked, vhost, c, q.IsDeadLetter)
	}
	if w, _ := find(snap.Queues, vhost, "work"); w.DeadLetterExchange == nil || *w.DeadLetterExchange != exchange {
		t.Errorf("work's dead-letter exchange = %v", w.DeadLetterExchange)
	}

	// The same path builder for a queue: the broker answers with that queue.
	body, err := p.get(t.Context(), "queue", apiPath("queues", vhost, parked), nil)
	if err != nil {
		t.Fatal(err)
	}
	var got struct{ Name, Vhost string }
	if err := json.Unmarshal(body, &got); err != nil || got.Name != parked || got.Vhost != vhost {
		t.Errorf("queue answer %+v, %v", got, err)
	}
	if last := rec.paths[len(rec.paths)-1]; last != "/api/queues/"+vseg+"/"+qseg {
		t.Errorf("queue path = %s, want /api/queues/%s/%s", last, vseg, qseg)
	}
	for _, p := range rec.paths {
		if strings.Contains(p, "+") || strings.Contains(p, " ") {
			t.Errorf("path %q holds an unescaped character", p)
		}
	}
}
