package web

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/labstack/echo/v4"
)

// hostPolicy decides which Host headers the server answers. It is the
// defence against DNS rebinding: a hostile page whose name is re-pointed at
// 127.0.0.1 becomes same-origin with the dashboard, so neither CORS nor the
// CSRF check stops it; but its requests still carry the hostile name in Host.
// Loopback IP literals and "localhost" are always accepted, plus the names
// the operator allowed (for a server reached through a real name or a LAN IP).
type hostPolicy struct {
	allowed map[string]bool // normalized hostnames, no port
}

func newHostPolicy(allowed []string) hostPolicy {
	p := hostPolicy{allowed: map[string]bool{}}
	for _, h := range allowed {
		if n := normalizeHost(h); n != "" {
			p.allowed[n] = true
		}
	}
	return p
}

// normalizeHost strips the port and IPv6 brackets, lowercases, and drops one
// trailing dot ("localhost." names the same host).
func normalizeHost(h string) string {
	h = strings.TrimSpace(h)
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	h = strings.TrimPrefix(strings.TrimSuffix(h, "]"), "[")
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	return h
}

// allows reports whether a request's Host header names this server.
func (p hostPolicy) allows(hostHeader string) bool {
	h := normalizeHost(hostHeader)
	if h == "" {
		return false
	}
	if h == "localhost" || p.allowed[h] {
		return true
	}
	// Only a literal address, never a name that happens to resolve to
	// loopback: resolving is exactly what a rebinding attacker controls.
	if ip, err := netip.ParseAddr(h); err == nil && ip.Zone() == "" {
		return ip.Unmap().IsLoopback()
	}
	return false
}

// checkHost refuses requests for any other host with 421 Misdirected Request
// before they reach a handler (pages, API, static files, metrics). The
// liveness and readiness probes are exempt: orchestrators send the pod's IP
// as Host, and the probes hold no data a rebinding page could read or change.
func (s *Server) checkHost(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if p := c.Request().URL.Path; p == "/healthz" || p == "/readyz" {
			return next(c)
		}
		if !s.hosts.allows(c.Request().Host) {
			return jsonError(http.StatusMisdirectedRequest,
				"host not allowed: this server answers only to loopback addresses, localhost and its configured allowed hosts")
		}
		return next(c)
	}
}
