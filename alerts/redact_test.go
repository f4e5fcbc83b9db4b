package alerts_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"warren/alerts"
)

// lockedBuffer collects log output written from several goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A webhook URL's userinfo, path, query and fragment may each be the
// credential (a Slack URL's path is its key): none of them may reach the
// log, the delivery log, the outbox or a test-send answer, whether the
// receiver answers 2xx, answers 503 echoing the path, or is down.
func TestWebhookURLSecretsNeverLoggedOrStored(t *testing.T) {
	const password, token, pathSecret, fragment = "hunter2pw", "tok3nabc", "s3cretpath", "fr4gment"
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(ok.Close)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Some receivers echo the request back in their error page.
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintf(w, "no route for %s?%s", r.URL.Path, r.URL.RawQuery)
	}))
	t.Cleanup(failing.Close)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downAddr := closed.Addr().String()
	_ = closed.Close()

	secretURL := func(base string) string {
		return strings.Replace(base, "http://", "http://user:"+password+"@", 1) +
			"/hook/" + pathSecret + "?token=" + token + "#" + fragment
	}
	hooks := []alerts.WebhookConfig{
		{Name: "ok", URL: ok.URL + "/hook/" + pathSecret, Format: "slack", Timeout: 5 * time.Second},
		{Name: "failing", URL: secretURL(failing.URL), Format: "generic", Timeout: 5 * time.Second},
		{Name: "down", URL: secretURL("http://" + downAddr), Format: "generic", Timeout: 5 * time.Second},
	}

	dbPath := filepath.Join(t.TempDir(), "warren.db")
	st := openStore(t, dbPath)
	t.Cleanup(func() { _ = st.Close() })
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)
	a := alerts.Alert{ID: "secret-1", Rule: alerts.RuleQueueDepth, Severity: alerts.SeverityWarning, State: alerts.StateFiring,
		Vhost: "/", Queue: "orders", Value: 12, Threshold: 10, StartedAt: now}
	var outbox []alerts.Notification
	for _, h := range hooks {
		outbox = append(outbox, alerts.Notification{DeliveryID: "secret-1-" + h.Name, Webhook: h.Name,
			Status: alerts.StateFiring, Alert: a, CreatedAt: now})
	}
	if err := st.RecordTransition(ctx, a, outbox); err != nil {
		t.Fatalf("RecordTransition: %v", err)
	}

	var logs lockedBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d, err := alerts.NewDispatcher(st, hooks, logger,
		alerts.WithBackoff(2*time.Millisecond, 20*time.Millisecond), alerts.WithPollInterval(20*time.Millisecond))
	if err != nil {
		t.Fatalf("NewDispatcher: %v", err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()

	// Two failed attempts of each failing webhook, and the delivery.
	eventually(t, 10*time.Second, "delivery and retries", func() bool {
		rows, err := st.DeliveryLog(ctx, 1000)
		if err != nil {
			t.Fatalf("DeliveryLog: %v", err)
		}
		count := map[string]int{}
		for _, r := range rows {
			count[r.Webhook+" "+r.Outcome]++
		}
		return count["ok delivered"] == 1 && count["failing retry"] >= 2 && count["down retry"] >= 2
	})
	var tests []alerts.Attempt
	for _, h := range hooks {
		at, err := d.SendTest(ctx, h.Name)
		if err != nil {
			t.Fatalf("SendTest(%s): %v", h.Name, err)
		}
		tests = append(tests, at)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run returned %v", err)
	}

	secrets := []string{password, token, pathSecret, fragment, "user:"}
	noSecret := func(where, text string) {
		t.Helper()
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s contains %q:\n%s", where, s, text)
			}
		}
	}

	logText := logs.String()
	t.Log(logText)
	noSecret("log output", logText)
	for _, want := range []string{
		"url=" + ok.URL + "/***",
		"url=http://***@" + strings.TrimPrefix(failing.URL, "http://") + "/***?***#***",
		`msg="webhook delivered"`, "503 Service Unavailable", "refused",
	} {
		if !strings.Contains(logText, want) {
			t.Errorf("log output lacks %q", want)
		}
	}

	rows, err := st.DeliveryLog(ctx, 1000)
	if err != nil {
		t.Fatalf("DeliveryLog: %v", err)
	}
	for _, r := range rows {
		noSecret("delivery log row of "+r.Webhook, r.Error)
		if r.Webhook == "failing" && r.Outcome == "retry" && !strings.Contains(r.Error, `webhook "failing" at http://***@`+strings.TrimPrefix(failing.URL, "http://")+"/***?***#***") {
			t.Errorf("delivery log error %q should name the redacted URL", r.Error)
		}
	}

	if tests[0].Outcome != "delivered" || tests[1].Outcome != "abandoned" || tests[2].Outcome != "abandoned" {
		t.Errorf("test sends = %+v, want delivered, abandoned, abandoned", tests)
	}
	for _, at := range tests {
		noSecret("test send to "+at.Webhook, at.Error)
	}
	if !strings.Contains(tests[1].Error, "no route for ***?***") || !strings.Contains(tests[2].Error, "http://***@"+downAddr+"/***?***#***") {
		t.Errorf("test send errors %q and %q should show the scrubbed echo and the redacted URL", tests[1].Error, tests[2].Error)
	}

	// Nothing anywhere in the database: outbox errors, abandon reasons, the
	// delivery log.
	_ = st.Close()
	dumpDatabase(t, dbPath, noSecret)
}

// A transport error still carries a *url.Error for callers that look for
// one, but with the redacted URL.
func TestNotifierTransportErrorKeepsRedactedURLError(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := closed.Addr().String()
	_ = closed.Close()
	n, err := alerts.NewNotifier(alerts.WebhookConfig{Name: "down", URL: "http://" + addr + "/services/T0/B0/k3y?x=1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	retry, err := n.Notify(context.Background(), testNotification())
	var uerr *url.Error
	if !retry || !errors.As(err, &uerr) {
		t.Fatalf("Notify = (retry %v, %v), want a retried *url.Error", retry, err)
	}
	if want := "http://" + addr + "/***?***"; uerr.URL != want {
		t.Errorf("url.Error.URL = %q, want %q", uerr.URL, want)
	}
	if s := uerr.Error() + err.Error(); strings.Contains(s, "k3y") || strings.Contains(s, "x=1") {
		t.Errorf("error text %q holds the URL's path or query", s)
	}
}

// dumpDatabase hands every text value of every table of the SQLite file at
// path to check.
func dumpDatabase(t *testing.T, path string, check func(where, text string)) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	names, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'table'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for names.Next() {
		var name string
		if err := names.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	_ = names.Close()
	if len(tables) == 0 {
		t.Fatal("no tables in the database")
	}
	for _, table := range tables {
		rows, err := db.Query(`SELECT * FROM "` + table + `"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for i, v := range vals {
				switch v := v.(type) {
				case string:
					check(table+"."+cols[i], v)
				case []byte:
					check(table+"."+cols[i], string(v))
				}
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		_ = rows.Close()
	}
}
