// Package browsertest starts Debian's headless Chromium for the dashboard
// tests and offers the few page helpers those tests share.
package browsertest

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ChromiumPath is where Debian's chromium package installs the browser.
const ChromiumPath = "/usr/bin/chromium"

// New starts a fresh headless Chromium for one test. Without the binary the
// test is skipped on a developer's machine but fails in CI (CI set), where a
// missing browser must not pass silently.
func New(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(ChromiumPath); err != nil {
		if os.Getenv("CI") == "" {
			t.Skipf("%s not found (make test installs it; or apt-get install chromium); skipping the browser test", ChromiumPath)
		}
		t.Fatalf("%s not found and CI is set: the browser test must run in CI: %v", ChromiumPath, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(ChromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		// Without these Chromium tries to reach Google's hosts, which this
		// sandboxed network refuses.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1400, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 120*time.Second)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	return ctx
}

// JS evaluates expr in the page.
func JS[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// WaitJS polls a JavaScript condition until it is true or timeout passes.
func WaitJS(t *testing.T, ctx context.Context, timeout time.Duration, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (%s), last error %v", what, expr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// String quotes s as a JavaScript string literal.
func String(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Query is the JavaScript expression document.querySelector(sel).
func Query(sel string) string { return "document.querySelector(" + String(sel) + ")" }
