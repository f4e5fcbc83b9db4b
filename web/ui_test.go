package web

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"warren/consumers"
	"warren/monitor"
)

func TestSecurityHeaders(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	for _, path := range []string{"/", "/api/queues", "/healthz", "/static/app.js", "/api/nope"} {
		_, hdr, _ := do(t, c, http.MethodGet, f.http.URL+path, "", "", nil)
		for k, want := range map[string]string{
			"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'",
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "same-origin",
		} {
			if got := hdr.Get(k); got != want {
				t.Errorf("%s: %s = %q, want %q", path, k, got, want)
			}
		}
	}
}

func TestPageHasNoInlineScriptOrStyle(t *testing.T) {
	f := newFixture(t)
	_, _, body := do(t, f.client(t), http.MethodGet, f.http.URL+"/", "", "", nil)
	doc := parseHTML(t, body)
	for _, s := range findAll(doc, func(n *html.Node) bool { return n.Data == "script" }) {
		src, ok := attr(s, "src")
		if !ok || !strings.HasPrefix(src, "/static/") || textOf(s) != "" {
			t.Errorf("inline or foreign script: src=%q text=%q", src, textOf(s))
		}
	}
	if n := findAll(doc, func(n *html.Node) bool { _, ok := attr(n, "style"); return n.Data == "style" || ok }); len(n) > 0 {
		t.Errorf("%d inline style elements/attributes", len(n))
	}
	if n := findAll(doc, func(n *html.Node) bool {
		for _, a := range n.Attr {
			if strings.HasPrefix(a.Key, "on") || strings.HasPrefix(a.Key, "hx-on") {
				return true
			}
		}
		return false
	}); len(n) > 0 {
		t.Errorf("%d inline event handlers", len(n))
	}
}

func TestDashboardRendersTables(t *testing.T) {
	f := newFixture(t)
	code, hdr, body := do(t, f.client(t), http.MethodGet, f.http.URL+"/queues", "", "", nil)
	if code != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") {
		t.Fatalf("%d %s", code, hdr.Get("Content-Type"))
	}
	doc := parseHTML(t, body)
	rows := findAll(doc, func(n *html.Node) bool { return n.Data == "tr" && hasClass(n, "queue") })
	if len(rows) != len(defaultSnapshot().Queues) {
		t.Fatalf("%d queue rows", len(rows))
	}
	for _, r := range rows {
		name, _ := attr(r, "data-queue")
		cells := findAll(r, func(n *html.Node) bool { return n.Data == "td" })
		text := func(i int) string { return strings.TrimSpace(textOf(cells[i])) }
		switch name {
		case "idle":
			// ready, unacked, total, consumers, in, out, drain
			for i := 2; i <= 8; i++ {
				if text(i) != "n/a" {
					t.Errorf("idle cell %d = %q, want n/a", i, text(i))
				}
			}
			if !strings.Contains(text(9), "unknown") {
				t.Errorf("idle status %q", text(9))
			}
		case "orders":
			if text(2) != "1,200" || text(3) != "34" || text(4) != "1,234" || text(5) != "2" || !strings.Contains(text(9), "warning") {
				t.Errorf("orders row: %q %q %q %q %q", text(2), text(3), text(4), text(5), text(9))
			}
			if text(6) != "12.5/s" || text(7) != "20.0/s" || text(8) != "2m 40s" {
				t.Errorf("orders rates and drain: %q %q %q", text(6), text(7), text(8))
			}
			if !hasClass(cells[2], "num") {
				t.Error("numbers are not marked for right alignment")
			}
		}
	}
	_, _, body = do(t, f.client(t), http.MethodGet, f.http.URL+"/consumers", "", "", nil)
	doc = parseHTML(t, body)
	cons := findAll(doc, func(n *html.Node) bool { return n.Data == "tr" && hasClass(n, "consumer") })
	if len(cons) != 2 {
		t.Fatalf("%d consumer rows", len(cons))
	}
	demo := textOf(cons[0])
	for _, want := range []string{"demo", "running", "12,345", "42.5/s", "87 ms"} {
		if !strings.Contains(demo, want) {
			t.Errorf("demo row lacks %q: %q", want, demo)
		}
	}
	for i, want := range []string{"pause", "resume"} { // running, paused
		buttons := findAll(cons[i], func(n *html.Node) bool { return n.Data == "button" && (hasClass(n, "pause") || hasClass(n, "resume")) })
		if len(buttons) != 1 || strings.TrimSpace(textOf(buttons[0])) != want {
			t.Errorf("consumer %d should offer %s only", i, want)
		}
	}
	_, _, body = do(t, f.client(t), http.MethodGet, f.http.URL+"/", "", "", nil) // the overview's firing alerts
	doc = parseHTML(t, body)
	alerts := findAll(doc, func(n *html.Node) bool { return n.Data == "tr" && hasClass(n, "alert") })
	if len(alerts) != 1 || !strings.Contains(textOf(alerts[0]), "with space+plus") || !strings.Contains(textOf(alerts[0]), "critical") {
		t.Errorf("alerts table wrong")
	}
}

func TestFragmentsFollowHXRequest(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	hx := map[string]string{"HX-Request": "true"}
	for _, tc := range []struct{ path, root string }{
		{"/queues", "<section"},
		{"/alerts", "<section"},
		{"/consumers", "<section"},
		{"/consumers/demo", "<tr"},
		{queueHref("/", "a/b?c#d"), "<section"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			code, hdr, full := do(t, c, http.MethodGet, f.http.URL+tc.path, "", "", nil)
			if code != http.StatusOK || !strings.HasPrefix(full, "<!doctype html>") {
				t.Errorf("full page: %d %.40q", code, full)
			}
			if !strings.Contains(strings.Join(hdr.Values("Vary"), ","), "HX-Request") {
				t.Errorf("Vary = %q", hdr.Values("Vary"))
			}
			code, hdr, frag := do(t, c, http.MethodGet, f.http.URL+tc.path, "", "", hx)
			if code != http.StatusOK || !strings.HasPrefix(frag, tc.root) || strings.Contains(frag, "<html") {
				t.Errorf("fragment: %d %.60q", code, frag)
			}
			if !strings.Contains(strings.Join(hdr.Values("Vary"), ","), "HX-Request") {
				t.Errorf("fragment Vary = %q", hdr.Values("Vary"))
			}
		})
	}
	// The queue fragment also updates the header's broker badge out of band.
	f.queues.set(defaultSnapshotWithError())
	_, _, frag := do(t, c, http.MethodGet, f.http.URL+"/queues", "", "", hx)
	if !strings.Contains(frag, `hx-swap-oob="true"`) || !strings.Contains(frag, "poll failed") {
		t.Errorf("queue fragment lacks the broker badge: %s", frag)
	}
}

func TestRefreshingElementsDoNotPileUp(t *testing.T) {
	f := newFixture(t)
	var polling []*html.Node
	for _, path := range []string{"/", "/queues", "/consumers"} {
		_, _, body := do(t, f.client(t), http.MethodGet, f.http.URL+path, "", "", nil)
		polling = append(polling, findAll(parseHTML(t, body), func(n *html.Node) bool {
			v, _ := attr(n, "hx-trigger")
			return strings.HasPrefix(v, "every ")
		})...)
	}
	if len(polling) < 4 { // overview, queue list, two consumer rows
		t.Fatalf("%d polling elements", len(polling))
	}
	for _, n := range polling {
		if v, _ := attr(n, "hx-sync"); v != "this:drop" {
			t.Errorf("<%s> polls with hx-sync %q, want this:drop", n.Data, v)
		}
		if _, ok := attr(n, "data-refresh"); !ok {
			t.Errorf("<%s> polls without data-refresh (app.js cannot pause it)", n.Data)
		}
	}
}

// TestEscaping checks that broker-supplied names are escaped in text and
// that every link and control URL leads back to the same queue or consumer.
func TestEscaping(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	// The queue list and the consumer table, where the names are.
	_, _, qbody := do(t, c, http.MethodGet, f.http.URL+"/queues", "", "", nil)
	_, _, cbody := do(t, c, http.MethodGet, f.http.URL+"/consumers", "", "", nil)
	body := qbody + cbody
	if strings.Contains(body, "<b>x</b>") || strings.Contains(body, "<i>name</i>") {
		t.Fatal("a broker-supplied name was written as markup")
	}
	if !strings.Contains(body, "&lt;b&gt;x&lt;/b&gt;") {
		t.Error("escaped queue name not found")
	}
	doc := parseHTML(t, body)

	// No element was injected by a name.
	if n := findAll(doc, func(n *html.Node) bool { return n.Data == "b" || n.Data == "i" }); len(n) > 0 {
		t.Errorf("%d injected elements", len(n))
	}

	links := map[string]string{} // queue name -> href, from the queue table
	for _, r := range findAll(doc, func(n *html.Node) bool { return n.Data == "tr" && hasClass(n, "queue") }) {
		name, _ := attr(r, "data-queue")
		a := findAll(r, func(n *html.Node) bool { return n.Data == "a" })
		if len(a) != 1 {
			t.Fatalf("row %q has %d links", name, len(a))
		}
		if textOf(a[0]) != name {
			t.Errorf("link text %q, want %q", textOf(a[0]), name)
		}
		href, _ := attr(a[0], "href")
		links[name] = href
	}
	wantHref := map[string]string{
		"<b>x</b>":        "/queues/%2F/%3Cb%3Ex%3C%2Fb%3E",
		"a/b?c#d":         "/queues/%2F/a%2Fb%3Fc%23d",
		"with space+plus": "/queues/%2F/with%20space+plus",
	}
	for name, want := range wantHref {
		if links[name] != want {
			t.Errorf("href of %q = %q, want %q", name, links[name], want)
		}
	}
	for _, q := range defaultSnapshot().Queues {
		href := links[q.Name]
		u, err := url.Parse(href)
		if err != nil || u.RawQuery != "" || u.Fragment != "" {
			t.Errorf("href %q of %q has a query or fragment", href, q.Name)
			continue
		}
		// The link works: it leads to that queue's page and API entry.
		code, _, page := do(t, c, http.MethodGet, f.http.URL+href, "", "", nil)
		if code != http.StatusOK {
			t.Errorf("GET %s = %d", href, code)
			continue
		}
		heads := findAll(parseHTML(t, page), func(n *html.Node) bool { return n.Data == "h2" && strings.HasPrefix(textOf(n), "Queue ") })
		if len(heads) != 1 || !strings.Contains(textOf(heads[0]), q.Name) || !strings.Contains(textOf(heads[0]), "vhost "+q.Vhost) {
			t.Errorf("page %s does not show queue %q", href, q.Name)
		}
		code, _, js := do(t, c, http.MethodGet, f.http.URL+"/api"+href, "", "", nil)
		if code != http.StatusOK || !strings.Contains(js, `"status"`) {
			t.Errorf("GET /api%s = %d %s", href, code, js)
		}
	}

	// The odd consumer's controls and link address it, and work.
	odd := defaultConsumers()[1].Name
	var row *html.Node
	for _, r := range findAll(doc, func(n *html.Node) bool { return n.Data == "tr" && hasClass(n, "consumer") }) {
		if v, _ := attr(r, "data-consumer"); v == odd {
			row = r
		}
	}
	if row == nil {
		t.Fatalf("no row for consumer %q", odd)
	}
	if v, _ := attr(row, "hx-get"); v != "/consumers/odd%2F%3Ci%3Ename%3C%2Fi%3E%3F%23" {
		t.Errorf("row refresh URL %q", v)
	}
	forms := findAll(row, func(n *html.Node) bool { return n.Data == "form" && hasClass(n, "concurrency") })
	post, _ := attr(forms[0], "hx-post")
	tok := csrfToken(t, f, c)
	code, _, frag := do(t, c, http.MethodPost, f.http.URL+post, "application/x-www-form-urlencoded", "op=set&value=3",
		map[string]string{"X-CSRF-Token": tok, "HX-Request": "true"})
	if code != http.StatusOK {
		t.Fatalf("POST %s = %d %s", post, code, frag)
	}
	if st, _ := f.consumers.Get(odd); st.Concurrency != 3 {
		t.Errorf("concurrency of %q = %d", odd, st.Concurrency)
	}
	if strings.Contains(frag, "<i>name</i>") {
		t.Error("row fragment writes the name as markup")
	}
}

// defaultSnapshotWithError is a failed poll as the monitor reports it: no
// queues, the error.
func defaultSnapshotWithError() monitor.Snapshot {
	return monitor.Snapshot{At: pollTime, Err: errBoom}
}

func TestCSRFOnUIControls(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	tok := csrfToken(t, f, c)

	// The cookie is SameSite=Strict and HttpOnly.
	_, hdr, _ := do(t, f.client(t), http.MethodGet, f.http.URL+"/", "", "", nil)
	ck := hdr.Get("Set-Cookie")
	if !strings.Contains(ck, csrfCookieName+"=") || !strings.Contains(ck, "SameSite=Strict") || !strings.Contains(ck, "HttpOnly") {
		t.Errorf("Set-Cookie = %q", ck)
	}

	form := "application/x-www-form-urlencoded"
	for _, tc := range []struct {
		name   string
		path   string
		body   string
		header map[string]string
		want   int
	}{
		{"no token", "/ui/consumers/demo/concurrency", "op=set&value=9", nil, http.StatusForbidden},
		{"wrong token", "/ui/consumers/demo/concurrency", "op=set&value=9", map[string]string{"X-CSRF-Token": "nope"}, http.StatusForbidden},
		{"json does not exempt the UI", "/ui/consumers/demo/pause", "", map[string]string{"Content-Type": "application/json"}, http.StatusForbidden},
		{"cross-site even with token", "/ui/consumers/demo/concurrency", "op=set&value=9", map[string]string{"X-CSRF-Token": tok, "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"pause no token", "/ui/consumers/demo/pause", "", nil, http.StatusForbidden},
		{"header token", "/ui/consumers/demo/concurrency", "op=set&value=9", map[string]string{"X-CSRF-Token": tok}, http.StatusOK},
		{"form token", "/ui/consumers/demo/prefetch", "op=set&value=11&_csrf=" + url.QueryEscape(tok), nil, http.StatusOK},
		// Sec-Fetch-Site never replaces the token: a same-origin request
		// without it is refused too.
		{"same-origin browser without token", "/ui/consumers/demo/pause", "", map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusForbidden},
		{"same-origin browser with token", "/ui/consumers/demo/pause", "", map[string]string{"Sec-Fetch-Site": "same-origin", "X-CSRF-Token": tok}, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, applied0 := f.consumers.counts()
			code, _, body := do(t, c, http.MethodPost, f.http.URL+tc.path, form, tc.body, tc.header)
			if code != tc.want {
				t.Fatalf("status %d, want %d: %s", code, tc.want, body)
			}
			_, applied1 := f.consumers.counts()
			if tc.want == http.StatusForbidden && applied1 != applied0 {
				t.Error("a refused request changed state")
			}
			if tc.want == http.StatusOK && applied1 == applied0 {
				t.Error("an accepted request changed nothing")
			}
		})
	}
	st, _ := f.consumers.Get("demo")
	if st.Concurrency != 9 || st.Prefetch != 11 || st.State != consumers.StatePaused {
		t.Errorf("final state %+v", st)
	}
}

func TestUIControls(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	tok := csrfToken(t, f, c)
	post := func(path, body string) (int, string) {
		code, hdr, resp := do(t, c, http.MethodPost, f.http.URL+path, "application/x-www-form-urlencoded", body,
			map[string]string{"X-CSRF-Token": tok, "HX-Request": "true"})
		if !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") {
			t.Errorf("%s: content type %q", path, hdr.Get("Content-Type"))
		}
		return code, resp
	}
	inputValue := func(frag, class string) string {
		doc := parseHTML(t, "<table>"+frag+"</table>")
		forms := findAll(doc, func(n *html.Node) bool { return n.Data == "form" && hasClass(n, class) })
		if len(forms) != 1 {
			t.Fatalf("no %s form in %s", class, frag)
		}
		in := findAll(forms[0], func(n *html.Node) bool { return n.Data == "input" })
		v, _ := attr(in[0], "value")
		return v
	}
	controlError := func(frag, class string) string {
		doc := parseHTML(t, "<table>"+frag+"</table>")
		forms := findAll(doc, func(n *html.Node) bool { return n.Data == "form" && hasClass(n, class) })
		errs := findAll(forms[0], func(n *html.Node) bool { return hasClass(n, "control-error") })
		return strings.TrimSpace(textOf(errs[0]))
	}

	code, frag := post("/ui/consumers/demo/concurrency", "op=inc")
	if code != http.StatusOK || inputValue(frag, "concurrency") != "6" {
		t.Fatalf("inc: %d value %s", code, inputValue(frag, "concurrency"))
	}
	code, frag = post("/ui/consumers/demo/concurrency", "op=dec&value=999")
	if code != http.StatusOK || inputValue(frag, "concurrency") != "5" {
		t.Fatalf("dec uses the real value, not the input: %d %s", code, inputValue(frag, "concurrency"))
	}

	for _, tc := range []struct{ name, path, body, class, msg string }{
		{"zero", "/ui/consumers/demo/concurrency", "op=set&value=0", "concurrency", "between 1 and 100"},
		{"too big", "/ui/consumers/demo/concurrency", "op=set&value=1000000000", "concurrency", "between 1 and 100"},
		{"not a number", "/ui/consumers/demo/concurrency", "op=set&value=ten", "concurrency", "whole number"},
		{"fraction", "/ui/consumers/demo/prefetch", "op=set&value=1.5", "prefetch", "whole number"},
		{"empty", "/ui/consumers/demo/prefetch", "op=set&value=", "prefetch", "enter a prefetch"},
		{"bad op", "/ui/consumers/demo/prefetch", "op=explode", "prefetch", "unknown operation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := f.consumers.Get("demo")
			code, frag := post(tc.path, tc.body)
			if code != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422", code)
			}
			if msg := controlError(frag, tc.class); !strings.Contains(msg, tc.msg) {
				t.Errorf("error next to control = %q, want %q", msg, tc.msg)
			}
			want := before.Concurrency
			if tc.class == "prefetch" {
				want = before.Prefetch
			}
			if got := inputValue(frag, tc.class); got != strconv.Itoa(want) {
				t.Errorf("control shows %s, want the real value %d", got, want)
			}
			if after, _ := f.consumers.Get("demo"); after != before {
				t.Errorf("consumer changed")
			}
		})
	}

	code, frag = post("/ui/consumers/nope/concurrency", "op=inc")
	if code != http.StatusNotFound || !strings.Contains(frag, "no longer exists") {
		t.Errorf("unknown consumer: %d %s", code, frag)
	}
	code, frag = post("/ui/consumers/demo/pause", "")
	if code != http.StatusOK || !strings.Contains(frag, "resume") {
		t.Errorf("pause: %d", code)
	}
}

func TestStaticAssets(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	_, _, body := do(t, c, http.MethodGet, f.http.URL+"/", "", "", nil)
	doc := parseHTML(t, body)
	var urls []string
	for _, n := range findAll(doc, func(n *html.Node) bool { return n.Data == "script" || n.Data == "link" }) {
		if v, ok := attr(n, "src"); ok {
			urls = append(urls, v)
		}
		if v, ok := attr(n, "href"); ok {
			urls = append(urls, v)
		}
	}
	if len(urls) != 4 {
		t.Fatalf("assets %v", urls)
	}
	for _, u := range urls {
		if !strings.Contains(u, "?v="+f.server.assetVersion) {
			t.Errorf("%s lacks the version query", u)
		}
		code, hdr, content := do(t, c, http.MethodGet, f.http.URL+u, "", "", nil)
		if code != http.StatusOK || len(content) == 0 {
			t.Errorf("GET %s = %d", u, code)
		}
		if cc := hdr.Get("Cache-Control"); !strings.Contains(cc, "max-age=31536000") || !strings.Contains(cc, "immutable") {
			t.Errorf("%s Cache-Control %q", u, cc)
		}
	}
	_, hdr, _ := do(t, c, http.MethodGet, f.http.URL+"/static/app.js", "", "", nil)
	if cc := hdr.Get("Cache-Control"); strings.Contains(cc, "immutable") {
		t.Errorf("unversioned asset cached for good: %q", cc)
	}
	for _, p := range []string{"/static/", "/static/nope.js", "/static/../static.go", "/static/static.go"} {
		if code, _, _ := do(t, c, http.MethodGet, f.http.URL+p, "", "", nil); code == http.StatusOK {
			t.Errorf("GET %s = 200", p)
		}
	}
}
