package store

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"warren/migrations"
	"warren/monitor"
)

// writeSeries writes one queue's samples every step from start (inclusive)
// to end (exclusive), messages = minutes since start.
func writeSeries(t *testing.T, s *Store, vhost, name string, start, end time.Time, step time.Duration) {
	t.Helper()
	for at := start; at.Before(end); at = at.Add(step) {
		m := int64(at.Sub(start) / time.Minute)
		if err := s.WriteQueueSamples(t.Context(), at, []monitor.QueueSample{{
			Vhost: vhost, Name: name, Messages: i64(m), Ready: i64(m), Unacked: i64(0),
		}}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRollupAndSeries(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	start := now.Add(-3 * time.Hour)
	writeSeries(t, s, "/", "a/b", start, now, 15*time.Second)
	// Another queue with the same name in another vhost must not mix in.
	writeSeries(t, s, "v/x", "a/b", start, now, 30*time.Second)

	if _, err := s.Rollup(ctx, now); err != nil {
		t.Fatal(err)
	}
	// 3h minus the 2-minute lateness, for two queues.
	if got, want := countRows(t, s, "SELECT count(*) FROM queue_rollups_1m"), 2*(180-2); got != want {
		t.Errorf("%d minute rows, want %d", got, want)
	}
	// Whole hours before the minute watermark (11:58): 09:00 and 10:00.
	if got, want := countRows(t, s, "SELECT count(*) FROM queue_rollups_1h"), 2*2; got != want {
		t.Errorf("%d hour rows, want %d", got, want)
	}
	// Idempotent: a second pass adds nothing.
	if n, err := s.Rollup(ctx, now); err != nil || n != 0 {
		t.Errorf("second Rollup wrote %d rows (err %v), want 0", n, err)
	}

	// Minute 10 holds 4 samples of messages=10.
	var samples, messages int64
	if err := s.reader.QueryRowContext(ctx, `SELECT samples, messages FROM queue_rollups_1m r JOIN queues q ON q.id = r.queue_id
		WHERE q.vhost = '/' AND r.ts = ?`, ms(start.Add(10*time.Minute))).Scan(&samples, &messages); err != nil {
		t.Fatal(err)
	}
	if samples != 4 || messages != 10 {
		t.Errorf("minute 10: samples %d messages %d, want 4 and 10", samples, messages)
	}
	// Hour 09:00 averages minutes 0..59 weighted by samples = 29.5 -> 30; max 59.
	var hmax int64
	if err := s.reader.QueryRowContext(ctx, `SELECT samples, messages, messages_max FROM queue_rollups_1h r JOIN queues q ON q.id = r.queue_id
		WHERE q.vhost = '/' AND r.ts = ?`, ms(start)).Scan(&samples, &messages, &hmax); err != nil {
		t.Fatal(err)
	}
	if samples != 240 || messages != 30 || hmax != 59 {
		t.Errorf("hour 09:00: samples %d messages %d max %d, want 240, 30, 59", samples, messages, hmax)
	}

	for _, tc := range []struct {
		window  time.Duration
		res     Resolution
		wantLen int
	}{
		{15 * time.Minute, ResolutionRaw, 15 * 4},
		{time.Hour, ResolutionRaw, 60 * 4},
		{3 * time.Hour, ResolutionMinute, 180},  // 178 stored + 2 tail minutes from raw
		{24 * time.Hour, "4m", 45},              // 1,440 minutes merged by 4 (only 3 h hold data)
		{7 * 24 * time.Hour, ResolutionHour, 3}, // 2 stored + the 11:00 tail from minutes
		{90 * 24 * time.Hour, "6h", 1},          // 2,160 hours merged by 6: 06:00-12:00
	} {
		pts, res, err := s.QueueSeries(ctx, "/", "a/b", now.Add(-tc.window), now)
		if err != nil {
			t.Fatalf("window %s: %v", tc.window, err)
		}
		if res != tc.res || len(pts) != tc.wantLen {
			t.Errorf("window %s: %s with %d points, want %s with %d", tc.window, res, len(pts), tc.res, tc.wantLen)
			continue
		}
		for i := 1; i < len(pts); i++ {
			if !pts[i].At.After(pts[i-1].At) {
				t.Errorf("window %s: points out of order at %d", tc.window, i)
				break
			}
		}
		last := pts[len(pts)-1]
		if last.MessagesMax == nil || *last.MessagesMax < 170 {
			t.Errorf("window %s: last point's max %v does not reach the present", tc.window, last.MessagesMax)
		}
	}
	if _, _, err := s.QueueSeries(ctx, "/", "a/b", now, now); err == nil {
		t.Error("empty window accepted")
	}
	if pts, _, err := s.QueueSeries(ctx, "/", "missing", now.Add(-time.Hour), now); err != nil || len(pts) != 0 {
		t.Errorf("unknown queue: %d points, %v", len(pts), err)
	}
}

// A bucket whose samples all lack a field keeps it unknown (NULL), not 0.
func TestRollupKeepsUnknown(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for i := range 12 {
		if err := s.WriteQueueSamples(ctx, now.Add(-10*time.Minute+time.Duration(i)*5*time.Second),
			[]monitor.QueueSample{{Vhost: "/", Name: "idle", Consumers: i64(1)}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Rollup(ctx, now); err != nil {
		t.Fatal(err)
	}
	pts, _, err := s.QueueSeries(ctx, "/", "idle", now.Add(-5*time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 1 || pts[0].Messages != nil || pts[0].MessagesMax != nil || pts[0].Consumers == nil || *pts[0].Consumers != 1 {
		t.Errorf("got %+v, want one point with unknown messages and 1 consumer", pts)
	}
}

func TestPruneAllAndQueueIDs(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	s.retention = Retention{Raw: time.Hour, Minute: 3 * time.Hour, Hour: 24 * time.Hour}
	writeSeries(t, s, "/", "kept", now.Add(-2*time.Hour), now, time.Minute)
	writeSeries(t, s, "/", "gone", now.Add(-30*time.Hour), now.Add(-29*time.Hour), time.Minute)
	// Rollups as they would have been computed over time.
	for at := now.Add(-30 * time.Hour); !at.After(now); at = at.Add(time.Hour) {
		if _, err := s.Rollup(ctx, at); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.PruneAll(ctx, now); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		query string
		want  int
	}{
		{"SELECT count(*) FROM queue_samples WHERE ts < " + fmt.Sprint(ms(now.Add(-time.Hour))), 0},
		{"SELECT count(*) FROM queue_samples", 60},
		{"SELECT count(*) FROM queue_rollups_1m WHERE ts < " + fmt.Sprint(ms(now.Add(-3*time.Hour))), 0},
		{"SELECT count(*) FROM queue_rollups_1h WHERE ts < " + fmt.Sprint(ms(now.Add(-24*time.Hour))), 0},
		{"SELECT count(*) FROM queues WHERE name = 'gone'", 0},
		{"SELECT count(*) FROM queues WHERE name = 'kept'", 1},
	} {
		if got := countRows(t, s, c.query); got != c.want {
			t.Errorf("%s = %d, want %d", c.query, got, c.want)
		}
	}
	// A queue whose id was pruned gets a new one when it comes back.
	if err := s.WriteQueueSamples(ctx, now, []monitor.QueueSample{{Vhost: "/", Name: "gone", Messages: i64(1)}}); err != nil {
		t.Fatal(err)
	}
	if pts, err := s.QueueHistory(ctx, "/", "gone", now.Add(-time.Minute)); err != nil || len(pts) != 1 {
		t.Errorf("returning queue: %d points, %v", len(pts), err)
	}
}

// The WAL is truncated by a maintenance pass, so it stays bounded.
func TestCheckpointBoundsWAL(t *testing.T) {
	s, path := openTest(t)
	ctx := t.Context()
	qs := make([]monitor.QueueSample, 2000)
	for i := range qs {
		qs[i] = monitor.QueueSample{Vhost: "/", Name: fmt.Sprintf("q%d", i), Messages: i64(int64(i))}
	}
	for i := range 5 {
		if err := s.WriteQueueSamples(ctx, tm(int64(i)*5000), qs); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Maintain(ctx, tm(30000)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != 0 {
		t.Errorf("WAL is %d bytes after a maintenance pass, want 0", fi.Size())
	}
}

func TestRunMaintenance(t *testing.T) {
	s, _ := openTest(t)
	rctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.RunMaintenance(rctx, 10*time.Millisecond) }()
	eventually(t, 10*time.Second, func() bool {
		return countRows(t, s, "SELECT count(*) FROM rollup_state") == 2
	})
	cancel()
	if err := <-done; err != nil {
		t.Errorf("RunMaintenance returned %v after cancel", err)
	}
	if err := s.RunMaintenance(t.Context(), 0); err == nil {
		t.Error("zero interval accepted")
	}
}

// Samples written before 0002 (vhost and name on every row) survive it.
func TestMigration0002KeepsSamples(t *testing.T) {
	ctx := t.Context()
	s, _ := openTest(t)
	// Rebuild the 0001 shape of queue_samples and pretend 0002 never ran.
	for _, q := range []string{
		`DROP TABLE queue_samples`, `DROP TABLE queue_rollups_1m`, `DROP TABLE queue_rollups_1h`,
		`DROP TABLE rollup_state`, `DROP TABLE queues`,
		`CREATE TABLE queue_samples (ts INTEGER NOT NULL, vhost TEXT NOT NULL, name TEXT NOT NULL,
			messages INTEGER, ready INTEGER, unacked INTEGER, consumers INTEGER)`,
		`INSERT INTO queue_samples VALUES (1000, '/', 'a', 1, 1, 0, NULL), (2000, '/', 'a', 2, 2, 0, NULL),
			(1000, 'v/2', 'a', NULL, NULL, NULL, 3)`,
		`DELETE FROM schema_migrations WHERE name = '0002_queue_rollups.sql'`,
	} {
		if _, err := s.writer.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if _, err := s.migrate(ctx, migrations.Files()); err != nil {
		t.Fatal(err)
	}
	clear(s.ids)
	pts, err := s.QueueHistory(ctx, "/", "a", tm(0))
	if err != nil || len(pts) != 2 || *pts[1].Messages != 2 || pts[0].Consumers != nil {
		t.Errorf("vhost /: %+v, %v", pts, err)
	}
	pts, err = s.QueueHistory(ctx, "v/2", "a", tm(0))
	if err != nil || len(pts) != 1 || pts[0].Messages != nil || *pts[0].Consumers != 3 {
		t.Errorf("vhost v/2: %+v, %v", pts, err)
	}
}

func TestStoreCollector(t *testing.T) {
	s, _ := openTest(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collector())
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, f := range fams {
		if _, err := expfmt.MetricFamilyToText(&buf, f); err != nil {
			t.Fatal(err)
		}
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	parsed, err := parser.TextToMetricFamilies(&buf)
	if err != nil {
		t.Fatal(err)
	}
	fam := parsed["warren_store_size_bytes"]
	if fam == nil {
		t.Fatalf("no warren_store_size_bytes in %s", buf.String())
	}
	for _, m := range fam.GetMetric() {
		if m.GetLabel()[0].GetValue() == "db" && m.GetGauge().GetValue() > 0 {
			return
		}
	}
	t.Errorf("no positive db size in %s", buf.String())
}
