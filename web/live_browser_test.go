package web

// The page's live behaviour in headless Chromium: refreshes do not pile up
// nodes, a stopped server shows "connection lost" and a server with another
// build makes the open page reload itself.

import (
	"net"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"warren/internal/browsertest"
)

// serveAt serves s on addr (a fixed port, so a "new build" can take over
// the address of the old one).
func serveAt(t *testing.T, s *Server, addr string) *httptest.Server {
	t.Helper()
	var ln net.Listener
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ln, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listening on %s: %v", addr, err)
	}
	hs := httptest.NewUnstartedServer(s.Handler())
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	t.Cleanup(hs.Close)
	return hs
}

func TestLiveUpdatesInBrowser(t *testing.T) {
	f := newFixture(t)
	addr := f.http.Listener.Addr().String()
	ctx := browsertest.New(t)
	problems := watchConsole(t, ctx)
	if err := chromedp.Do(ctx, chromedp.Navigate(f.http.URL+"/")); err != nil {
		t.Fatal(err)
	}
	conn := `document.getElementById("conn").textContent`
	browsertest.WaitJS(t, ctx, 20*time.Second, "live", conn+`.includes("live · updated")`)

	t.Run("refreshes replace nodes instead of adding them", func(t *testing.T) {
		browsertest.JS[bool](t, ctx, `(function(){ window.__settles = 0; document.addEventListener("htmx:afterSettle", function(){ window.__settles++ }); return true })()`)
		browsertest.WaitJS(t, ctx, 20*time.Second, "a first round of refreshes", `window.__settles >= 4`)
		before := browsertest.JS[int](t, ctx, `document.getElementsByTagName("*").length`)
		browsertest.WaitJS(t, ctx, 30*time.Second, "more refreshes", `window.__settles >= 12`)
		if after := browsertest.JS[int](t, ctx, `document.getElementsByTagName("*").length`); after != before {
			t.Errorf("%d elements after the refreshes, %d before: the page grows", after, before)
		}
	})

	for _, p := range problems.list() {
		t.Errorf("browser reported: %s", p)
	}

	t.Run("a new build reloads the page", func(t *testing.T) {
		browsertest.JS[bool](t, ctx, `(window.__old = true)`)
		oldBuild := browsertest.JS[string](t, ctx, `document.querySelector('meta[name="warren-build"]').content`)
		f.http.CloseClientConnections()
		f.http.Close()
		browsertest.WaitJS(t, ctx, 30*time.Second, "connection lost", conn+`.includes("connection lost, last updated at ")`)

		next := New(Deps{Queues: f.queues, Consumers: f.consumers, Alerts: f.alerts, Logger: testLogger(), Version: "next"})
		hs := serveAt(t, next, addr)
		browsertest.WaitJS(t, ctx, 30*time.Second, "the page to reload with the new build",
			`window.__old === undefined && document.querySelector('meta[name="warren-build"]') !== null && document.querySelector('meta[name="warren-build"]').content === `+browsertest.String(next.buildID))
		if next.buildID == oldBuild {
			t.Fatal("the new server has the old build id")
		}
		browsertest.WaitJS(t, ctx, 20*time.Second, "live on the new build", conn+`.includes("live · updated")`)

		// A page where nothing refreshes itself (settings) learns the same
		// through app.js's heartbeat: lost, then the next build, reload.
		if err := chromedp.Do(ctx, chromedp.Navigate(f.http.URL+"/settings")); err != nil {
			t.Fatal(err)
		}
		browsertest.WaitJS(t, ctx, 20*time.Second, "live on the settings page", conn+`.includes("live · updated")`)
		if n := browsertest.JS[int](t, ctx, `document.querySelectorAll("[data-refresh]").length`); n != 0 {
			t.Fatalf("the settings page has %d refreshing elements; the heartbeat is not what is tested", n)
		}
		first := browsertest.JS[string](t, ctx, conn)
		browsertest.WaitJS(t, ctx, 20*time.Second, "a heartbeat update", conn+` !== `+browsertest.String(first)+` && `+conn+`.includes("live · updated")`)
		browsertest.JS[bool](t, ctx, `(window.__old = true)`)
		hs.CloseClientConnections()
		hs.Close()
		browsertest.WaitJS(t, ctx, 30*time.Second, "connection lost on the settings page", conn+`.includes("connection lost, last updated at ")`)
		third := New(Deps{Queues: f.queues, Consumers: f.consumers, Alerts: f.alerts, Logger: testLogger(), Version: "third"})
		serveAt(t, third, addr)
		browsertest.WaitJS(t, ctx, 30*time.Second, "the settings page to reload with the third build",
			`window.__old === undefined && document.querySelector('meta[name="warren-build"]') !== null && document.querySelector('meta[name="warren-build"]').content === `+browsertest.String(third.buildID))
	})
}
