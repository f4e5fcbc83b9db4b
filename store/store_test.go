package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"warren/alerts"
	"warren/consumers"
	"warren/migrations"
	"warren/monitor"
)

func openTest(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "warren.db")
	s, err := Open(t.Context(), path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, path
}

func i64(v int64) *int64        { return &v }
func f64(v float64) *float64    { return &v }
func tm(msec int64) time.Time   { return time.UnixMilli(msec).UTC() }
func ptrEq(a, b *int64) bool    { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
func fptrEq(a, b *float64) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

func TestOpenPragmas(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	check := func(pool, pragma, want string) {
		t.Helper()
		db := s.writer
		if pool == "reader" {
			db = s.reader
		}
		var got string
		if err := db.QueryRowContext(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
			t.Fatalf("%s PRAGMA %s: %v", pool, pragma, err)
		}
		if !strings.EqualFold(got, want) {
			t.Errorf("%s PRAGMA %s = %q, want %q", pool, pragma, got, want)
		}
	}
	check("writer", "journal_mode", "wal")
	check("writer", "busy_timeout", "5000")
	check("writer", "foreign_keys", "1")
	check("writer", "synchronous", "1") // NORMAL
	check("reader", "journal_mode", "wal")
	check("reader", "busy_timeout", "5000")
	check("reader", "foreign_keys", "1")
	check("reader", "query_only", "1")

	if got := s.writer.Stats().MaxOpenConnections; got != 1 {
		t.Errorf("writer MaxOpenConnections = %d, want 1", got)
	}
	// The read pool must refuse writes.
	if _, err := s.reader.ExecContext(ctx, "DELETE FROM queue_samples"); err == nil {
		t.Error("write on the read pool succeeded, want an error")
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}

	// A connection opened without the pragmas must be refused, loudly.
	plain, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "plain.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := checkPragmas(ctx, plain, "plain"); err == nil || !strings.Contains(err.Error(), "journal_mode") {
		t.Errorf("checkPragmas on a rollback-journal database = %v, want a journal_mode error", err)
	}
}

func TestMigrations(t *testing.T) {
	ctx := t.Context()
	entries, err := fs.ReadDir(migrations.Files(), ".")
	if err != nil {
		t.Fatal(err)
	}
	var files int
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".sql") {
			files++
		}
	}
	if files == 0 {
		t.Fatal("no embedded migrations")
	}

	t.Run("idempotent across reopen", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "w.db")
		for i := range 3 {
			s, err := Open(ctx, path, nil)
			if err != nil {
				t.Fatalf("open #%d: %v", i, err)
			}
			if i == 0 {
				if err := s.WriteQueueSamples(ctx, tm(1000), []monitor.QueueSample{{Vhost: "/", Name: "q", Messages: i64(3)}}); err != nil {
					t.Fatal(err)
				}
			}
			var n int
			if err := s.reader.QueryRowContext(ctx, "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != files {
				t.Errorf("open #%d: %d migrations recorded, want %d", i, n, files)
			}
			applied, err := s.migrate(ctx, migrations.Files())
			if err != nil || applied != 0 {
				t.Errorf("open #%d: migrate again = %d, %v; want 0, nil", i, applied, err)
			}
			pts, err := s.QueueHistory(ctx, "/", "q", tm(0))
			if err != nil || len(pts) != 1 {
				t.Errorf("open #%d: data lost across reopen: %v, %v", i, pts, err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("failed migration names the file and rolls back", func(t *testing.T) {
		s, _ := openTest(t)
		// Every real migration is already applied; three new ones follow.
		bad := fstest.MapFS{
			"9001_good.sql":   {Data: []byte("CREATE TABLE t_good (x INTEGER);")},
			"9002_broken.sql": {Data: []byte("CREATE TABLE t_half (x INTEGER);\nCREATE TABLEX oops;")},
			"9003_after.sql":  {Data: []byte("CREATE TABLE t_after (x INTEGER);")},
		}
		for _, e := range entries {
			bad[e.Name()] = &fstest.MapFile{Data: []byte("-- already applied")}
		}
		_, err := s.migrate(ctx, bad)
		if err == nil || !strings.Contains(err.Error(), "9002_broken.sql") {
			t.Fatalf("migrate = %v, want an error naming 9002_broken.sql", err)
		}
		exists := func(table string) bool {
			var n int
			if err := s.reader.QueryRowContext(ctx,
				"SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?", table).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n == 1
		}
		if !exists("t_good") {
			t.Error("9001 was not applied")
		}
		if exists("t_half") {
			t.Error("the broken migration was half applied")
		}
		if exists("t_after") {
			t.Error("a migration after the broken one was applied")
		}
	})

	t.Run("unknown applied migration", func(t *testing.T) {
		s, _ := openTest(t)
		if _, err := s.writer.ExecContext(ctx,
			"INSERT INTO schema_migrations (name, applied_at) VALUES ('9999_future.sql', 0)"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.migrate(ctx, migrations.Files()); err == nil || !strings.Contains(err.Error(), "9999_future.sql") {
			t.Errorf("migrate = %v, want an error naming 9999_future.sql", err)
		}
	})
}

func TestQueueSamplesRoundTrip(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	at1, at2 := tm(1_700_000_000_123), tm(1_700_000_005_456)
	name := "we ird/#?+<b>é"
	if err := s.WriteQueueSamples(ctx, at1, []monitor.QueueSample{
		{Vhost: "/", Name: name}, // brand-new queue: nothing reported
		{Vhost: "/", Name: "other", Messages: i64(9)},
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteQueueSamples(ctx, at2, []monitor.QueueSample{
		{Vhost: "/", Name: name, Messages: i64(0), Ready: i64(0), Unacked: i64(0), Consumers: i64(2)},
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteQueueSamples(ctx, at2, nil); err != nil {
		t.Errorf("empty write: %v", err)
	}

	pts, err := s.QueueHistory(ctx, "/", name, at1)
	if err != nil {
		t.Fatal(err)
	}
	want := []QueuePoint{
		{At: at1},
		{At: at2, Messages: i64(0), Ready: i64(0), Unacked: i64(0), Consumers: i64(2)},
	}
	if len(pts) != len(want) {
		t.Fatalf("got %d points, want %d", len(pts), len(want))
	}
	for i := range want {
		g, w := pts[i], want[i]
		if !g.At.Equal(w.At) || g.At.Location() != time.UTC ||
			!ptrEq(g.Messages, w.Messages) || !ptrEq(g.Ready, w.Ready) ||
			!ptrEq(g.Unacked, w.Unacked) || !ptrEq(g.Consumers, w.Consumers) {
			t.Errorf("point %d = %+v, want %+v", i, g, w)
		}
	}
	// since is inclusive and filters older points.
	if pts, _ := s.QueueHistory(ctx, "/", name, at2); len(pts) != 1 {
		t.Errorf("since=at2: %d points, want 1", len(pts))
	}
	if pts, _ := s.QueueHistory(ctx, "other-vhost", name, at1); len(pts) != 0 {
		t.Errorf("other vhost: %d points, want 0", len(pts))
	}
}

func TestWriteQueueSamplesLargePoll(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	qs := make([]monitor.QueueSample, 10_000)
	for i := range qs {
		qs[i] = monitor.QueueSample{Vhost: "/", Name: fmt.Sprintf("q-%05d", i), Messages: i64(int64(i))}
	}
	if err := s.WriteQueueSamples(ctx, tm(5000), qs); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.reader.QueryRowContext(ctx, "SELECT count(*) FROM queue_samples WHERE ts = 5000").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(qs) {
		t.Errorf("%d rows, want %d", n, len(qs))
	}
}

func TestConsumerSamplesRoundTrip(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	in := []consumers.Sample{
		{Consumer: "demo", At: tm(10_000), Interval: 5 * time.Second}, // idle: no latencies
		{Consumer: "demo", At: tm(15_000), Interval: 5 * time.Second, Processed: 40, Failed: 2, Slow: 1,
			LatencyP50Ms: f64(1.5), LatencyP95Ms: f64(20), LatencyP99Ms: f64(35.25), LatencyMaxMs: f64(99)},
		{Consumer: "other", At: tm(15_000), Interval: time.Second, Processed: 1},
	}
	if err := s.WriteConsumerSamples(ctx, in); err != nil {
		t.Fatal(err)
	}
	got, err := s.ConsumerHistory(ctx, "demo", tm(0))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d samples, want 2", len(got))
	}
	for i, w := range in[:2] {
		g := got[i]
		if g.Consumer != w.Consumer || !g.At.Equal(w.At) || g.Interval != w.Interval ||
			g.Processed != w.Processed || g.Failed != w.Failed || g.Slow != w.Slow ||
			!fptrEq(g.LatencyP50Ms, w.LatencyP50Ms) || !fptrEq(g.LatencyP95Ms, w.LatencyP95Ms) ||
			!fptrEq(g.LatencyP99Ms, w.LatencyP99Ms) || !fptrEq(g.LatencyMaxMs, w.LatencyMaxMs) {
			t.Errorf("sample %d = %+v, want %+v", i, g, w)
		}
	}
}

func firing(id string, started time.Time) alerts.Alert {
	return alerts.Alert{ID: id, Rule: alerts.RuleQueueDepth, Severity: alerts.SeverityCritical,
		State: alerts.StateFiring, Vhost: "/", Queue: "orders", Value: 600, Threshold: 500, StartedAt: started}
}

func notification(id, webhook string, a alerts.Alert, created time.Time) alerts.Notification {
	return alerts.Notification{DeliveryID: id, Webhook: webhook, Status: a.State, Alert: a, CreatedAt: created}
}

func countRows(t *testing.T, s *Store, query string, args ...any) int {
	t.Helper()
	var n int
	if err := s.reader.QueryRowContext(t.Context(), query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRecordTransitionAtomic(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	start := tm(1_000_000)
	a := firing("a1", start)
	if err := s.RecordTransition(ctx, a, []alerts.Notification{
		notification("d1", "ops", a, start),
		notification("d2", "pager", a, start),
	}); err != nil {
		t.Fatal(err)
	}
	active, err := s.ActiveAlerts(ctx)
	if err != nil || len(active) != 1 || active[0].ID != "a1" || !active[0].StartedAt.Equal(start) || active[0].ResolvedAt != nil {
		t.Fatalf("ActiveAlerts = %+v, %v", active, err)
	}

	// Resolving with a notification whose delivery id already exists must
	// fail as a whole: the alert stays firing and no outbox row is added.
	resolvedAt := tm(2_000_000)
	r := a
	r.State, r.ResolvedAt = alerts.StateResolved, &resolvedAt
	err = s.RecordTransition(ctx, r, []alerts.Notification{
		notification("d3", "ops", r, resolvedAt),
		notification("d1", "pager", r, resolvedAt), // duplicate
	})
	if err == nil {
		t.Fatal("RecordTransition with a duplicate delivery id succeeded")
	}
	if n := countRows(t, s, "SELECT count(*) FROM alert_outbox"); n != 2 {
		t.Errorf("outbox has %d rows after the failed transition, want 2", n)
	}
	if active, _ := s.ActiveAlerts(ctx); len(active) != 1 {
		t.Errorf("alert changed by a failed transition: active = %+v", active)
	}

	// The same transition with fresh ids goes through.
	if err := s.RecordTransition(ctx, r, []alerts.Notification{
		notification("d3", "ops", r, resolvedAt),
		notification("d4", "pager", r, resolvedAt),
	}); err != nil {
		t.Fatal(err)
	}
	if active, _ := s.ActiveAlerts(ctx); len(active) != 0 {
		t.Errorf("active after resolve = %+v, want none", active)
	}
	hist, err := s.AlertHistory(ctx, 10)
	if err != nil || len(hist) != 1 || hist[0].State != alerts.StateResolved ||
		hist[0].ResolvedAt == nil || !hist[0].ResolvedAt.Equal(resolvedAt) {
		t.Errorf("AlertHistory = %+v, %v", hist, err)
	}

	// The firing notification still carries the alert as it was when it fired.
	pending, err := s.PendingNotifications(ctx, resolvedAt, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 4 {
		t.Fatalf("pending = %d, want 4", len(pending))
	}
	if p := pending[0]; p.DeliveryID != "d1" || p.Status != alerts.StateFiring ||
		p.Alert.State != alerts.StateFiring || p.Alert.ResolvedAt != nil || p.Alert.Value != 600 {
		t.Errorf("first pending = %+v", p)
	}

	if err := s.RecordTransition(ctx, alerts.Alert{}, nil); err == nil {
		t.Error("RecordTransition without an alert id succeeded")
	}
}

func TestOutboxFlow(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	t0 := tm(10_000_000)
	a := firing("a1", t0)
	var outbox []alerts.Notification
	for i, id := range []string{"d-ok", "d-retry", "d-4xx", "d-later"} {
		outbox = append(outbox, notification(id, "ops", a, t0.Add(time.Duration(i)*time.Millisecond)))
	}
	if err := s.RecordTransition(ctx, a, outbox); err != nil {
		t.Fatal(err)
	}
	ids := func(now time.Time, limit int) []string {
		t.Helper()
		ns, err := s.PendingNotifications(ctx, now, limit)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, n := range ns {
			out = append(out, n.DeliveryID)
		}
		return out
	}
	eq := func(got []string, want ...string) {
		t.Helper()
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("pending = %v, want %v", got, want)
		}
	}

	eq(ids(t0.Add(-time.Second), 0)) // not yet due
	eq(ids(t0.Add(time.Second), 0), "d-ok", "d-retry", "d-4xx", "d-later")
	eq(ids(t0.Add(time.Second), 2), "d-ok", "d-retry")

	if err := s.MarkDelivered(ctx, "d-ok", t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	retryAt := t0.Add(time.Minute)
	if err := s.MarkFailed(ctx, "d-retry", "503 Service Unavailable", retryAt); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkAbandoned(ctx, "d-4xx", "400 Bad Request"); err != nil {
		t.Fatal(err)
	}
	eq(ids(t0.Add(2*time.Second), 0), "d-later")
	eq(ids(retryAt, 0), "d-retry", "d-later")

	ns, _ := s.PendingNotifications(ctx, retryAt, 1)
	if len(ns) != 1 || ns[0].Attempts != 1 || ns[0].Alert.ID != "a1" || ns[0].Webhook != "ops" || !ns[0].CreatedAt.Equal(t0.Add(time.Millisecond)) {
		t.Errorf("retried notification = %+v", ns)
	}
	var lastErr string
	if err := s.reader.QueryRowContext(ctx, "SELECT last_error FROM alert_outbox WHERE delivery_id = 'd-4xx' AND failed_permanently = 1").Scan(&lastErr); err != nil || lastErr != "400 Bad Request" {
		t.Errorf("abandoned row: %q, %v", lastErr, err)
	}

	// Stale marks are harmless; unknown ids are reported.
	if err := s.MarkFailed(ctx, "d-ok", "late", retryAt); err != nil {
		t.Errorf("MarkFailed on a delivered row: %v", err)
	}
	eq(ids(retryAt, 0), "d-retry", "d-later")
	// A notification stamped ahead of the store's clock is still due at once.
	future := time.Now().Add(time.Hour)
	b := firing("a-future", future)
	if err := s.RecordTransition(ctx, b, []alerts.Notification{notification("d-future", "ops", b, future)}); err != nil {
		t.Fatal(err)
	}
	if got := ids(time.Now(), 0); !slices.Contains(got, "d-future") {
		t.Errorf("pending now = %v, want d-future among them", got)
	}

	for name, err := range map[string]error{
		"delivered": s.MarkDelivered(ctx, "nope", t0),
		"failed":    s.MarkFailed(ctx, "nope", "x", t0),
		"abandoned": s.MarkAbandoned(ctx, "nope", "x"),
	} {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("Mark %s on unknown id = %v, want ErrNotFound", name, err)
		}
	}
}

// TestConcurrentWritersAndReaders hammers the store from many goroutines, as
// the poller, the aggregator, the dispatcher and the web handlers do: no
// operation may fail, in particular not with "database is locked".
func TestConcurrentWritersAndReaders(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	const rounds = 40
	var wg sync.WaitGroup
	errs := make(chan error, 1000)
	for w := range 4 {
		wg.Go(func() {
			for i := range rounds {
				qs := make([]monitor.QueueSample, 50)
				for j := range qs {
					qs[j] = monitor.QueueSample{Vhost: "/", Name: fmt.Sprintf("q%d", j), Messages: i64(int64(i))}
				}
				if err := s.WriteQueueSamples(ctx, tm(int64(w*rounds+i)), qs); err != nil {
					errs <- err
				}
				if err := s.WriteConsumerSamples(ctx, []consumers.Sample{{Consumer: "c", At: tm(int64(i)), Interval: time.Second}}); err != nil {
					errs <- err
				}
				a := firing(fmt.Sprintf("a-%d-%d", w, i), tm(int64(i)))
				if err := s.RecordTransition(ctx, a, []alerts.Notification{notification(fmt.Sprintf("d-%d-%d", w, i), "ops", a, tm(int64(i)))}); err != nil {
					errs <- err
				}
				if err := s.MarkDelivered(ctx, fmt.Sprintf("d-%d-%d", w, i), tm(int64(i))); err != nil {
					errs <- err
				}
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			for range rounds {
				if _, err := s.QueueHistory(ctx, "/", "q1", tm(0)); err != nil {
					errs <- err
				}
				if _, err := s.PendingNotifications(ctx, tm(1<<40), 10); err != nil {
					errs <- err
				}
				if _, err := s.ActiveAlerts(ctx); err != nil {
					errs <- err
				}
				if _, err := s.ConsumerHistory(ctx, "c", tm(0)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Go(func() {
		for range 10 {
			if _, err := s.Prune(ctx, tm(5)); err != nil {
				errs <- err
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := countRows(t, s, "SELECT count(*) FROM alert_outbox WHERE delivered_at IS NOT NULL"); n != 4*rounds {
		t.Errorf("%d delivered rows, want %d", n, 4*rounds)
	}
}

func TestRetention(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	now := time.Now()
	old, recent := now.Add(-2*time.Hour), now.Add(-time.Minute)
	var qs []monitor.QueueSample
	for i := range pruneBatch + 7 { // more than one delete batch
		qs = append(qs, monitor.QueueSample{Vhost: "/", Name: fmt.Sprintf("q%d", i)})
	}
	if err := s.WriteQueueSamples(ctx, old, qs); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteQueueSamples(ctx, recent, qs[:3]); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteConsumerSamples(ctx, []consumers.Sample{
		{Consumer: "c", At: old, Interval: time.Second},
		{Consumer: "c", At: recent, Interval: time.Second},
	}); err != nil {
		t.Fatal(err)
	}

	t.Run("Prune", func(t *testing.T) {
		n, err := s.Prune(ctx, now.Add(-time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		if want := int64(pruneBatch + 7 + 1); n != want {
			t.Errorf("Prune deleted %d rows, want %d", n, want)
		}
		if got := countRows(t, s, "SELECT count(*) FROM queue_samples"); got != 3 {
			t.Errorf("%d queue samples left, want 3", got)
		}
		if got := countRows(t, s, "SELECT count(*) FROM consumer_samples"); got != 1 {
			t.Errorf("%d consumer samples left, want 1", got)
		}
	})

	t.Run("maintenance loop prunes raw samples", func(t *testing.T) {
		if err := s.WriteQueueSamples(ctx, old, qs[:5]); err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		s.retention.Raw = time.Hour
		go func() { done <- s.RunMaintenance(rctx, 10*time.Millisecond) }()
		eventually(t, 10*time.Second, func() bool {
			return countRows(t, s, "SELECT count(*) FROM queue_samples") == 3
		})
		cancel()
		if err := <-done; err != nil {
			t.Errorf("RunMaintenance returned %v after cancel, want nil", err)
		}
	})
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
