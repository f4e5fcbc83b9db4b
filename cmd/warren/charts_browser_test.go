package main

// The queue page's charts and the prefetch control's "applying…" state in a
// real headless Chromium against the real server, broker and consumer.

import (
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	bt "warren/internal/browsertest"
)

func TestQueueChartsAndPrefetchApplyingInBrowser(t *testing.T) {
	ctx := bt.New(t)
	b := newBroker(t)
	work := uniqueName("e2e charts") + " <b>x</b>"
	b.declare(work)
	srv := startServer(t, `
consumers:
  - name: charts
    queue: `+strconv.Quote(work)+`
    max_concurrent_messages: 2
    prefetch_count: 3
    handler: { type: sleep, duration: 5ms }
`)
	q := bt.Query
	b.publish(work, 200)
	// History for the charts: a few polls and consumer samples.
	eventually(t, 30*time.Second, "the consumer to handle the messages", func() bool { return srv.consumer("charts").Processed >= 200 })

	page := srv.base + "/queues/" + url.PathEscape("/") + "/" + url.PathEscape(work)
	t.Run("the queue page shows charts and switches range", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.Navigate(page)); err != nil {
			t.Fatal(err)
		}
		bt.WaitJS(t, ctx, 20*time.Second, "the charts", q(`#charts svg.chart`)+` !== null`)
		// Wait for every chart to have data: depth from the first polls,
		// rates from the second, latency from the first consumer sample
		// (the panel refreshes itself every 30 s; reload instead).
		labelsJS := `Array.from(document.querySelectorAll("#charts svg text.label")).map(e => e.textContent).join("|")`
		deadline := time.Now().Add(30 * time.Second)
		for bt.JS[int](t, ctx, `document.querySelectorAll("#charts svg.chart path.line").length`) == 0 ||
			!strings.Contains(bt.JS[string](t, ctx, labelsJS), "egress") ||
			!strings.Contains(bt.JS[string](t, ctx, labelsJS), "p95") {
			if time.Now().After(deadline) {
				t.Fatalf("charts without data after 30 s of samples: labels %q", bt.JS[string](t, ctx, labelsJS))
			}
			if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
				t.Fatal(err)
			}
			bt.WaitJS(t, ctx, 20*time.Second, "the charts", q(`#charts svg.chart`)+` !== null`)
		}
		if got := bt.JS[string](t, ctx, q(`#charts`)+`.getAttribute("data-range")`); got != "1h" {
			t.Errorf("default range %q, want 1h", got)
		}
		labels := bt.JS[string](t, ctx, labelsJS)
		for _, want := range []string{"ready", "unacked", "ingress", "egress", "p95"} {
			if !strings.Contains(labels, want) {
				t.Errorf("direct labels %q lack %q", labels, want)
			}
		}
		// Mark the document: an htmx swap keeps it, a full load would not.
		bt.JS[bool](t, ctx, `(window.__sameDocument = true)`)
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#charts nav.ranges a.range[href$="range=6h"]`))); err != nil {
			t.Fatal(err)
		}
		bt.WaitJS(t, ctx, 20*time.Second, "the 6h charts", q(`#charts`)+` !== null && `+q(`#charts`)+`.getAttribute("data-range") === "6h"`)
		if got := bt.JS[string](t, ctx, `location.search`); got != "?range=6h" {
			t.Errorf("address bar query %q, want ?range=6h", got)
		}
		if !bt.JS[bool](t, ctx, `window.__sameDocument === true`) {
			t.Error("switching range reloaded the whole page")
		}
		if got := bt.JS[string](t, ctx, q(`#charts a.range.current`)+`.textContent.trim()`); got != "6h" {
			t.Errorf("current range link %q", got)
		}
		if n := bt.JS[int](t, ctx, `document.querySelectorAll("main b").length`); n != 0 {
			t.Errorf("%d <b> elements: the queue name was rendered as markup", n)
		}
		// The URL with the range loads the same view directly.
		if err := chromedp.Do(ctx, chromedp.Navigate(page+"?range=24h")); err != nil {
			t.Fatal(err)
		}
		bt.WaitJS(t, ctx, 20*time.Second, "the 24h charts", q(`#charts`)+` !== null && `+q(`#charts`)+`.getAttribute("data-range") === "24h"`)
	})

	t.Run("prefetch shows applying until the broker has it", func(t *testing.T) {
		row := `tr[data-consumer="charts"]`
		pref := row + ` form.prefetch input[name="value"]`
		applying := row + ` form.prefetch .applying.pending`
		if err := chromedp.Do(ctx, chromedp.Navigate(srv.base+"/consumers")); err != nil {
			t.Fatal(err)
		}
		bt.WaitJS(t, ctx, 20*time.Second, "the consumer row", q(pref)+` !== null`)

		// Paused, the consumer has no subscription: a new prefetch waits
		// for the next one, and the row says so.
		// Clicked like resume below (pause is idempotent too).
		bt.WaitJS(t, ctx, 20*time.Second, "the paused row",
			`(() => { const b = `+q(row+` button.pause`)+`; if (b && !b.closest("form").classList.contains("htmx-request")) b.click(); return false; })() || `+
				q(row+` button.resume`)+` !== null`)
		if err := chromedp.Do(ctx,
			chromedp.SetValue(chromedp.CSS(pref), ""),
			chromedp.SendKeys(chromedp.CSS(pref), "9"),
			chromedp.Click(chromedp.CSS(row+` form.prefetch button.set`)),
		); err != nil {
			t.Fatal(err)
		}
		// The typed 9 and the paused row's "applying" are there before the
		// request lands: wait for the consumer itself, then for the row
		// rendered from it (the form no longer in flight).
		eventually(t, 10*time.Second, "the consumer at prefetch 9", func() bool { return srv.consumer("charts").Prefetch == 9 })
		bt.WaitJS(t, ctx, 20*time.Second, "applying shown next to prefetch 9",
			q(pref)+` !== null && `+q(pref)+`.value === "9" && !`+q(row+` form.prefetch`)+`.classList.contains("htmx-request") && `+
				q(applying)+` !== null && getComputedStyle(`+q(applying)+`).display !== "none"`)
		if c := srv.consumer("charts"); c.Prefetch != 9 || c.AppliedPrefetch == 9 {
			t.Fatalf("paused consumer: prefetch %d applied %d, want 9 and not yet 9", c.Prefetch, c.AppliedPrefetch)
		}

		// Resumed, it subscribes with the new prefetch: the row drops
		// "applying" and shows the applied value.
		// Clicked from the page's script, again while the button is still
		// there: a row refresh landing at the moment of a click replaces
		// the button under it (resume is idempotent).
		bt.WaitJS(t, ctx, 30*time.Second, "prefetch 9 applied after resume",
			`(() => { const b = `+q(row+` button.resume`)+`; if (b && !b.closest("form").classList.contains("htmx-request")) b.click(); return false; })() || (`+
				q(pref)+` !== null && `+q(pref)+`.value === "9" && `+q(applying)+` === null && `+q(row+` button.pause`)+` !== null)`)
		if c := srv.consumer("charts"); c.AppliedPrefetch != 9 {
			t.Errorf("applied prefetch %d after resume, want 9", c.AppliedPrefetch)
		}
		if got := bt.JS[string](t, ctx, `getComputedStyle(`+q(row+` form.prefetch .applying`)+`).display`); got != "none" {
			t.Errorf("applying still shown (display %q) once applied", got)
		}

		// While a concurrency change is on its way, its form says so.
		bt.JS[bool](t, ctx, `(() => {
			window.__applyingSeen = false;
			// On the whole document: a row refresh may replace the form.
			new MutationObserver((records) => {
				for (const r of records) {
					const form = r.target;
					if (form.matches && form.matches(`+bt.String(row+` form.concurrency.htmx-request`)+`) &&
						getComputedStyle(form.querySelector(".applying")).display !== "none") {
						window.__applyingSeen = true;
					}
				}
			}).observe(document.body, {subtree: true, attributes: true, attributeFilter: ["class"]});
			return true;
		})()`)
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(row+` form.concurrency button.inc`))); err != nil {
			t.Fatal(err)
		}
		bt.WaitJS(t, ctx, 20*time.Second, "concurrency 3", q(row+` form.concurrency input[name="value"]`)+`.value === "3"`)
		if !bt.JS[bool](t, ctx, `window.__applyingSeen === true`) {
			t.Error("the concurrency form never showed applying while its request ran")
		}
	})
}
