package web

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/a-h/templ"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// contentSecurityPolicy allows only our own scripts and styles: no inline
// script or style anywhere, so an injected name can never run.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'"

// securityHeaders sets the headers every response carries.
func securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		return next(c)
	}
}

// buildHeader names the server's build on every response, so an open page
// notices a new build on its next refresh and reloads its assets (app.js).
const buildHeader = "X-Warren-Build"

func (s *Server) sendBuild(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set(buildHeader, s.buildID)
		return next(c)
	}
}

// csrfCookieName and csrfHeader are what the dashboard uses: the token is
// rendered into <meta name="csrf-token"> and app.js sends it as X-CSRF-Token
// on every htmx request; plain forms may send it as the _csrf field.
const (
	csrfCookieName = "_csrf"
	csrfHeader     = "X-CSRF-Token"
	csrfContextKey = "csrf"
)

// csrf protects every state-changing request with the double-submit token
// (cookie SameSite=Strict + header or form field), whatever the browser
// says: echo's middleware would let a request with Sec-Fetch-Site
// same-origin or none through without a token, so that header is removed
// before it looks. A state-changing request a browser marks cross-site or
// same-site is refused even with a token.
func (s *Server) csrf() echo.MiddlewareFunc {
	tokens := s.csrfTokens()
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		h := tokens(next)
		return func(c echo.Context) error {
			r := c.Request()
			if site := r.Header.Get(echo.HeaderSecFetchSite); site != "" {
				if (site == "cross-site" || site == "same-site") && !safeMethod(r.Method) && !csrfSkipper(c) {
					return echo.NewHTTPError(http.StatusForbidden, "CSRF check failed: cross-site request")
				}
				r.Header.Del(echo.HeaderSecFetchSite)
			}
			return h(c)
		}
	}
}

func (s *Server) csrfTokens() echo.MiddlewareFunc {
	return middleware.CSRFWithConfig(middleware.CSRFConfig{
		Skipper:        csrfSkipper,
		TokenLookup:    "header:" + csrfHeader + ",form:_csrf",
		ContextKey:     csrfContextKey,
		CookieName:     csrfCookieName,
		CookiePath:     "/",
		CookieHTTPOnly: true,
		CookieSameSite: http.SameSiteStrictMode,
		ErrorHandler: func(err error, c echo.Context) error {
			msg := "CSRF check failed: reload the page and try again"
			if strings.HasPrefix(c.Request().URL.Path, "/api/") {
				msg = "CSRF check failed: API requests must send Content-Type: application/json"
			}
			return echo.NewHTTPError(http.StatusForbidden, msg)
		},
	})
}

// csrfSkipper exempts what cannot be a cross-site forgery:
//   - operational endpoints and static files (GET only, no cookie wanted);
//   - safe methods on /api (they never change state);
//   - /api requests with Content-Type application/json: a cross-site page
//     cannot send that content type without a CORS preflight, which this
//     server never approves, so scripts and curl can use the API without a
//     token while browser forms (urlencoded, multipart, text/plain) cannot.
func csrfSkipper(c echo.Context) bool {
	r := c.Request()
	p := r.URL.Path
	switch {
	case strings.HasPrefix(p, "/static/"), p == "/metrics", p == "/healthz", p == "/readyz":
		return true
	case strings.HasPrefix(p, "/api/"):
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			return true
		}
		mt, _, err := mime.ParseMediaType(r.Header.Get(echo.HeaderContentType))
		return err == nil && mt == echo.MIMEApplicationJSON
	}
	return false
}

// requestLogger logs requests; successful ones at debug level because the
// dashboard polls every few seconds.
func (s *Server) requestLogger() echo.MiddlewareFunc {
	return middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		LogMethod:   true,
		LogStatus:   true,
		LogLatency:  true,
		LogError:    true,
		HandleError: true, // so the logged status is the one the error handler sends
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			level := slog.LevelDebug
			switch {
			case v.Status >= 400: // 5xx details are logged by handleError
				level = slog.LevelInfo
			}
			attrs := []slog.Attr{
				slog.String("method", v.Method),
				// The escaped path: the decoded one turns /%2F/%2Fx into ///x
				// and two different requests into one log line.
				slog.String("path", c.Request().URL.EscapedPath()),
				slog.Int("status", v.Status),
				slog.Duration("latency", v.Latency),
			}
			if v.Error != nil {
				attrs = append(attrs, slog.String("error", v.Error.Error()))
			}
			s.log.LogAttrs(c.Request().Context(), level, "http request", attrs...)
			return nil
		},
	})
}

// errorBody is the JSON shape of every error response.
type errorBody struct {
	Error string `json:"error"`
}

// handleError turns handler errors into {"error":"..."} responses, or an
// HTML error page for a browser's page request (see wantsErrorPage). Messages
// of 5xx errors are replaced by a generic one (details go to the log only).
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	code := http.StatusInternalServerError
	msg := "internal error"
	var he *echo.HTTPError
	if errors.As(err, &he) {
		code = he.Code
		if code < 500 {
			if m, ok := he.Message.(string); ok && m != http.StatusText(code) {
				msg = m
			} else {
				msg = strings.ToLower(http.StatusText(code))
			}
		}
	}
	if code >= 500 {
		s.log.Error("request failed", "method", c.Request().Method, "path", c.Request().URL.EscapedPath(), "error", err)
	}
	noStore(c)
	switch {
	case c.Request().Method == http.MethodHead:
		err = c.NoContent(code)
	case wantsErrorPage(c):
		err = render(c, code, page(s.errorPageView(c, code), errorPanel(code, msg)))
	default:
		err = c.JSON(code, errorBody{Error: msg})
	}
	if err != nil {
		s.log.Warn("writing error response", "error", err)
	}
}

// wantsErrorPage tells a page load, whose error a person reads in the
// browser, from requests whose client reads {"error"}: /api, the htmx
// controls and refreshes (app.js shows the message next to the control),
// probes, metrics and static files.
func wantsErrorPage(c echo.Context) bool {
	if isHX(c) {
		return false
	}
	p := c.Request().URL.Path
	for _, prefix := range []string{"/api/", "/ui/", "/static/"} {
		if strings.HasPrefix(p, prefix) {
			return false
		}
	}
	return p != "/api" && p != "/healthz" && p != "/readyz" && p != "/metrics"
}

// errorPageView is the layout of an error page. Only a signed-in user sees
// the version and the broker's state: the error may be that they are not.
func (s *Server) errorPageView(c echo.Context, code int) pageView {
	title := strconv.Itoa(code) + " " + strings.ToLower(http.StatusText(code))
	if principalOf(c.Request().Context()).User != "" {
		return s.pageView(c, title)
	}
	token, _ := c.Get(csrfContextKey).(string)
	return pageView{Title: title, CSRF: token, Build: s.buildID, Asset: s.assetURL,
		Broker: brokerView{State: pollPending, Text: "management API: sign in to see"}}
}

// jsonError is a 4xx with a message for the client.
func jsonError(code int, format string, args ...any) error {
	return echo.NewHTTPError(code, fmt.Sprintf(format, args...))
}

// noStore marks a response with live data as not cacheable.
func noStore(c echo.Context) {
	c.Response().Header().Set(echo.HeaderCacheControl, "no-store")
}

// isHX tells a fragment request (htmx) from a full page load.
func isHX(c echo.Context) bool {
	h := c.Request().Header
	return h.Get("HX-Request") == "true" && h.Get("HX-History-Restore-Request") != "true"
}

// render writes a templ component as HTML. It renders into a buffer first so
// a rendering error becomes a clean 500 instead of half a page.
func render(c echo.Context, code int, comp templ.Component) error {
	var buf bytes.Buffer
	if err := comp.Render(c.Request().Context(), &buf); err != nil {
		return fmt.Errorf("rendering %s: %w", c.Path(), err)
	}
	h := c.Response().Header()
	h.Add(echo.HeaderVary, "HX-Request")
	noStore(c)
	return c.HTMLBlob(code, buf.Bytes())
}

// pathParam returns a path parameter unescaped. echo matches on the raw
// (escaped) path when the URL has escapes that change its meaning (%2F), and
// then hands out escaped values; otherwise the values are already decoded.
func pathParam(c echo.Context, name string) (string, error) {
	v := c.Param(name)
	if c.Request().URL.RawPath == "" {
		return v, nil
	}
	u, err := url.PathUnescape(v)
	if err != nil {
		return "", jsonError(http.StatusBadRequest, "bad escape in %s", name)
	}
	return u, nil
}

// queueParams reads the {vhost} and {name} of a queue route.
func queueParams(c echo.Context) (vhost, name string, err error) {
	if vhost, err = pathParam(c, "vhost"); err != nil {
		return "", "", err
	}
	name, err = pathParam(c, "name")
	return vhost, name, err
}

// URLs of pages and controls. Every name segment is path-escaped on its own:
// queue names may contain '/', '?', '#', spaces, markup, any UTF-8.
func queueHref(vhost, name string) string {
	return "/queues/" + url.PathEscape(vhost) + "/" + url.PathEscape(name)
}

func consumerHref(name string) string {
	return "/consumers/" + url.PathEscape(name)
}

func consumerControlURL(name, action string) string {
	return "/ui/consumers/" + url.PathEscape(name) + "/" + action
}

// staticFile serves the embedded front-end files. A request carrying the
// current content hash (?v=) may be cached for a year: the URL changes with
// the content.
func (s *Server) staticFile(c echo.Context) error {
	name := c.Param("*")
	if !fs.ValidPath(name) || name == "." {
		return echo.ErrNotFound
	}
	st, err := fs.Stat(s.assets, name)
	if err != nil || st.IsDir() {
		return echo.ErrNotFound
	}
	h := c.Response().Header()
	if c.QueryParam("v") == s.assetVersion {
		h.Set(echo.HeaderCacheControl, "public, max-age=31536000, immutable")
	} else {
		h.Set(echo.HeaderCacheControl, "no-cache")
	}
	http.ServeFileFS(c.Response(), c.Request(), s.assets, name)
	return nil
}

// assetURL is the cache-busted URL of a static file.
func (s *Server) assetURL(name string) string {
	return "/static/" + name + "?v=" + s.assetVersion
}

// promErrorLog sends promhttp's errors to slog.
type promErrorLog struct{ log *slog.Logger }

func (p promErrorLog) Println(v ...any) {
	p.log.Warn("serving metrics", "error", fmt.Sprint(v...))
}

// clock formats a server-side time for the dashboard.
func clock(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("15:04:05") + " UTC"
}
