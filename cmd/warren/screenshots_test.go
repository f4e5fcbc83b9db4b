package main

// `make screenshots`: the real server with real data (queues on the local
// broker, a consumer under load, firing alerts, a webhook with deliveries),
// every page captured in headless Chromium at desktop and phone width into
// the directory named by WARREN_SCREENSHOTS. Without that variable the test
// is skipped: it writes files and takes about a minute.

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	bt "warren/internal/browsertest"
	"warren/loadgen"
)

func TestScreenshots(t *testing.T) {
	dir := os.Getenv("WARREN_SCREENSHOTS")
	if dir == "" {
		t.Skip("WARREN_SCREENSHOTS is not set (make screenshots sets it)")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx := bt.New(t)
	b := newBroker(t)
	// Readable names: these end up in the README.
	orders, payments, emails, refunds := "shop.orders", "shop.payments", "shop.emails", "shop.refunds"
	for _, q := range []string{orders, payments, emails, refunds} {
		b.declare(q)
	}
	deleteAfter(t, orders+".warren.dlq", orders+".warren.retry.100ms")
	b.publish(payments, 40)
	b.publish(emails, 7)
	b.publish(refunds, 160)
	hooks := newWebhookReceiver(t, "s3cret")
	srv := startServer(t, fmt.Sprintf(`
health:
  queues:
    %q: { warning: 20, critical: 100 }
    %q: { warning: 50, critical: 120 }
consumers:
  - name: orders
    queue: %q
    max_concurrent_messages: 4
    prefetch_count: 20
    handler: { type: sleep, duration: 15ms, failure_ratio: 0.02 }
    max_retry_attempts: 1
    initial_retry_delay: 100ms
alerts:
  webhooks:
    - { name: ops, url: %q, secret: s3cret }
`, payments, refunds, orders, hooks.srv.URL))

	// Steady load on the consumer while the pages are captured.
	loadCtx, stopLoad := context.WithCancel(context.Background())
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		_, _ = loadgen.Run(loadCtx, loadgen.Config{URL: testAMQPURL, Queue: orders, Rate: 120, Duration: 10 * time.Minute, Size: 200,
			Types: []loadgen.MessageType{{Name: "OrderCreated", Weight: 3}, {Name: "OrderShipped", Weight: 1}}})
	}()
	t.Cleanup(func() { stopLoad(); <-loadDone })

	eventually(t, 60*time.Second, "the consumer to process messages", func() bool { return srv.consumer("orders").Processed >= 600 })
	ack := srv.firingAlertID(payments)
	srv.firingAlertID(refunds)
	if code := srv.do(http.MethodPost, "/api/alerts/"+ack+"/ack", `{"by":"ana","note":"batch job, draining"}`, nil); code != 200 {
		t.Fatalf("ack: %d", code)
	}
	if code := srv.do(http.MethodPost, "/api/silences", `{"rule":"no_consumer","queue":"shop.*","duration":"4h","owner":"ana","reason":"migration tonight"}`, nil); code != 201 {
		t.Fatalf("silence: %d", code)
	}
	eventually(t, 30*time.Second, "deliveries to the webhook", func() bool { return len(hooks.forQueue(refunds)) > 0 })

	pages := []struct{ name, path string }{
		{"overview", "/"},
		{"queues", "/queues"},
		{"queue-detail", "/queues/" + url.PathEscape("/") + "/" + url.PathEscape(orders) + "?range=15m"},
		{"consumers", "/consumers"},
		{"consumer-detail", "/consumers/orders?range=15m"},
		{"alerts", "/alerts"},
		{"settings", "/settings"},
		{"audit", "/audit"},
	}
	sizes := []struct {
		name          string
		width, height int64
		mobile        bool
	}{
		{"desktop", 1280, 800, false},
		{"phone", 390, 844, true},
	}
	for _, p := range pages {
		resp, err := http.Get(srv.base + p.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			t.Logf("%s (%s) does not exist; no screenshot", p.name, p.path)
			continue
		}
		for _, sz := range sizes {
			for _, scheme := range []string{"light", "dark"} {
				if scheme == "dark" && (sz.mobile || p.name != "overview") {
					continue // one dark example is enough
				}
				file := filepath.Join(dir, p.name+"-"+sz.name+".png")
				if scheme == "dark" {
					file = filepath.Join(dir, p.name+"-"+sz.name+"-dark.png")
				}
				if _, err := chromedp.Call(ctx, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
					Width: sz.width, Height: sz.height, DeviceScaleFactor: 1, Mobile: sz.mobile}); err != nil {
					t.Fatalf("%s: %v", p.name, err)
				}
				if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
					Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}}); err != nil {
					t.Fatalf("%s: %v", p.name, err)
				}
				if err := chromedp.Do(ctx, chromedp.Navigate(srv.base+p.path)); err != nil {
					t.Fatalf("%s: %v", p.name, err)
				}
				// Wait for a live update, so the page shows what a user sees
				// after a moment (charts drawn, "live" in the header).
				bt.WaitJS(t, ctx, 20*time.Second, "a live update on "+p.name,
					`document.getElementById("conn") !== null && document.getElementById("conn").textContent.includes("live")`)
				png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
				if err != nil {
					t.Fatalf("%s: %v", p.name, err)
				}
				if err := os.WriteFile(file, png, 0o644); err != nil {
					t.Fatal(err)
				}
				t.Logf("wrote %s (%d bytes)", file, len(png))
			}
		}
	}
}
