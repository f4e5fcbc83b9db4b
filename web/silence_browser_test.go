package web

import (
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"warren/alerts"
	"warren/internal/browsertest"
)

// The "end" button of a silence in a real Chromium: htmx posts with the
// page's CSRF token (app.js), under the CSP, and swaps in the re-rendered
// panel; the silence is then no longer in force.
func TestSilenceEndInBrowser(t *testing.T) {
	f, st, a := alertsUIFixture(t)
	sl, err := st.CreateSilence(t.Context(), alerts.Silence{Queue: a.Queue, EndsAt: time.Now().Add(time.Hour), Owner: "ana", Reason: "deploy"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := browsertest.New(t)
	problems := watchConsole(t, ctx)
	if err := chromedp.Do(ctx, chromedp.Navigate(f.http.URL+"/alerts")); err != nil {
		t.Fatal(err)
	}
	button := `#silences tr[data-silence="` + strconv.FormatInt(sl.ID, 10) + `"] form.silence-expire button`
	browsertest.WaitJS(t, ctx, 20*time.Second, "htmx and the end button",
		`typeof htmx !== "undefined" && document.querySelector(`+browsertest.String(button)+`) !== null`)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(button))); err != nil {
		t.Fatal(err)
	}
	browsertest.WaitJS(t, ctx, 15*time.Second, "the panel saying the silence ended",
		`document.querySelector("#silences .action-result") !== null && document.querySelectorAll("#silences tr.silence").length === 0`)
	if list, err := st.ActiveSilences(t.Context(), time.Now()); err != nil || len(list) != 0 {
		t.Errorf("silences in force after the click: %+v, %v", list, err)
	}
	if p := problems.list(); len(p) > 0 {
		t.Errorf("console problems: %v", p)
	}
}
