package alerts_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"warren/alerts"
)

func testNotification() alerts.Notification {
	return alerts.Notification{
		DeliveryID: "abc-1-ops",
		Webhook:    "ops",
		Status:     alerts.StateFiring,
		Alert: alerts.Alert{
			ID: "abc", Rule: alerts.RuleQueueDepth, Severity: alerts.SeverityWarning, State: alerts.StateFiring,
			Vhost: "/", Queue: "orders", Value: 12, Threshold: 10, StartedAt: time.Now().UTC(),
		},
	}
}

func TestGenericNotifierClassifiesAnswers(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		wantErr   bool
		wantRetry bool
	}{
		{"200 delivered", 200, false, false},
		{"204 delivered", 204, false, false},
		{"500 retried", 500, true, true},
		{"503 retried", 503, true, true},
		{"429 retried", 429, true, true},
		{"408 retried", 408, true, true},
		{"400 given up", 400, true, false},
		{"404 given up", 404, true, false},
		{"410 given up", 410, true, false},
		{"302 given up, not followed", 302, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, "k", func(int, request) int { return tt.status })
			hook := rc.hook("ops")
			n, err := alerts.NewNotifier(hook, nil)
			if err != nil {
				t.Fatal(err)
			}
			retry, err := n.Notify(context.Background(), testNotification())
			if (err != nil) != tt.wantErr || retry != tt.wantRetry {
				t.Fatalf("Notify = (retry %v, %v), want retry %v, error %v", retry, err, tt.wantRetry, tt.wantErr)
			}
			if rc.count() != 1 {
				t.Errorf("receiver got %d requests, want 1", rc.count())
			}
		})
	}
}

// Errors name the webhook and a redacted URL, never the secret, the URL's
// password or its query.
func TestGenericNotifierErrorsHideSecrets(t *testing.T) {
	const secret, password, token = "signing-secret-123", "hunter2pass", "tok3n-value"
	// A receiver that echoes the request's query and signature back,
	// as some misbehaving receivers do.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte("bad request " + r.URL.RawQuery + " " + secret))
	}))
	t.Cleanup(echo.Close)
	echoQuery := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("try later, " + r.URL.RawQuery))
	}))
	t.Cleanup(echoQuery.Close)
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Fake: a receiver that never answers. The body is read first
		// because net/http only notices the client leaving after that.
		_, _ = io.ReadAll(r.Body)
		<-r.Context().Done()
	}))
	t.Cleanup(hanging.Close)
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedAddr := closed.Addr().String()
	_ = closed.Close()

	withSecrets := func(base string) string {
		return strings.Replace(base, "http://", "http://user:"+password+"@", 1) + "/hook?token=" + token
	}
	tests := []struct {
		name      string
		url       string
		timeout   time.Duration
		wantRetry bool
		wantIn    string
	}{
		{"4xx echoing secrets", withSecrets(echo.URL), time.Second, false, "400"},
		{"5xx echoing the query", withSecrets(echoQuery.URL), time.Second, true, "try later, ***"},
		{"timeout", withSecrets(hanging.URL), 50 * time.Millisecond, true, "no response within 50ms"},
		{"connection refused", withSecrets("http://" + refusedAddr), time.Second, true, "refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := alerts.NewNotifier(alerts.WebhookConfig{Name: "ops", URL: tt.url, Secret: secret, Timeout: tt.timeout}, nil)
			if err != nil {
				t.Fatal(err)
			}
			retry, err := n.Notify(context.Background(), testNotification())
			if err == nil {
				t.Fatal("Notify succeeded")
			}
			msg := err.Error()
			t.Log(msg)
			if retry != tt.wantRetry {
				t.Errorf("retry = %v, want %v", retry, tt.wantRetry)
			}
			for _, s := range []string{secret, password, token, "user:", "/hook"} {
				if strings.Contains(msg, s) {
					t.Errorf("error %q contains %q", msg, s)
				}
			}
			if !strings.Contains(msg, `"ops"`) || !strings.Contains(msg, "/***?***") || !strings.Contains(msg, tt.wantIn) {
				t.Errorf("error %q should name the webhook, its redacted URL and %q", msg, tt.wantIn)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	tests := map[string]string{
		"https://user:pw@hooks.example.com:8443/a/b?token=x#frag": "https://***@hooks.example.com:8443/***?***#***",
		"http://127.0.0.1:9999/hook/secretpath":                   "http://127.0.0.1:9999/***",
		"https://hooks.slack.com/services/T0/B0/XyZ":              "https://hooks.slack.com/***",
		"http://127.0.0.1:9999/":                                  "http://127.0.0.1:9999/",
		"http://127.0.0.1:9999":                                   "http://127.0.0.1:9999",
		"http://h.example?key=k":                                  "http://h.example?***",
		"not a url":                                               "<invalid url>",
	}
	for in, want := range tests {
		if got := alerts.RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSignature(t *testing.T) {
	// RFC 4231-style known answer computed with openssl:
	// printf 'hello' | openssl dgst -sha256 -hmac key
	const want = "sha256=9307b3b915efb5171ff14d8cb55fbcc798c6c0ef1456d66ded1a6aa723a58b7b"
	if got := alerts.Signature("key", []byte("hello")); got != want {
		t.Errorf("Signature = %q, want %q", got, want)
	}
}

func TestValidateWebhooks(t *testing.T) {
	ok := alerts.WebhookConfig{Name: "ops", URL: "https://h.example/hook", Format: "generic"}
	tests := []struct {
		name  string
		hooks []alerts.WebhookConfig
		want  []string // substrings of the error; none = valid
	}{
		{"valid", []alerts.WebhookConfig{ok, {Name: "b", URL: "http://127.0.0.1:1/x"}}, nil},
		{"missing name", []alerts.WebhookConfig{{URL: "http://h/"}}, []string{"alerts.webhooks[0].name", "required"}},
		{"duplicate name", []alerts.WebhookConfig{ok, ok}, []string{`alerts.webhooks[1] ("ops").name`, "unique"}},
		{"relative url", []alerts.WebhookConfig{{Name: "a", URL: "/hook"}}, []string{`("a").url`}},
		{"ftp url", []alerts.WebhookConfig{{Name: "a", URL: "ftp://h/x"}}, []string{`("a").url`, "http"}},
		{"missing url", []alerts.WebhookConfig{{Name: "a"}}, []string{`("a").url`, "required"}},
		{"unknown format", []alerts.WebhookConfig{{Name: "a", URL: "http://h/", Format: "teams"}}, []string{`("a").format`, "teams"}},
		{"negative timeout", []alerts.WebhookConfig{{Name: "a", URL: "http://h/", Timeout: -time.Second}}, []string{`("a").timeout`}},
		{"url with secrets not echoed", []alerts.WebhookConfig{{Name: "a", URL: "gopher://u:pw@h/?token=t", Secret: "sek"}}, []string{`("a").url`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := alerts.ValidateWebhooks(tt.hooks)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("ValidateWebhooks = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("ValidateWebhooks = nil, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			for _, s := range []string{"pw", "token=t", "sek"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q echoes %q", err, s)
				}
			}
		})
	}
}
