package main

// The dashboard of the real server in a real headless Chromium: real broker,
// real consumers, real management API. The web package's own browser test
// covers the controls against small in-test implementations; this one shows
// the whole path from a click to the broker.

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	bt "warren/internal/browsertest"
)

func TestDashboardEndToEndInBrowser(t *testing.T) {
	ctx := bt.New(t)
	b := newBroker(t)
	base := uniqueName("e2e browser")
	// The consumer's queue has every awkward character at once.
	work := base + " a/b?c#d+e <b>x</b> é"
	odd := []string{base + " space", base + "/slash", base + "#hash", base + "?q", base + "+plus", base + "<b>bold</b>"}
	b.declare(work)
	for i, n := range odd {
		b.declare(n)
		b.publish(n, i+1)
	}
	srv := startServer(t, fmt.Sprintf(`
consumers:
  - name: web
    queue: %q
    max_concurrent_messages: 1
    prefetch_count: 1
    max_concurrency: 20
    handler: { type: sleep, duration: 10ms }
`, work))
	q := bt.Query
	row := `tr[data-consumer="web"]`
	conc := row + ` form.concurrency input[name="value"]`
	pref := row + ` form.prefetch input[name="value"]`
	cell := func(col int) string { // text of a numeric column of the consumer row
		return q(row) + `.querySelectorAll("td")[` + strconv.Itoa(col) + `].textContent.trim()`
	}

	if err := chromedp.Do(ctx, chromedp.Navigate(srv.base+"/consumers")); err != nil {
		t.Fatal(err)
	}
	bt.WaitJS(t, ctx, 20*time.Second, "the consumer row", q(conc)+` !== null`)

	t.Run("odd queue names show their depth as text, with working links", func(t *testing.T) {
		// The queue list filtered by the test's prefix: other tests' queues
		// on the shared broker could push these past the first page.
		if err := chromedp.Do(ctx, chromedp.Navigate(srv.base+"/queues?q="+url.QueryEscape(base))); err != nil {
			t.Fatal(err)
		}
		for i, n := range odd {
			sel := `tr.queue[data-vhost="/"][data-queue=` + cssString(n) + `]`
			bt.WaitJS(t, ctx, 30*time.Second, "the row of "+n+" with total "+strconv.Itoa(i+1),
				q(sel)+` !== null && `+q(sel)+`.querySelectorAll("td")[4].textContent.trim() === "`+strconv.Itoa(i+1)+`"`)
			if got := bt.JS[string](t, ctx, q(sel)+`.querySelector("td.name a").textContent`); got != n {
				t.Errorf("link text %q, want %q", got, n)
			}
		}
		if n := bt.JS[int](t, ctx, `document.querySelectorAll("main b").length`); n != 0 {
			t.Errorf("%d <b> elements: a queue name was rendered as markup", n)
		}
		// Follow the link of the hardest name: the queue page names it and shows its depth.
		last := odd[len(odd)-1]
		href := bt.JS[string](t, ctx, q(`tr.queue[data-queue=`+cssString(last)+`] td.name a`)+`.href`)
		if err := chromedp.Do(ctx, chromedp.Navigate(href)); err != nil {
			t.Fatal(err)
		}
		bt.WaitJS(t, ctx, 20*time.Second, "the queue page of "+last,
			`document.querySelector("#queue h2 .name") !== null && document.querySelector("#queue h2 .name").textContent === `+bt.String(last))
		if got := bt.JS[string](t, ctx, `document.querySelector("#queue dl").textContent`); !strings.Contains(got, "total") || !strings.Contains(got, strconv.Itoa(len(odd))) {
			t.Errorf("queue page facts %q do not show total %d", got, len(odd))
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(srv.base+"/consumers")); err != nil {
			t.Fatal(err)
		}
		bt.WaitJS(t, ctx, 20*time.Second, "the consumer row", q(conc)+` !== null`)
	})

	t.Run("processing moves on the page", func(t *testing.T) {
		before := srv.consumer("web").Processed
		b.publish(work, 300)
		bt.WaitJS(t, ctx, 60*time.Second, "the processed cell to pass "+strconv.FormatUint(before+50, 10),
			`parseInt(`+cell(6)+`.replace(/[^0-9]/g, ""), 10) >= `+strconv.FormatUint(before+50, 10))
	})

	t.Run("plus raises concurrency on the real consumer", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(row+` form.concurrency button.inc`))); err != nil {
			t.Fatal(err)
		}
		bt.WaitJS(t, ctx, 10*time.Second, "concurrency 2 in the page", q(conc)+` !== null && `+q(conc)+`.value === "2"`)
		if c := srv.consumer("web"); c.Concurrency != 2 {
			t.Fatalf("the consumer has concurrency %d, want 2", c.Concurrency)
		}
	})

	t.Run("prefetch set in the page reaches the broker", func(t *testing.T) {
		if err := chromedp.Do(ctx,
			chromedp.SetValue(chromedp.CSS(pref), ""),
			chromedp.SendKeys(chromedp.CSS(pref), "7"),
			chromedp.Click(chromedp.CSS(row+` form.prefetch button.set`)),
		); err != nil {
			t.Fatal(err)
		}
		bt.WaitJS(t, ctx, 20*time.Second, "prefetch 7 in the page", q(pref)+` !== null && `+q(pref)+`.value === "7"`)
		eventually(t, 30*time.Second, "the broker to enforce prefetch 7", func() bool {
			var list []struct {
				Queue struct {
					Name string `json:"name"`
				} `json:"queue"`
				PrefetchCount int `json:"prefetch_count"`
			}
			mgmtGet(t, "/api/consumers/"+url.PathEscape("/"), &list)
			for _, c := range list {
				if c.Queue.Name == work && c.PrefetchCount == 7 {
					return true
				}
			}
			return false
		})
	})

	t.Run("an invalid value shows the error and keeps the real value", func(t *testing.T) {
		if err := chromedp.Do(ctx,
			chromedp.SetValue(chromedp.CSS(conc), ""),
			chromedp.SendKeys(chromedp.CSS(conc), "0"),
			chromedp.Click(chromedp.CSS(row+` form.concurrency button.set`)),
		); err != nil {
			t.Fatal(err)
		}
		errSel := row + ` form.concurrency .control-error`
		bt.WaitJS(t, ctx, 10*time.Second, "the error next to the control", q(errSel)+` !== null && `+q(errSel)+`.textContent.trim() !== ""`)
		if got := bt.JS[string](t, ctx, q(conc)+".value"); got != "2" {
			t.Errorf("control shows %q after a rejected value, want the real 2", got)
		}
		if c := srv.consumer("web"); c.Concurrency != 2 {
			t.Errorf("a rejected value changed the consumer: concurrency %d", c.Concurrency)
		}
	})
}

// cssString quotes s for a CSS attribute selector: only '"' and '\' need
// escaping there (JSON's \u003c escapes mean something else in CSS).
func cssString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
