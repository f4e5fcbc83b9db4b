package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"warren/web"
)

func testHash(t *testing.T, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func TestLoadConfigAuth(t *testing.T) {
	hash := testHash(t, "pw")
	users := fmt.Sprintf("auth:\n  users:\n    - {name: ana, password_hash: '%s', role: operator}\n    - {name: vic, password_hash: '%s', role: viewer}\n", hash, hash)

	t.Run("non-loopback listen needs auth", func(t *testing.T) {
		for _, listen := range []string{"0.0.0.0:8080", "192.0.2.1:8080", ":8080", "[::]:8080"} {
			_, err := loadConfig(writeConfig(t, "listen: '"+listen+"'\n"), noEnv)
			if err == nil || !strings.Contains(err.Error(), "key listen (line 1): refusing to listen on a non-loopback address: no authentication is configured") {
				t.Errorf("listen %s without auth: %v", listen, err)
			}
			cfg, err := loadConfig(writeConfig(t, "listen: '"+listen+"'\n"+users), noEnv)
			if err != nil || cfg.Listen != listen {
				t.Errorf("listen %s with users: %v", listen, err)
			}
			_, err = loadConfig(writeConfig(t, "listen: '"+listen+"'\nauth: {proxy: {trusted_proxies: [10.0.0.5]}}\n"), noEnv)
			if err != nil {
				t.Errorf("listen %s with a trusted proxy: %v", listen, err)
			}
		}
		// The environment override is checked the same way.
		env := func(k string) string { return map[string]string{"WARREN_LISTEN": "0.0.0.0:9000"}[k] }
		if _, err := loadConfig(writeConfig(t, "log: {level: info}\n"), env); err == nil {
			t.Error("WARREN_LISTEN=0.0.0.0:9000 without auth was accepted")
		}
	})

	t.Run("converted for the web server", func(t *testing.T) {
		cfg, err := loadConfig(writeConfig(t, users+"  proxy: {user_header: x-remote-user, trusted_proxies: [127.0.0.1, '10.0.0.0/8']}\n"), noEnv)
		if err != nil {
			t.Fatal(err)
		}
		a := cfg.Auth.webAuth()
		if len(a.Users) != 2 || a.Users[0].Role != web.RoleOperator || a.Users[1].Role != web.RoleViewer || a.Users[0].PasswordHash != hash {
			t.Errorf("users: %+v", a.Users)
		}
		if p := a.Proxy; p == nil || p.UserHeader != "X-Remote-User" || p.RoleHeader != "X-Warren-Role" || p.DefaultRole != web.RoleViewer ||
			len(p.TrustedProxies) != 2 || p.TrustedProxies[0].String() != "127.0.0.1/32" || p.TrustedProxies[1].String() != "10.0.0.0/8" {
			t.Errorf("proxy: %+v", a.Proxy)
		}
		if none, _ := loadConfig("", noEnv); none.Auth.webAuth() != nil {
			t.Error("no auth section must mean no authentication")
		}
	})

	for _, tc := range []struct{ name, yaml, want string }{
		{"hash not bcrypt", "auth:\n  users:\n    - {name: a, password_hash: 'hunter2', role: viewer}\n", "key auth.users[0].password_hash (line 3): not a bcrypt hash"},
		{"hash missing", "auth:\n  users:\n    - {name: a, role: viewer}\n", "key auth.users[0].password_hash: is required"},
		{"second user bad hash", users + "    - {name: b, password_hash: '$2a$10$short', role: viewer}\n", "key auth.users[2].password_hash (line 5): not a bcrypt hash"},
		{"bad role", "auth:\n  users:\n    - {name: a, password_hash: '" + hash + "', role: admin}\n", `key auth.users[0].role (line 3): want viewer or operator, got "admin"`},
		{"role missing", "auth:\n  users:\n    - {name: a, password_hash: '" + hash + "'}\n", "key auth.users[0].role"},
		{"name missing", "auth:\n  users:\n    - {password_hash: '" + hash + "', role: viewer}\n", "key auth.users[0].name: is required"},
		{"name with colon", "auth:\n  users:\n    - {name: 'a:b', password_hash: '" + hash + "', role: viewer}\n", "key auth.users[0].name"},
		{"name twice", users + "    - {name: ana, password_hash: '" + hash + "', role: viewer}\n", "key auth.users[2].name (line 5): \"ana\" is used twice"},
		{"unknown key", "auth:\n  users:\n    - {name: a, password: x}\n", "key auth.users[0].password (line 3): unknown key"},
		{"proxy without trusted proxies", "auth: {proxy: {user_header: X-User}}\n", "key auth.proxy.trusted_proxies: is required"},
		{"proxy bad cidr", "auth: {proxy: {trusted_proxies: [127.0.0.1, 'nope/8']}}\n", "key auth.proxy.trusted_proxies[1]"},
		{"proxy bad header", "auth: {proxy: {user_header: 'X User', trusted_proxies: [127.0.0.1]}}\n", "key auth.proxy.user_header"},
		{"proxy bad default role", "auth: {proxy: {default_role: root, trusted_proxies: [127.0.0.1]}}\n", "key auth.proxy.default_role"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConfig(writeConfig(t, tc.yaml), noEnv)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), hash) || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error repeats the secret: %v", err)
			}
		})
	}
}

func TestServeRefusesNonLoopbackWithoutAuth(t *testing.T) {
	db := filepath.Join(t.TempDir(), "never.db")
	p := writeConfig(t, "listen: 0.0.0.0:0\nstore: {path: "+db+"}\n")
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"warren", "serve", "--config", p}, noEnv, io.Discard, &stderr); code != 1 {
		t.Fatalf("exit %d, want 1; stderr: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "refusing to listen on a non-loopback address: no authentication is configured") {
		t.Errorf("stderr does not say why: %s", stderr.String())
	}
	if _, err := os.Stat(db); !os.IsNotExist(err) {
		t.Errorf("the store was created although start-up was refused (err=%v)", err)
	}
}

func TestHashPasswordCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := runHashPassword(context.Background(), []string{"--cost", "4"}, strings.NewReader("correct horse\n"), &out, &errOut); err != nil {
		t.Fatal(err)
	}
	hash := strings.TrimSpace(out.String())
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte("correct horse")); err != nil {
		t.Fatalf("printed %q, which does not verify the password: %v", hash, err)
	}
	if cost, _ := bcrypt.Cost([]byte(hash)); cost != 4 {
		t.Errorf("cost %d, want 4", cost)
	}
	if strings.Contains(out.String()+errOut.String(), "correct horse") {
		t.Error("the password was printed")
	}
	// The hash is accepted by the config it is made for.
	if _, err := loadConfig(writeConfig(t, "auth:\n  users:\n    - {name: a, password_hash: '"+hash+"', role: operator}\n"), noEnv); err != nil {
		t.Errorf("config refuses the printed hash: %v", err)
	}

	if err := runHashPassword(context.Background(), nil, strings.NewReader(""), io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "no password on stdin") {
		t.Errorf("empty stdin: %v", err)
	}
	if err := runHashPassword(context.Background(), nil, strings.NewReader(strings.Repeat("x", 73)), io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "72 bytes") {
		t.Errorf("too long: %v", err)
	}
	if err := runHashPassword(context.Background(), []string{"--cost", "99"}, strings.NewReader("pw"), io.Discard, &errOut); err != errUsage {
		t.Errorf("bad cost: %v", err)
	}
}

// TestSettingsMaskEverySecret renders the settings page and JSON of a
// config full of secrets (file and environment) and looks for each of them.
func TestSettingsMaskEverySecret(t *testing.T) {
	hash := testHash(t, "user-pass")
	secrets := []string{"mgmt-S3cret", "env-amqp-S3cret", "file-amqp-S3cret", "hmac-S3cret", "slack-S3cret", "q-S3cret",
		"userinfo-S3cret", "hdr-S3cret", "tpl-S3cret", "http-handler-S3cret", hash, hash[7:29]}
	yaml := fmt.Sprintf(`
listen: 127.0.0.1:0
amqp_url: amqp://app:file-amqp-S3cret@127.0.0.1:5672/
management: {username: monitor, password: mgmt-S3cret}
consumers:
  - name: c1
    handler: {type: http, url: 'https://worker:http-handler-S3cret@worker.internal/handle?x=1'}
alerts:
  webhooks:
    - {name: generic, url: 'https://hooks.example/in', secret: hmac-S3cret}
    - {name: slack, url: 'https://hooks.slack.example/services/T00/B00/slack-S3cret?token=q-S3cret', format: slack}
    - {name: basic, url: 'https://bob:userinfo-S3cret@alerts.example/x', headers: {Authorization: 'Bearer hdr-S3cret'}}
    - name: tpl
      url: https://pager.example/v2
      format: template
      template: '{"routing_key": "tpl-S3cret", "summary": {{json .Summary}}}'
auth:
  users:
    - {name: ana, password_hash: '%s', role: viewer}
`, hash)
	env := func(k string) string {
		return map[string]string{"WARREN_AMQP_URL": "amqp://app:env-amqp-S3cret@127.0.0.1:5672/prod"}[k]
	}
	cfg, err := loadConfig(writeConfig(t, yaml), env)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(web.New(web.Deps{Auth: cfg.Auth.webAuth(), Settings: settingsOf(cfg)}).Handler())
	t.Cleanup(srv.Close)
	get := func(path string) string {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		req.SetBasicAuth("ana", "user-pass")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s = %d %s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	page, api := get("/settings"), get("/api/settings")
	for _, s := range secrets {
		if strings.Contains(page, s) || strings.Contains(api, s) {
			t.Errorf("secret %q appears in the settings (page: %v, json: %v)", s, strings.Contains(page, s), strings.Contains(api, s))
		}
	}
	if regexp.MustCompile(`\$2[aby]\$`).MatchString(page + api) {
		t.Error("a bcrypt hash prefix appears in the settings")
	}

	var body struct {
		Settings []web.Setting `json:"settings"`
	}
	if err := json.Unmarshal([]byte(api), &body); err != nil {
		t.Fatal(err)
	}
	got := map[string]web.Setting{}
	for _, s := range body.Settings {
		got[s.Key] = s
	}
	for key, want := range map[string]string{
		"listen":                                      "127.0.0.1:0",
		"amqp_url":                                    "amqp://app:***@127.0.0.1:5672/prod", // the environment wins
		"management.username":                         "monitor",
		"management.password":                         "***",
		"management.poll_interval":                    "5s", // a default
		"consumers[0].prefetch_count":                 "10", // a default
		"consumers[0].handler.url":                    "https://worker:***@worker.internal/handle?***",
		"alerts.webhooks[0].secret":                   "***",
		"alerts.webhooks[0].url":                      "https://hooks.example/***",
		"alerts.webhooks[1].url":                      "https://hooks.slack.example/***?***",
		"alerts.webhooks[2].url":                      "https://***@alerts.example/***",
		`alerts.webhooks[2].headers["Authorization"]`: "***",
		"alerts.webhooks[3].template":                 "***",
		"auth.users[0].name":                          "ana",
		"auth.users[0].password_hash":                 "***",
		"auth.users[0].role":                          "viewer",
	} {
		if s, ok := got[key]; !ok || s.Value != want {
			t.Errorf("%s = %+v, want %q", key, s, want)
		}
	}
	if !got["management.password"].Masked || got["listen"].Masked {
		t.Error("masked flags are wrong")
	}
	if !strings.Contains(page, "management.password") || !strings.Contains(page, "127.0.0.1:0") {
		t.Error("the page does not show the settings")
	}
}

// TestViewerCannotChangeARealConsumer runs warren serve with two accounts
// and a real consumer on the real broker: the viewer reads everything, finds
// no controls, and every change it sends is refused with nothing changed;
// the operator's change applies and both land in the audit log.
func TestViewerCannotChangeARealConsumer(t *testing.T) {
	b := newBroker(t)
	q := uniqueName("auth-work")
	b.declare(q)
	srv := startServer(t, fmt.Sprintf(`
consumers:
  - name: worker
    queue: %q
    max_concurrent_messages: 2
    prefetch_count: 4
auth:
  users:
    - {name: vic, password_hash: '%s', role: viewer}
    - {name: ops, password_hash: '%s', role: operator}
`, q, testHash(t, "viewer-pw"), testHash(t, "operator-pw")))

	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	call := func(user, pass, method, path, contentType, body string, header map[string]string) (int, string) {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, srv.base+path, rd)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	state := func() (concurrency, prefetch int, st string) {
		var c apiConsumer
		code, raw := call("vic", "viewer-pw", http.MethodGet, "/api/consumers/worker", "", "", nil)
		if err := json.Unmarshal([]byte(raw), &c); code != 200 || err != nil {
			t.Fatalf("GET consumer as viewer: %d %v", code, err)
		}
		return c.Concurrency, c.Prefetch, c.State
	}
	eventually(t, 30*time.Second, "the consumer to run", func() bool { _, _, st := state(); return st == "running" })

	if code, _ := call("", "", http.MethodGet, "/api/consumers", "", "", nil); code != http.StatusUnauthorized {
		t.Errorf("no credentials: %d, want 401", code)
	}
	if code, _ := call("vic", "wrong", http.MethodGet, "/consumers", "", "", nil); code != http.StatusUnauthorized {
		t.Errorf("wrong password: %d, want 401", code)
	}

	code, page := call("vic", "viewer-pw", http.MethodGet, "/consumers", "", "", nil)
	if code != 200 || !strings.Contains(page, `data-consumer="worker"`) {
		t.Fatalf("viewer's consumers page: %d", code)
	}
	for _, control := range []string{"hx-post", "<button", `class="step`, "/ui/consumers/"} {
		if strings.Contains(page, control) {
			t.Errorf("viewer's page contains %q", control)
		}
	}
	token := regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)"`).FindStringSubmatch(page)
	if token == nil {
		t.Fatal("no CSRF token in the page")
	}
	csrf := map[string]string{"X-CSRF-Token": token[1]}
	for _, r := range []struct{ method, path, ct, body string }{
		{http.MethodPatch, "/api/consumers/worker", "application/json", `{"concurrency": 9, "prefetch": 40}`},
		{http.MethodPost, "/api/consumers/worker/pause", "application/json", ""},
		{http.MethodPost, "/ui/consumers/worker/concurrency", "application/x-www-form-urlencoded", "op=inc"},
		{http.MethodPost, "/ui/consumers/worker/pause", "application/x-www-form-urlencoded", ""},
	} {
		if code, body := call("vic", "viewer-pw", r.method, r.path, r.ct, r.body, csrf); code != http.StatusForbidden || !strings.Contains(body, "only an operator") {
			t.Errorf("viewer %s %s = %d %s, want 403", r.method, r.path, code, body)
		}
	}
	if c, p, st := state(); c != 2 || p != 4 || st != "running" {
		t.Fatalf("a viewer changed the consumer: concurrency %d prefetch %d state %s", c, p, st)
	}

	if code, body := call("ops", "operator-pw", http.MethodPatch, "/api/consumers/worker", "application/json", `{"concurrency": 3}`, nil); code != 200 {
		t.Fatalf("operator PATCH = %d %s", code, body)
	}
	if c, _, _ := state(); c != 3 {
		t.Fatalf("operator's change not applied: concurrency %d", c)
	}

	var audit struct {
		Entries []struct {
			Actor, Role, Action, Target, Outcome string
			Old                                  string `json:"old_value"`
			New                                  string `json:"new_value"`
		} `json:"entries"`
	}
	code, raw := call("vic", "viewer-pw", http.MethodGet, "/api/audit", "", "", nil)
	if err := json.Unmarshal([]byte(raw), &audit); code != 200 || err != nil {
		t.Fatalf("GET /api/audit = %d %v %s", code, err, raw)
	}
	if len(audit.Entries) != 5 {
		t.Fatalf("%d audit entries, want 4 denied and 1 change: %+v", len(audit.Entries), audit.Entries)
	}
	if e := audit.Entries[0]; e.Actor != "ops" || e.Action != "consumer.concurrency" || e.Target != "worker" || e.Old != "2" || e.New != "3" || e.Outcome != "ok" {
		t.Errorf("operator's entry: %+v", e)
	}
	for _, e := range audit.Entries[1:] {
		if e.Actor != "vic" || e.Role != "viewer" || e.Outcome != "denied" {
			t.Errorf("viewer's entry: %+v", e)
		}
	}
	if strings.Contains(srv.logs.String(), "viewer-pw") || strings.Contains(srv.logs.String(), "$2a$") {
		t.Error("a password or hash appears in the server log")
	}
}

// TestServeListensBeyondLoopbackWithAuth starts warren serve on every
// interface with a user configured: it serves, asks for credentials, and
// warns that allowed_hosts is empty.
func TestServeListensBeyondLoopbackWithAuth(t *testing.T) {
	addr := freePort(t)
	port := addr[strings.LastIndex(addr, ":")+1:]
	dir := t.TempDir()
	p := writeConfig(t, fmt.Sprintf("listen: '0.0.0.0:%s'\nstore: {path: %s}\nauth:\n  users:\n    - {name: ana, password_hash: '%s', role: operator}\n",
		port, filepath.Join(dir, "w.db"), testHash(t, "pw")))
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"warren", "serve", "--config", p}, noEnv, io.Discard, logs) }()
	defer func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("exit %d; log:\n%s", code, logs.String())
			}
		case <-time.After(60 * time.Second):
			t.Error("warren serve did not stop")
		}
	}()
	base := "http://127.0.0.1:" + port
	eventually(t, 30*time.Second, "the server to answer /healthz", func() bool {
		select {
		case code := <-done:
			t.Fatalf("warren serve exited early with %d:\n%s", code, logs.String())
		default:
		}
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	resp, err := http.Get(base + "/api/consumers")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /api/consumers without credentials = %d, want 401", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/api/consumers", nil)
	req.SetBasicAuth("ana", "pw")
	if resp, err = http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /api/consumers as ana = %d, want 200", resp.StatusCode)
	}
	if !strings.Contains(logs.String(), "without allowed_hosts") {
		t.Errorf("no warning about allowed_hosts in the log:\n%s", logs.String())
	}
}
