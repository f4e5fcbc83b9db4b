package store

import (
	"testing"
	"time"

	"warren/consumers"
)

func TestConsumerSeries(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }

	// Samples every 10 s over the last 30 minutes; one interval handled
	// nothing (no latency), another had no e2e header.
	var in []consumers.Sample
	start := now.Add(-30 * time.Minute)
	for i := 0; i < 180; i++ {
		at := start.Add(time.Duration(i) * 10 * time.Second)
		smp := consumers.Sample{Consumer: "orders", At: at, Interval: 10 * time.Second,
			Processed: 100, Failed: 2, Slow: 1, Retried: 2, DeadLettered: 1,
			LatencyP50Ms: f64(10), LatencyP95Ms: f64(20), LatencyP99Ms: f64(30), LatencyMaxMs: f64(float64(40 + i)),
			E2EP50Ms: f64(15), E2EP95Ms: f64(25), E2EP99Ms: f64(35)}
		switch i {
		case 3:
			smp.Processed, smp.Failed, smp.Slow, smp.Retried, smp.DeadLettered = 0, 0, 0, 0, 0
			smp.LatencyP50Ms, smp.LatencyP95Ms, smp.LatencyP99Ms, smp.LatencyMaxMs = nil, nil, nil, nil
			smp.E2EP50Ms, smp.E2EP95Ms, smp.E2EP99Ms = nil, nil, nil
		case 4:
			smp.E2EP50Ms, smp.E2EP95Ms, smp.E2EP99Ms = nil, nil, nil
		case 6:
			// Weighted: 300 messages at p50 40 ms against 100 at 10 ms.
			smp.Processed, smp.LatencyP50Ms = 300, f64(40)
		}
		in = append(in, smp)
	}
	// Another consumer's samples stay out.
	in = append(in, consumers.Sample{Consumer: "other", At: start, Interval: 10 * time.Second, Processed: 9999})
	if err := s.WriteConsumerSamples(ctx, in); err != nil {
		t.Fatal(err)
	}

	t.Run("raw samples for a short window", func(t *testing.T) {
		pts, res, err := s.ConsumerSeries(ctx, "orders", now.Add(-15*time.Minute), now)
		if err != nil {
			t.Fatal(err)
		}
		if res != ResolutionRaw {
			t.Fatalf("resolution %q, want raw", res)
		}
		if len(pts) != 90 {
			t.Fatalf("%d points, want 90", len(pts))
		}
		p := pts[0]
		if p.Processed != 100 || p.Retried == nil || *p.Retried != 2 || p.Rate == nil || *p.Rate != 10 {
			t.Errorf("first point %+v: want processed 100, retried 2, rate 10/s", p)
		}
		if p.E2EP95Ms == nil || *p.E2EP95Ms != 25 || p.P99Ms == nil || *p.P99Ms != 30 {
			t.Errorf("first point latencies p99 %v e2e p95 %v, want 30 and 25", p.P99Ms, p.E2EP95Ms)
		}
	})

	t.Run("an interval without messages has unknown latency, not 0", func(t *testing.T) {
		pts, _, err := s.ConsumerSeries(ctx, "orders", start, start.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if len(pts) != 7 { // 0..60 s inclusive
			t.Fatalf("%d points, want 7", len(pts))
		}
		if pts[3].P50Ms != nil || pts[3].MaxMs != nil || pts[3].E2EP50Ms != nil {
			t.Errorf("idle interval latencies %v %v %v, want nil", pts[3].P50Ms, pts[3].MaxMs, pts[3].E2EP50Ms)
		}
		if pts[3].Rate == nil || *pts[3].Rate != 0 {
			t.Errorf("idle interval rate %v, want 0 (the interval was measured)", pts[3].Rate)
		}
		if pts[4].E2EP50Ms != nil || pts[4].P50Ms == nil {
			t.Errorf("interval without the e2e header: e2e %v handler %v, want nil and known", pts[4].E2EP50Ms, pts[4].P50Ms)
		}
	})

	t.Run("minute buckets weight percentiles by messages", func(t *testing.T) {
		pts, res, err := s.ConsumerSeries(ctx, "orders", now.Add(-6*time.Hour), now)
		if err != nil {
			t.Fatal(err)
		}
		if res != ResolutionMinute {
			t.Fatalf("resolution %q, want 1m", res)
		}
		if len(pts) != 30 {
			t.Fatalf("%d points, want 30 (one per minute with samples)", len(pts))
		}
		first := pts[0] // samples 0..5: 0, 1, 2, 4, 5 at 100 each, 3 idle
		if first.Processed != 500 || first.Rate == nil || *first.Rate != 500.0/60 {
			t.Errorf("first minute processed %d rate %v, want 500 and %v", first.Processed, first.Rate, 500.0/60)
		}
		if first.MaxMs == nil || *first.MaxMs != 45 {
			t.Errorf("first minute max %v, want 45 (the highest of its samples)", first.MaxMs)
		}
		// Samples 6..11: one of 302 messages (300 handled, 2 failed) at
		// 40 ms, five of 102 at 10 ms.
		second := pts[1]
		want := (302*40.0 + 5*102*10) / (302 + 5*102)
		if second.P50Ms == nil || *second.P50Ms != want {
			t.Errorf("second minute p50 %v, want %v", deref(second.P50Ms), want)
		}
	})

	t.Run("long windows are merged into wider buckets", func(t *testing.T) {
		_, res, err := s.ConsumerSeries(ctx, "orders", now.Add(-24*time.Hour), now)
		if err != nil {
			t.Fatal(err)
		}
		if res != "4m" {
			t.Errorf("24h resolution %q, want 4m", res)
		}
		pts, res, err := s.ConsumerSeries(ctx, "orders", now.Add(-90*24*time.Hour), now)
		if err != nil {
			t.Fatal(err)
		}
		if res != "6h" {
			t.Errorf("90d resolution %q, want 6h", res)
		}
		if len(pts) != 1 || pts[0].Processed != 179*100+200 {
			t.Errorf("90d: %d points, want one holding every sample", len(pts))
		}
	})

	t.Run("unknown consumer and bad window", func(t *testing.T) {
		pts, _, err := s.ConsumerSeries(ctx, "nobody", now.Add(-time.Hour), now)
		if err != nil || len(pts) != 0 {
			t.Errorf("unknown consumer: %d points, err %v; want none, no error", len(pts), err)
		}
		if _, _, err := s.ConsumerSeries(ctx, "orders", now, now); err == nil {
			t.Error("an empty window was accepted")
		}
	})
}

// Rows written before migration 0009 have no retries, dead letters or e2e
// latency: they read as unknown, not 0.
func TestConsumerSeriesOldRows(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	if _, err := s.writer.ExecContext(ctx, `INSERT INTO consumer_samples
		(ts, consumer, interval_ms, processed, failed, slow, p50_ms, p95_ms, p99_ms, max_ms)
		VALUES (?, 'old', 10000, 5, 0, 0, 1, 2, 3, 4)`, ms(now.Add(-time.Minute))); err != nil {
		t.Fatal(err)
	}
	pts, _, err := s.ConsumerSeries(ctx, "old", now.Add(-15*time.Minute), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 1 {
		t.Fatalf("%d points, want 1", len(pts))
	}
	if pts[0].Retried != nil || pts[0].DeadLettered != nil || pts[0].E2EP50Ms != nil {
		t.Errorf("old row: retried %v dead %v e2e %v, want nil", pts[0].Retried, pts[0].DeadLettered, pts[0].E2EP50Ms)
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// The rollups outlive the raw samples: a 7-day chart still has last
// week's buckets after raw retention removed their samples, and buckets
// past the rollup retention are dropped as new samples arrive.
func TestConsumerRollupsOutliveRawSamples(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	s.retention = Retention{Raw: 6 * time.Hour, Minute: 2 * 24 * time.Hour, Hour: 5 * 24 * time.Hour}

	write := func(at time.Time, processed int64, p95 float64) {
		t.Helper()
		if err := s.WriteConsumerSamples(ctx, []consumers.Sample{{Consumer: "c", At: at, Interval: 10 * time.Second,
			Processed: processed, Retried: 1, LatencyP50Ms: f64(p95 / 2), LatencyP95Ms: f64(p95), LatencyP99Ms: f64(p95 * 2), LatencyMaxMs: f64(p95 * 3)}}); err != nil {
			t.Fatal(err)
		}
	}
	// Two days ago: two samples in one hour. Today: one sample.
	old := now.Add(-48 * time.Hour).Truncate(time.Hour)
	write(old.Add(10*time.Minute), 10, 100)
	write(old.Add(40*time.Minute), 30, 200)
	write(now.Add(-time.Minute), 5, 50)
	// Raw retention removes the old samples.
	if _, err := s.Prune(ctx, now.Add(-s.retention.Raw)); err != nil {
		t.Fatal(err)
	}

	pts, res, err := s.ConsumerSeries(ctx, "c", now.Add(-5*24*time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	if res != ResolutionHour {
		t.Fatalf("resolution %q, want 1h", res)
	}
	if len(pts) != 2 {
		t.Fatalf("%d hourly points, want 2 (the old hour and today's)", len(pts))
	}
	p := pts[0]
	if !p.At.Equal(old) || p.Processed != 40 || p.Retried == nil || *p.Retried != 2 {
		t.Errorf("old hour %+v: want at %s, 40 processed, 2 retried", p, old)
	}
	if want := (10*100.0 + 30*200) / 40; p.P95Ms == nil || *p.P95Ms != want {
		t.Errorf("old hour p95 %v, want %v", deref(p.P95Ms), want)
	}
	if p.MaxMs == nil || *p.MaxMs != 600 {
		t.Errorf("old hour max %v, want 600", deref(p.MaxMs))
	}
	if p.E2EP95Ms != nil {
		t.Errorf("old hour e2e %v, want unknown (no sample had it)", deref(p.E2EP95Ms))
	}

	// Three days later the old hour is past the hour retention (5 days):
	// the next write drops it.
	now = now.Add(4 * 24 * time.Hour)
	write(now.Add(-time.Minute), 1, 10)
	var n int
	if err := s.reader.QueryRowContext(ctx, `SELECT count(*) FROM consumer_rollups_1h WHERE consumer = 'c' AND ts = ?`, ms(old)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Error("an hour bucket past the hour retention was kept")
	}
	if err := s.reader.QueryRowContext(ctx, `SELECT count(*) FROM consumer_rollups_1m WHERE consumer = 'c' AND ts < ?`, ms(now.Add(-2*24*time.Hour))).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d minute buckets past the minute retention were kept", n)
	}
}
