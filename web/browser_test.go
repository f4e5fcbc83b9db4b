package web

// The dashboard in a real headless Chromium (Debian's chromium): htmx, app.js
// and the CSP together, which string matching on HTML cannot show.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"warren/internal/browsertest"
	"warren/monitor"
)

// consoleProblems collects page errors, console errors and CSP violations.
type consoleProblems struct {
	mu   sync.Mutex
	msgs []string
}

func (p *consoleProblems) add(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msgs = append(p.msgs, s)
}

func (p *consoleProblems) list() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.msgs...)
}

func watchConsole(t *testing.T, ctx context.Context) *consoleProblems {
	t.Helper()
	p := &consoleProblems{}
	err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *cdplog.EventEntryAdded:
			if ev.Entry == nil {
				return
			}
			// The 422 answer of a rejected value is expected (and handled).
			if ev.Entry.Source == cdplog.EntrySourceNetwork && strings.Contains(ev.Entry.Text, "422") {
				return
			}
			if ev.Entry.Level == cdplog.EntryLevelError || ev.Entry.Source == cdplog.EntrySourceSecurity {
				p.add(fmt.Sprintf("log %s: %s", ev.Entry.Source, ev.Entry.Text))
			}
		case *runtime.EventExceptionThrown:
			if ev.ExceptionDetails != nil {
				p.add("exception: " + ev.ExceptionDetails.Text)
			}
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError {
				var parts []string
				for _, a := range ev.Args {
					if a.Value != nil {
						parts = append(parts, string(a.Value))
					} else {
						parts = append(parts, a.Description)
					}
				}
				p.add("console.error: " + strings.Join(parts, " "))
			}
		}
	})
	if err != nil {
		t.Fatalf("listening to the page: %v", err)
	}
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("enabling the log domain: %v", err)
	}
	if _, err := chromedp.Call(ctx, runtime.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("enabling the runtime domain: %v", err)
	}
	return p
}

func TestDashboardInBrowser(t *testing.T) {
	f := newFixture(t)
	ctx := browsertest.New(t)
	problems := watchConsole(t, ctx)

	// A browser far from UTC: every time on the page must still be UTC and
	// say so, like the server-rendered ones next to it.
	if _, err := chromedp.Call(ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: "America/Chicago"}); err != nil {
		t.Fatalf("setting the time zone: %v", err)
	}
	// The consumer table, where the controls are.
	if err := chromedp.Do(ctx, chromedp.Navigate(f.http.URL+"/consumers")); err != nil {
		t.Fatalf("loading the consumers page: %v", err)
	}
	row := `tr[data-consumer="demo"]`
	input := row + ` form.concurrency input[name="value"]`
	q := func(sel string) string { return "document.querySelector(" + browsertest.String(sel) + ")" }

	browsertest.WaitJS(t, ctx, 20*time.Second, "htmx and the consumer row", `typeof htmx !== "undefined" && `+q(input)+` !== null`)
	if got := browsertest.JS[string](t, ctx, q(input)+".value"); got != "5" {
		t.Fatalf("initial concurrency shown %q, want 5", got)
	}

	// A name from the broker is text, not markup, in the live page too.
	if n := browsertest.JS[int](t, ctx, `document.querySelectorAll("main b, main i").length`); n != 0 {
		t.Errorf("%d elements injected by queue or consumer names", n)
	}

	t.Run("plus raises concurrency", func(t *testing.T) {
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(row+` form.concurrency button.inc`))); err != nil {
			t.Fatal(err)
		}
		browsertest.WaitJS(t, ctx, 10*time.Second, "concurrency 6 in the page", q(input)+` !== null && `+q(input)+`.value === "6"`)
		if st, _ := f.consumers.Get("demo"); st.Concurrency != 6 {
			t.Errorf("controller has concurrency %d, want 6", st.Concurrency)
		}
	})

	t.Run("invalid value shows the error and the real value", func(t *testing.T) {
		_, applied0 := f.consumers.counts()
		if err := chromedp.Do(ctx,
			chromedp.SetValue(chromedp.CSS(input), ""),
			chromedp.SendKeys(chromedp.CSS(input), "0"),
			chromedp.Click(chromedp.CSS(row+` form.concurrency button.set`)),
		); err != nil {
			t.Fatal(err)
		}
		errSel := row + ` form.concurrency .control-error`
		browsertest.WaitJS(t, ctx, 10*time.Second, "the error next to the control",
			q(errSel)+` !== null && `+q(errSel)+`.textContent.includes("between 1 and 100")`)
		if got := browsertest.JS[string](t, ctx, q(input)+".value"); got != "6" {
			t.Errorf("control shows %q after a rejected value, want the real 6", got)
		}
		if st, _ := f.consumers.Get("demo"); st.Concurrency != 6 {
			t.Errorf("controller has concurrency %d after a rejected value", st.Concurrency)
		}
		if _, applied1 := f.consumers.counts(); applied1 != applied0 {
			t.Error("a rejected value was applied")
		}
	})

	t.Run("refresh updates values but leaves an edited row alone", func(t *testing.T) {
		// Typing pauses the row's refresh; the queue table keeps refreshing.
		if err := chromedp.Do(ctx,
			chromedp.SetValue(chromedp.CSS(input), ""),
			chromedp.SendKeys(chromedp.CSS(input), "42"),
		); err != nil {
			t.Fatal(err)
		}
		if _, err := f.consumers.Update(context.Background(), "demo", changeConcurrency(9)); err != nil {
			t.Fatal(err)
		}
		browsertest.JS[bool](t, ctx, `(function(){ window.__swaps = 0; document.addEventListener("htmx:afterSettle", function(){ window.__swaps++ }); return true })()`)
		browsertest.WaitJS(t, ctx, 20*time.Second, "two refreshes of other tables", `window.__swaps >= 3`)
		if got := browsertest.JS[string](t, ctx, q(input)+".value"); got != "42" {
			t.Errorf("the row being edited was refreshed: input shows %q", got)
		}
		// Escape abandons the edit; the next refresh shows the real value.
		if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(input), "\x1b")); err != nil {
			t.Fatal(err)
		}
		browsertest.WaitJS(t, ctx, 20*time.Second, "the refreshed value 9", q(input)+` !== null && `+q(input)+`.value === "9"`)
		browsertest.WaitJS(t, ctx, 10*time.Second, "last updated", `document.getElementById("conn").textContent.includes("updated")`)
	})

	t.Run("times are UTC and labelled", func(t *testing.T) {
		if off := browsertest.JS[int](t, ctx, `new Date().getTimezoneOffset()`); off == 0 {
			t.Fatal("the browser runs in UTC; the time zone override did not take")
		}
		// The hour shown is the UTC hour of now (or of a moment ago, should
		// the hour have just turned).
		ok := browsertest.JS[bool](t, ctx, `(function(){
			var m = /updated (\d\d):\d\d:\d\d UTC$/.exec(document.getElementById("conn").textContent);
			if (!m) return false;
			var h = Number(m[1]), now = new Date();
			return h === now.getUTCHours() || h === new Date(now.getTime() - 60000).getUTCHours();
		})()`)
		if !ok {
			t.Errorf("conn says %q, want \"live · updated HH:MM:SS UTC\" in UTC",
				browsertest.JS[string](t, ctx, `document.getElementById("conn").textContent`))
		}
		if got := browsertest.JS[string](t, ctx, `document.getElementById("broker").textContent`); !strings.HasSuffix(got, "03:04:05 UTC") {
			t.Errorf("broker badge says %q", got)
		}
	})

	// Up to here nothing failed: no CSP violation, no script error, and no
	// error logged by htmx (the 422 with the row is handled, not an error).
	for _, p := range problems.list() {
		t.Errorf("browser reported: %s", p)
	}

	t.Run("a failed poll shows in the header", func(t *testing.T) {
		// The overview, whose refresh carries the header badge.
		if err := chromedp.Do(ctx, chromedp.Navigate(f.http.URL+"/")); err != nil {
			t.Fatalf("loading the overview: %v", err)
		}
		browsertest.WaitJS(t, ctx, 20*time.Second, "the overview", `typeof htmx !== "undefined" && document.getElementById("overview") !== null`)
		f.queues.set(monitor.Snapshot{At: pollTime, Err: fmt.Errorf("polling queues: %w for user %q (HTTP 401)", monitor.ErrCredentialsRejected, "guest")})
		browsertest.WaitJS(t, ctx, 10*time.Second, "the management API badge",
			`document.getElementById("broker").textContent === "management API: credentials rejected"`)
		browsertest.WaitJS(t, ctx, 10*time.Second, "depths unknown in the queue panel",
			`document.querySelector("#queues .poll-error") !== null && document.querySelector("#queues .poll-error").textContent.includes("Queue depths unknown")`)
		if got := browsertest.JS[string](t, ctx, `document.querySelector("#queues h2").textContent`); strings.Contains(got, "0 queues") {
			t.Errorf("queue panel heading %q after a failed poll", got)
		}
		if n := browsertest.JS[int](t, ctx, `document.querySelectorAll("#broker").length`); n != 1 {
			t.Errorf("%d broker badges", n)
		}
	})

	t.Run("connection lost after failed refreshes", func(t *testing.T) {
		f.http.CloseClientConnections()
		f.http.Close()
		browsertest.WaitJS(t, ctx, 30*time.Second, "connection lost", `document.getElementById("conn").textContent.includes("connection lost")`)
	})

}
