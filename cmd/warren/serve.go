package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"
	"golang.org/x/sync/errgroup"

	"warren/alerts"
	"warren/consumers"
	"warren/monitor"
	"warren/store"
	"warren/web"
)

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", "serve [--config FILE]", stderr)
	path := fs.String("config", getenv("WARREN_CONFIG"), "YAML config file (env WARREN_CONFIG); without one, defaults apply and every queue of the local broker is monitored")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path, getenv)
	if err != nil {
		return err
	}
	logger := newLogger(cfg.Log, stderr)
	return serve(ctx, cfg, logger)
}

func newLogger(c logConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level)) // validated in config
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serve wires every component and runs them in one errgroup. Shutdown order:
// the signal cancels ctx; the web server stops accepting, consumers stop
// intake and drain in-flight messages, the last samples are flushed; only
// when every loop has returned is the store closed.
func serve(ctx context.Context, cfg config, logger *slog.Logger) error {
	// Bind first: a port in use must fail start-up before anything is
	// created on disk.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	defer ln.Close()
	st, err := store.Open(ctx, cfg.Store.Path, logger, store.WithRetention(store.Retention{
		Raw:    cfg.Store.RawRetention.D(),
		Minute: cfg.Store.MinuteRetention.D(),
		Hour:   cfg.Store.HourRetention.D(),
	}))
	if err != nil {
		return fmt.Errorf("opening store %s: %w", cfg.Store.Path, err)
	}
	defer st.Close()

	hooks := make([]alerts.WebhookConfig, len(cfg.Alerts.Webhooks))
	for i, w := range cfg.Alerts.Webhooks {
		hooks[i] = w.hook()
	}
	dispatcher, err := alerts.NewDispatcher(st, hooks, logger)
	if err != nil {
		return err
	}
	limits := thresholds(cfg.Health)
	evaluator := alerts.NewEvaluator(st, hooks, logger, alerts.WithWaker(dispatcher), alerts.WithThresholds(limits),
		alerts.WithRules(cfg.Alerts.Rules.ruleSet()), alerts.WithRepeatInterval(cfg.Alerts.RepeatInterval.D()))
	if err := evaluator.Load(ctx); err != nil {
		return fmt.Errorf("loading alert state: %w", err)
	}

	poller, err := monitor.NewPoller(monitor.PollerConfig{
		URL:        cfg.Management.URL,
		Username:   cfg.Management.Username,
		Password:   cfg.Management.Password,
		Interval:   cfg.Management.PollInterval.D(),
		Timeout:    cfg.Management.Timeout.D(),
		Thresholds: limits,
		// The consumers' dead-letter queues are dead-letter queues whatever
		// their names.
		DeadLetterQueues: deadLetterQueues(cfg),
		Probe: monitor.ProbeConfig{
			AMQPURL:   cfg.AMQPURL,
			MaxQueues: cfg.Management.ProbeQueues,
			Pinned:    probedQueues(cfg),
			Timeout:   min(cfg.Management.Timeout.D(), cfg.Management.PollInterval.D()/2),
		},
	}, st, []monitor.Observer{evaluator}, logger)
	if err != nil {
		return err
	}
	// Monitor and store metrics, gathered by the web server after its own
	// registry (no process-global registry).
	domainMetrics := prometheus.NewRegistry()
	domainMetrics.MustRegister(monitor.NewCollector(poller), st.Collector())
	domainMetrics.MustRegister(alerts.NewCollector(evaluator, dispatcher))

	mgr, err := consumers.NewManager(cfg.AMQPURL, consumerConfigs(cfg), st, logger, consumers.Options{
		SampleInterval: cfg.Performance.SampleInterval.D(),
		// Consumers share pooled connections per vhost; retries and dead
		// letters are published on a separate connection.
		MaxConnections:           cfg.Connection.MaxConnections,
		MaxChannelsPerConnection: cfg.Connection.MaxChannelsPerConnection,
		TrackMemory:              cfg.Performance.TrackMemoryUsage,
	})
	if err != nil {
		return err
	}
	domainMetrics.MustRegister(mgr.Collector())
	// Consumer alert rules read the manager's statuses on each poll.
	evaluator.SetConsumerSource(mgr)

	srv := web.New(web.Deps{
		Queues:    poller,
		Consumers: mgr,
		Alerts:    st,
		// Acks, silences and the delivery log live in the store; test
		// notifications go through the dispatcher's notifiers.
		AlertActions:  st,
		WebhookTester: dispatcher,
		Webhooks:      webhookNames(hooks),
		// Charts and slow messages read the store; the per-type breakdown
		// the manager.
		History:          st,
		Types:            mgr,
		Thresholds:       &limits,
		DepthAlertLevels: evaluator.DepthLevels,
		DeadLetterQueues: consumerDeadLetterQueues(cfg),
		Checks: []web.Check{
			{Name: "store", Check: st.Ping},
			{Name: "broker", Check: brokerCheck(cfg.AMQPURL)},
			{Name: "management_api", Check: poller.Ready},
			{Name: "consumers", Check: mgr.Ready},
		},
		// Who may sign in; operator actions go to the store's audit log;
		// the settings page gets the configuration already masked.
		Auth:         cfg.Auth.webAuth(),
		Audit:        st,
		Settings:     settingsOf(cfg),
		AllowedHosts: cfg.AllowedHosts,
		Metrics:      domainMetrics,
		Logger:       logger,
		Version:      version,
	})

	logger.Info("warren starting", "version", version, "listen", "http://"+cfg.Listen,
		"amqp_url", redactURL(cfg.AMQPURL), "management_url", redactURL(cfg.Management.URL),
		"store", cfg.Store.Path, "consumers", len(cfg.Consumers), "webhooks", len(hooks),
		"auth_users", len(cfg.Auth.Users), "auth_proxy", cfg.Auth.Proxy != nil)
	if validateListen(cfg.Listen) != nil && len(cfg.AllowedHosts) == 0 {
		// Only reachable with auth (config validation); the host check still
		// answers 421 to any Host that is not loopback or allowed.
		logger.Warn("listening beyond loopback without allowed_hosts: requests for any host name but localhost and loopback addresses get 421; list the names warren is reached by in allowed_hosts")
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(gctx, ln) })
	g.Go(func() error { return mgr.Run(gctx) })
	g.Go(func() error { return poller.Run(gctx) })
	g.Go(func() error { return dispatcher.Run(gctx) })
	g.Go(func() error { return st.RunMaintenance(gctx, time.Minute) })
	err = g.Wait()
	logger.Info("warren stopped")
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// webhookNames are the configured webhook targets, for the alerts page.
func webhookNames(hooks []alerts.WebhookConfig) []string {
	names := make([]string, len(hooks))
	for i, h := range hooks {
		names[i] = h.Name
	}
	return names
}

// deadLetterQueues lists the dead-letter queue of every configured consumer.
func deadLetterQueues(cfg config) []monitor.QueueRef {
	var out []monitor.QueueRef
	for _, c := range cfg.Consumers {
		if c.DeadLetterQueue != "" {
			out = append(out, monitor.QueueRef{Vhost: c.Vhost, Name: c.DeadLetterQueue})
		}
	}
	return out
}

// probedQueues are the queues whose depth is read fresh at every poll:
// the managed consumers' queues and those with their own thresholds (any vhost).
func probedQueues(cfg config) []monitor.QueueRef {
	var out []monitor.QueueRef
	for _, c := range cfg.Consumers {
		out = append(out, monitor.QueueRef{Vhost: c.Vhost, Name: c.Queue})
	}
	for name := range cfg.Health.Queues {
		out = append(out, monitor.QueueRef{Name: name})
	}
	return out
}

// consumerDeadLetterQueues maps each consumer's name to its dead-letter
// queue, for the queue and consumer pages.
func consumerDeadLetterQueues(cfg config) map[string]string {
	out := make(map[string]string, len(cfg.Consumers))
	for _, c := range cfg.Consumers {
		out[c.Name] = c.DeadLetterQueue
	}
	return out
}

func thresholds(h healthConfig) monitor.Thresholds {
	t := monitor.Thresholds{
		Default: monitor.Level{Warning: h.QueueWarningThreshold, Critical: h.QueueCriticalThreshold},
		Queues:  map[string]monitor.Level{},
	}
	for name, l := range h.Queues {
		t.Queues[name] = monitor.Level{Warning: l.Warning, Critical: l.Critical}
	}
	return t
}

func consumerConfigs(cfg config) []consumers.Config {
	out := make([]consumers.Config, len(cfg.Consumers))
	for i, c := range cfg.Consumers {
		var throttle *consumers.ThrottleConfig
		if t := c.Throttle; t != nil {
			throttle = &consumers.ThrottleConfig{MaxConcurrent: t.MaxConcurrent, DelayBetweenCalls: t.DelayBetweenCalls.D()}
		}
		var breaker *consumers.BreakerConfig
		if b := c.CircuitBreaker; b != nil {
			breaker = &consumers.BreakerConfig{FailureThreshold: b.FailureThreshold, CoolDown: b.CoolDown.D(), HalfOpenMax: b.HalfOpenMax}
		}
		out[i] = consumers.Config{
			Name:                    c.Name,
			Queue:                   c.Queue,
			Vhost:                   c.Vhost,
			Declare:                 c.Declare,
			MaxConcurrentMessages:   c.MaxConcurrentMessages,
			PrefetchCount:           c.PrefetchCount,
			MaxConcurrency:          c.MaxConcurrency,
			MaxPrefetch:             c.MaxPrefetch,
			SlowProcessingThreshold: c.SlowProcessingThreshold.D(),
			HandlerTimeout:          c.HandlerTimeout.D(),
			CircuitBreaker:          breaker,
			Throttle:                throttle,
			BatchSize:               c.BatchSize,
			BatchTimeout:            c.BatchTimeout.D(),
			Retry: &consumers.RetryConfig{
				MaxAttempts:     *c.MaxRetryAttempts,
				InitialDelay:    c.InitialRetryDelay.D(),
				Multiplier:      c.RetryMultiplier,
				DeadLetterQueue: c.DeadLetterQueue,
			},
			Handler: consumers.HandlerConfig{
				Type:         c.Handler.Type,
				Duration:     c.Handler.Duration.D(),
				FailureRatio: c.Handler.FailureRatio,
				URL:          c.Handler.URL,
				Timeout:      c.Handler.Timeout.D(),
			},
		}
	}
	return out
}

// brokerCheck dials the broker for /readyz; it answers whether AMQP itself is
// reachable, independent of the consumers' own connections.
func brokerCheck(amqpURL string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		timeout := 3 * time.Second
		if d, ok := ctx.Deadline(); ok {
			timeout = time.Until(d)
		}
		conn, err := amqp.DialConfig(amqpURL, amqp.Config{Dial: amqp.DefaultDial(timeout), Properties: amqp.Table{"connection_name": "warren readiness check"}})
		if err != nil {
			return fmt.Errorf("broker %s unreachable: %s", redactURL(amqpURL), redactError(err, amqpURL))
		}
		return conn.Close()
	}
}
