package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.yaml.in/yaml/v3"

	"warren/alerts"
	"warren/consumers"
	"warren/store"
)

// config is the YAML file, snake_case, every key optional. The layout is the
// public surface described in DESIGN.md; extend it, never rename a key.
type config struct {
	Listen       string            `yaml:"listen"`
	AllowedHosts []string          `yaml:"allowed_hosts"`
	AMQPURL      string            `yaml:"amqp_url"`
	Management   managementConfig  `yaml:"management"`
	Store        storeConfig       `yaml:"store"`
	Health       healthConfig      `yaml:"health"`
	Performance  performanceConfig `yaml:"performance"`
	Connection   connectionConfig  `yaml:"connection"`
	Consumers    []consumerConfig  `yaml:"consumers"`
	Alerts       alertsConfig      `yaml:"alerts"`
	Log          logConfig         `yaml:"log"`
	Auth         authConfig        `yaml:"auth"` // auth.go
}

type managementConfig struct {
	URL          string   `yaml:"url"`
	Username     string   `yaml:"username"`
	Password     string   `yaml:"password"`
	PollInterval duration `yaml:"poll_interval"`
	Timeout      duration `yaml:"timeout"`
	// ProbeQueues bounds the AMQP passive declares per poll that read fresh
	// ready counts (monitor/probe.go); 0 turns the probe off.
	ProbeQueues int `yaml:"probe_queues"`
}

type storeConfig struct {
	Path string `yaml:"path"`
	// Retention is the pre-rollup name of RawRetention, still accepted.
	Retention       duration `yaml:"retention"`
	RawRetention    duration `yaml:"raw_retention"`
	MinuteRetention duration `yaml:"minute_retention"`
	HourRetention   duration `yaml:"hour_retention"`
}

// storeDefaults resolves the store.retention alias and fills in the
// retention defaults (6h raw, 7d of minutes, 90d of hours). It runs after
// decoding, because "not set" must be told from "set to the default" to
// catch an alias that contradicts raw_retention.
func storeDefaults(s *storeConfig) error {
	switch {
	case s.Retention != 0 && s.RawRetention != 0 && s.Retention != s.RawRetention:
		return validationError("store.retention", "is the old name of store.raw_retention; set only one (got %s and %s)",
			s.Retention.D(), s.RawRetention.D())
	case s.RawRetention == 0 && s.Retention != 0:
		s.RawRetention = s.Retention
	case s.RawRetention == 0:
		s.RawRetention = duration(store.DefaultRawRetention)
	}
	s.Retention = s.RawRetention
	if s.MinuteRetention == 0 {
		s.MinuteRetention = duration(store.DefaultMinuteRetention)
	}
	if s.HourRetention == 0 {
		s.HourRetention = duration(store.DefaultHourRetention)
	}
	return nil
}

type healthConfig struct {
	QueueWarningThreshold  int64                  `yaml:"queue_warning_threshold"`
	QueueCriticalThreshold int64                  `yaml:"queue_critical_threshold"`
	Queues                 map[string]queueLevels `yaml:"queues"`
}

type queueLevels struct {
	Warning  int64 `yaml:"warning"`
	Critical int64 `yaml:"critical"`
}

type performanceConfig struct {
	SlowProcessingThreshold duration `yaml:"slow_processing_threshold"`
	TrackMemoryUsage        bool     `yaml:"track_memory_usage"`
	SampleInterval          duration `yaml:"sample_interval"`
}

type connectionConfig struct {
	MaxConnections           int `yaml:"max_connections"`
	MaxChannelsPerConnection int `yaml:"max_channels_per_connection"`
}

type throttleConfig struct {
	MaxConcurrent     int      `yaml:"max_concurrent"`
	DelayBetweenCalls duration `yaml:"delay_between_calls"`
}

// circuitBreakerConfig is a consumer's circuit_breaker section; absent means
// no breaker.
type circuitBreakerConfig struct {
	FailureThreshold int      `yaml:"failure_threshold"`
	CoolDown         duration `yaml:"cool_down"`
	HalfOpenMax      int      `yaml:"half_open_max"`
}

type handlerConfig struct {
	Type         string   `yaml:"type"`
	Duration     duration `yaml:"duration"`
	FailureRatio float64  `yaml:"failure_ratio"`
	URL          string   `yaml:"url"`
	Timeout      duration `yaml:"timeout"`
}

type consumerConfig struct {
	Name                    string                `yaml:"name"`
	Queue                   string                `yaml:"queue"`
	Vhost                   string                `yaml:"vhost"`
	Declare                 bool                  `yaml:"declare"`
	MaxConcurrentMessages   int                   `yaml:"max_concurrent_messages"`
	PrefetchCount           int                   `yaml:"prefetch_count"`
	MaxConcurrency          int                   `yaml:"max_concurrency"`
	MaxPrefetch             int                   `yaml:"max_prefetch"`
	BatchSize               int                   `yaml:"batch_size"`
	BatchTimeout            duration              `yaml:"batch_timeout"`
	MaxRetryAttempts        *int                  `yaml:"max_retry_attempts"`
	InitialRetryDelay       duration              `yaml:"initial_retry_delay"`
	RetryMultiplier         float64               `yaml:"retry_multiplier"`
	DeadLetterQueue         string                `yaml:"dead_letter_queue"`
	HandlerTimeout          duration              `yaml:"handler_timeout"`
	CircuitBreaker          *circuitBreakerConfig `yaml:"circuit_breaker"`
	Throttle                *throttleConfig       `yaml:"throttle"`
	SlowProcessingThreshold duration              `yaml:"slow_processing_threshold"`
	Handler                 handlerConfig         `yaml:"handler"`
}

type alertsConfig struct {
	Webhooks []webhookConfig `yaml:"webhooks"`
	Rules    rulesConfig     `yaml:"rules"`
	// RepeatInterval re-notifies a firing, unacknowledged alert this often;
	// zero (the default) never repeats.
	RepeatInterval duration `yaml:"repeat_interval"`
}

// rulesConfig is alerts.rules: per-kind global defaults and per-queue
// overrides (exact name, glob, vhost).
type rulesConfig struct {
	Defaults  map[string]ruleParams `yaml:"defaults"`
	Overrides []ruleOverride        `yaml:"overrides"`
}

type ruleParams struct {
	Enabled    *bool     `yaml:"enabled"`
	Warning    *float64  `yaml:"warning"`
	Critical   *float64  `yaml:"critical"`
	ClearBelow *float64  `yaml:"clear_below"`
	For        *duration `yaml:"for"`
}

type ruleOverride struct {
	Rule       string    `yaml:"rule"`
	Queue      string    `yaml:"queue"`
	Vhost      string    `yaml:"vhost"`
	Enabled    *bool     `yaml:"enabled"`
	Warning    *float64  `yaml:"warning"`
	Critical   *float64  `yaml:"critical"`
	ClearBelow *float64  `yaml:"clear_below"`
	For        *duration `yaml:"for"`
}

// hook converts one alerts.webhooks entry for the alerts package.
func (w webhookConfig) hook() alerts.WebhookConfig {
	h := alerts.WebhookConfig{Name: w.Name, URL: w.URL, Secret: w.Secret, Format: w.Format, Timeout: w.Timeout.D(),
		Headers: w.Headers, Template: w.Template, ExternalURL: w.ExternalURL}
	if w.MaxAge != nil {
		h.MaxAge = w.MaxAge.D()
	}
	return h
}

func (p ruleParams) params() alerts.RuleParams {
	out := alerts.RuleParams{Enabled: p.Enabled, Warning: p.Warning, Critical: p.Critical, ClearBelow: p.ClearBelow}
	if p.For != nil {
		d := p.For.D()
		out.For = &d
	}
	return out
}

// ruleSet converts alerts.rules for the alerts package.
func (r rulesConfig) ruleSet() alerts.RuleSet {
	rs := alerts.RuleSet{Defaults: map[string]alerts.RuleParams{}}
	for kind, p := range r.Defaults {
		rs.Defaults[kind] = p.params()
	}
	for _, o := range r.Overrides {
		rs.Overrides = append(rs.Overrides, alerts.RuleOverride{Rule: o.Rule, Queue: o.Queue, Vhost: o.Vhost,
			Params: ruleParams{Enabled: o.Enabled, Warning: o.Warning, Critical: o.Critical, ClearBelow: o.ClearBelow, For: o.For}.params()})
	}
	return rs
}

type webhookConfig struct {
	Name    string   `yaml:"name"`
	URL     string   `yaml:"url"`
	Secret  string   `yaml:"secret"`
	Format  string   `yaml:"format"`
	Timeout duration `yaml:"timeout"`
	// Headers, Template (format template) and ExternalURL (format
	// alertmanager): see alerts.WebhookConfig.
	Headers     map[string]string `yaml:"headers"`
	Template    string            `yaml:"template"`
	ExternalURL string            `yaml:"external_url"`
	// MaxAge: how long an undelivered notification is retried; nil means
	// alerts.DefaultMaxAge (24h).
	MaxAge *duration `yaml:"max_age"`
}

type logConfig struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// duration is a time.Duration written as a Go duration string ("5s", "1m30s").
type duration time.Duration

func (d duration) D() time.Duration { return time.Duration(d) }

// defaultConfig holds the values that apply when a key is left out.
func defaultConfig() config {
	return config{
		Listen:  "127.0.0.1:8080",
		AMQPURL: "amqp://guest:guest@127.0.0.1:5672/",
		Management: managementConfig{
			URL:          "http://127.0.0.1:15672",
			Username:     "guest",
			Password:     "guest",
			PollInterval: duration(5 * time.Second),
			Timeout:      duration(10 * time.Second),
			ProbeQueues:  50,
		},
		Store: storeConfig{Path: "warren.db"}, // retention: storeDefaults
		Health: healthConfig{
			QueueWarningThreshold:  10000,
			QueueCriticalThreshold: 50000,
		},
		Performance: performanceConfig{
			SlowProcessingThreshold: duration(3 * time.Second),
			TrackMemoryUsage:        true,
			SampleInterval:          duration(10 * time.Second),
		},
		Connection: connectionConfig{MaxConnections: 5, MaxChannelsPerConnection: 10},
		Log:        logConfig{Level: "info", Format: "text"},
	}
}

// consumerDefaults fills what a consumer entry left out.
func consumerDefaults(c *consumerConfig, perf performanceConfig) {
	if c.Vhost == "" {
		c.Vhost = "/"
	}
	if c.Queue == "" {
		c.Queue = c.Name
	}
	if c.MaxConcurrentMessages == 0 {
		c.MaxConcurrentMessages = 10
	}
	if c.PrefetchCount == 0 {
		c.PrefetchCount = 10
	}
	if c.MaxConcurrency == 0 {
		c.MaxConcurrency = 1000
	}
	if c.MaxPrefetch == 0 {
		c.MaxPrefetch = 10000
	}
	if c.SlowProcessingThreshold == 0 {
		c.SlowProcessingThreshold = perf.SlowProcessingThreshold
	}
	if c.InitialRetryDelay == 0 {
		c.InitialRetryDelay = duration(time.Second)
	}
	if c.RetryMultiplier == 0 {
		c.RetryMultiplier = 2
	}
	if c.MaxRetryAttempts == nil {
		n := 5
		c.MaxRetryAttempts = &n
	}
	if c.BatchTimeout == 0 {
		c.BatchTimeout = duration(100 * time.Millisecond)
	}
	if c.DeadLetterQueue == "" {
		c.DeadLetterQueue = c.Queue + ".warren.dlq"
	}
	if c.HandlerTimeout == 0 {
		// Below RabbitMQ's default consumer_timeout (30m), so a stuck
		// handler fails its message before the broker closes the channel.
		c.HandlerTimeout = duration(5 * time.Minute)
	}
	if b := c.CircuitBreaker; b != nil {
		if b.FailureThreshold == 0 {
			b.FailureThreshold = 5
		}
		if b.CoolDown == 0 {
			b.CoolDown = duration(30 * time.Second)
		}
		if b.HalfOpenMax == 0 {
			b.HalfOpenMax = 3
		}
	}
	if c.Handler.Type == "" {
		c.Handler.Type = "log"
	}
}

// loadConfig reads the file at path (empty: defaults only), applies the
// environment overrides and validates the result. Any error names the key.
func loadConfig(path string, getenv func(string) string) (config, error) {
	cfg := defaultConfig()
	lines := map[string]int{} // key path -> line, for the keys the file gives
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return config{}, fmt.Errorf("reading config: %w", err)
		}
		if err := decodeConfig(raw, &cfg, lines); err != nil {
			return config{}, fmt.Errorf("config %s: %w", path, err)
		}
		if err := explicitZeros(cfg, lines); err != nil {
			return config{}, fmt.Errorf("config %s: %w", path, err)
		}
	}
	for key, dst := range map[string]*string{
		"WARREN_LISTEN":         &cfg.Listen,
		"WARREN_AMQP_URL":       &cfg.AMQPURL,
		"WARREN_MANAGEMENT_URL": &cfg.Management.URL,
		"WARREN_DB":             &cfg.Store.Path,
	} {
		if v := getenv(key); v != "" {
			*dst = v
		}
	}
	for i := range cfg.Consumers {
		consumerDefaults(&cfg.Consumers[i], cfg.Performance)
	}
	authDefaults(&cfg.Auth)
	// The alerts and consumers packages would apply these too; filling them
	// here makes Settings show the values in force, not 0s.
	for i := range cfg.Alerts.Webhooks {
		w := &cfg.Alerts.Webhooks[i]
		if w.Timeout == 0 {
			w.Timeout = duration(alerts.DefaultWebhookTimeout)
		}
		if w.MaxAge == nil {
			d := duration(alerts.DefaultMaxAge)
			w.MaxAge = &d
		}
	}
	for i := range cfg.Consumers {
		if h := &cfg.Consumers[i].Handler; h.Type == "http" && h.Timeout == 0 {
			h.Timeout = duration(consumers.DefaultHTTPHandlerTimeout)
		}
	}
	err := storeDefaults(&cfg.Store)
	if err == nil {
		err = cfg.validate()
	}
	if err != nil {
		// A range error found after decoding names the key's line too,
		// when the file gave the key.
		var ke *keyError
		if errors.As(err, &ke) && ke.Line == 0 {
			ke.Line = lines[ke.Key]
		}
		if path == "" {
			return config{}, fmt.Errorf("config: %w", err)
		}
		return config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// explicitZeros refuses a 0 written in the file for keys whose zero value
// stands for "not given, use the default": without this check
// `prefetch_count: 0` would silently run with 10.
func explicitZeros(cfg config, lines map[string]int) error {
	check := func(key string, zero bool, want string) error {
		if line, given := lines[key]; given && zero {
			return &keyError{Key: key, Line: line, Reason: want + ", got 0"}
		}
		return nil
	}
	var errs []error
	for i, c := range cfg.Consumers {
		p := fmt.Sprintf("consumers[%d].", i)
		errs = append(errs,
			check(p+"max_concurrent_messages", c.MaxConcurrentMessages == 0, "must be at least 1"),
			check(p+"prefetch_count", c.PrefetchCount == 0, "must be at least 1"),
			check(p+"max_concurrency", c.MaxConcurrency == 0, "must be at least 1"),
			check(p+"max_prefetch", c.MaxPrefetch == 0, "must be at least 1"),
			check(p+"retry_multiplier", c.RetryMultiplier == 0, "must be at least 1"),
			check(p+"initial_retry_delay", c.InitialRetryDelay == 0, "must be positive"),
			check(p+"batch_timeout", c.BatchTimeout == 0, "must be positive"),
			check(p+"handler_timeout", c.HandlerTimeout == 0, "must be positive"),
		)
	}
	for i, w := range cfg.Alerts.Webhooks {
		errs = append(errs, check(fmt.Sprintf("alerts.webhooks[%d].timeout", i), w.Timeout == 0, "must be positive"))
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// decodeConfig parses YAML into cfg, refusing unknown keys and wrong types
// with the dotted path of the key at fault.
func decodeConfig(raw []byte, cfg *config, lines map[string]int) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return fmt.Errorf("invalid YAML: %w", err)
	}
	if len(doc.Content) == 0 {
		return nil // empty file: defaults
	}
	return decodeNode(doc.Content[0], cfg, "", lines)
}

// keyError is a problem with one config key.
type keyError struct {
	Key    string
	Line   int
	Reason string
}

func (e *keyError) Error() string {
	switch {
	case e.Key == "":
		return fmt.Sprintf("line %d: %s", e.Line, e.Reason)
	case e.Line == 0: // a default or an environment override: no line
		return fmt.Sprintf("key %s: %s", e.Key, e.Reason)
	}
	return fmt.Sprintf("key %s (line %d): %s", e.Key, e.Line, e.Reason)
}

func validationError(key, format string, args ...any) error {
	return &keyError{Key: key, Reason: fmt.Sprintf(format, args...)}
}

var (
	loopbackNames = map[string]bool{"localhost": true, "ip6-localhost": true}
	nameRE        = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	errNoAuth     = errors.New("refusing to listen on a non-loopback address: no authentication is configured (configure auth.users or auth.proxy, or listen on 127.0.0.1 or ::1)")
	handlerTypes  = map[string]bool{"sleep": true, "log": true, "http": true}
	webhookFormat = map[string]bool{"generic": true, "alertmanager": true, "slack": true, "template": true}
)

func (c *config) validate() error {
	if err := c.Auth.validate(); err != nil {
		return err
	}
	// Without authentication only loopback clients may reach warren.
	if err := validateListen(c.Listen); err != nil && !(errors.Is(err, errNoAuth) && c.Auth.configured()) {
		return validationError("listen", "%v", err)
	}
	for i, h := range c.AllowedHosts {
		if h == "" || strings.ContainsAny(h, ":/ ") {
			return validationError(fmt.Sprintf("allowed_hosts[%d]", i), "want a host name without port or scheme, got %q", h)
		}
	}
	if _, err := amqp.ParseURI(c.AMQPURL); err != nil {
		return validationError("amqp_url", "%v", err)
	}
	if err := validateHTTPURL(c.Management.URL); err != nil {
		return validationError("management.url", "%v", err)
	}
	if u, _ := url.Parse(c.Management.URL); u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return validationError("management.url", "must not hold credentials, a query or a fragment (use management.username and management.password), got %q", redactURL(c.Management.URL))
	}
	if c.Management.PollInterval.D() < 100*time.Millisecond {
		return validationError("management.poll_interval", "must be at least 100ms, got %s", c.Management.PollInterval.D())
	}
	if c.Management.ProbeQueues < 0 || c.Management.ProbeQueues > 10000 {
		return validationError("management.probe_queues", "must be between 0 (off) and 10000, got %d", c.Management.ProbeQueues)
	}
	if c.Management.Timeout.D() <= 0 {
		return validationError("management.timeout", "must be positive, got %s", c.Management.Timeout.D())
	}
	if c.Store.Path == "" {
		return validationError("store.path", "must not be empty")
	}
	// Raw samples must outlive the rollup lateness and one maintenance pass,
	// or minutes would be rolled up from samples already deleted.
	if c.Store.RawRetention.D() < 5*time.Minute {
		return validationError("store.raw_retention", "must be at least 5m (store.retention is its old name), got %s", c.Store.RawRetention.D())
	}
	if c.Store.MinuteRetention.D() < 2*time.Hour {
		return validationError("store.minute_retention", "must be at least 2h (hour rollups are built from minutes), got %s", c.Store.MinuteRetention.D())
	}
	if c.Store.HourRetention.D() < time.Hour {
		return validationError("store.hour_retention", "must be at least 1h, got %s", c.Store.HourRetention.D())
	}
	if err := validateLevels("health", c.Health.QueueWarningThreshold, c.Health.QueueCriticalThreshold, "queue_warning_threshold", "queue_critical_threshold"); err != nil {
		return err
	}
	for name, l := range c.Health.Queues {
		if err := validateLevels(fmt.Sprintf("health.queues[%q]", name), l.Warning, l.Critical, "warning", "critical"); err != nil {
			return err
		}
	}
	if c.Performance.SlowProcessingThreshold.D() <= 0 {
		return validationError("performance.slow_processing_threshold", "must be positive")
	}
	if c.Performance.SampleInterval.D() < time.Second {
		return validationError("performance.sample_interval", "must be at least 1s, got %s", c.Performance.SampleInterval.D())
	}
	if c.Connection.MaxConnections < 1 {
		return validationError("connection.max_connections", "must be at least 1, got %d", c.Connection.MaxConnections)
	}
	if c.Connection.MaxChannelsPerConnection < 1 {
		return validationError("connection.max_channels_per_connection", "must be at least 1, got %d", c.Connection.MaxChannelsPerConnection)
	}
	seen := map[string]bool{}
	for i := range c.Consumers {
		if err := c.Consumers[i].validate(fmt.Sprintf("consumers[%d]", i), seen); err != nil {
			return err
		}
	}
	hooks := map[string]bool{}
	for i, w := range c.Alerts.Webhooks {
		key := fmt.Sprintf("alerts.webhooks[%d]", i)
		switch {
		case w.Name == "":
			return validationError(key+".name", "is required")
		case hooks[w.Name]:
			return validationError(key+".name", "%q is used twice", w.Name)
		}
		hooks[w.Name] = true
		if err := validateHTTPURL(w.URL); err != nil {
			// Not echoed: a webhook URL's path or query may be its key.
			return validationError(key+".url", "must be an absolute http:// or https:// URL (the value is not repeated: it may hold the webhook's key)")
		}
		if w.Format == "" {
			c.Alerts.Webhooks[i].Format = "generic"
		} else if !webhookFormat[w.Format] {
			return validationError(key+".format", "unknown format %q (supported: generic, alertmanager, slack, template)", w.Format)
		}
		if w.Timeout.D() < 0 {
			return validationError(key+".timeout", "must not be negative")
		}
		if w.MaxAge != nil && w.MaxAge.D() <= 0 {
			return validationError(key+".max_age", "must be positive, got %s", w.MaxAge.D())
		}
		if w.ExternalURL != "" {
			if err := validateHTTPURL(w.ExternalURL); err != nil {
				return validationError(key+".external_url", "%v", err)
			}
		}
		// Template parse errors, header names and format/template
		// combinations, each naming the key.
		if err := alerts.ValidateWebhooks([]alerts.WebhookConfig{c.Alerts.Webhooks[i].hook()}); err != nil {
			return fmt.Errorf("key %s", strings.Replace(err.Error(), "alerts.webhooks[0]", key, 1))
		}
	}
	if err := c.Alerts.Rules.ruleSet().Validate("alerts.rules"); err != nil {
		return fmt.Errorf("key %w", err)
	}
	if r := c.Alerts.RepeatInterval.D(); r != 0 && r < time.Minute {
		// Shorter repeats would page on-call faster than anyone can react.
		return validationError("alerts.repeat_interval", "must be 0 (off) or at least 1m, got %s", r)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return validationError("log.level", "want debug, info, warn or error, got %q", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return validationError("log.format", "want text or json, got %q", c.Log.Format)
	}
	return nil
}

func (cc *consumerConfig) validate(key string, seen map[string]bool) error {
	switch {
	case cc.Name == "":
		return validationError(key+".name", "is required")
	case !nameRE.MatchString(cc.Name):
		return validationError(key+".name", "%q must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", cc.Name)
	case seen[cc.Name]:
		return validationError(key+".name", "%q is used by another consumer", cc.Name)
	}
	seen[cc.Name] = true
	if cc.MaxConcurrency < 1 {
		return validationError(key+".max_concurrency", "must be at least 1, got %d", cc.MaxConcurrency)
	}
	if cc.MaxPrefetch < 1 || cc.MaxPrefetch > 65535 {
		return validationError(key+".max_prefetch", "must be between 1 and 65535, got %d", cc.MaxPrefetch)
	}
	if cc.MaxConcurrentMessages < 1 || cc.MaxConcurrentMessages > cc.MaxConcurrency {
		return validationError(key+".max_concurrent_messages", "must be between 1 and max_concurrency (%d), got %d", cc.MaxConcurrency, cc.MaxConcurrentMessages)
	}
	if cc.PrefetchCount < 1 || cc.PrefetchCount > cc.MaxPrefetch {
		return validationError(key+".prefetch_count", "must be between 1 and max_prefetch (%d), got %d", cc.MaxPrefetch, cc.PrefetchCount)
	}
	if cc.BatchSize < 0 || cc.BatchSize > 65535 {
		return validationError(key+".batch_size", "must be between 0 and 65535, got %d", cc.BatchSize)
	}
	if cc.BatchTimeout.D() < 0 {
		return validationError(key+".batch_timeout", "must be positive, got %s", cc.BatchTimeout.D())
	}
	if *cc.MaxRetryAttempts < 0 {
		return validationError(key+".max_retry_attempts", "must not be negative, got %d", *cc.MaxRetryAttempts)
	}
	if cc.InitialRetryDelay.D() <= 0 {
		return validationError(key+".initial_retry_delay", "must be positive")
	}
	if cc.RetryMultiplier < 1 {
		return validationError(key+".retry_multiplier", "must be at least 1, got %g", cc.RetryMultiplier)
	}
	if cc.DeadLetterQueue == cc.Queue {
		return validationError(key+".dead_letter_queue", "must differ from the consumed queue %q", cc.Queue)
	}
	if cc.HandlerTimeout.D() < 0 {
		return validationError(key+".handler_timeout", "must be positive, got %s", cc.HandlerTimeout.D())
	}
	if b := cc.CircuitBreaker; b != nil {
		if b.FailureThreshold < 1 {
			return validationError(key+".circuit_breaker.failure_threshold", "must be at least 1, got %d", b.FailureThreshold)
		}
		if b.CoolDown.D() < 0 {
			return validationError(key+".circuit_breaker.cool_down", "must be positive, got %s", b.CoolDown.D())
		}
		if b.HalfOpenMax < 1 || b.HalfOpenMax > 65535 {
			return validationError(key+".circuit_breaker.half_open_max", "must be between 1 and 65535, got %d", b.HalfOpenMax)
		}
	}
	if t := cc.Throttle; t != nil {
		if t.MaxConcurrent < 0 || t.MaxConcurrent > cc.MaxConcurrency {
			return validationError(key+".throttle.max_concurrent", "must be between 0 (off) and max_concurrency (%d), got %d", cc.MaxConcurrency, t.MaxConcurrent)
		}
		if t.DelayBetweenCalls.D() < 0 || t.DelayBetweenCalls.D() > time.Hour {
			return validationError(key+".throttle.delay_between_calls", "must be between 0 (off) and 1h, got %s", t.DelayBetweenCalls.D())
		}
	}
	if cc.SlowProcessingThreshold.D() <= 0 {
		return validationError(key+".slow_processing_threshold", "must be positive")
	}
	h := cc.Handler
	if !handlerTypes[h.Type] {
		return validationError(key+".handler.type", "unknown handler %q (built-ins: sleep, log, http)", h.Type)
	}
	if h.Duration.D() < 0 {
		return validationError(key+".handler.duration", "must not be negative")
	}
	if h.FailureRatio < 0 || h.FailureRatio > 1 {
		return validationError(key+".handler.failure_ratio", "must be between 0 and 1, got %g", h.FailureRatio)
	}
	if h.Type == "http" {
		if err := validateHTTPURL(h.URL); err != nil {
			return validationError(key+".handler.url", "%v", err)
		}
	}
	if h.Timeout.D() < 0 {
		return validationError(key+".handler.timeout", "must not be negative")
	}
	return nil
}

func validateLevels(key string, warning, critical int64, wName, cName string) error {
	if warning < 1 {
		return validationError(key+"."+wName, "must be at least 1, got %d", warning)
	}
	if critical <= warning {
		return validationError(key+"."+cName, "must be greater than %s (%d), got %d", wName, warning, critical)
	}
	return nil
}

func validateHTTPURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("not a URL: %q", redactURL(raw))
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("want an absolute http(s) URL, got %q", redactURL(raw))
	}
	return nil
}

// validateListen accepts loopback addresses and answers errNoAuth for any
// other: without authentication warren must not be reachable from other
// machines by accident.
func validateListen(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port, got %q", addr)
	}
	if port == "" {
		return fmt.Errorf("missing port in %q", addr)
	}
	if loopbackNames[strings.ToLower(host)] {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return errNoAuth
	}
	return nil
}

// redactURL hides the password of a URL's userinfo so it can be logged.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if i := strings.LastIndex(raw, "@"); i >= 0 {
			return "***" + raw[i:] // unparseable: hide everything that could be userinfo
		}
		return raw
	}
	// The same mask the other components log; url.Redacted's "xxxxx" would
	// be percent-encoded if set as a password.
	return strings.Replace(u.Redacted(), ":xxxxx@", ":***@", 1)
}

// redactError hides rawURL's password wherever err's text repeats it.
func redactError(err error, rawURL string) string {
	s := err.Error()
	if u, perr := url.Parse(rawURL); perr == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			s = strings.ReplaceAll(s, p, "***")
		}
	}
	return s
}
