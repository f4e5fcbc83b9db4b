package alerts_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"warren/alerts"
)

// amWebhookV4 is the Alertmanager webhook payload, version 4, written from
// Alertmanager's documented schema (notify/webhook Message + template.Data),
// not from warren's types.
type amWebhookV4 struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   uint64            `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []struct {
		Status       string            `json:"status"`
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
		StartsAt     time.Time         `json:"startsAt"`
		EndsAt       time.Time         `json:"endsAt"`
		GeneratorURL string            `json:"generatorURL"`
		Fingerprint  string            `json:"fingerprint"`
	} `json:"alerts"`
}

// rawReceiver records raw requests; its handler answers 200 after check.
type rawReceiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []rawRequest
}

type rawRequest struct {
	Header http.Header
	Body   []byte
}

func newRawReceiver(t *testing.T, check func(r rawRequest) int) *rawReceiver {
	rr := &rawReceiver{}
	rr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := rawRequest{Header: r.Header.Clone(), Body: body}
		rr.mu.Lock()
		rr.reqs = append(rr.reqs, req)
		rr.mu.Unlock()
		status := http.StatusOK
		if check != nil {
			status = check(req)
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(rr.srv.Close)
	return rr
}

func (rr *rawReceiver) got() []rawRequest {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	return append([]rawRequest(nil), rr.reqs...)
}

func verifySig(t *testing.T, secret string, r rawRequest) {
	t.Helper()
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(r.Body)
	want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
	if got := r.Header.Get("X-Warren-Signature"); !hmac.Equal([]byte(got), []byte(want)) {
		t.Errorf("signature %q, want %q", got, want)
	}
}

// The alertmanager body is accepted by a receiver decoding the v4 schema
// strictly, for a firing and a resolved notification, through the
// evaluator, outbox and dispatcher; signatures verify.
func TestAlertmanagerFormatDecodesStrictly(t *testing.T) {
	var decodeErrs []string
	var mu sync.Mutex
	var decoded []amWebhookV4
	rr := newRawReceiver(t, func(r rawRequest) int {
		dec := json.NewDecoder(bytes.NewReader(r.Body))
		dec.DisallowUnknownFields()
		var p amWebhookV4
		if err := dec.Decode(&p); err != nil {
			mu.Lock()
			decodeErrs = append(decodeErrs, err.Error())
			mu.Unlock()
			return http.StatusBadRequest
		}
		mu.Lock()
		decoded = append(decoded, p)
		mu.Unlock()
		return http.StatusOK
	})
	st := newStore(t)
	hooks := []alerts.WebhookConfig{{Name: "am", URL: rr.srv.URL + "/api/v2/alerts", Format: alerts.FormatAlertmanager,
		Secret: "am-key", Timeout: 5 * time.Second, ExternalURL: "http://warren.example:8080"}}
	d, _ := startDispatcher(t, st, hooks)
	e := alerts.NewEvaluator(st, hooks, testLogger(t), alerts.WithThresholds(testThresholds), alerts.WithWaker(d))
	c := newClock()
	q := uniqueQueue(t, "am")
	ctx := context.Background()
	e.ObserveSnapshot(ctx, c.snap(depth("/", q, 12)))
	firedAt := c.at
	e.ObserveSnapshot(ctx, c.snap(depth("/", q, 2)))
	resolvedAt := c.at
	eventually(t, 10*time.Second, "two requests", func() bool { return len(rr.got()) >= 2 })
	eventually(t, 10*time.Second, "an empty outbox", func() bool { return len(pending(t, st)) == 0 })
	mu.Lock()
	defer mu.Unlock()
	if len(decodeErrs) > 0 || len(decoded) != 2 {
		t.Fatalf("strict decode errors %v, decoded %d", decodeErrs, len(decoded))
	}
	for i, p := range decoded {
		want := []string{"firing", "resolved"}[i]
		if p.Version != "4" || p.Status != want || p.Receiver != "am" || len(p.Alerts) != 1 || p.GroupKey == "" ||
			p.ExternalURL != "http://warren.example:8080" || p.GroupLabels["alertname"] != "queue_depth" {
			t.Errorf("payload %d = %+v", i, p)
			continue
		}
		a := p.Alerts[0]
		if a.Status != want || a.Labels["alertname"] != "queue_depth" || a.Labels["queue"] != q || a.Labels["vhost"] != "/" ||
			a.Labels["severity"] != "warning" || a.Annotations["summary"] == "" || !a.StartsAt.Equal(firedAt) || len(a.Fingerprint) != 16 {
			t.Errorf("alert %d = %+v", i, a)
		}
		if i == 0 && !a.EndsAt.IsZero() || i == 1 && !a.EndsAt.Equal(resolvedAt) {
			t.Errorf("alert %d endsAt %s", i, a.EndsAt)
		}
	}
	if decoded[0].Alerts[0].Fingerprint != decoded[1].Alerts[0].Fingerprint || decoded[0].GroupKey != decoded[1].GroupKey {
		t.Errorf("fingerprint/groupKey differ between firing and resolved")
	}
	for _, r := range rr.got() {
		verifySig(t, "am-key", r)
		if r.Header.Get("X-Warren-Delivery") == "" {
			t.Errorf("no delivery id")
		}
	}
}

func TestSlackAndTemplateFormats(t *testing.T) {
	rr := newRawReceiver(t, nil)
	slack := alerts.WebhookConfig{Name: "slack", URL: rr.srv.URL + "/slack", Format: alerts.FormatSlack, Secret: "sk"}
	tmpl := alerts.WebhookConfig{Name: "tmpl", URL: rr.srv.URL + "/tmpl", Format: alerts.FormatTemplate,
		Headers:  map[string]string{"Authorization": "Bearer tok-123", "Content-Type": "text/plain", "X-Team": "ops"},
		Template: `{{.Status}} {{.Alert.Rule}} {{.Alert.Queue}} {{.Alert.Value}} {{json .Summary}} {{.DeliveryID}}`}
	n := testNotification()
	for _, cfg := range []alerts.WebhookConfig{slack, tmpl} {
		nt, err := alerts.NewNotifier(cfg, nil)
		if err != nil {
			t.Fatalf("NewNotifier(%s): %v", cfg.Name, err)
		}
		if _, err := nt.Notify(context.Background(), n); err != nil {
			t.Fatalf("Notify(%s): %v", cfg.Name, err)
		}
	}
	got := rr.got()
	if len(got) != 2 {
		t.Fatalf("got %d requests", len(got))
	}
	dec := json.NewDecoder(bytes.NewReader(got[0].Body))
	dec.DisallowUnknownFields()
	var s struct {
		Text string `json:"text"`
	}
	if err := dec.Decode(&s); err != nil || !strings.Contains(s.Text, "FIRING") || !strings.Contains(s.Text, "orders") {
		t.Errorf("slack body %s: %v", got[0].Body, err)
	}
	verifySig(t, "sk", got[0])
	body := string(got[1].Body)
	if !strings.HasPrefix(body, "firing queue_depth orders 12 \"[FIRING warning]") || !strings.HasSuffix(body, n.DeliveryID) {
		t.Errorf("template body %q", body)
	}
	h := got[1].Header
	if h.Get("Authorization") != "Bearer tok-123" || h.Get("Content-Type") != "text/plain" || h.Get("X-Team") != "ops" ||
		h.Get("X-Warren-Delivery") != n.DeliveryID {
		t.Errorf("template headers %v", h)
	}
}

func TestWebhookFormatValidationNamesTheKey(t *testing.T) {
	cases := map[string]alerts.WebhookConfig{
		"alerts.webhooks[0] (\"t\").template: is required":    {Name: "t", URL: "http://x/", Format: "template"},
		"alerts.webhooks[0] (\"t\").template: template: t:1:": {Name: "t", URL: "http://x/", Format: "template", Template: "{{.Status"},
		"alerts.webhooks[0] (\"t\").format":                   {Name: "t", URL: "http://x/", Format: "pagerduty"},
		"alerts.webhooks[0] (\"t\").headers":                  {Name: "t", URL: "http://x/", Headers: map[string]string{"X-Warren-Delivery": "x"}},
	}
	for want, cfg := range cases {
		err := alerts.ValidateWebhooks([]alerts.WebhookConfig{cfg})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ValidateWebhooks(%+v) = %v, want it to contain %q", cfg, err, want)
		}
	}
}
