package web

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/labstack/echo/v4"
	"golang.org/x/crypto/bcrypt"
)

// Role says what a signed-in user may do.
type Role string

// Roles: a viewer reads everything and changes nothing; an operator may also
// use every control and state-changing API call.
const (
	RoleViewer   Role = "viewer"
	RoleOperator Role = "operator"
)

// ParseRole accepts "viewer" or "operator" (any case).
func ParseRole(s string) (Role, error) {
	switch r := Role(strings.ToLower(strings.TrimSpace(s))); r {
	case RoleViewer, RoleOperator:
		return r, nil
	}
	return "", fmt.Errorf("want viewer or operator, got %q", s)
}

// User is one basic-auth account. PasswordHash is a bcrypt hash (warren
// hash-password makes one); the password itself is never stored.
type User struct {
	Name         string
	PasswordHash string
	Role         Role
}

// ProxyAuth trusts the user (and role) a reverse proxy puts in request
// headers, but only on requests whose TCP peer is one of TrustedProxies:
// anyone else could send the same header.
type ProxyAuth struct {
	UserHeader string // e.g. X-Forwarded-User
	// RoleHeader, when set and present, names the role; otherwise the user
	// gets DefaultRole (viewer when empty).
	RoleHeader     string
	DefaultRole    Role
	TrustedProxies []netip.Prefix
}

// AuthConfig is who may use the server. Without users and proxy there is no
// authentication: only loopback clients are served, each as the operator
// "local" (cmd/warren refuses a non-loopback listen address then).
type AuthConfig struct {
	Users []User
	Proxy *ProxyAuth
}

func (a *AuthConfig) enabled() bool {
	return a != nil && (len(a.Users) > 0 || a.Proxy != nil)
}

// principal is who made a request.
type principal struct {
	User   string
	Role   Role
	Remote string // client address; "CLIENT via PROXY" behind a trusted proxy
}

func (p principal) operator() bool { return p.Role == RoleOperator }

type principalKey struct{}

// principalOf returns who made the request of ctx. A context without one
// (a component rendered outside a request) is nobody: no role, no controls.
func principalOf(ctx context.Context) principal {
	p, _ := ctx.Value(principalKey{}).(principal)
	return p
}

// canOperate tells templates whether to render controls: they are absent,
// not just disabled, for viewers.
func canOperate(ctx context.Context) bool { return principalOf(ctx).operator() }

// signedInUser is the name of whoever made the request ("local" without
// authentication), e.g. the "by" of an acknowledgement made in the UI.
func signedInUser(c echo.Context) string { return principalOf(c.Request().Context()).User }

// localUser is the name given to loopback clients when no authentication is
// configured.
const localUser = "local"

// Successful bcrypt checks are cached this long: the dashboard refreshes
// every few seconds and each compare costs tens of milliseconds of CPU.
const (
	loginCacheTTL  = time.Minute
	loginCacheSize = 1024
	// maxCompares bounds concurrent bcrypt compares so a flood of wrong
	// passwords cannot take every core.
	maxCompares = 2
)

// authenticator checks credentials. The login cache is keyed by an HMAC of
// the credentials under a key made at start, so memory never holds a fast
// hash of a password.
type authenticator struct {
	cfg     *AuthConfig
	users   map[string]User
	decoy   []byte // a real hash compared against for unknown users (same timing)
	key     []byte
	now     func() time.Time
	compare chan struct{}

	mu    sync.Mutex
	cache map[[sha256.Size]byte]cachedLogin
}

type cachedLogin struct {
	user    User
	expires time.Time
}

func newAuthenticator(cfg *AuthConfig) *authenticator {
	a := &authenticator{cfg: cfg, users: map[string]User{}, now: time.Now,
		compare: make(chan struct{}, maxCompares), cache: map[[sha256.Size]byte]cachedLogin{}}
	a.key = make([]byte, 32)
	_, _ = rand.Read(a.key) // never fails (crypto/rand panics rather)
	if cfg != nil {
		for _, u := range cfg.Users {
			a.users[u.Name] = u
			if a.decoy == nil {
				a.decoy = []byte(u.PasswordHash)
			}
		}
	}
	return a
}

// authError refuses a request: 401 without acceptable credentials, 403
// when the credentials can never be enough.
type authError struct {
	code int
	msg  string
}

func (e *authError) Error() string { return e.msg }

// identify returns who made r, or an authError.
func (a *authenticator) identify(r *http.Request) (principal, error) {
	peer := peerAddr(r)
	if !a.cfg.enabled() {
		if !peer.IsLoopback() {
			return principal{}, &authError{http.StatusForbidden, "no authentication is configured: only loopback clients are served"}
		}
		return principal{User: localUser, Role: RoleOperator, Remote: peer.String()}, nil
	}
	if px := a.cfg.Proxy; px != nil && trusted(px.TrustedProxies, peer) {
		if p, ok, err := a.fromProxy(r, px, peer); ok || err != nil {
			return p, err
		}
	}
	if len(a.users) == 0 {
		return principal{}, &authError{http.StatusForbidden, "sign in through the authenticating proxy"}
	}
	name, password, ok := r.BasicAuth()
	if !ok {
		return principal{}, &authError{http.StatusUnauthorized, "authentication required"}
	}
	u, err := a.checkPassword(r.Context(), name, password)
	if err != nil {
		return principal{}, err
	}
	return principal{User: u.Name, Role: u.Role, Remote: peer.String()}, nil
}

// fromProxy reads the proxy's headers; ok is false when the user header is
// absent (the request may still carry basic auth).
func (a *authenticator) fromProxy(r *http.Request, px *ProxyAuth, peer netip.Addr) (principal, bool, error) {
	name := strings.TrimSpace(r.Header.Get(px.UserHeader))
	if name == "" {
		return principal{}, false, nil
	}
	if len(name) > 256 || strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return principal{}, true, &authError{http.StatusUnauthorized, "the proxy's " + px.UserHeader + " header is not a usable user name"}
	}
	role := px.DefaultRole
	if role == "" {
		role = RoleViewer
	}
	if px.RoleHeader != "" {
		if v := r.Header.Get(px.RoleHeader); v != "" {
			var err error
			if role, err = ParseRole(v); err != nil {
				return principal{}, true, &authError{http.StatusForbidden, "the proxy's " + px.RoleHeader + " header: " + err.Error()}
			}
		}
	}
	remote := peer.String()
	if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
		// The right-most entry is the one our trusted proxy added.
		parts := strings.Split(xff[len(xff)-1], ",")
		if c := strings.TrimSpace(parts[len(parts)-1]); c != "" && len(c) <= 64 {
			remote = c + " via " + remote
		}
	}
	return principal{User: name, Role: role, Remote: remote}, true, nil
}

// checkPassword compares against the user's bcrypt hash, or answers from the
// cache of recent successes.
func (a *authenticator) checkPassword(ctx context.Context, name, password string) (User, error) {
	mac := hmac.New(sha256.New, a.key)
	mac.Write([]byte(name))
	mac.Write([]byte{0})
	mac.Write([]byte(password))
	var key [sha256.Size]byte
	copy(key[:], mac.Sum(nil))

	now := a.now()
	a.mu.Lock()
	hit, ok := a.cache[key]
	a.mu.Unlock()
	if ok && now.Before(hit.expires) && subtle.ConstantTimeCompare([]byte(hit.user.Name), []byte(name)) == 1 {
		return hit.user, nil
	}

	u, known := a.users[name]
	hash := a.decoy
	if known {
		hash = []byte(u.PasswordHash)
	}
	select {
	case a.compare <- struct{}{}:
	case <-ctx.Done():
		return User{}, &authError{http.StatusServiceUnavailable, "request cancelled while checking the password"}
	}
	err := bcrypt.CompareHashAndPassword(hash, []byte(password))
	<-a.compare
	if err != nil || !known {
		return User{}, &authError{http.StatusUnauthorized, "wrong user name or password"}
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.cache) >= loginCacheSize {
		for k, v := range a.cache {
			if !now.Before(v.expires) {
				delete(a.cache, k)
			}
		}
		if len(a.cache) >= loginCacheSize {
			clear(a.cache)
		}
	}
	a.cache[key] = cachedLogin{user: u, expires: now.Add(loginCacheTTL)}
	return u, nil
}

// peerAddr is the TCP peer of r (never a forwarded-for header).
func peerAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

func trusted(nets []netip.Prefix, a netip.Addr) bool {
	for _, n := range nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// publicPath is served without authentication: liveness and readiness for
// orchestrators, and the static files (no data in them).
func publicPath(p string) bool {
	return p == "/healthz" || p == "/readyz" || strings.HasPrefix(p, "/static/")
}

// safeMethod never changes state; a viewer may send it.
func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// authenticate finds who makes each request and enforces the roles: every
// request but the public ones needs a user, and only operators may send
// anything that changes state. It runs before the CSRF check and the
// handlers, so a refused request changes nothing.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if publicPath(r.URL.Path) {
			return next(c)
		}
		p, err := s.auth.identify(r)
		if err != nil {
			ae, _ := err.(*authError)
			if ae == nil {
				return err
			}
			if ae.code == http.StatusUnauthorized && len(s.auth.users) > 0 {
				c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Basic realm="warren", charset="UTF-8"`)
			}
			// A browser's first request comes without credentials; only
			// refused credentials are worth an info line.
			level := slog.LevelInfo
			if r.Header.Get(echo.HeaderAuthorization) == "" && ae.code == http.StatusUnauthorized {
				level = slog.LevelDebug
			}
			s.log.Log(r.Context(), level, "request refused", "reason", ae.msg, "remote_addr", peerAddr(r).String(), "path", r.URL.EscapedPath())
			return echo.NewHTTPError(ae.code, ae.msg)
		}
		c.SetRequest(r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
		if !safeMethod(r.Method) && !p.operator() {
			s.auditDenied(c, p)
			return echo.NewHTTPError(http.StatusForbidden,
				fmt.Sprintf("%s has role %s: only an operator can change anything", p.User, p.Role))
		}
		return next(c)
	}
}
