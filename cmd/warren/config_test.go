package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "warren.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func noEnv(string) string { return "" }

func TestLoadConfigDefaults(t *testing.T) {
	cfg, err := loadConfig("", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:8080" || cfg.Management.PollInterval.D() != 5*time.Second || cfg.Health.QueueCriticalThreshold != 50000 {
		t.Fatalf("unexpected defaults: %+v", cfg)
	}
	if len(cfg.Consumers) != 0 {
		t.Fatalf("no consumers by default, got %d", len(cfg.Consumers))
	}
}

func TestLoadConfigStoreRetention(t *testing.T) {
	cfg, err := loadConfig("", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if st := cfg.Store; st.RawRetention.D() != 6*time.Hour || st.MinuteRetention.D() != 7*24*time.Hour || st.HourRetention.D() != 90*24*time.Hour {
		t.Errorf("retention defaults: %+v", st)
	}
	// store.retention is still accepted, as the old name of raw_retention.
	cfg, err = loadConfig(writeConfig(t, "store: {retention: 2h, minute_retention: 48h, hour_retention: 720h}\n"), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if st := cfg.Store; st.RawRetention.D() != 2*time.Hour || st.MinuteRetention.D() != 48*time.Hour || st.HourRetention.D() != 720*time.Hour {
		t.Errorf("retention from file: %+v", st)
	}
	cfg, err = loadConfig(writeConfig(t, "store: {retention: 3h, raw_retention: 3h}\n"), noEnv)
	if err != nil || cfg.Store.RawRetention.D() != 3*time.Hour {
		t.Errorf("both names with one value: %v, %+v", err, cfg.Store)
	}
}

func TestLoadConfigExampleFile(t *testing.T) {
	cfg, err := loadConfig("../../warren.example.yaml", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Consumers) != 1 || cfg.Consumers[0].Name != "demo" || cfg.Consumers[0].Handler.Duration.D() != 50*time.Millisecond {
		t.Fatalf("example consumer not read: %+v", cfg.Consumers)
	}
	if l := cfg.Health.Queues["demo"]; l.Warning != 1000 || l.Critical != 5000 {
		t.Fatalf("per-queue thresholds not read: %+v", cfg.Health.Queues)
	}
}

func TestLoadConfigEnvOverrides(t *testing.T) {
	env := map[string]string{"WARREN_LISTEN": "[::1]:9090", "WARREN_DB": "/tmp/x.db", "WARREN_AMQP_URL": "amqp://u:p@127.0.0.1:5673/v", "WARREN_MANAGEMENT_URL": "http://127.0.0.1:1"}
	cfg, err := loadConfig(writeConfig(t, "listen: 127.0.0.1:1234\n"), func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "[::1]:9090" || cfg.Store.Path != "/tmp/x.db" || cfg.AMQPURL != env["WARREN_AMQP_URL"] || cfg.Management.URL != env["WARREN_MANAGEMENT_URL"] {
		t.Fatalf("env not applied: %+v", cfg)
	}
}

func TestLoadConfigErrorsNameTheKey(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"invalid yaml", "listen: [\n", "invalid YAML"},
		{"unknown top-level key", "listne: 127.0.0.1:1\n", "key listne (line 1): unknown key"},
		{"unknown nested key", "consumers:\n  - name: a\n    handler: {type: sleep, duratoin: 1s}\n", "key consumers[0].handler.duratoin"},
		{"bad duration", "management:\n  poll_interval: fast\n", `key management.poll_interval (line 2): want a duration such as 5s or 1m30s, got "fast"`},
		{"duration without unit", "management:\n  timeout: 10\n", "key management.timeout"},
		{"negative duration", "consumers:\n  - name: a\n    handler: {type: sleep, duration: -1s}\n", "key consumers[0].handler.duration"},
		{"not a number", "consumers:\n  - name: a\n    max_concurrent_messages: ten\n", `key consumers[0].max_concurrent_messages (line 3): want a whole number, got "ten"`},
		{"zero concurrency", "consumers:\n  - name: a\n    max_concurrent_messages: -1\n", "key consumers[0].max_concurrent_messages"},
		{"prefetch above max", "consumers:\n  - name: a\n    prefetch_count: 70000\n", "key consumers[0].prefetch_count"},
		{"duplicate consumer", "consumers:\n  - name: a\n  - name: a\n", "key consumers[1].name"},
		{"consumer name unsafe", "consumers:\n  - name: 'a b'\n", "key consumers[0].name"},
		{"unknown handler", "consumers:\n  - name: a\n    handler: {type: shell}\n", "key consumers[0].handler.type"},
		{"dead-letter queue is the queue", "consumers:\n  - name: a\n    dead_letter_queue: a\n", "key consumers[0].dead_letter_queue"},
		{"breaker threshold", "consumers:\n  - name: a\n    circuit_breaker: {failure_threshold: -1}\n", "key consumers[0].circuit_breaker.failure_threshold"},
		{"breaker unknown key", "consumers:\n  - name: a\n    circuit_breaker: {cooldown: 1s}\n", "key consumers[0].circuit_breaker.cooldown"},
		{"throttle above max_concurrency", "consumers:\n  - name: a\n    max_concurrency: 5\n    max_concurrent_messages: 5\n    throttle: {max_concurrent: 6}\n", "key consumers[0].throttle.max_concurrent"},
		{"negative handler timeout", "consumers:\n  - name: a\n    handler_timeout: -1s\n", "key consumers[0].handler_timeout"},
		{"http handler without url", "consumers:\n  - name: a\n    handler: {type: http}\n", "key consumers[0].handler.url"},
		{"critical below warning", "health:\n  queue_warning_threshold: 10\n  queue_critical_threshold: 5\n", "key health.queue_critical_threshold"},
		{"per-queue levels", "health:\n  queues:\n    orders: {warning: 0, critical: 5}\n", `key health.queues["orders"].warning`},
		{"duplicate key", "listen: 127.0.0.1:1\nlisten: 127.0.0.1:2\n", "given twice"},
		{"non-loopback listen", "listen: 0.0.0.0:8080\n", "key listen (line 1): refusing to listen on a non-loopback address"},
		{"bad amqp url", "amqp_url: http://x\n", "key amqp_url"},
		{"webhook format", "alerts:\n  webhooks:\n    - {name: a, url: 'http://127.0.0.1/x', format: xml}\n", "key alerts.webhooks[0].format"},
		{"webhook url", "alerts:\n  webhooks:\n    - {name: a, url: 'ftp://x'}\n", "key alerts.webhooks[0].url"},
		// The path of a Slack-style URL is its key: the message does not repeat it.
		{"webhook url not echoed", "alerts:\n  webhooks:\n    - {name: a, url: 'hooks.slack.example/services/T0/s3cret'}\n",
			"key alerts.webhooks[0].url (line 3): must be an absolute http:// or https:// URL (the value is not repeated"},
		{"management url with credentials", "management: {url: 'http://u:secret@127.0.0.1:15672'}\n", "key management.url (line 1): must not hold credentials"},
		{"allowed host with port", "allowed_hosts: [warren.internal:8080]\n", "key allowed_hosts[0]"},
		{"list instead of map", "management: [1, 2]\n", "key management (line 1): want a mapping"},
		{"raw retention too short", "store: {raw_retention: 1m}\n", "key store.raw_retention"},
		{"old retention name too short", "store: {retention: 1m}\n", "key store.raw_retention: must be at least 5m (store.retention is its old name)"},
		{"retention alias contradicts", "store: {retention: 2h, raw_retention: 3h}\n", "key store.retention (line 1): is the old name of store.raw_retention"},
		{"minute retention too short", "store: {minute_retention: 1h}\n", "key store.minute_retention"},
		{"hour retention too short", "store: {hour_retention: 10m}\n", "key store.hour_retention"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConfig(writeConfig(t, tc.yaml), noEnv)
			if err == nil {
				t.Fatalf("want an error containing %q, got none", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestServeRefusesBadConfigBeforeStarting(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "never.db")
	p := writeConfig(t, "store: {path: "+db+"}\nconsumers:\n  - name: a\n    prefetch_count: zero\n")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"warren", "serve", "--config", p}, noEnv, &stdout, &stderr)
	if code != 1 {
		t.Fatalf("exit code %d, want 1; stderr: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "consumers[0].prefetch_count") {
		t.Fatalf("stderr does not name the key: %s", stderr.String())
	}
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Fatalf("a bad config must start nothing, but the store file exists (err=%v)", err)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"amqp://guest:secret@127.0.0.1:5672/": "amqp://guest:***@127.0.0.1:5672/",
		"http://127.0.0.1:15672":              "http://127.0.0.1:15672",
		"amqp://user@host/":                   "amqp://user@host/",
		"http://x:y@[::1]:1/?q":               "http://x:***@[::1]:1/?q",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestServeFailsOnBusyPortBeforeCreatingStore(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	db := filepath.Join(t.TempDir(), "never.db")
	p := writeConfig(t, "listen: "+busy.Addr().String()+"\nstore: {path: "+db+"}\n")
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"warren", "serve", "--config", p}, noEnv, io.Discard, &stderr); code != 1 {
		t.Fatalf("exit code %d, want 1; stderr: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "address already in use") {
		t.Fatalf("stderr does not say why: %s", stderr.String())
	}
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Fatalf("the store was created although start-up failed (err=%v)", err)
	}
}

func TestCommandLineErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"warren"}, 2, "Usage:"},
		{[]string{"warren", "frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"warren", "loadgen"}, 2, "--queue is required"},
		{[]string{"warren", "loadgen", "--queue", "q", "--rate", "-5"}, 2, `invalid value "-5" for flag -rate: want messages per second (a number, 0 or more) or max`},
		{[]string{"warren", "loadgen", "--queue", "q", "--duration", "soon"}, 2, "invalid value \"soon\" for flag -duration"},
		{[]string{"warren", "serve", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"warren", "serve", "--config", "/nonexistent/warren.yaml"}, 1, "reading config"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stderr bytes.Buffer
			code := run(context.Background(), tc.args, noEnv, io.Discard, &stderr)
			if code != tc.code || !strings.Contains(stderr.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, stderr.String(), tc.code, tc.want)
			}
		})
	}
}

// A 0 written in the file for a key whose zero means "use the default" is
// refused (it used to run silently with the default), and a range error
// found after decoding names the key's line (a trial found both).
func TestExplicitZeroAndRangeErrorsNameTheLine(t *testing.T) {
	consumer := "consumers:\n  - name: c\n    queue: q\n"
	for _, tc := range []struct{ name, yaml, want string }{
		{"prefetch 0", consumer + "    prefetch_count: 0\n", "key consumers[0].prefetch_count (line 4): must be at least 1, got 0"},
		{"concurrency 0", consumer + "    max_concurrent_messages: 0\n", "key consumers[0].max_concurrent_messages (line 4): must be at least 1, got 0"},
		{"handler timeout 0", consumer + "    handler_timeout: 0s\n", "key consumers[0].handler_timeout (line 4): must be positive, got 0"},
		{"webhook timeout 0", "alerts:\n  webhooks:\n    - {name: a, url: 'http://127.0.0.1:9/x', timeout: 0s}\n", "key alerts.webhooks[0].timeout (line 3): must be positive, got 0"},
		{"negative concurrency", consumer + "    max_concurrent_messages: -5\n", "key consumers[0].max_concurrent_messages (line 4): must be between 1"},
		{"probe queues out of range", "management:\n  probe_queues: -3\n", "key management.probe_queues (line 2): must be between 0 (off) and 10000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConfig(writeConfig(t, tc.yaml), noEnv)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	// Keys left out still take their defaults.
	cfg, err := loadConfig(writeConfig(t, consumer), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c := cfg.Consumers[0]; c.PrefetchCount != 10 || c.MaxConcurrentMessages != 10 {
		t.Errorf("defaults: prefetch %d concurrency %d, want 10 and 10", c.PrefetchCount, c.MaxConcurrentMessages)
	}
}
