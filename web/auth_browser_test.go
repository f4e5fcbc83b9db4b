package web

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"warren/internal/browsertest"
)

// TestViewerHasNoControlsInBrowser signs in to the consumers page as a
// viewer in headless Chromium: after live refreshes the page still has no
// +/−, set or pause buttons, and a POST the page's own script sends with its
// CSRF token is refused and changes nothing.
func TestViewerHasNoControlsInBrowser(t *testing.T) {
	f := newFixtureWith(t, func(d *Deps) { d.Auth = testAuth(t) })
	ctx := browsertest.New(t)
	problems := watchConsole(t, ctx)
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("vera:"+viewerPassword))
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("enabling the network domain: %v", err)
	}
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Authorization": auth}}); err != nil {
		t.Fatalf("setting the credentials: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(f.http.URL+"/consumers")); err != nil {
		t.Fatalf("loading /consumers: %v", err)
	}
	row := `tr[data-consumer="demo"]`
	browsertest.WaitJS(t, ctx, 20*time.Second, "htmx and the demo row", `typeof htmx !== "undefined" && `+browsertest.Query(row)+` !== null`)
	// Let the rows refresh themselves at least once: the refreshed fragment
	// must not bring the controls back.
	browsertest.WaitJS(t, ctx, 20*time.Second, "a live refresh", `document.getElementById("conn").textContent.indexOf("updated") >= 0`)

	if n := browsertest.JS[int](t, ctx, `document.querySelectorAll("main button, main form, main [hx-post], main input").length`); n != 0 {
		t.Errorf("the viewer's page has %d buttons, forms or inputs", n)
	}
	if got := browsertest.JS[string](t, ctx, browsertest.Query(row+" td:nth-child(4)")+".textContent.trim()"); got != "5" {
		t.Errorf("concurrency shown as %q, want the value 5 as text", got)
	}
	if got := browsertest.JS[string](t, ctx, browsertest.Query("header .user")+".textContent"); got != "vera · viewer" {
		t.Errorf("header shows %q", got)
	}

	// The page's own token does not help a viewer.
	browsertest.JS[bool](t, ctx, `(window.__post = null, fetch("/ui/consumers/demo/concurrency", {method: "POST",
		headers: {"X-CSRF-Token": document.querySelector('meta[name="csrf-token"]').content, "Content-Type": "application/x-www-form-urlencoded"},
		body: "op=inc"}).then(r => { window.__post = r.status; }), true)`)
	browsertest.WaitJS(t, ctx, 10*time.Second, "the POST to be answered", `window.__post !== null`)
	if code := browsertest.JS[int](t, ctx, `window.__post`); code != 403 {
		t.Errorf("viewer's POST answered %d, want 403", code)
	}
	if updates, _ := f.consumers.counts(); updates != 0 {
		t.Errorf("the controller saw %d updates from a viewer", updates)
	}
	for _, p := range problems.list() {
		// The refused POST is the one expected error.
		if !strings.Contains(p, "403") {
			t.Errorf("page problem: %s", p)
		}
	}
}
