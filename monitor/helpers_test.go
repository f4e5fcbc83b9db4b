package monitor

import (
	"context"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"
)

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// recordingWriter stands in for the store in monitor tests (the store's own
// tests run the poller against the real SQLite store).
type recordingWriter struct {
	mu    sync.Mutex
	polls [][]QueueSample
}

func (w *recordingWriter) WriteQueueSamples(_ context.Context, _ time.Time, qs []QueueSample) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.polls = append(w.polls, qs)
	return nil
}

func (w *recordingWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.polls)
}

type recordingObserver struct {
	mu    sync.Mutex
	snaps []Snapshot
}

func (o *recordingObserver) ObserveSnapshot(_ context.Context, s Snapshot) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.snaps = append(o.snaps, s)
}

func (o *recordingObserver) all() []Snapshot {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Snapshot(nil), o.snaps...)
}

// testLogger logs to stderr at debug level when -v is given, to see the
// poll summaries and odd-value reports; otherwise it discards.
func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).
			With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

func i64(v int64) *int64 { return &v }

func ptrStr(p *int64) string {
	if p == nil {
		return "nil"
	}
	return strconv.FormatInt(*p, 10)
}

func ptrEq(a, b *int64) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
