package web

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"warren/alerts"
	"warren/monitor"
)

// The queue page says which depth levels page someone when alert overrides
// set them apart from the status thresholds (a trial read 10,000/50,000 on
// the page while a warning alert at 50 was firing), and says when depth
// alerts are off for the queue.
func TestQueuePageShowsDepthAlertLevels(t *testing.T) {
	th := monitor.Thresholds{Default: monitor.Level{Warning: 10000, Critical: 50000}}
	f := newFixtureWith(t, func(d *Deps) {
		d.Thresholds = &th
		d.DepthAlertLevels = func(vhost, queue string) alerts.Effective {
			switch queue {
			case "orders":
				return alerts.Effective{Enabled: true, Warning: 50, Critical: 2000, HasCrit: true}
			case "idle":
				return alerts.Effective{Enabled: false}
			}
			return alerts.Effective{Enabled: true, Warning: 10000, Critical: 50000, HasCrit: true}
		}
	})
	page := func(name string) string {
		resp, err := http.Get(f.http.URL + queueHref("/", name))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d", name, resp.StatusCode)
		}
		return string(b)
	}
	if p := page("orders"); !strings.Contains(p, `<dd class="alert-levels">warning at 50 · critical at 2,000 messages</dd>`) {
		t.Errorf("orders page lacks its alert levels")
	}
	if p := page("idle"); !strings.Contains(p, `<dd class="alert-levels">off</dd>`) {
		t.Errorf("idle page does not say depth alerts are off")
	}
	if p := page("a/b?c#d"); strings.Contains(p, `class="alert-levels"`) {
		t.Errorf("a queue whose alert levels equal its thresholds repeats them")
	}
}
