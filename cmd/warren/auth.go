package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"warren/web"
)

// authConfig is the auth section: basic-auth users with bcrypt-hashed
// passwords, and/or a trusted reverse proxy that names the user in a header.
// Configuring either is what lets warren listen on a non-loopback address.
type authConfig struct {
	Users []authUser       `yaml:"users"`
	Proxy *proxyAuthConfig `yaml:"proxy"`
}

type authUser struct {
	Name         string `yaml:"name"`
	PasswordHash string `yaml:"password_hash"`
	Role         string `yaml:"role"`
}

type proxyAuthConfig struct {
	UserHeader     string   `yaml:"user_header"`
	RoleHeader     string   `yaml:"role_header"`
	DefaultRole    string   `yaml:"default_role"`
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// configured reports whether any authentication is set up.
func (a authConfig) configured() bool { return len(a.Users) > 0 || a.Proxy != nil }

// authDefaults fills the proxy header names left out.
func authDefaults(a *authConfig) {
	if p := a.Proxy; p != nil {
		if p.UserHeader == "" {
			p.UserHeader = "X-Forwarded-User"
		}
		if p.RoleHeader == "" {
			p.RoleHeader = "X-Warren-Role"
		}
		if p.DefaultRole == "" {
			p.DefaultRole = string(web.RoleViewer)
		}
	}
}

// validate checks the auth section; errors name the key. A hash is never
// repeated in a message.
func (a authConfig) validate() error {
	seen := map[string]bool{}
	for i, u := range a.Users {
		key := fmt.Sprintf("auth.users[%d]", i)
		switch {
		case u.Name == "":
			return validationError(key+".name", "is required")
		case strings.ContainsAny(u.Name, ":") || strings.TrimSpace(u.Name) != u.Name || len(u.Name) > 64:
			// Basic auth splits "user:password" at the first colon.
			return validationError(key+".name", "%q must be at most 64 characters, without ':' or surrounding spaces", u.Name)
		case seen[u.Name]:
			return validationError(key+".name", "%q is used twice", u.Name)
		}
		seen[u.Name] = true
		if u.PasswordHash == "" {
			return validationError(key+".password_hash", "is required (make one with: warren hash-password)")
		}
		if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
			return validationError(key+".password_hash", "not a bcrypt hash (make one with: warren hash-password)")
		}
		if _, err := web.ParseRole(u.Role); err != nil {
			return validationError(key+".role", "%v", err)
		}
	}
	if p := a.Proxy; p != nil {
		if !validHeaderName(p.UserHeader) {
			return validationError("auth.proxy.user_header", "not a header name: %q", p.UserHeader)
		}
		if !validHeaderName(p.RoleHeader) {
			return validationError("auth.proxy.role_header", "not a header name: %q", p.RoleHeader)
		}
		if _, err := web.ParseRole(p.DefaultRole); err != nil {
			return validationError("auth.proxy.default_role", "%v", err)
		}
		if len(p.TrustedProxies) == 0 {
			return validationError("auth.proxy.trusted_proxies", "is required: the addresses of the proxies allowed to name the user (e.g. 127.0.0.1/32)")
		}
		for i, s := range p.TrustedProxies {
			if _, err := parsePrefix(s); err != nil {
				return validationError(fmt.Sprintf("auth.proxy.trusted_proxies[%d]", i), "want an IP address or CIDR such as 10.0.0.0/8, got %q", s)
			}
		}
	}
	return nil
}

func validHeaderName(h string) bool {
	if h == "" {
		return false
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// parsePrefix accepts a CIDR or a single address (a /32 or /128).
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// webAuth converts the validated section for the web server; nil when no
// authentication is configured.
func (a authConfig) webAuth() *web.AuthConfig {
	if !a.configured() {
		return nil
	}
	out := &web.AuthConfig{}
	for _, u := range a.Users {
		role, _ := web.ParseRole(u.Role) // validated
		out.Users = append(out.Users, web.User{Name: u.Name, PasswordHash: u.PasswordHash, Role: role})
	}
	if p := a.Proxy; p != nil {
		role, _ := web.ParseRole(p.DefaultRole)
		px := &web.ProxyAuth{UserHeader: http.CanonicalHeaderKey(p.UserHeader), RoleHeader: http.CanonicalHeaderKey(p.RoleHeader), DefaultRole: role}
		for _, s := range p.TrustedProxies {
			pfx, _ := parsePrefix(s) // validated
			px.TrustedProxies = append(px.TrustedProxies, pfx)
		}
		out.Proxy = px
	}
	return out
}

// runHashPassword is `warren hash-password`: it reads one password from
// stdin (up to the end of the first line) and prints its bcrypt hash, for
// auth.users[].password_hash.
func runHashPassword(_ context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("hash-password", "hash-password [--cost N] < password", stderr)
	cost := fs.Int("cost", bcrypt.DefaultCost, fmt.Sprintf("bcrypt cost (%d..%d); each step doubles the time a check takes", bcrypt.MinCost, bcrypt.MaxCost))
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *cost < bcrypt.MinCost || *cost > bcrypt.MaxCost {
		fmt.Fprintf(stderr, "--cost must be between %d and %d, got %d\n", bcrypt.MinCost, bcrypt.MaxCost, *cost)
		return errUsage
	}
	if f, ok := stdin.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprintln(stderr, "password (the terminal shows it; pipe it in to keep it off the screen), then Enter:")
		}
	}
	line, err := bufio.NewReader(io.LimitReader(stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("reading the password from stdin: %w", err)
	}
	password := strings.TrimRight(line, "\r\n")
	if password == "" {
		return errors.New("no password on stdin: pipe it in, e.g. printf '%s' \"$PASSWORD\" | warren hash-password")
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), *cost)
	if errors.Is(err, bcrypt.ErrPasswordTooLong) {
		return errors.New("the password is longer than 72 bytes, which bcrypt cannot use")
	}
	if err != nil {
		return fmt.Errorf("hashing the password: %w", err)
	}
	fmt.Fprintln(stdout, string(hash))
	return nil
}
