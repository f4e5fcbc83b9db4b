package alerts

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// FormatGeneric is the warren webhook body described in DESIGN.md.
const FormatGeneric = "generic"

// DefaultWebhookTimeout bounds one delivery attempt when WebhookConfig.Timeout is zero.
const DefaultWebhookTimeout = 10 * time.Second

// Header names of the generic webhook.
const (
	HeaderSignature = "X-Warren-Signature"
	HeaderDelivery  = "X-Warren-Delivery"
)

// userAgent identifies warren to receivers.
const userAgent = "warren"

// Notifier delivers one notification to one receiver. retry reports whether
// a failed attempt may succeed later (5xx, timeout, connection error) or
// must be given up (4xx, a body the receiver refuses).
type Notifier interface {
	Notify(ctx context.Context, n Notification) (retry bool, err error)
}

// NewNotifier returns the notifier for cfg's format. client may be nil; the
// notifier never follows redirects, so a signed body is only ever sent to the
// configured URL.
func NewNotifier(cfg WebhookConfig, client *http.Client) (Notifier, error) {
	if errs := webhookFieldErrors(cfg); len(errs) > 0 {
		for i, err := range errs {
			errs[i] = fmt.Errorf("webhook %q: %w", cfg.Name, err)
		}
		return nil, errors.Join(errs...)
	}
	var enc encoder
	switch cfg.Format {
	case FormatGeneric, "":
		enc = encodeGeneric
	case FormatAlertmanager:
		enc = encodeAlertmanager(cfg)
	case FormatSlack:
		enc = encodeSlack
	case FormatTemplate:
		tmpl, err := ParseTemplate(cfg.Name, cfg.Template)
		if err != nil {
			return nil, fmt.Errorf("webhook %q: template: %w", cfg.Name, err)
		}
		enc = encodeTemplate(cfg, tmpl)
	default:
		return nil, fmt.Errorf("webhook %q: format %q is not supported", cfg.Name, cfg.Format)
	}
	return newGenericNotifier(cfg, client, enc), nil
}

// Signature returns the X-Warren-Signature value of body: "sha256=" and the
// hex HMAC-SHA256 of the raw body keyed with secret.
func Signature(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// GenericPayload is the body of a generic webhook.
type GenericPayload struct {
	Version string `json:"version"`
	Status  string `json:"status"`
	Alert   Alert  `json:"alert"`
}

// genericNotifier posts the bodies its encoder makes (every format shares
// the transport, signing, timeout and retry classification).
type genericNotifier struct {
	cfg    WebhookConfig
	encode encoder
	client *http.Client
	// target is the URL as it may appear in errors and logs.
	target string
}

func newGenericNotifier(cfg WebhookConfig, client *http.Client, enc encoder) *genericNotifier {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultWebhookTimeout
	}
	var c http.Client
	if client != nil {
		c = *client
	}
	// A redirect would re-send a signed body somewhere the operator did not
	// configure; the 3xx is reported instead.
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &genericNotifier{cfg: cfg, encode: enc, client: &c, target: RedactURL(cfg.URL)}
}

// Notify posts n once, bounded by the webhook's timeout.
func (g *genericNotifier) Notify(ctx context.Context, n Notification) (bool, error) {
	body, contentType, err := g.encode(n)
	if err != nil {
		return false, fmt.Errorf("encoding notification %s for webhook %q: %w", n.DeliveryID, g.cfg.Name, err)
	}
	attemptCtx, cancel := context.WithTimeoutCause(ctx, g.cfg.Timeout,
		fmt.Errorf("no response within %s", g.cfg.Timeout))
	defer cancel()

	req, err := http.NewRequestWithContext(attemptCtx, http.MethodPost, g.cfg.URL, bytes.NewReader(body))
	if err != nil {
		// The URL was validated, so this is unexpected; url errors would echo it.
		return false, g.errorf(n, "building request: %s", g.scrub(err.Error()))
	}
	for k, v := range g.cfg.Headers {
		req.Header.Set(k, v)
	}
	// Set after the custom headers: the delivery id and signature are
	// warren's promise to the receiver and cannot be configured away.
	req.Header.Set("Content-Type", contentType)
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", userAgent)
	}
	req.Header.Set(HeaderDelivery, n.DeliveryID)
	if g.cfg.Secret != "" {
		req.Header.Set(HeaderSignature, Signature(g.cfg.Secret, body))
	}

	resp, err := g.client.Do(req)
	if err != nil {
		return true, g.transportError(ctx, attemptCtx, n, err)
	}
	defer func() {
		// Drain a little so the connection can be reused, but never read an
		// endless body.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
	}()

	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return false, nil
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	err = g.errorf(n, "receiver answered %s%s", resp.Status, bodySnippet(g.scrub(string(snippet))))
	switch {
	case resp.StatusCode >= 500,
		resp.StatusCode == http.StatusRequestTimeout,
		resp.StatusCode == http.StatusTooManyRequests:
		// The receiver is overloaded or broken for now; the same body may be
		// accepted later.
		return true, err
	default:
		// 3xx and other 4xx: the receiver refuses this request and will keep
		// refusing it.
		return false, err
	}
}

// transportError describes a failed round trip without the URL's secrets:
// *url.Error prints the URL it was given (net/http masks only the password),
// so its text is left out and its URL replaced by the redacted one.
func (g *genericNotifier) transportError(parent, attemptCtx context.Context, n Notification, err error) error {
	cause := err
	var uerr *url.Error
	if errors.As(err, &uerr) {
		// The message says the cause alone (the prefix names the target);
		// the chain keeps the *url.Error, with its URL redacted, for
		// callers that look for a timeout.
		cause = uerr.Err
		err = &url.Error{Op: uerr.Op, URL: g.target, Err: uerr.Err}
	}
	if parent.Err() == nil && attemptCtx.Err() != nil {
		// Our own per-attempt deadline, not shutdown: say so plainly.
		cause = context.Cause(attemptCtx)
		err = cause
	}
	return &notifyError{msg: g.prefix(n) + g.scrub(cause.Error()), err: err}
}

func (g *genericNotifier) errorf(n Notification, format string, args ...any) error {
	return &notifyError{msg: g.prefix(n) + fmt.Sprintf(format, args...)}
}

// prefix says which webhook and delivery an error is about; it is built only
// from values that hold no secret.
func (g *genericNotifier) prefix(n Notification) string {
	return fmt.Sprintf("webhook %q at %s: delivery %s: ", g.cfg.Name, g.target, n.DeliveryID)
}

// scrub removes what a lower layer or the receiver might echo back: the raw
// URL, its userinfo, path, query and fragment. Text holding the signing key
// is withheld whole, since replacing a short key would mangle the text.
func (g *genericNotifier) scrub(s string) string {
	if g.cfg.Secret != "" && strings.Contains(s, g.cfg.Secret) {
		return "(withheld: it contains the webhook secret)"
	}
	var secrets []string
	if u, err := url.Parse(g.cfg.URL); err == nil {
		// The whole URL becomes the redacted one, so the text still says
		// which host it was about.
		s = strings.ReplaceAll(s, g.cfg.URL, g.target)
		s = strings.ReplaceAll(s, u.String(), g.target)
		secrets = append(secrets, u.Path, u.EscapedPath(), u.RawQuery, u.Fragment)
		if p, ok := u.User.Password(); ok {
			secrets = append(secrets, p)
		}
		if name := u.User.Username(); len(name) >= 4 {
			secrets = append(secrets, name)
		}
	}
	// Configured header values are often credentials (Authorization).
	for _, v := range g.cfg.Headers {
		if len(v) >= 4 {
			secrets = append(secrets, v)
		}
	}
	// Longest first, so a path goes before any shorter secret inside it.
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	for _, sec := range secrets {
		if sec != "" && sec != "/" {
			s = strings.ReplaceAll(s, sec, redactedPart)
		}
	}
	return s
}

func bodySnippet(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	return ": " + strings.ToValidUTF8(s, "?")
}

// notifyError carries a message already free of secrets; Unwrap exposes the
// cause (a *url.Error in it holds the redacted URL, never the configured one).
type notifyError struct {
	msg string
	err error
}

func (e *notifyError) Error() string { return e.msg }
func (e *notifyError) Unwrap() error { return e.err }

// RedactURL returns raw as it may be logged or shown: scheme://host:port
// and "***" in place of any userinfo, path, query and fragment. Each of those
// can be the credential (a Slack, Teams or Discord webhook's path is its
// key). Unparseable input gives "<invalid url>".
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "<invalid url>"
	}
	var b strings.Builder
	b.WriteString(u.Scheme + "://")
	if u.User != nil {
		b.WriteString(redactedPart + "@")
	}
	b.WriteString(u.Host)
	switch {
	case u.Path != "" && u.Path != "/":
		b.WriteString("/" + redactedPart)
	case u.Path == "/":
		b.WriteString("/")
	}
	if u.RawQuery != "" || u.ForceQuery {
		b.WriteString("?" + redactedPart)
	}
	if u.Fragment != "" {
		b.WriteString("#" + redactedPart)
	}
	return b.String()
}

// redactedPart stands in for a hidden part of a URL or error text.
const redactedPart = "***"
