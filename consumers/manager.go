package consumers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults and limits applied by NewManager.
const (
	// DefaultSampleInterval is Options.SampleInterval when zero.
	DefaultSampleInterval = 10 * time.Second
	// DefaultShutdownTimeout is Options.ShutdownTimeout when zero.
	DefaultShutdownTimeout = 30 * time.Second
	// DefaultReconnectMinBackoff and DefaultReconnectMaxBackoff bound the
	// reconnect backoff when the Options fields are zero.
	DefaultReconnectMinBackoff = time.Second
	DefaultReconnectMaxBackoff = 30 * time.Second
	// DefaultMaxConcurrency is Config.MaxConcurrency when zero.
	DefaultMaxConcurrency = 1000
	// DefaultMaxPrefetch is Config.MaxPrefetch when zero. It is also the
	// hard ceiling: basic.qos carries prefetch_count as a 16-bit number.
	DefaultMaxPrefetch = 65535
	// Circuit breaker defaults for zero BreakerConfig fields.
	DefaultBreakerFailureThreshold = 5
	DefaultBreakerCoolDown         = 30 * time.Second
	DefaultBreakerHalfOpenMax      = 3
	// DefaultHeartbeat is Options.Heartbeat when zero.
	DefaultHeartbeat = 10 * time.Second
	// DefaultMaxChannelsPerConnection is Options.MaxChannelsPerConnection
	// when zero.
	DefaultMaxChannelsPerConnection = 10
	// MaxThrottleDelay bounds throttle.delay_between_calls.
	MaxThrottleDelay = time.Hour
)

// sampleWriteTimeout bounds one SampleWriter call so a slow store cannot
// stall the sampler (or shutdown) indefinitely.
const sampleWriteTimeout = 10 * time.Second

// Options tunes a Manager. Zero values take the documented defaults.
type Options struct {
	// SampleInterval is how often one Sample per consumer is written.
	SampleInterval time.Duration
	// ShutdownTimeout bounds how long in-flight messages may take to finish
	// once Run's context ended; then their context is cancelled and what is
	// left is requeued.
	ShutdownTimeout time.Duration
	// ReconnectMinBackoff and ReconnectMaxBackoff bound the capped
	// exponential (jittered) wait between reconnect attempts.
	ReconnectMinBackoff time.Duration
	ReconnectMaxBackoff time.Duration
	// Handlers adds handler types by name (HandlerConfig.Type), or replaces a
	// built-in one (sleep, log, http). Tests and benchmarks use it to observe
	// messages.
	Handlers map[string]HandlerFactory
	// BatchHandlers are batch handler types by name, used by consumers with
	// BatchSize > 1. A consumer whose type has no batch handler gets its
	// per-message handler called in a loop.
	BatchHandlers map[string]BatchHandlerFactory
	// Interceptors wrap every consumer's per-message handler, the first one
	// outermost: code before and after each call (tracing, metrics,
	// decoding, ...). An interceptor sees the consumer's Config and may
	// return next unchanged to skip a consumer. Batch handlers are not
	// wrapped.
	Interceptors []Interceptor
	// MaxConnections > 0 shares consuming connections between consumers of
	// a vhost: at most MaxConnections per vhost, each carrying at most
	// MaxChannelsPerConnection consumers (default 10). 0: every consumer
	// has its own connection. Publishing (retries, dead letters) always
	// uses a separate connection.
	MaxConnections           int
	MaxChannelsPerConnection int
	// TrackMemory samples the process's memory and goroutines with every
	// sample (Manager.Runtime) and logs them at debug level.
	TrackMemory bool
	// Heartbeat is the AMQP heartbeat asked for on every connection; a
	// connection that misses heartbeats is closed by the client library and
	// recovers like any closed connection. Default 10s.
	Heartbeat time.Duration
	// NoObservation turns off per-message observation: latency histograms
	// (and so latency percentiles), end-to-end latency, per-type aggregates
	// and slow-message detection. Counters and the rate stay. It exists to
	// measure what observation costs (bench/).
	NoObservation bool
}

// Interceptor wraps the handler of one consumer.
type Interceptor func(cfg Config, next HandlerFunc) HandlerFunc

// Manager runs the managed consumers and is the web layer's handle on them.
// All methods are safe for concurrent use.
type Manager struct {
	logger    *slog.Logger
	writer    SampleWriter
	opts      Options
	consumers []*consumer // config order
	byName    map[string]*consumer
	running   atomic.Bool
	started   time.Time
	// publishers republish retries and dead letters, one connection per
	// vhost, separate from the consuming connections.
	publishers map[string]*publisher
	// pools share consuming connections per vhost (Options.MaxConnections).
	pools map[string]*connPool
	// runtime is the latest RuntimeStats (Options.TrackMemory).
	runtime atomic.Pointer[RuntimeStats]
}

// NewManager validates cfgs and builds one consumer per entry; nothing
// connects before Run. amqpURL's vhost is replaced by each consumer's Vhost
// (an empty Vhost keeps the URL's). w may be nil.
func NewManager(amqpURL string, cfgs []Config, w SampleWriter, logger *slog.Logger, opts Options) (*Manager, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "consumers")
	uri, err := parseAMQPURL(amqpURL)
	if err != nil {
		return nil, err
	}
	opts = withDefaults(opts)
	if opts.MaxConnections < 0 {
		return nil, fmt.Errorf("max_connections: must not be negative, got %d", opts.MaxConnections)
	}
	if opts.ReconnectMinBackoff > opts.ReconnectMaxBackoff {
		return nil, fmt.Errorf("reconnect backoff: min %s is above max %s", opts.ReconnectMinBackoff, opts.ReconnectMaxBackoff)
	}
	factories := builtinHandlers()
	for name, f := range opts.Handlers {
		if f == nil {
			return nil, fmt.Errorf("handler type %q: factory is nil", name)
		}
		factories[name] = f
	}

	m := &Manager{
		logger: logger,
		writer: w,
		opts:   opts,
		byName: make(map[string]*consumer, len(cfgs)),

		publishers: make(map[string]*publisher),
		pools:      make(map[string]*connPool),
	}
	for i, cfg := range cfgs {
		if cfg.Name == "" {
			return nil, fmt.Errorf("consumers[%d].name: must not be empty", i)
		}
		if _, dup := m.byName[cfg.Name]; dup {
			return nil, fmt.Errorf("consumer %q: name: duplicate consumer name", cfg.Name)
		}
		cfg, err := normaliseConfig(cfg, uri.Vhost)
		if err != nil {
			return nil, fmt.Errorf("consumer %q: %w", cfg.Name, err)
		}
		if cfg.BatchSize > 1 {
			if bf, ok := opts.BatchHandlers[cfg.Handler.Type]; ok {
				if bf == nil {
					return nil, fmt.Errorf("consumer %q: batch handler type %q: factory is nil", cfg.Name, cfg.Handler.Type)
				}
				clog := logger.With("consumer", cfg.Name, "queue", cfg.Queue, "vhost", cfg.Vhost)
				bh, err := bf(cfg, clog)
				if err != nil {
					return nil, fmt.Errorf("consumer %q: %w", cfg.Name, err)
				}
				if bh == nil {
					return nil, fmt.Errorf("consumer %q: handler.type: batch factory for %q returned no handler", cfg.Name, cfg.Handler.Type)
				}
				c := m.newConsumer(cfg, nil, amqpURL, opts, clog)
				c.batchHandler = bh
				m.consumers = append(m.consumers, c)
				m.byName[cfg.Name] = c
				continue
			}
		}
		factory, ok := factories[cfg.Handler.Type]
		if !ok {
			return nil, fmt.Errorf("consumer %q: handler.type: unknown handler type %q (known: %s)",
				cfg.Name, cfg.Handler.Type, knownTypes(factories))
		}
		clog := logger.With("consumer", cfg.Name, "queue", cfg.Queue, "vhost", cfg.Vhost)
		h, err := factory(cfg, clog)
		if err != nil {
			return nil, fmt.Errorf("consumer %q: %w", cfg.Name, err)
		}
		if h == nil {
			return nil, fmt.Errorf("consumer %q: handler.type: factory for %q returned no handler", cfg.Name, cfg.Handler.Type)
		}
		for i := len(opts.Interceptors) - 1; i >= 0; i-- {
			if opts.Interceptors[i] == nil {
				return nil, fmt.Errorf("interceptor %d is nil", i)
			}
			if h = opts.Interceptors[i](cfg, h); h == nil {
				return nil, fmt.Errorf("consumer %q: interceptor %d returned no handler", cfg.Name, i)
			}
		}
		c := m.newConsumer(cfg, h, amqpURL, opts, clog)
		if cfg.BatchSize > 1 {
			c.batchHandler = perMessageBatch(h)
		}
		m.consumers = append(m.consumers, c)
		m.byName[cfg.Name] = c
	}
	logger.Info("consumers configured", "count", len(m.consumers), "amqp_url", maskedURL(uri))
	return m, nil
}

// newConsumer builds a consumer with the vhost's shared publisher when it
// has a retry policy.
func (m *Manager) newConsumer(cfg Config, h HandlerFunc, amqpURL string, opts Options, logger *slog.Logger) *consumer {
	var pub *publisher
	if cfg.Retry != nil {
		pub = m.publishers[cfg.Vhost]
		if pub == nil {
			pub = newPublisher(amqpURL, cfg.Vhost, opts.Heartbeat, m.logger.With("vhost", cfg.Vhost, "role", "publisher"))
			m.publishers[cfg.Vhost] = pub
		}
	}
	c := newConsumer(cfg, h, amqpURL, opts, pub, logger)
	if opts.MaxConnections > 0 {
		c.pool = m.pools[cfg.Vhost]
		if c.pool == nil {
			c.pool = newConnPool(amqpURL, cfg.Vhost, opts.MaxConnections, opts.MaxChannelsPerConnection, opts.Heartbeat,
				m.logger.With("vhost", cfg.Vhost, "role", "pool"))
			m.pools[cfg.Vhost] = c.pool
		}
	}
	return c
}

func withDefaults(o Options) Options {
	if o.SampleInterval <= 0 {
		o.SampleInterval = DefaultSampleInterval
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = DefaultShutdownTimeout
	}
	if o.ReconnectMinBackoff <= 0 {
		o.ReconnectMinBackoff = DefaultReconnectMinBackoff
	}
	if o.ReconnectMaxBackoff <= 0 {
		o.ReconnectMaxBackoff = DefaultReconnectMaxBackoff
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.MaxChannelsPerConnection <= 0 {
		o.MaxChannelsPerConnection = DefaultMaxChannelsPerConnection
	}
	return o
}

// normaliseConfig fills defaults and checks ranges. Field names in errors
// are the YAML keys an operator writes.
func normaliseConfig(cfg Config, urlVhost string) (Config, error) {
	if cfg.Queue == "" {
		return cfg, errors.New("queue: must not be empty")
	}
	if cfg.Vhost == "" {
		cfg.Vhost = urlVhost
	}
	if cfg.MaxConcurrency == 0 {
		cfg.MaxConcurrency = max(DefaultMaxConcurrency, cfg.MaxConcurrentMessages)
	}
	if cfg.MaxPrefetch == 0 {
		cfg.MaxPrefetch = DefaultMaxPrefetch
	}
	if cfg.MaxConcurrency < 1 {
		return cfg, fmt.Errorf("max_concurrency: must be at least 1, got %d", cfg.MaxConcurrency)
	}
	if cfg.MaxPrefetch < 1 || cfg.MaxPrefetch > DefaultMaxPrefetch {
		return cfg, fmt.Errorf("max_prefetch: must be between 1 and %d, got %d", DefaultMaxPrefetch, cfg.MaxPrefetch)
	}
	if cfg.MaxConcurrentMessages < 1 || cfg.MaxConcurrentMessages > cfg.MaxConcurrency {
		return cfg, fmt.Errorf("max_concurrent_messages: must be between 1 and %d, got %d", cfg.MaxConcurrency, cfg.MaxConcurrentMessages)
	}
	if cfg.PrefetchCount < 1 || cfg.PrefetchCount > cfg.MaxPrefetch {
		return cfg, fmt.Errorf("prefetch_count: must be between 1 and %d, got %d", cfg.MaxPrefetch, cfg.PrefetchCount)
	}
	if cfg.SlowProcessingThreshold < 0 {
		return cfg, fmt.Errorf("slow_processing_threshold: must not be negative, got %s", cfg.SlowProcessingThreshold)
	}
	if cfg.HandlerTimeout < 0 {
		return cfg, fmt.Errorf("handler_timeout: must not be negative, got %s", cfg.HandlerTimeout)
	}
	if r := cfg.Retry; r != nil {
		rc := *r // never modify the caller's struct
		if rc.MaxAttempts < 0 {
			return cfg, fmt.Errorf("max_retry_attempts: must not be negative, got %d", rc.MaxAttempts)
		}
		if rc.InitialDelay <= 0 {
			return cfg, fmt.Errorf("initial_retry_delay: must be positive, got %s", rc.InitialDelay)
		}
		if rc.Multiplier == 0 {
			rc.Multiplier = 1
		}
		if !(rc.Multiplier >= 1) || math.IsInf(rc.Multiplier, 0) {
			return cfg, fmt.Errorf("retry_multiplier: must be at least 1, got %v", rc.Multiplier)
		}
		if rc.DeadLetterQueue == cfg.Queue {
			return cfg, errors.New("dead_letter_queue: must differ from queue")
		}
		cfg.Retry = &rc
	}
	if cfg.BatchSize < 0 || cfg.BatchSize > DefaultMaxPrefetch {
		return cfg, fmt.Errorf("batch_size: must be between 0 and %d, got %d", DefaultMaxPrefetch, cfg.BatchSize)
	}
	if cfg.BatchTimeout < 0 {
		return cfg, fmt.Errorf("batch_timeout: must be positive, got %s", cfg.BatchTimeout)
	}
	if cfg.BatchTimeout == 0 {
		cfg.BatchTimeout = DefaultBatchTimeout
	}
	if t := cfg.Throttle; t != nil {
		if t.MaxConcurrent < 0 || t.MaxConcurrent > cfg.MaxConcurrency {
			return cfg, fmt.Errorf("throttle.max_concurrent: must be between 0 and %d, got %d", cfg.MaxConcurrency, t.MaxConcurrent)
		}
		if t.DelayBetweenCalls < 0 || t.DelayBetweenCalls > MaxThrottleDelay {
			return cfg, fmt.Errorf("throttle.delay_between_calls: must be between 0 and %s, got %s", MaxThrottleDelay, t.DelayBetweenCalls)
		}
	}
	if b := cfg.CircuitBreaker; b != nil {
		bc := *b
		if bc.FailureThreshold == 0 {
			bc.FailureThreshold = DefaultBreakerFailureThreshold
		}
		if bc.CoolDown == 0 {
			bc.CoolDown = DefaultBreakerCoolDown
		}
		if bc.HalfOpenMax == 0 {
			bc.HalfOpenMax = DefaultBreakerHalfOpenMax
		}
		if bc.FailureThreshold < 1 {
			return cfg, fmt.Errorf("circuit_breaker.failure_threshold: must be at least 1, got %d", bc.FailureThreshold)
		}
		if bc.CoolDown < 0 {
			return cfg, fmt.Errorf("circuit_breaker.cool_down: must be positive, got %s", bc.CoolDown)
		}
		if bc.HalfOpenMax < 1 || bc.HalfOpenMax > DefaultMaxPrefetch {
			return cfg, fmt.Errorf("circuit_breaker.half_open_max: must be between 1 and %d, got %d", DefaultMaxPrefetch, bc.HalfOpenMax)
		}
		cfg.CircuitBreaker = &bc
	}
	return cfg, nil
}

func knownTypes(f map[string]HandlerFactory) string {
	names := make([]string, 0, len(f))
	for n := range f {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// Run runs every consumer until ctx ends, then shuts down in order: stop
// intake (basic.cancel), let in-flight messages finish up to
// ShutdownTimeout, requeue whatever is left, write a final sample, close the
// channels and connections. It returns nil after a shutdown; connection
// problems never end Run, they show in the consumers' state.
func (m *Manager) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return errors.New("consumers: Run called twice")
	}
	m.started = time.Now()
	// Watchdogs outlive ctx: handlers still run (and may overrun) while
	// in-flight work drains.
	wdCtx, wdCancel := context.WithCancel(context.WithoutCancel(ctx))
	var watchdogs sync.WaitGroup
	for _, c := range m.consumers {
		if c.watch != nil {
			watchdogs.Go(func() { c.runWatchdog(wdCtx) })
		}
	}
	var loops sync.WaitGroup
	for _, c := range m.consumers {
		loops.Go(func() { c.run(ctx) })
	}
	m.tick(ctx)

	// 1. Stop intake: every loop cancels its consumer on ctx.Done and returns.
	loops.Wait()
	m.logger.Info("consumers stopped intake; draining in-flight messages", "timeout", m.opts.ShutdownTimeout)

	// 2. Drain in-flight work, all consumers at once, then 3. requeue the
	// rest by cancelling handler contexts (they nack with requeue).
	deadline := time.Now().Add(m.opts.ShutdownTimeout)
	grace := min(time.Second, m.opts.ShutdownTimeout/10+time.Millisecond)
	var drains sync.WaitGroup
	for _, c := range m.consumers {
		drains.Go(func() { c.drain(deadline, grace) })
	}
	drains.Wait()

	// 4. Final sample, so the last partial interval is not lost.
	m.writeSamples(context.WithoutCancel(ctx), time.Now())

	// 5. Close connections; the broker requeues anything still unacked.
	wdCancel()
	watchdogs.Wait()
	for _, c := range m.consumers {
		c.closeAll()
	}
	for _, p := range m.pools {
		p.closeAll()
	}
	// Publishers last: the drain above may still have republished.
	for _, p := range m.publishers {
		p.close()
	}
	m.logger.Info("consumers shut down")
	return nil
}

// tick feeds the rate rings every second and writes samples every
// SampleInterval until ctx ends.
func (m *Manager) tick(ctx context.Context) {
	rateT := time.NewTicker(time.Second)
	defer rateT.Stop()
	sampleT := time.NewTicker(m.opts.SampleInterval)
	defer sampleT.Stop()
	for _, c := range m.consumers {
		c.stats.tickRate(m.started)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-rateT.C:
			for _, c := range m.consumers {
				c.stats.tickRate(now)
			}
		case now := <-sampleT.C:
			m.writeSamples(ctx, now)
		}
	}
}

// writeSamples closes the current interval of every consumer and hands the
// samples to the writer.
func (m *Manager) writeSamples(ctx context.Context, now time.Time) {
	if m.opts.TrackMemory {
		rs := sampleRuntime(now)
		m.runtime.Store(&rs)
		m.logger.Debug("runtime sample", "heap_alloc_bytes", rs.HeapAllocBytes, "sys_bytes", rs.SysBytes,
			"goroutines", rs.Goroutines, "num_gc", rs.NumGC)
	}
	samples := m.sampleAll(now)
	var slow []SlowMessage
	for _, c := range m.consumers {
		msgs, dropped := c.slow.take()
		slow = append(slow, msgs...)
		if dropped > 0 {
			m.logger.Info("slow-message samples beyond the per-interval limit were not stored",
				"consumer", c.cfg.Name, "dropped", dropped, "limit", maxSlowPerInterval)
		}
	}
	if m.writer == nil || len(samples) == 0 {
		return
	}
	wctx, cancel := context.WithTimeout(ctx, sampleWriteTimeout)
	defer cancel()
	if err := m.writer.WriteConsumerSamples(wctx, samples); err != nil {
		m.logger.Warn("writing consumer samples failed", "err", err, "count", len(samples))
	}
	if sw, ok := m.writer.(SlowMessageWriter); ok && len(slow) > 0 {
		if err := sw.WriteSlowMessages(wctx, slow); err != nil {
			m.logger.Warn("writing slow-message samples failed", "err", err, "count", len(slow))
		}
	}
}

func (m *Manager) sampleAll(now time.Time) []Sample {
	samples := make([]Sample, 0, len(m.consumers))
	for _, c := range m.consumers {
		samples = append(samples, c.stats.sample(c.cfg.Name, now, m.opts.SampleInterval))
	}
	return samples
}

// List returns the status of every consumer in configuration order.
func (m *Manager) List() []Status {
	now := time.Now()
	out := make([]Status, 0, len(m.consumers))
	for _, c := range m.consumers {
		out = append(out, c.status(now))
	}
	return out
}

// Get returns one consumer's status, or an error wrapping ErrNotFound.
func (m *Manager) Get(name string) (Status, error) {
	c, err := m.lookup(name)
	if err != nil {
		return Status{}, err
	}
	return c.status(time.Now()), nil
}

func (m *Manager) lookup(name string) (*consumer, error) {
	c, ok := m.byName[name]
	if !ok {
		return nil, fmt.Errorf("consumer %q: %w", name, ErrNotFound)
	}
	return c, nil
}

// MessageTypes returns one consumer's per-message-type aggregates since
// start, sorted by type (kept out of Status so Status stays comparable).
func (m *Manager) MessageTypes(name string) ([]TypeStatus, error) {
	c, err := m.lookup(name)
	if err != nil {
		return nil, err
	}
	return c.types.status(), nil
}

// Update applies a live change. Every field is validated first; an invalid
// value returns an error wrapping ErrInvalid that names the field and the
// allowed range, and nothing changes. Concurrency takes effect at once (work
// already running is never interrupted). A prefetch change re-subscribes
// with the new basic.qos and returns once the new broker consumer is up
// (Status.AppliedPrefetch), or right away when the consumer is not
// subscribed (paused, reconnecting, not running), in which case the next
// subscription uses it.
func (m *Manager) Update(ctx context.Context, name string, ch Change) (Status, error) {
	c, err := m.lookup(name)
	if err != nil {
		return Status{}, err
	}
	if ch.Concurrency != nil {
		if v := *ch.Concurrency; v < 1 || v > c.cfg.MaxConcurrency {
			return Status{}, fmt.Errorf("%w: concurrency must be between 1 and %d, got %d", ErrInvalid, c.cfg.MaxConcurrency, v)
		}
	}
	if ch.Prefetch != nil {
		if v := *ch.Prefetch; v < 1 || v > c.cfg.MaxPrefetch {
			return Status{}, fmt.Errorf("%w: prefetch must be between 1 and %d, got %d", ErrInvalid, c.cfg.MaxPrefetch, v)
		}
	}
	if v := ch.ThrottleMaxConcurrent; v != nil && (*v < 0 || *v > c.cfg.MaxConcurrency) {
		return Status{}, fmt.Errorf("%w: throttle_max_concurrent must be between 0 and %d, got %d", ErrInvalid, c.cfg.MaxConcurrency, *v)
	}
	if v := ch.ThrottleDelay; v != nil && (*v < 0 || *v > MaxThrottleDelay) {
		return Status{}, fmt.Errorf("%w: throttle_delay_ms must be between 0 and %d, got %d", ErrInvalid, MaxThrottleDelay.Milliseconds(), v.Milliseconds())
	}
	if v := ch.ThrottleMaxConcurrent; v != nil {
		c.thr.setConc(*v)
		c.logger.Info("throttle max_concurrent changed", "max_concurrent", *v)
	}
	if v := ch.ThrottleDelay; v != nil {
		c.thr.setDelay(*v)
		c.logger.Info("throttle delay_between_calls changed", "delay_between_calls", *v)
	}
	if ch.Concurrency != nil {
		if old := c.lim.current(); old != *ch.Concurrency {
			c.lim.setLimit(*ch.Concurrency)
			if s := c.live.Load(); s != nil && c.batchHandler == nil {
				c.fitWorkers(s) // a raise takes effect now, not after the next message
			}
			c.logger.Info("concurrency changed", "concurrency", *ch.Concurrency, "previous", old)
		}
	}
	if ch.Prefetch != nil && int64(*ch.Prefetch) != c.prefetch.Load() {
		// The loop reads the desired value; storing it under control's lock
		// keeps two Updates from interleaving store and re-subscribe.
		want := int64(*ch.Prefetch)
		err := c.control(ctx, cmdPrefetch, func() { c.prefetch.Store(want) }, func() {})
		if err != nil {
			return c.status(time.Now()), fmt.Errorf("changing prefetch of consumer %q: %w", name, err)
		}
	}
	return c.status(time.Now()), nil
}

// Pause stops intake by cancelling the broker-side consumer; messages already
// delivered but not started are requeued, in-flight ones finish and are
// acked. It returns without waiting for in-flight work (InFlight shows it).
func (m *Manager) Pause(ctx context.Context, name string) (Status, error) {
	c, err := m.lookup(name)
	if err != nil {
		return Status{}, err
	}
	err = c.control(ctx, cmdPause, nil, func() {
		c.paused.Store(true)
		c.setState(StatePaused, nil)
	})
	if err != nil {
		return c.status(time.Now()), fmt.Errorf("pausing consumer %q: %w", name, err)
	}
	return c.status(time.Now()), nil
}

// Resume subscribes again after Pause. If subscribing fails the consumer
// goes to "reconnecting" and keeps trying; the Status shows it.
func (m *Manager) Resume(ctx context.Context, name string) (Status, error) {
	c, err := m.lookup(name)
	if err != nil {
		return Status{}, err
	}
	err = c.control(ctx, cmdResume, nil, func() {
		c.paused.Store(false)
		c.setState(StateStarting, nil)
	})
	if err != nil {
		return c.status(time.Now()), fmt.Errorf("resuming consumer %q: %w", name, err)
	}
	return c.status(time.Now()), nil
}

// Ready returns nil when every consumer that is not paused has a live
// channel with a subscription; otherwise an error naming each consumer that
// is not ready and why (for /readyz).
func (m *Manager) Ready(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var errs []error
	for _, c := range m.consumers {
		if c.paused.Load() {
			continue
		}
		state, lastErr := c.getState()
		s := c.live.Load()
		switch {
		case s == nil || state != StateRunning:
			reason := state
			if lastErr != "" {
				reason += ": " + lastErr
			}
			errs = append(errs, fmt.Errorf("consumer %q not ready: %s", c.cfg.Name, reason))
		case s.ch.IsClosed():
			errs = append(errs, fmt.Errorf("consumer %q not ready: channel closed", c.cfg.Name))
		}
	}
	return errors.Join(errs...)
}
