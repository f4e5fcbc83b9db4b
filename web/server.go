// Package web serves warren's dashboard (echo + templ + htmx), its JSON API,
// /metrics, /healthz and /readyz. It reads live state through the small
// interfaces below and sends commands to the consumers; cmd/warren wires the
// concrete monitor, consumer manager and alert store in.
package web

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"warren/alerts"
	"warren/consumers"
	"warren/monitor"
	"warren/static"
)

// QueueSource gives the latest poll of the management API.
type QueueSource interface {
	Latest() monitor.Snapshot
}

// ConsumerController reads and changes the managed consumers.
type ConsumerController interface {
	List() []consumers.Status
	Get(name string) (consumers.Status, error)                                              // wraps consumers.ErrNotFound
	Update(ctx context.Context, name string, ch consumers.Change) (consumers.Status, error) // wraps ErrNotFound / ErrInvalid
	Pause(ctx context.Context, name string) (consumers.Status, error)
	Resume(ctx context.Context, name string) (consumers.Status, error)
}

// AlertSource lists alerts: those firing now, and the recent history.
type AlertSource interface {
	// ActiveAlerts returns the alerts currently firing.
	ActiveAlerts(ctx context.Context) ([]alerts.Alert, error)
	// AlertHistory returns up to limit alerts, firing or resolved, the most
	// recently changed first.
	AlertHistory(ctx context.Context, limit int) ([]alerts.Alert, error)
}

// Check is one readiness check run by /readyz (store open, broker reachable,
// management API reachable). Check must respect ctx; it gets a short deadline.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
}

// Deps is everything the web layer needs. Queues, Consumers and Alerts may be
// nil (the dashboard then shows nothing for them); Metrics is optional.
type Deps struct {
	Queues    QueueSource
	Consumers ConsumerController
	Alerts    AlertSource
	// AlertActions (acks, silences, delivery log) and WebhookTester are
	// optional; their API answers 503 without them.
	AlertActions  AlertActions
	WebhookTester WebhookTester
	// Webhooks are the names of the configured webhook targets, offered a
	// "send test notification" button on the alerts page.
	Webhooks []string
	Checks   []Check
	// History (the store) feeds the charts and slow-message lists; Types
	// the per-message-type breakdown (the consumer manager). Both optional.
	History History
	Types   MessageTypeSource
	// Thresholds are the queue-depth thresholds in force (shown on the
	// queue page; nil: not shown). DeadLetterQueues maps a managed
	// consumer's name to its dead-letter queue.
	Thresholds       *monitor.Thresholds
	DeadLetterQueues map[string]string
	// DepthAlertLevels gives the queue_depth alert rule in force for a
	// queue, which overrides may set apart from Thresholds (nil: not shown).
	DepthAlertLevels func(vhost, queue string) alerts.Effective
	// Auth says who may sign in and with which role; nil means no
	// authentication (loopback clients only, each an operator "local").
	Auth *AuthConfig
	// Audit keeps the operator actions for /audit (optional; they are
	// logged either way). Settings is the effective configuration, secrets
	// already masked, for /settings.
	Audit    AuditLog
	Settings []Setting
	// Metrics, when set, is gathered after the server's own registry on
	// /metrics (e.g. a registry the lead fills with other collectors).
	Metrics prometheus.Gatherer
	Logger  *slog.Logger
	// Version is shown in the page header.
	Version string
	// AllowedHosts are host names (no port) the server answers to besides
	// loopback IP literals and localhost, e.g. the name or LAN address it is
	// reached by. Requests with any other Host header are refused, which
	// stops DNS-rebinding attacks. Empty means loopback names only.
	AllowedHosts []string
}

// Default timings; fields on Server so tests can shorten them.
const (
	defaultReadyTimeout    = 2 * time.Second
	defaultShutdownTimeout = 10 * time.Second
	refreshInterval        = "2s"
)

// Server is the HTTP server of warren.
type Server struct {
	queues    QueueSource
	consumers ConsumerController
	alerts    AlertSource
	// alertActions and webhookTester may be nil.
	alertActions  AlertActions
	webhookTester WebhookTester
	webhooks      []string
	checks        []Check
	auth          *authenticator
	audit         AuditLog // may be nil
	settings      []Setting
	log           *slog.Logger
	version       string
	hosts         hostPolicy

	// history, types and thresholds may be nil (see Deps).
	history     History
	types       MessageTypeSource
	thresholds  *monitor.Thresholds
	depthAlert  func(vhost, queue string) alerts.Effective
	deadLetters map[string]string

	assets       fs.FS
	assetVersion string // content hash of the static files, for cache busting
	// buildID names this build (version and assets) in the X-Warren-Build
	// header of every response; app.js reloads the page when it changes.
	buildID string

	registry        *prometheus.Registry
	gatherer        prometheus.Gatherer
	readyTimeout    time.Duration
	shutdownTimeout time.Duration

	echo *echo.Echo

	// queueIndex caches the queue list's orders for the latest poll.
	queueIndex queueIndex
}

// New builds the server and its routes. It does not listen; use Run or Handler.
func New(d Deps) *Server {
	logger := d.Logger
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{
		queues:          d.Queues,
		consumers:       d.Consumers,
		alerts:          d.Alerts,
		alertActions:    d.AlertActions,
		webhookTester:   d.WebhookTester,
		webhooks:        append([]string(nil), d.Webhooks...),
		checks:          append([]Check(nil), d.Checks...),
		auth:            newAuthenticator(d.Auth),
		audit:           d.Audit,
		settings:        append([]Setting(nil), d.Settings...),
		history:         d.History,
		types:           d.Types,
		thresholds:      d.Thresholds,
		depthAlert:      d.DepthAlertLevels,
		deadLetters:     d.DeadLetterQueues,
		log:             logger.With("component", "web"),
		version:         d.Version,
		hosts:           newHostPolicy(d.AllowedHosts),
		assets:          static.FS(),
		readyTimeout:    defaultReadyTimeout,
		shutdownTimeout: defaultShutdownTimeout,
	}
	if s.queues == nil {
		s.queues = noQueues{}
	}
	if s.consumers == nil {
		s.consumers = noConsumers{}
	}
	if s.alerts == nil {
		s.alerts = noAlerts{}
	}
	s.assetVersion = hashAssets(s.assets)
	s.buildID = buildID(s.version, s.assetVersion)

	// The server owns its registry: no process-global state, and two servers
	// in one test binary do not collide.
	s.registry = prometheus.NewRegistry()
	s.registry.MustRegister(
		newCollector(s.queues),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	s.gatherer = s.registry
	if d.Metrics != nil {
		s.gatherer = prometheus.Gatherers{s.registry, d.Metrics}
	}

	s.echo = s.routes()
	return s
}

// Handler returns the HTTP handler of every route (for httptest or embedding).
func (s *Server) Handler() http.Handler {
	return s.echo
}

// Run listens on listen (host:port) and serves until ctx ends, then shuts
// down gracefully: it stops accepting, lets in-flight requests finish for up
// to 10 s, and returns nil. It returns an error only if it cannot listen or
// serving fails.
func (s *Server) Run(ctx context.Context, listen string) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", listen, err)
	}
	return s.Serve(ctx, ln)
}

// Serve is Run on a listener the caller opened (e.g. 127.0.0.1:0 in tests).
// It closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.echo,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	s.log.Info("http server listening", "addr", ln.Addr().String())

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc:
		return fmt.Errorf("serving http on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}

	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		// In-flight requests did not finish in time; cut them off rather than
		// hold up the rest of the shutdown.
		s.log.Warn("http server shutdown timed out; closing connections", "error", err)
		_ = srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serving http on %s: %w", ln.Addr(), err)
	}
	s.log.Info("http server stopped")
	return nil
}

// hashAssets returns a short content hash of every embedded static file: it
// changes exactly when a file changes, which makes it a safe cache-busting
// version for immutable caching.
func hashAssets(fsys fs.FS) string {
	h := sha256.New()
	var names []string
	_ = fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, path)
		}
		return nil
	})
	sort.Strings(names)
	for _, name := range names {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			continue
		}
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// buildID is a short hash of the version and the asset hash: a new binary
// changes it even when only templates or handlers changed.
func buildID(version, assets string) string {
	h := sha256.Sum256([]byte(version + "\x00" + assets))
	return hex.EncodeToString(h[:])[:12]
}

// Stand-ins for dependencies the caller left nil.
type noQueues struct{}

func (noQueues) Latest() monitor.Snapshot { return monitor.Snapshot{} }

type noConsumers struct{}

func (noConsumers) List() []consumers.Status { return nil }
func (noConsumers) Get(name string) (consumers.Status, error) {
	return consumers.Status{}, fmt.Errorf("consumer %q: %w", name, consumers.ErrNotFound)
}
func (n noConsumers) Update(_ context.Context, name string, _ consumers.Change) (consumers.Status, error) {
	return n.Get(name)
}
func (n noConsumers) Pause(_ context.Context, name string) (consumers.Status, error) {
	return n.Get(name)
}
func (n noConsumers) Resume(_ context.Context, name string) (consumers.Status, error) {
	return n.Get(name)
}

type noAlerts struct{}

func (noAlerts) ActiveAlerts(context.Context) ([]alerts.Alert, error) { return nil, nil }
func (noAlerts) AlertHistory(context.Context, int) ([]alerts.Alert, error) {
	return nil, nil
}
