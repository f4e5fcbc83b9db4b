package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"warren/alerts"
	"warren/monitor"
)

// mgmtReq sends a request to the real management API as guest.
func mgmtReq(t *testing.T, method, path string, body any) {
	t.Helper()
	var buf bytes.Buffer
	if body != nil {
		if err := json.NewEncoder(&buf).Encode(body); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://127.0.0.1:15672"+path, &buf)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("guest", "guest")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	resp.Body.Close()
	if resp.StatusCode > 299 {
		t.Fatalf("%s %s: HTTP %d", method, path, resp.StatusCode)
	}
}

// snapshotCounter counts the snapshots it observes, failed ones apart.
type snapshotCounter struct {
	mu       sync.Mutex
	ok, fail int
	lastErr  error
}

func (c *snapshotCounter) ObserveSnapshot(_ context.Context, s monitor.Snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.Err != nil {
		c.fail++
		c.lastErr = s.Err
	} else {
		c.ok++
	}
}

func (c *snapshotCounter) failed() (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fail, c.lastErr
}

// TestPasswordChangedMidRun: a monitoring user's password is changed while
// warren polls with it. The polls then fail as "credentials rejected", write
// no samples, and the alert that was firing stays open.
func TestPasswordChangedMidRun(t *testing.T) {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	user := fmt.Sprintf("warren-monitor-%x", b)
	queue := fmt.Sprintf("warren-password-%x", b)
	pw1, pw2 := fmt.Sprintf("first-%x", b), fmt.Sprintf("second-%x", b)
	userPath := "/api/users/" + url.PathEscape(user)
	mgmtReq(t, http.MethodPut, userPath, map[string]string{"password": pw1, "tags": "monitoring"})
	t.Cleanup(func() { mgmtReq(t, http.MethodDelete, userPath, nil) })
	mgmtReq(t, http.MethodPut, "/api/permissions/%2F/"+url.PathEscape(user), map[string]string{"configure": "", "write": "", "read": ".*"})

	conn, err := amqp.Dial("amqp://guest:guest@127.0.0.1:5672/")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.QueueDelete(queue, false, false, false) })
	for i := range 3 {
		if err := ch.Publish("", queue, true, false, amqp.Publishing{Body: fmt.Appendf(nil, "%d", i)}); err != nil {
			t.Fatal(err)
		}
	}

	s, _ := openTest(t)
	limits := monitor.Thresholds{Default: monitor.Level{Warning: 1000, Critical: 2000},
		Queues: map[string]monitor.Level{queue: {Warning: 2, Critical: 100}}}
	ev := alerts.NewEvaluator(s, nil, nil, alerts.WithThresholds(limits))
	if err := ev.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
	counter := &snapshotCounter{}
	p, err := monitor.NewPoller(monitor.PollerConfig{
		URL: "http://127.0.0.1:15672", Username: user, Password: pw1,
		Interval: 100 * time.Millisecond, Thresholds: limits,
	}, s, []monitor.Observer{ev, counter}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("poller Run: %v", err)
		}
	}()

	firing := func() bool {
		act, err := s.ActiveAlerts(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range act {
			if a.Queue == queue && a.Vhost == "/" {
				return true
			}
		}
		return false
	}
	eventually(t, 30*time.Second, firing)

	mgmtReq(t, http.MethodPut, userPath, map[string]string{"password": pw2, "tags": "monitoring"})
	eventually(t, 30*time.Second, func() bool { n, _ := counter.failed(); return n >= 1 })
	// Writes happen before observers hear of a poll: every sample of the
	// good polls is in by now.
	rows := countRows(t, s, "SELECT count(*) FROM queue_samples")
	n0, _ := counter.failed()
	eventually(t, 30*time.Second, func() bool { n, _ := counter.failed(); return n >= n0+3 })
	if got := countRows(t, s, "SELECT count(*) FROM queue_samples"); got != rows {
		t.Errorf("failed polls wrote %d samples", got-rows)
	}
	_, lastErr := counter.failed()
	if !errors.Is(lastErr, monitor.ErrCredentialsRejected) {
		t.Errorf("failed poll error = %v, want credentials rejected", lastErr)
	}
	if err := p.Ready(t.Context()); !errors.Is(err, monitor.ErrCredentialsRejected) {
		t.Errorf("Ready = %v, want credentials rejected", err)
	}
	if !firing() {
		t.Error("the alert was resolved by failed polls")
	}
	for _, pw := range []string{pw1, pw2} {
		if bytes.Contains([]byte(lastErr.Error()), []byte(pw)) {
			t.Error("the error holds a password")
		}
	}
}
