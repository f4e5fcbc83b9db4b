package web

import (
	"context"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"warren/internal/browsertest"
)

// A row refresh that completes while the user holds a button down must not
// replace the row: the click would land on a detached button and be lost
// (seen in CI: a "+" click that never reached the server). Once the button
// is released, refreshes replace the row again.
func TestRefreshLeavesPressedRowAlone(t *testing.T) {
	f := newFixture(t)
	ctx := browsertest.New(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(f.http.URL+"/consumers")); err != nil {
		t.Fatal(err)
	}
	row := `tr[data-consumer="demo"]`
	q := func(sel string) string { return "document.querySelector(" + browsertest.String(sel) + ")" }
	input := row + ` form.concurrency input[name="value"]`
	browsertest.WaitJS(t, ctx, 20*time.Second, "htmx and the consumer row", `typeof htmx !== "undefined" && `+q(input)+` !== null`)

	// Count completed refreshes of the row, and hold the + button down.
	browsertest.JS[bool](t, ctx, `(() => {
		window.__refreshes = 0;
		document.addEventListener("htmx:afterRequest", (e) => {
			if (e.detail.elt.matches && e.detail.elt.matches(`+browsertest.String(row)+`)) window.__refreshes++;
		});
		window.__row = `+q(row)+`;
		`+q(row+` form.concurrency button.inc`)+`.dispatchEvent(new PointerEvent("pointerdown", {bubbles: true}));
		return true;
	})()`)
	if _, err := f.consumers.Update(context.Background(), "demo", changeConcurrency(9)); err != nil {
		t.Fatal(err)
	}
	// Two refreshes complete (every 2 s) while the button is down.
	browsertest.WaitJS(t, ctx, 15*time.Second, "two refreshes of the row (or the row replaced)",
		`window.__refreshes >= 2 || `+q(row)+` !== window.__row`)
	if !browsertest.JS[bool](t, ctx, q(row)+` === window.__row`) {
		t.Fatal("a refresh replaced the row under a pressed button")
	}
	if got := browsertest.JS[string](t, ctx, q(input)+".value"); got != "5" {
		t.Errorf("the held row shows %q, want the value it had when pressed (5)", got)
	}

	// Released: the next refresh shows the new value.
	browsertest.JS[bool](t, ctx, `(() => {
		window.__row.querySelector("form.concurrency button.inc").dispatchEvent(new PointerEvent("pointerup", {bubbles: true}));
		return true;
	})()`)
	browsertest.WaitJS(t, ctx, 15*time.Second, "the refreshed row with concurrency 9", q(input)+` !== null && `+q(input)+`.value === "9"`)
}
