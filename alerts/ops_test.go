package alerts_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"warren/alerts"
	"warren/monitor"
)

// A silence suppresses notifications of the transitions it matches (they
// are still recorded); other alerts notify; once it ends, notifications
// resume.
func TestSilenceSuppressesMatchingNotifications(t *testing.T) {
	st := newStore(t)
	hooks := []alerts.WebhookConfig{{Name: "outbox-only", URL: "http://127.0.0.1:9/never", Format: "generic"}}
	e := alerts.NewEvaluator(st, hooks, testLogger(t), alerts.WithThresholds(testThresholds))
	ctx := context.Background()
	c := newClock()
	silent, loud := uniqueQueue(t, "batch.nightly"), uniqueQueue(t, "orders")
	sl, err := st.CreateSilence(ctx, alerts.Silence{Rule: alerts.RuleQueueDepth, Queue: "TestSilence*batch.*",
		EndsAt: time.Now().Add(time.Hour), Owner: "ana", Reason: "nightly batch"})
	if err != nil || sl.ID == 0 {
		t.Fatalf("CreateSilence = %+v, %v", sl, err)
	}
	e.ObserveSnapshot(ctx, c.snap(depth("/", silent, 30), depth("/", loud, 30)))
	ns := pending(t, st)
	if len(ns) != 1 || ns[0].Alert.Queue != loud {
		t.Fatalf("outbox = %v, want only %s", summary(ns), loud)
	}
	if a := activeAlerts(t, e); len(a) != 2 {
		t.Errorf("active alerts %d, want 2 (silenced ones are still recorded)", len(a))
	}
	list, err := st.ActiveSilences(ctx, time.Now())
	if err != nil || len(list) != 1 || list[0].Owner != "ana" {
		t.Errorf("ActiveSilences = %+v, %v", list, err)
	}
	if list, _ := st.ActiveSilences(ctx, time.Now().Add(2*time.Hour)); len(list) != 0 {
		t.Errorf("silence still active after its end: %+v", list)
	}
}

// The dispatcher logs every attempt with outcome, latency and error; a test
// notification reaches a real receiver without touching the outbox.
func TestDeliveryLogAndTestNotification(t *testing.T) {
	st := newStore(t)
	rc := newReceiver(t, "k", func(n int, r request) int {
		if n == 0 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	hooks := []alerts.WebhookConfig{rc.hook("ops")}
	d, _ := startDispatcher(t, st, hooks)
	e := newEvaluator(t, st, hooks, d)
	c := newClock()
	e.ObserveSnapshot(context.Background(), c.snap(depth("/", uniqueQueue(t, "log"), 12)))
	eventually(t, 10*time.Second, "an empty outbox", func() bool { return len(pending(t, st)) == 0 })
	log, err := st.DeliveryLog(context.Background(), 10)
	if err != nil || len(log) != 2 || log[0].Outcome != "delivered" || log[1].Outcome != "retry" ||
		log[1].Error == "" || log[0].DeliveryID != log[1].DeliveryID || log[0].Webhook != "ops" {
		t.Fatalf("DeliveryLog = %+v, %v", log, err)
	}

	a, err := d.SendTest(context.Background(), "ops")
	if err != nil || a.Outcome != "delivered" {
		t.Fatalf("SendTest = %+v, %v", a, err)
	}
	got := rc.got()
	if last := got[len(got)-1]; last.Payload.Alert.Rule != "test" || last.Delivery != a.DeliveryID {
		t.Errorf("receiver got %+v", last.Payload)
	}
	if _, err := d.SendTest(context.Background(), "nope"); !errors.Is(err, alerts.ErrUnknownWebhook) {
		t.Errorf("SendTest(nope) = %v, want ErrUnknownWebhook", err)
	}
}

func TestAlertMetrics(t *testing.T) {
	st := newStore(t)
	rc := newReceiver(t, "", nil)
	hooks := []alerts.WebhookConfig{rc.hook("ops")}
	d, _ := startDispatcher(t, st, hooks)
	e := newEvaluator(t, st, hooks, d)
	c := newClock()
	e.ObserveSnapshot(context.Background(), c.snap(depth("/", uniqueQueue(t, "m"), 25)))
	eventually(t, 10*time.Second, "an empty outbox", func() bool { return len(pending(t, st)) == 0 })
	reg := prometheus.NewRegistry()
	reg.MustRegister(alerts.NewCollector(e, d))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += " " + l.GetName() + "=" + l.GetValue()
			}
			got[key] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		"warren_alert_delivery_attempts_total outcome=delivered webhook=ops": 1,
		"warren_alerts_firing rule=queue_depth severity=critical":            1,
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("metrics %v, want %v", got, want)
	}
}

// A silence holds back firing notifications, but not the resolve of an
// alert whose firing (or escalation) was sent: the receiver must learn that
// the incident it opened is over. An alert that fired and resolved inside
// the silence stays quiet throughout. Also across a restart of the
// evaluator (what was notified is then read from the outbox).
func TestResolveAfterNotifiedFiringIsSentDuringSilence(t *testing.T) {
	st := newStore(t)
	rc := newReceiver(t, "", nil)
	hooks := []alerts.WebhookConfig{rc.hook("pager")}
	d, _ := startDispatcher(t, st, hooks)
	e := newEvaluator(t, st, hooks, d)
	ctx := context.Background()
	c := newClock()
	paged, quiet := uniqueQueue(t, "paged"), uniqueQueue(t, "quiet")
	pagedRestart, quietRestart := uniqueQueue(t, "paged-restart"), uniqueQueue(t, "quiet-restart")
	escalated := uniqueQueue(t, "escalated")
	poll := func(e *alerts.Evaluator, levels map[string]int64) {
		t.Helper()
		var qs []monitor.QueueSample
		for _, q := range []string{paged, quiet, pagedRestart, quietRestart, escalated} {
			qs = append(qs, depth("/", q, levels[q]))
		}
		e.ObserveSnapshot(ctx, c.snap(qs...))
		eventually(t, 10*time.Second, "an empty outbox", func() bool { return len(pending(t, st)) == 0 })
	}
	silence := func() alerts.Silence {
		t.Helper()
		sl, err := st.CreateSilence(ctx, alerts.Silence{EndsAt: time.Now().Add(time.Hour), Owner: "ana", Reason: "maintenance"})
		if err != nil {
			t.Fatalf("CreateSilence: %v", err)
		}
		return sl
	}

	poll(e, map[string]int64{paged: 12, pagedRestart: 12}) // notified
	first := silence()
	poll(e, map[string]int64{paged: 12, pagedRestart: 12, quiet: 12, quietRestart: 12, escalated: 12}) // silenced firings
	poll(e, map[string]int64{pagedRestart: 12, quietRestart: 12, escalated: 12})                       // paged and quiet resolve

	// The silence ends early; the escalation is notified; a new silence
	// covers the resolve.
	if _, err := st.ExpireSilence(ctx, first.ID, time.Now()); err != nil {
		t.Fatalf("ExpireSilence: %v", err)
	}
	poll(e, map[string]int64{pagedRestart: 12, quietRestart: 12, escalated: 25})
	silence()
	poll(e, map[string]int64{pagedRestart: 12, quietRestart: 12})

	// A restarted evaluator learns from the store which alerts were notified.
	poll(newEvaluator(t, st, hooks, d), map[string]int64{})

	got := map[string][]string{}
	for _, r := range rc.got() {
		got[r.Payload.Alert.Queue] = append(got[r.Payload.Alert.Queue], r.Payload.Status+"/"+r.Payload.Alert.Severity)
	}
	want := map[string][]string{
		paged:        {"firing/warning", "resolved/warning"},
		pagedRestart: {"firing/warning", "resolved/warning"},
		escalated:    {"firing/critical", "resolved/critical"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("receiver got %v, want %v (nothing for %s or %s)", got, want, quiet, quietRestart)
	}
	if a := activeAlerts(t, e); len(a) != 0 {
		t.Errorf("%d alerts still firing, want every one resolved", len(a))
	}
}
