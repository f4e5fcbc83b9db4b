package web

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestHealthz(t *testing.T) {
	f := newFixture(t)
	code, _, body := do(t, f.client(t), http.MethodGet, f.http.URL+"/healthz", "", "", nil)
	if code != http.StatusOK || strings.TrimSpace(body) != `{"status":"ok"}` {
		t.Errorf("%d %s", code, body)
	}
}

func TestReadyz(t *testing.T) {
	ok := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("dial tcp 127.0.0.1:5672: connection refused") }
	hang := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	ignoresCtx := make(chan struct{})
	t.Cleanup(func() { close(ignoresCtx) })
	stuck := func(context.Context) error { <-ignoresCtx; return nil }
	panics := func(context.Context) error { panic("oops") }

	for _, tc := range []struct {
		name   string
		checks []Check
		code   int
		want   map[string]string // substrings of each check's result
	}{
		{"all ok", []Check{{"store", ok}, {"broker", ok}}, 200, map[string]string{"store": "ok", "broker": "ok"}},
		{"broker down", []Check{{"store", ok}, {"broker", down}}, 503, map[string]string{"store": "ok", "broker": "connection refused"}},
		{"check hangs", []Check{{"store", ok}, {"management", hang}}, 503, map[string]string{"store": "ok", "management": "timed out"}},
		{"check ignores ctx", []Check{{"store", ok}, {"management", stuck}}, 503, map[string]string{"store": "ok", "management": "timed out"}},
		{"check panics", []Check{{"store", panics}}, 503, map[string]string{"store": "panicked"}},
		{"no checks", nil, 200, map[string]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(Deps{Checks: tc.checks, Logger: testLogger()})
			s.readyTimeout = 200 * time.Millisecond
			srv := httptest.NewServer(s.Handler())
			defer srv.Close()
			code, _, body := do(t, http.DefaultClient, http.MethodGet, srv.URL+"/readyz", "", "", nil)
			if code != tc.code {
				t.Fatalf("status %d, want %d: %s", code, tc.code, body)
			}
			var got healthJSON
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatal(err)
			}
			wantStatus := "ok"
			if tc.code != 200 {
				wantStatus = "unavailable"
			}
			if got.Status != wantStatus {
				t.Errorf("status %q", got.Status)
			}
			for name, want := range tc.want {
				if !strings.Contains(got.Checks[name], want) {
					t.Errorf("checks[%s] = %q, want %q", name, got.Checks[name], want)
				}
			}
		})
	}
}

func TestServeShutsDownWhenContextEnds(t *testing.T) {
	s := New(Deps{Logger: testLogger()})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ctx, ln) }()
	url := "http://" + ln.Addr().String() + "/healthz"
	eventually(t, 5*time.Second, func() bool {
		resp, err := http.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Serve returned %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not return after ctx ended")
	}
	if _, err := http.Get(url); err == nil {
		t.Error("still serving after shutdown")
	}
	if err := New(Deps{}).Run(context.Background(), "256.0.0.1:bad"); err == nil {
		t.Error("Run on a bad address returned nil")
	}
}
