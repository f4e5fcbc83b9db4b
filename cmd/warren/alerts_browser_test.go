package main

// The alerts page, CSRF, escaping and the page's connection handling in a
// real headless Chromium against the real server, broker and store: an alert
// fired by a real queue is acknowledged by clicking; the server is stopped
// and started again on the same port while the page stays open.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	amqp "github.com/rabbitmq/amqp091-go"

	bt "warren/internal/browsertest"
)

// restartable is `warren serve` on a fixed address and store that a test
// stops and starts again.
type restartable struct {
	*server
	cfgPath string
	cancel  context.CancelFunc
	done    chan int
}

func newRestartable(t *testing.T, yamlBody string) *restartable {
	t.Helper()
	addr := freePort(t)
	dir := t.TempDir()
	cfg := fmt.Sprintf("listen: %s\nstore: {path: %s}\nmanagement: {poll_interval: 500ms}\nperformance: {sample_interval: 1s}\nlog: {level: debug}\n%s",
		addr, filepath.Join(dir, "warren.db"), yamlBody)
	p := filepath.Join(dir, "warren.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	r := &restartable{server: &server{t: t, base: "http://" + addr, logs: &syncBuffer{}}, cfgPath: p}
	t.Cleanup(func() {
		r.stop()
		if t.Failed() {
			t.Logf("server log:\n%s", r.logs.String())
		}
	})
	r.start()
	return r
}

func (r *restartable) start() {
	r.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	r.cancel, r.done = cancel, done
	go func() {
		done <- run(ctx, []string{"warren", "serve", "--config", r.cfgPath}, noEnv, io.Discard, r.logs)
	}()
	eventually(r.t, 30*time.Second, "the server to answer /healthz", func() bool {
		select {
		case code := <-done:
			r.t.Fatalf("warren serve exited early with %d:\n%s", code, r.logs.String())
		default:
		}
		resp, err := http.Get(r.base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

// stop cancels the server and waits until it exited (its port is free).
func (r *restartable) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	select {
	case code := <-r.done:
		if code != 0 {
			r.t.Errorf("warren serve exited with %d", code)
		}
	case <-time.After(60 * time.Second):
		r.t.Errorf("warren serve did not stop within 60s of cancel")
	}
	r.cancel = nil
}

// deleteAfter deletes queues warren itself declares (dead-letter and retry
// queues of a consumer) when the test ends.
func deleteAfter(t *testing.T, names ...string) {
	t.Cleanup(func() {
		conn, err := amqp.Dial(testAMQPURL)
		if err != nil {
			return
		}
		defer conn.Close()
		for _, n := range names {
			if ch, err := conn.Channel(); err == nil {
				_, _ = ch.QueueDelete(n, false, false, false)
				ch.Close()
			}
		}
	})
}

// firingAlertID waits for the alert of a queue to fire and returns its id.
func (s *server) firingAlertID(queue string) string {
	s.t.Helper()
	var id string
	eventually(s.t, 30*time.Second, "an alert firing for "+queue, func() bool {
		var body struct {
			Alerts []struct {
				ID    string `json:"id"`
				Queue string `json:"queue"`
			} `json:"alerts"`
		}
		if code := s.do(http.MethodGet, "/api/alerts", "", &body); code != 200 {
			return false
		}
		for _, a := range body.Alerts {
			if a.Queue == queue {
				id = a.ID
				return true
			}
		}
		return false
	})
	return id
}

func TestAlertsPageAndConnectionInBrowser(t *testing.T) {
	ctx := bt.New(t)
	b := newBroker(t)
	alerting := uniqueName("e2e-ack")
	work := uniqueName("e2e-conn")
	// The name from the issue: markup that would run script if rendered.
	const imgName = `<img src=x onerror=alert(1)>`
	for _, q := range []string{alerting, work, imgName} {
		b.declare(q)
	}
	deleteAfter(t, work+".warren.dlq")
	b.publish(alerting, 12)
	b.publish(imgName, 3)
	hooks := newWebhookReceiver(t, "s3cret")
	srv := newRestartable(t, fmt.Sprintf(`
health:
  queues:
    %q: { warning: 5, critical: 10 }
consumers:
  - name: conn
    queue: %q
    handler: { type: sleep, duration: 5ms }
alerts:
  webhooks:
    - { name: ops, url: %q, secret: s3cret }
`, alerting, work, hooks.srv.URL))
	id := srv.firingAlertID(alerting)

	var dialogs atomic.Int32
	if err := chromedp.Listen(ctx, func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			dialogs.Add(1)
			go func() {
				_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
			}()
		}
	}); err != nil {
		t.Fatal(err)
	}
	q := bt.Query
	firingRow := `#alerts tr.alert[data-alert=` + cssString(id) + `]`
	ackedRow := `#alerts tr.alert-acked[data-alert=` + cssString(id) + `]`

	t.Run("a request without the CSRF token is refused and changes nothing", func(t *testing.T) {
		for _, h := range []map[string]string{nil, {"X-CSRF-Token": "forged"}, {"Sec-Fetch-Site": "cross-site"}} {
			req, _ := http.NewRequest(http.MethodPost, srv.base+"/ui/alerts/"+url.PathEscape(id)+"/ack", strings.NewReader("note=forged"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for k, v := range h {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("ack with headers %v: %d, want 403", h, resp.StatusCode)
			}
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(srv.base+"/alerts")); err != nil {
			t.Fatal(err)
		}
		bt.WaitJS(t, ctx, 20*time.Second, "the firing alert", q(firingRow)+` !== null`)
		if bt.JS[bool](t, ctx, q(ackedRow)+` !== null`) {
			t.Fatal("a refused request acknowledged the alert")
		}
	})

	t.Run("acknowledge an alert in the page", func(t *testing.T) {
		note := firingRow + ` form.ack input[name="note"]`
		if err := chromedp.Do(ctx,
			chromedp.SendKeys(chromedp.CSS(note), "looking <b>now</b>"),
			chromedp.Click(chromedp.CSS(firingRow+` form.ack button`)),
		); err != nil {
			t.Fatal(err)
		}
		bt.WaitJS(t, ctx, 10*time.Second, "the alert under Acknowledged", q(ackedRow)+` !== null && `+q(firingRow)+` === null`)
		// Stored, not just shown: a fresh load of the page still has it.
		if err := chromedp.Do(ctx, chromedp.Navigate(srv.base+"/alerts")); err != nil {
			t.Fatal(err)
		}
		bt.WaitJS(t, ctx, 20*time.Second, "the acknowledged alert after a reload", q(ackedRow)+` !== null`)
		if got := bt.JS[string](t, ctx, q(ackedRow)+`.textContent`); !strings.Contains(got, "by local") || !strings.Contains(got, "looking <b>now</b>") {
			t.Errorf("acknowledged row says %q", got)
		}
		if n := bt.JS[int](t, ctx, `document.querySelectorAll("main b").length`); n != 0 {
			t.Errorf("the note was rendered as markup (%d <b>)", n)
		}
	})

	t.Run("send a test notification", func(t *testing.T) {
		target := `#deliveries li.target[data-webhook="ops"]`
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(target+` button.test`))); err != nil {
			t.Fatal(err)
		}
		bt.WaitJS(t, ctx, 20*time.Second, "the outcome next to the button",
			q(target)+` !== null && `+q(target+` .control-result`)+`.textContent.includes("delivered in")`)
		eventually(t, 10*time.Second, "the receiver to get the test", func() bool {
			hooks.mu.Lock()
			defer hooks.mu.Unlock()
			for _, h := range hooks.got {
				if h.Body.Alert.Rule == "test" && h.SignatureOK {
					return true
				}
			}
			return false
		})
	})

	t.Run("a queue named like markup renders as text", func(t *testing.T) {
		row := `tr.queue[data-queue=` + cssString(imgName) + `]`
		if err := chromedp.Do(ctx, chromedp.Navigate(srv.base+"/queues")); err != nil {
			t.Fatal(err)
		}
		bt.WaitJS(t, ctx, 30*time.Second, "the row of "+imgName, q(row)+` !== null`)
		if got := bt.JS[string](t, ctx, q(row+` td.name a`)+`.textContent`); got != imgName {
			t.Errorf("link text %q, want %q", got, imgName)
		}
		href := bt.JS[string](t, ctx, q(row+` td.name a`)+`.href`)
		if err := chromedp.Do(ctx, chromedp.Navigate(href)); err != nil {
			t.Fatal(err)
		}
		bt.WaitJS(t, ctx, 20*time.Second, "the queue page", `document.querySelector("#queue h2 .name") !== null`)
		if got := bt.JS[string](t, ctx, `document.querySelector("#queue h2 .name").textContent`); got != imgName {
			t.Errorf("queue page names %q, want %q", got, imgName)
		}
		for _, p := range []string{"/", "/queues", href} {
			if err := chromedp.Do(ctx, chromedp.Navigate(srv.base+strings.TrimPrefix(p, srv.base))); err != nil {
				t.Fatal(err)
			}
			bt.WaitJS(t, ctx, 20*time.Second, "htmx on "+p, `typeof htmx !== "undefined"`)
			if n := bt.JS[int](t, ctx, `document.querySelectorAll("img").length`); n != 0 {
				t.Errorf("%s: %d <img> elements", p, n)
			}
		}
		if n := dialogs.Load(); n != 0 {
			t.Errorf("%d JavaScript dialogs opened", n)
		}
	})

	t.Run("server stopped shows connection lost and recovers after restart", func(t *testing.T) {
		// The consumers page: values and controls that refresh themselves.
		if err := chromedp.Do(ctx, chromedp.Navigate(srv.base+"/consumers")); err != nil {
			t.Fatal(err)
		}
		bt.WaitJS(t, ctx, 20*time.Second, "the consumer row", q(`tr[data-consumer="conn"] td.num`)+` !== null`)
		conn := `document.getElementById("conn").textContent`
		bt.WaitJS(t, ctx, 20*time.Second, "live", conn+`.includes("live · updated")`)
		// A marker the same document keeps: recovering must not reload it
		// (same build), so the marker must survive.
		bt.JS[bool](t, ctx, `(window.__same = true)`)
		buttons := `Array.from(document.querySelectorAll("main button"))`
		if n := bt.JS[int](t, ctx, buttons+`.length`); n == 0 {
			t.Fatal("no controls on the page to check")
		}

		srv.stop()
		bt.WaitJS(t, ctx, 30*time.Second, "connection lost", conn+`.includes("connection lost, last updated at ")`)
		if got := bt.JS[string](t, ctx, conn); !strings.Contains(got, " UTC") {
			t.Errorf("conn says %q, want the time of the last update", got)
		}
		if !bt.JS[bool](t, ctx, `document.documentElement.classList.contains("offline")`) {
			t.Error("page not marked offline")
		}
		if !bt.JS[bool](t, ctx, buttons+`.every(function(b){ return b.disabled })`) {
			t.Error("controls still enabled while the connection is lost")
		}
		if op := bt.JS[string](t, ctx, `getComputedStyle(document.querySelector("main td.num")).opacity`); op == "1" {
			t.Error("values are not greyed while the connection is lost")
		}

		srv.start()
		bt.WaitJS(t, ctx, 30*time.Second, "live again", conn+`.includes("live · updated")`)
		if bt.JS[bool](t, ctx, `document.documentElement.classList.contains("offline")`) {
			t.Error("page still marked offline")
		}
		bt.WaitJS(t, ctx, 10*time.Second, "controls enabled again", buttons+`.every(function(b){ return !b.disabled })`)
		if !bt.JS[bool](t, ctx, `window.__same === true`) {
			t.Error("the page reloaded although the build did not change")
		}
	})
}
