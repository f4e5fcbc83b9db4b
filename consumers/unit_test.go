package consumers

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestLimiterRaiseLowerNeverExceeds(t *testing.T) {
	l := newLimiter(2, 10)
	take := func() bool {
		select {
		case <-l.tokens:
			return true
		default:
			return false
		}
	}
	held := 0
	for take() {
		held++
	}
	if held != 2 {
		t.Fatalf("held %d permits with limit 2", held)
	}
	l.setLimit(8)
	for take() {
		held++
	}
	if held != 8 {
		t.Fatalf("held %d permits after raising to 8", held)
	}
	l.setLimit(3) // 8 held: 5 become debt
	for range 5 {
		l.release()
		held--
		if take() {
			t.Fatalf("new permit while %d held and limit 3", held)
		}
	}
	l.release() // held 2 -> one permit free
	held--
	if !take() {
		t.Fatal("no permit with 2 held and limit 3")
	}
	held++
	if take() {
		t.Fatal("4th permit with limit 3")
	}
	// Raising while in debt pays the debt first.
	l.setLimit(1) // held 3: debt 2
	l.setLimit(4) // debt 0, one free token
	if !take() {
		t.Fatal("no permit after raising to 4 with 3 held")
	}
	if take() || l.current() != 4 {
		t.Fatal("more permits than the limit")
	}
}

func TestLimiterConcurrentUse(t *testing.T) {
	l := newLimiter(4, 16)
	var mu sync.Mutex
	active, maxActive := 0, 0
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				case <-l.tokens:
				}
				mu.Lock()
				active++
				maxActive = max(maxActive, active)
				mu.Unlock()
				mu.Lock()
				active--
				mu.Unlock()
				l.release()
			}
		})
	}
	for i := range 200 {
		l.setLimit(1 + i%4) // never above 4
	}
	close(stop)
	wg.Wait()
	if maxActive > 4 {
		t.Fatalf("max active %d > 4", maxActive)
	}
	if n := len(l.tokens) - int(l.debt.Load()); n != l.current() {
		t.Fatalf("free tokens minus debt = %d, want limit %d", n, l.current())
	}
}

func TestHistogramQuantiles(t *testing.T) {
	for _, ns := range []int64{0, 1, 3, 4, 7, 8, 15, 16, 1000, 999_999, 1 << 40, math.MaxInt64} {
		i := bucketOf(ns)
		if i < 0 || i >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d out of range", ns, i)
		}
		if lo := bucketLower(i); lo > float64(ns) {
			t.Fatalf("bucketLower(%d) = %v > %d", i, lo, ns)
		}
		if i+1 < histBuckets && bucketLower(i+1) <= float64(ns) {
			t.Fatalf("value %d beyond its bucket %d", ns, i)
		}
	}
	var s stats
	if q, _ := s.recentQuantiles(); q[0] != nil {
		t.Fatal("quantiles of an empty histogram must be nil")
	}
	for i := 1; i <= 100; i++ {
		s.observe(time.Duration(i) * time.Millisecond)
	}
	q, _ := s.recentQuantiles()
	check := func(name string, got *float64, want float64) {
		if got == nil || math.Abs(*got-want)/want > 0.13 {
			t.Errorf("%s = %v, want ~%v", name, got, want)
		}
	}
	check("p50", q[0], 50)
	check("p95", q[1], 95)
	check("p99", q[2], 99)

	smp := s.sample("x", time.Now(), time.Second)
	if smp.LatencyMaxMs == nil || *smp.LatencyMaxMs != 100 {
		t.Errorf("max = %v, want 100", smp.LatencyMaxMs)
	}
	if next := s.sample("x", time.Now(), time.Second); next.LatencyP50Ms != nil || next.Processed != 0 {
		t.Errorf("empty interval sample = %+v", next)
	}
}

func TestBackoffIsCappedAndJittered(t *testing.T) {
	b := backoff{min: time.Second, max: 30 * time.Second}
	for i := range 12 {
		d := b.next()
		want := min(time.Second<<i, 30*time.Second)
		if d < want/2 || d > want {
			t.Fatalf("attempt %d: %s not in [%s, %s]", i, d, want/2, want)
		}
	}
	b.reset()
	if d := b.next(); d > time.Second {
		t.Fatalf("after reset: %s", d)
	}
}

func TestBackoffUsesFactor(t *testing.T) {
	b := backoff{min: 100 * time.Millisecond, max: time.Second, factor: 3}
	for i, want := range []time.Duration{100 * time.Millisecond, 300 * time.Millisecond, 900 * time.Millisecond, time.Second, time.Second} {
		if d := b.next(); d < want/2 || d > want {
			t.Fatalf("attempt %d: %s not in [%s, %s]", i, d, want/2, want)
		}
	}
	flat := backoff{min: 200 * time.Millisecond, max: time.Second, factor: 1}
	for range 5 {
		if d := flat.next(); d < 100*time.Millisecond || d > 200*time.Millisecond {
			t.Fatalf("factor 1: %s", d)
		}
	}
}

func TestMaskedURLAndParseErrors(t *testing.T) {
	uri, err := parseAMQPURL("amqp://guest:s3cret@rabbit:5672/%2F")
	if err != nil {
		t.Fatal(err)
	}
	got := maskedURL(uri)
	if strings.Contains(got, "s3cret") || !strings.Contains(got, "guest:***@rabbit:5672") {
		t.Fatalf("masked = %q", got)
	}
	_, err = parseAMQPURL("amqp://guest:s3cret@rab bit:5672/")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("parse error leaks or missing: %v", err)
	}
}

func TestBodyPreviewIsSafe(t *testing.T) {
	got := bodyPreview([]byte("line1\nline2\x00"), 100)
	if strings.ContainsAny(got, "\n\x00") {
		t.Fatalf("preview not escaped: %q", got)
	}
	long := bodyPreview(bytes.Repeat([]byte("é"), 200), 11)
	if !strings.HasSuffix(long, "...") || len(long) > 60 {
		t.Fatalf("long preview = %q", long)
	}
}

func TestSleepHandler(t *testing.T) {
	mk := func(h HandlerConfig) HandlerFunc {
		f, err := newSleepHandler(Config{Handler: h}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	ctx := context.Background()
	never, always := mk(HandlerConfig{}), mk(HandlerConfig{FailureRatio: 1})
	for range 50 {
		if err := never(ctx, Delivery{}); err != nil {
			t.Fatalf("ratio 0 failed: %v", err)
		}
		if err := always(ctx, Delivery{}); err == nil {
			t.Fatal("ratio 1 succeeded")
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := mk(HandlerConfig{Duration: time.Hour})(cctx, Delivery{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled sleep = %v", err)
	}
	for _, bad := range []HandlerConfig{{FailureRatio: -0.1}, {FailureRatio: 1.5}, {FailureRatio: math.NaN()}, {Duration: -1}} {
		if _, err := newSleepHandler(Config{Handler: bad}, nil); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestHTTPHandler(t *testing.T) {
	var (
		mu       sync.Mutex
		gotCT    string
		gotBody  string
		status   = http.StatusNoContent
		requests int
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		requests++
		gotCT, gotBody = r.Header.Get("Content-Type"), string(b)
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	h, err := newHTTPHandler(Config{Handler: HandlerConfig{URL: srv.URL + "/hook"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := h(ctx, Delivery{Body: []byte(`{"a":1}`), ContentType: "application/json"}); err != nil {
		t.Fatalf("2xx: %v", err)
	}
	if gotCT != "application/json" || gotBody != `{"a":1}` {
		t.Fatalf("receiver got %q %q", gotCT, gotBody)
	}
	mu.Lock()
	status = http.StatusServiceUnavailable
	mu.Unlock()
	err = h(ctx, Delivery{Body: []byte("x")})
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("503: %v", err)
	}
	for _, bad := range []string{"", "ftp://x/", "/relative", "http://"} {
		if _, err := newHTTPHandler(Config{Handler: HandlerConfig{URL: bad}}, nil); err == nil {
			t.Errorf("URL %q accepted", bad)
		}
	}
	_, err = newHTTPHandler(Config{Handler: HandlerConfig{URL: "ftp://user:pw@host/"}}, nil)
	if err == nil || strings.Contains(err.Error(), "pw") {
		t.Errorf("bad URL error leaks the password or is missing: %v", err)
	}
}

func validConfig(name string) Config {
	return Config{
		Name: name, Queue: "q", MaxConcurrentMessages: 2, PrefetchCount: 5,
		MaxConcurrency: 10, MaxPrefetch: 100, Handler: HandlerConfig{Type: HandlerSleep},
	}
}

func TestNewManagerValidation(t *testing.T) {
	tests := []struct {
		name    string
		cfgs    []Config
		url     string
		wantErr []string
	}{
		{"duplicate name", []Config{validConfig("a"), validConfig("a")}, "", []string{`"a"`, "duplicate"}},
		{"empty name", []Config{validConfig("")}, "", []string{"name"}},
		{"zero concurrency", []Config{func() Config { c := validConfig("a"); c.MaxConcurrentMessages = 0; return c }()}, "", []string{`"a"`, "max_concurrent_messages", "between 1 and 10"}},
		{"concurrency above max", []Config{func() Config { c := validConfig("a"); c.MaxConcurrentMessages = 11; return c }()}, "", []string{"max_concurrent_messages"}},
		{"zero prefetch", []Config{func() Config { c := validConfig("b"); c.PrefetchCount = 0; return c }()}, "", []string{`"b"`, "prefetch_count"}},
		{"prefetch above max", []Config{func() Config { c := validConfig("b"); c.PrefetchCount = 101; return c }()}, "", []string{"prefetch_count", "between 1 and 100"}},
		{"max prefetch above 16 bits", []Config{func() Config { c := validConfig("b"); c.MaxPrefetch = 70000; return c }()}, "", []string{"max_prefetch"}},
		{"unknown handler", []Config{func() Config { c := validConfig("c"); c.Handler.Type = "nope"; return c }()}, "", []string{`"c"`, "handler.type", "nope"}},
		{"bad failure ratio", []Config{func() Config { c := validConfig("d"); c.Handler.FailureRatio = 2; return c }()}, "", []string{`"d"`, "failure_ratio"}},
		{"empty queue", []Config{func() Config { c := validConfig("e"); c.Queue = ""; return c }()}, "", []string{`"e"`, "queue"}},
		{"negative handler timeout", []Config{func() Config { c := validConfig("f"); c.HandlerTimeout = -1; return c }()}, "", []string{`"f"`, "handler_timeout"}},
		{"negative retries", []Config{func() Config {
			c := validConfig("g")
			c.Retry = &RetryConfig{MaxAttempts: -1, InitialDelay: 1}
			return c
		}()}, "", []string{`"g"`, "max_retry_attempts"}},
		{"zero retry delay", []Config{func() Config { c := validConfig("g"); c.Retry = &RetryConfig{}; return c }()}, "", []string{"initial_retry_delay"}},
		{"multiplier below 1", []Config{func() Config {
			c := validConfig("g")
			c.Retry = &RetryConfig{InitialDelay: 1, Multiplier: 0.5}
			return c
		}()}, "", []string{"retry_multiplier"}},
		{"dead-letter queue is the queue", []Config{func() Config {
			c := validConfig("g")
			c.Retry = &RetryConfig{InitialDelay: 1, DeadLetterQueue: "q"}
			return c
		}()}, "", []string{"dead_letter_queue"}},
		{"bad url", []Config{validConfig("a")}, "http://guest:pw@x/", []string{"AMQP URL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := tt.url
			if u == "" {
				u = testAMQPURL
			}
			_, err := NewManager(u, tt.cfgs, nil, nil, Options{})
			if err == nil {
				t.Fatal("no error")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "pw") {
				t.Errorf("error leaks the password: %q", err)
			}
		})
	}
}

func TestUpdateValidatesEverythingAndChangesNothing(t *testing.T) {
	m, err := NewManager(testAMQPURL, []Config{validConfig("a")}, nil, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	before, _ := m.Get("a")
	tests := []struct {
		name  string
		ch    Change
		field string
	}{
		{"concurrency 0", Change{Concurrency: ptr(0)}, "concurrency"},
		{"concurrency -1", Change{Concurrency: ptr(-1)}, "concurrency"},
		{"concurrency above max", Change{Concurrency: ptr(11)}, "concurrency"},
		{"concurrency huge", Change{Concurrency: ptr(1000000000)}, "concurrency"},
		{"prefetch 0", Change{Prefetch: ptr(0)}, "prefetch"},
		{"prefetch -1", Change{Prefetch: ptr(-1)}, "prefetch"},
		{"prefetch above max", Change{Prefetch: ptr(101)}, "prefetch"},
		{"valid concurrency, bad prefetch", Change{Concurrency: ptr(7), Prefetch: ptr(0)}, "prefetch"},
		{"bad concurrency, valid prefetch", Change{Concurrency: ptr(0), Prefetch: ptr(50)}, "concurrency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := m.Update(ctx, "a", tt.ch)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.field) || !strings.Contains(err.Error(), "between 1 and") {
				t.Errorf("error %q does not name the field %s and its range", err, tt.field)
			}
			after, _ := m.Get("a")
			if after.Concurrency != before.Concurrency || after.Prefetch != before.Prefetch {
				t.Errorf("changed: %+v -> %+v", before, after)
			}
		})
	}

	// Valid changes before Run are kept and used when Run starts.
	st, err := m.Update(ctx, "a", Change{Concurrency: ptr(7), Prefetch: ptr(50)})
	if err != nil || st.Concurrency != 7 || st.Prefetch != 50 || st.AppliedPrefetch != 0 {
		t.Fatalf("valid update: %+v, %v", st, err)
	}
	if st, err := m.Pause(ctx, "a"); err != nil || st.State != StatePaused {
		t.Fatalf("pause before run: %+v %v", st, err)
	}

	for name, call := range map[string]func() error{
		"Get":    func() error { _, err := m.Get("nope"); return err },
		"Update": func() error { _, err := m.Update(ctx, "nope", Change{Concurrency: ptr(1)}); return err },
		"Pause":  func() error { _, err := m.Pause(ctx, "nope"); return err },
		"Resume": func() error { _, err := m.Resume(ctx, "nope"); return err },
	} {
		if err := call(); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s(unknown) = %v, want ErrNotFound", name, err)
		}
	}
	if err := m.Ready(ctx); err != nil {
		t.Errorf("Ready with every consumer paused: %v", err)
	}
	if len(m.List()) != 1 {
		t.Errorf("List() = %v", m.List())
	}
}

func TestAMQPCodeHelper(t *testing.T) {
	if !isAMQPCode(&amqp.Error{Code: amqp.NotFound}, amqp.NotFound) || isAMQPCode(errors.New("x"), amqp.NotFound) {
		t.Fatal("isAMQPCode")
	}
}
