package web

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestHostPolicy(t *testing.T) {
	p := newHostPolicy([]string{"Warren.Example", " 10.0.0.5 ", "[fd00::5]"})
	for _, tc := range []struct {
		host string
		want bool
	}{
		{"127.0.0.1:8080", true},
		{"127.0.0.1", true},
		{"127.9.8.7:80", true}, // all of 127.0.0.0/8
		{"localhost:8080", true},
		{"LOCALHOST", true},
		{"localhost.:8080", true},
		{"[::1]:8080", true},
		{"[::1]", true},
		{"warren.example:443", true}, // allowed, case-insensitive
		{"10.0.0.5:8080", true},
		{"[fd00::5]:8080", true},
		{"evil.example:8080", false},
		{"evil.example", false},
		{"127.0.0.1.evil.example", false}, // a name, not a loopback literal
		{"localhost.evil.example", false},
		{"sub.warren.example", false},
		{"0.0.0.0:8080", false},
		{"10.0.0.6", false},
		{"", false},
	} {
		if got := p.allows(tc.host); got != tc.want {
			t.Errorf("allows(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}
	if newHostPolicy(nil).allows("warren.example") {
		t.Error("with no allowed hosts, only loopback names pass")
	}
}

// TestDNSRebindingRefused: a page whose name was re-pointed at 127.0.0.1
// reaches the server with its own name in Host; no route may answer it.
func TestDNSRebindingRefused(t *testing.T) {
	f := newFixtureWith(t, func(d *Deps) { d.AllowedHosts = []string{"warren.internal"} })
	c := f.client(t)
	send := func(method, path, host, contentType, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, f.http.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}

	// /healthz and /readyz are exempt (orchestrators probe by pod IP; see
	// TestProbesAnswerAnyHost).
	for _, path := range []string{"/", "/queues", "/alerts", "/api/queues", "/api/alerts", "/static/app.js", "/metrics", "/api/nope", "/nope"} {
		code, body := send(http.MethodGet, path, "evil.example:8080", "", "")
		if code != http.StatusMisdirectedRequest || !strings.Contains(body, "host not allowed") {
			t.Errorf("GET %s with Host evil.example:8080 = %d %.80q, want 421", path, code, body)
		}
	}

	_, applied0 := f.consumers.counts()
	code, body := send(http.MethodPatch, "/api/consumers/demo", "evil.example:8080", "application/json", `{"concurrency":7}`)
	if code != http.StatusMisdirectedRequest {
		t.Errorf("PATCH with Host evil.example:8080 = %d %.80q, want 421", code, body)
	}
	if _, applied := f.consumers.counts(); applied != applied0 {
		t.Error("a PATCH from a foreign host was applied")
	}

	for _, host := range []string{"127.0.0.1:8080", "localhost:8080", "[::1]:8080", "warren.internal:8080", "warren.internal"} {
		if code, body := send(http.MethodGet, "/", host, "", ""); code != http.StatusOK {
			t.Errorf("GET / with Host %s = %d %.80q", host, code, body)
		}
		if code, body := send(http.MethodGet, "/healthz", host, "", ""); code != http.StatusOK {
			t.Errorf("GET /healthz with Host %s = %d %.80q", host, code, body)
		}
	}
	code, body = send(http.MethodPatch, "/api/consumers/demo", "localhost:8080", "application/json", `{"concurrency":7}`)
	if code != http.StatusOK {
		t.Errorf("PATCH with Host localhost:8080 = %d %s", code, body)
	}
}
