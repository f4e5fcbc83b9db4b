package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"warren/monitor"
)

// Rewriting replaces only the named sections, keeps hand-written text and
// other sections, and appends sections not in the file yet.
func TestRewriteSectionsKeepsTheRest(t *testing.T) {
	file := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	before := "# Benchmarks\n\nHand-written intro.\n\n<!-- bench:batch -->\nold batch\n<!-- /bench:batch -->\n\n## By hand\n\nkept\n\n<!-- bench:loadgen -->\nold loadgen\n<!-- /bench:loadgen -->\n"
	if err := os.WriteFile(file, []byte(before), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := rewriteSections(file, map[string]string{"batch": "new batch\n", "monitor-scale": "new scale\n"}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	want := "# Benchmarks\n\nHand-written intro.\n\n<!-- bench:batch -->\nnew batch\n<!-- /bench:batch -->\n\n## By hand\n\nkept\n\n<!-- bench:loadgen -->\nold loadgen\n<!-- /bench:loadgen -->\n\n<!-- bench:monitor-scale -->\nnew scale\n<!-- /bench:monitor-scale -->\n"
	if string(got) != want {
		t.Errorf("file after rewrite:\n%s\nwant:\n%s", got, want)
	}
}

func TestDurationStats(t *testing.T) {
	var ds []time.Duration
	for i := 20; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	n, p50, p95, top := durationStats(ds)
	if n != 20 || p50 != 10*time.Millisecond || p95 != 19*time.Millisecond || top != 20*time.Millisecond {
		t.Errorf("got n=%d p50=%s p95=%s max=%s, want 20, 10ms, 19ms, 20ms", n, p50, p95, top)
	}
	if n, _, _, _ := durationStats(nil); n != 0 {
		t.Errorf("empty: n=%d", n)
	}
}

// The fake management API the monitor-scale suite polls must give the real
// poller every queue across several pages, or the suite measures less work
// than it claims. (A fake: only a fake can hold this many queues here.)
func TestFakeManagementServesEveryQueue(t *testing.T) {
	const n = 1234 // three pages of 500
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- serveFakeManagement(fmt.Sprint(n), inR, outW) }()
	line, err := bufio.NewReader(outR).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	var url string
	var size int
	if _, err := fmt.Sscan(line, &url, &size); err != nil || !strings.HasPrefix(url, "http://127.0.0.1:") || size < n*100 {
		t.Fatalf("announcement %q: %v", line, err)
	}
	p, err := monitor.NewPoller(monitor.PollerConfig{URL: url, Username: "u", Password: "p"}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	snap := p.PollOnce(context.Background())
	if snap.Err != nil || len(snap.Queues) != n {
		t.Fatalf("poll: %d queues, err %v; want %d", len(snap.Queues), snap.Err, n)
	}
	if snap.Overview == nil || len(snap.Nodes) != 1 {
		t.Errorf("overview %v, nodes %d: want both", snap.Overview, len(snap.Nodes))
	}
	inW.Close() // the parent going away stops the fake
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("fake did not stop when its input closed")
	}
}

func TestSuiteFlagsAreChecked(t *testing.T) {
	for _, args := range [][]string{{"-only", "nope"}, {"-batch-sizes", "1,x"}, {"-alert-reps", "0"}, {"stray"}} {
		err := run(context.Background(), args, io.Discard, io.Discard)
		if err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
