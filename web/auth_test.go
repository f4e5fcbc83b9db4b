package web

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/net/html"

	"warren/alerts"
	"warren/store"
)

// Test accounts. MinCost keeps the tests fast; the cost does not change
// what is checked.
const (
	viewerPassword   = "look-but-do-not-touch"
	operatorPassword = "turn-the-knobs"
)

func hashOf(t *testing.T, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func testAuth(t *testing.T) *AuthConfig {
	return &AuthConfig{Users: []User{
		{Name: "vera", PasswordHash: hashOf(t, viewerPassword), Role: RoleViewer},
		{Name: "otto", PasswordHash: hashOf(t, operatorPassword), Role: RoleOperator},
	}}
}

func basic(user, password string) map[string]string {
	return map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))}
}

func withHeaders(hs ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, h := range hs {
		for k, v := range h {
			out[k] = v
		}
	}
	return out
}

// tokenAs loads /consumers as the given user and returns the page's CSRF
// token (the client's jar keeps the cookie) and its parsed HTML.
func tokenAs(t *testing.T, f *fixture, c *http.Client, auth map[string]string) (string, *html.Node) {
	t.Helper()
	code, _, body := do(t, c, http.MethodGet, f.http.URL+"/consumers", "", "", auth)
	if code != http.StatusOK {
		t.Fatalf("GET /consumers = %d %s", code, body)
	}
	doc := parseHTML(t, body)
	metas := findAll(doc, func(n *html.Node) bool {
		name, _ := attr(n, "name")
		return n.Data == "meta" && name == "csrf-token"
	})
	if len(metas) != 1 {
		t.Fatalf("want one csrf-token meta, got %d", len(metas))
	}
	tok, _ := attr(metas[0], "content")
	return tok, doc
}

// controls are the elements that change something: forms posting somewhere
// and buttons.
func controls(doc *html.Node) []*html.Node {
	return findAll(doc, func(n *html.Node) bool {
		_, post := attr(n, "hx-post")
		method, _ := attr(n, "method")
		return post || n.Data == "button" && !insideGetForm(n) || (n.Data == "form" && strings.EqualFold(method, "post"))
	})
}

func insideGetForm(n *html.Node) bool {
	for p := n.Parent; p != nil; p = p.Parent {
		if p.Data == "form" {
			m, _ := attr(p, "method")
			return strings.EqualFold(m, "get")
		}
	}
	return false
}

func TestAuthRequiredAndWrongPasswordIs401(t *testing.T) {
	f := newFixtureWith(t, func(d *Deps) { d.Auth = testAuth(t) })
	c := f.client(t)
	for name, h := range map[string]map[string]string{
		"no credentials": nil,
		"wrong password": basic("otto", "nope"),
		"unknown user":   basic("mallory", operatorPassword),
		"other's pass":   basic("vera", operatorPassword),
		"not basic":      {"Authorization": "Bearer abc"},
	} {
		t.Run(name, func(t *testing.T) {
			for _, path := range []string{"/", "/consumers", "/api/consumers", "/metrics", "/audit", "/settings", "/api/settings"} {
				code, hdr, body := do(t, c, http.MethodGet, f.http.URL+path, "", "", h)
				if code != http.StatusUnauthorized {
					t.Fatalf("GET %s = %d, want 401", path, code)
				}
				if got := hdr.Get("WWW-Authenticate"); !strings.HasPrefix(got, `Basic realm="warren"`) {
					t.Errorf("GET %s: WWW-Authenticate = %q", path, got)
				}
				if strings.Contains(body, "orders") || strings.Contains(body, "demo") {
					t.Errorf("GET %s leaked data to an unauthenticated client: %s", path, body)
				}
			}
		})
	}
	// Health checks stay open for orchestrators; static files hold no data.
	for _, path := range []string{"/healthz", "/static/app.js"} {
		if code, _, _ := do(t, c, http.MethodGet, f.http.URL+path, "", "", nil); code != http.StatusOK {
			t.Errorf("GET %s without credentials = %d, want 200", path, code)
		}
	}
	if code, _, body := do(t, c, http.MethodGet, f.http.URL+"/api/consumers", "", "", basic("otto", operatorPassword)); code != http.StatusOK || !strings.Contains(body, `"demo"`) {
		t.Errorf("right password: %d %s", code, body)
	}
}

func TestViewerSeesNoControlsAndCannotChangeAnything(t *testing.T) {
	st := openAuditStore(t)
	f := newFixtureWith(t, func(d *Deps) {
		d.Auth = testAuth(t)
		d.Audit = st
	})
	viewer := basic("vera", viewerPassword)
	c := f.client(t)
	tok, doc := tokenAs(t, f, c, viewer)

	if rows := findAll(doc, func(n *html.Node) bool { return n.Data == "tr" && hasClass(n, "consumer") }); len(rows) != 2 {
		t.Fatalf("viewer sees %d consumer rows, want 2 (reading is allowed)", len(rows))
	}
	if cs := controls(doc); len(cs) != 0 {
		var b strings.Builder
		for _, n := range cs {
			_ = html.Render(&b, n)
			b.WriteString("\n")
		}
		t.Errorf("viewer's consumers page has %d controls:\n%s", len(cs), b.String())
	}
	if user := findAll(doc, func(n *html.Node) bool { return hasClass(n, "user") }); len(user) != 1 ||
		!strings.Contains(textOf(user[0]), "vera") || !strings.Contains(textOf(user[0]), "viewer") {
		t.Errorf("header does not show the signed-in viewer")
	}
	// The row fragment that refreshes every few seconds has none either.
	_, _, frag := do(t, c, http.MethodGet, f.http.URL+"/consumers/demo", "", "", withHeaders(viewer, map[string]string{"HX-Request": "true"}))
	if cs := controls(parseHTML(t, frag)); len(cs) != 0 {
		t.Errorf("viewer's refreshed row has %d controls", len(cs))
	}

	form := "application/x-www-form-urlencoded"
	csrf := map[string]string{csrfHeader: tok}
	for _, req := range []struct{ method, path, ct, body string }{
		{http.MethodPost, "/ui/consumers/demo/concurrency", form, "op=inc"},
		{http.MethodPost, "/ui/consumers/demo/prefetch", form, "op=set&value=99"},
		{http.MethodPost, "/ui/consumers/demo/pause", form, ""},
		{http.MethodPatch, "/api/consumers/demo", "application/json", `{"concurrency": 50}`},
		{http.MethodPost, "/api/consumers/demo/pause", "application/json", ""},
		{http.MethodPost, "/api/alerts/a1/ack", "application/json", `{"by":"vera"}`},
		{http.MethodPost, "/api/silences", "application/json", `{"owner":"vera","reason":"x","duration":"1h"}`},
		{http.MethodPost, "/api/webhooks/ops/test", "application/json", ""},
		{http.MethodDelete, "/api/consumers/demo", "", ""},
	} {
		code, _, body := do(t, c, req.method, f.http.URL+req.path, req.ct, req.body, withHeaders(viewer, csrf))
		if code != http.StatusForbidden || !strings.Contains(body, "only an operator") {
			t.Errorf("viewer %s %s = %d %s, want 403 naming the role", req.method, req.path, code, body)
		}
	}
	if updates, applied := f.consumers.counts(); updates != 0 || applied != 0 {
		t.Errorf("the controller saw %d updates (%d applied) from a viewer", updates, applied)
	}
	if s, _ := f.consumers.Get("demo"); s.Concurrency != 5 || s.Prefetch != 10 || s.State != "running" {
		t.Errorf("demo changed: %+v", s)
	}
	denied, err := st.AuditLog(t.Context(), store.AuditQuery{Action: auditRequestDenied})
	if err != nil || len(denied) != 9 {
		t.Fatalf("denied requests in the audit log: %d (%v), want 9", len(denied), err)
	}
	if d := denied[len(denied)-1]; d.Actor != "vera" || d.Role != "viewer" || d.Outcome != store.AuditDenied ||
		d.Target != "POST /ui/consumers/demo/concurrency" || d.RemoteAddr != "127.0.0.1" {
		t.Errorf("first denied entry: %+v", d)
	}

	// The operator sees the controls on the same page.
	_, opDoc := tokenAs(t, f, f.client(t), basic("otto", operatorPassword))
	if len(controls(opDoc)) == 0 {
		t.Error("operator's consumers page has no controls")
	}
}

func TestProxyHeaderTrustedOnlyFromTrustedProxies(t *testing.T) {
	cfg := &AuthConfig{
		Users: []User{{Name: "otto", PasswordHash: hashOf(t, operatorPassword), Role: RoleOperator}},
		Proxy: &ProxyAuth{UserHeader: "X-Forwarded-User", RoleHeader: "X-Warren-Role",
			TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}},
	}
	a := newAuthenticator(cfg)
	req := func(remote string, h map[string]string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/consumers", nil)
		r.RemoteAddr = remote
		for k, v := range h {
			r.Header.Set(k, v)
		}
		return r
	}
	cases := []struct {
		name   string
		remote string
		h      map[string]string
		user   string
		role   Role
		code   int
	}{
		{"proxy user, default role", "127.0.0.1:4000", map[string]string{"X-Forwarded-User": "ana"}, "ana", RoleViewer, 0},
		{"proxy user and role", "127.0.0.1:4000", map[string]string{"X-Forwarded-User": "ana", "X-Warren-Role": "Operator"}, "ana", RoleOperator, 0},
		{"proxy bad role", "127.0.0.1:4000", map[string]string{"X-Forwarded-User": "ana", "X-Warren-Role": "admin"}, "", "", http.StatusForbidden},
		{"header from an untrusted peer is ignored", "10.9.8.7:4000", map[string]string{"X-Forwarded-User": "ana", "X-Warren-Role": "operator"}, "", "", http.StatusUnauthorized},
		{"untrusted peer with basic auth", "10.9.8.7:4000", withHeaders(map[string]string{"X-Forwarded-User": "ana"}, basic("otto", operatorPassword)), "otto", RoleOperator, 0},
		{"trusted proxy without user falls back to basic", "127.0.0.1:4000", basic("otto", operatorPassword), "otto", RoleOperator, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := a.identify(req(tc.remote, tc.h))
			if tc.code != 0 {
				ae, ok := err.(*authError)
				if !ok || ae.code != tc.code {
					t.Fatalf("got %+v, %v; want error %d", p, err, tc.code)
				}
				return
			}
			if err != nil || p.User != tc.user || p.Role != tc.role {
				t.Fatalf("got %+v, %v; want %s/%s", p, err, tc.user, tc.role)
			}
		})
	}
	p, err := a.identify(req("127.0.0.1:4000", map[string]string{"X-Forwarded-User": "ana", "X-Forwarded-For": "203.0.113.9, 198.51.100.7"}))
	if err != nil || p.Remote != "198.51.100.7 via 127.0.0.1" {
		t.Errorf("remote behind proxy = %q, %v", p.Remote, err)
	}
}

func TestNoAuthServesOnlyLoopbackAsLocalOperator(t *testing.T) {
	a := newAuthenticator(nil)
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "[::1]:5000"
	if p, err := a.identify(r); err != nil || p.User != "local" || p.Role != RoleOperator {
		t.Fatalf("loopback without auth: %+v %v", p, err)
	}
	r.RemoteAddr = "192.0.2.10:5000"
	if _, err := a.identify(r); err == nil {
		t.Fatal("a non-loopback client was served without authentication")
	}
}

func TestLoginCacheExpires(t *testing.T) {
	cfg := testAuth(t)
	a := newAuthenticator(cfg)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a.now = func() time.Time { return now }
	ctx := context.Background()
	if _, err := a.checkPassword(ctx, "otto", operatorPassword); err != nil {
		t.Fatal(err)
	}
	// Break the stored hash: only a cached success can still pass.
	u := a.users["otto"]
	u.PasswordHash = "$2a$04$invalidinvalidinvalidinvalidinvalidinvalidinvalidinval"
	a.users["otto"] = u
	if _, err := a.checkPassword(ctx, "otto", operatorPassword); err != nil {
		t.Fatalf("within the TTL the cached success should answer: %v", err)
	}
	if _, err := a.checkPassword(ctx, "otto", "wrong"); err == nil {
		t.Fatal("a different password passed through the cache")
	}
	now = now.Add(loginCacheTTL + time.Second)
	if _, err := a.checkPassword(ctx, "otto", operatorPassword); err == nil {
		t.Fatal("the cache answered after its TTL")
	}
}

func TestViewerAlertsPageHasNoControls(t *testing.T) {
	st := openAuditStore(t)
	a := firingAlert()
	if err := st.RecordTransition(t.Context(), a, nil); err != nil {
		t.Fatal(err)
	}
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	t.Cleanup(recv.Close)
	f := newFixtureWith(t, func(d *Deps) {
		d.Auth = testAuth(t)
		d.Alerts = st
		d.AlertActions = st
		d.WebhookTester = fakeTester{}
		d.Webhooks = []string{"ops"}
	})
	for _, tc := range []struct {
		who      map[string]string
		controls bool
	}{{basic("vera", viewerPassword), false}, {basic("otto", operatorPassword), true}} {
		code, _, page := do(t, f.client(t), http.MethodGet, f.http.URL+"/alerts", "", "", tc.who)
		if code != http.StatusOK {
			t.Fatalf("GET /alerts = %d", code)
		}
		doc := parseHTML(t, page)
		if !strings.Contains(textOf(doc), a.Queue) {
			t.Error("the firing alert is not shown")
		}
		if n := len(controls(doc)); (n > 0) != tc.controls {
			t.Errorf("%v: %d controls on /alerts, want controls=%v", tc.who, n, tc.controls)
		}
	}
}

// fakeTester stands in for the dispatcher: this test only renders the page.
type fakeTester struct{}

func (fakeTester) SendTest(context.Context, string) (alerts.Attempt, error) {
	return alerts.Attempt{Outcome: "delivered"}, nil
}

func TestSettingsGroups(t *testing.T) {
	got := settingsGroups([]Setting{{Key: "listen"}, {Key: "amqp_url"}, {Key: "management.url"}, {Key: "management.password", Masked: true},
		{Key: "consumers"}, {Key: "alerts.webhooks[0].name"}, {Key: "alerts.rules"}, {Key: "log.level"}})
	var names []string
	for _, g := range got {
		names = append(names, g.Name+":"+strconv.Itoa(len(g.Rows)))
	}
	if want := "general:2 management:2 consumers:1 alerts:2 log:1"; strings.Join(names, " ") != want {
		t.Errorf("groups %q, want %q", strings.Join(names, " "), want)
	}
}
