package consumers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// consumer is one managed consumer. A single goroutine (run) owns the
// connection and the subscriptions and performs every state change (connect,
// pause, resume, prefetch switch, recovery), so those never race each other;
// Manager methods talk to it through cmds. The hot path (dispatch, handle)
// only touches atomics, the limiter and its own subscription.
type consumer struct {
	cfg          Config
	handler      HandlerFunc
	batchHandler BatchHandlerFunc // set when cfg.BatchSize > 1
	logger       *slog.Logger
	amqpURL      string
	opts         Options
	pub          *publisher // retries and dead letters; nil without Config.Retry
	brk          *breaker   // nil without Config.CircuitBreaker
	pool         *connPool  // nil: the consumer dials its own connection
	watch        *watchdog  // enforces HandlerTimeout; nil without one
	thr          *throttle  // always present; its knobs may be off

	lim      *limiter
	prefetch atomic.Int64 // desired prefetch
	applied  atomic.Int64 // prefetch of the live subscription, 0 when none
	// lastApplied is the prefetch of the latest subscription, kept while
	// there is none (paused, reconnecting): a pause changes nothing pending.
	lastApplied atomic.Int64
	paused      atomic.Bool
	live        atomic.Pointer[subscription]
	tagSeq      atomic.Uint64

	// ctlMu serialises Update/Pause/Resume with each other and with the start
	// of the run loop, so a change made before Run is never lost.
	ctlMu       sync.Mutex
	loopStarted bool
	cmds        chan command
	loopDone    chan struct{}

	stateMu sync.Mutex
	state   string
	lastErr string

	// workCtx is the handlers' context. It is not derived from Run's context:
	// in-flight work must be able to finish after Run's context ended, until
	// the shutdown timeout cancels it.
	workCtx    context.Context
	cancelWork context.CancelFunc

	subsMu   sync.Mutex
	subs     map[*subscription]struct{} // every subscription not yet closed
	sessions map[*session]struct{}      // every connection not yet closed

	stats      stats
	types      typeTable
	slow       slowBuffer
	slowLog    *logLimiter
	failureLog *logLimiter
}

// session is the consumer's use of one AMQP connection: its own, or a
// lease on a pooled one shared with other consumers.
type session struct {
	conn   *amqp.Connection
	closed chan *amqp.Error
	subs   sync.WaitGroup // subscriptions still open on this connection
	lease  *pooledConn    // nil: the connection is the consumer's own
	pool   *connPool
	once   sync.Once
}

// close ends the session: closes the consumer's own connection, or returns
// the lease (the pooled connection closes with its last lease).
func (s *session) close() error {
	var err error
	s.once.Do(func() {
		if s.lease != nil {
			s.pool.release(s.lease)
			return
		}
		err = s.conn.Close()
	})
	return err
}

// subscription is one channel with one basic.consume on it. Its deliveries
// are acked or nacked only through their own Acknowledger, i.e. on this
// channel, even after a newer subscription replaced it.
type subscription struct {
	sess       *session
	ch         *amqp.Channel
	tag        string
	prefetch   int
	deliveries <-chan amqp.Delivery
	chClosed   chan *amqp.Error
	cancelled  chan string // basic.cancel from the broker (queue deleted)

	handlers     sync.WaitGroup // handlers running for this subscription
	dispatchDone chan struct{}  // closed when its last worker returned
	wmu          sync.Mutex     // guards workers and workersEnded
	workers      atomic.Int64   // worker goroutines (workers.go); written under wmu
	workersEnded bool           // no worker may start any more
	draining     chan struct{}  // closed: requeue deliveries not yet started
	drainOnce    sync.Once
	retireOnce   sync.Once

	batchMu     sync.Mutex
	openBatches map[uint64]struct{} // first delivery tag of each unsettled batch
}

func (s *subscription) requeueRest() { s.drainOnce.Do(func() { close(s.draining) }) }

type cmdKind int

const (
	cmdPause cmdKind = iota
	cmdResume
	cmdPrefetch
)

type command struct {
	kind  cmdKind
	reply chan error // buffered(1): the loop never blocks on it
}

func newConsumer(cfg Config, h HandlerFunc, amqpURL string, opts Options, pub *publisher, logger *slog.Logger) *consumer {
	c := &consumer{
		cfg:        cfg,
		pub:        pub,
		handler:    h,
		logger:     logger,
		amqpURL:    amqpURL,
		opts:       opts,
		lim:        newLimiter(cfg.MaxConcurrentMessages, cfg.MaxConcurrency),
		cmds:       make(chan command),
		loopDone:   make(chan struct{}),
		state:      StateStarting,
		subs:       make(map[*subscription]struct{}),
		sessions:   make(map[*session]struct{}),
		slowLog:    newLogLimiter(10*time.Second, 1),
		failureLog: newLogLimiter(time.Second, 5),
	}
	c.prefetch.Store(int64(cfg.PrefetchCount))
	if cfg.CircuitBreaker != nil {
		c.brk = newBreaker(*cfg.CircuitBreaker)
	}
	var tc ThrottleConfig
	if cfg.Throttle != nil {
		tc = *cfg.Throttle
	}
	c.thr = newThrottle(tc, cfg.MaxConcurrency)
	if cfg.HandlerTimeout > 0 && cfg.BatchSize <= 1 {
		c.watch = newWatchdog(cfg.HandlerTimeout, cfg.MaxConcurrency)
	}
	c.workCtx, c.cancelWork = context.WithCancel(context.Background())
	return c
}

func (c *consumer) setState(state string, err error) {
	c.stateMu.Lock()
	c.state = state
	if err != nil {
		c.lastErr = err.Error()
	} else if state == StateRunning {
		c.lastErr = ""
	}
	c.stateMu.Unlock()
}

func (c *consumer) setLastErr(err error) {
	c.stateMu.Lock()
	c.lastErr = err.Error()
	c.stateMu.Unlock()
}

func (c *consumer) getState() (string, string) {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	return c.state, c.lastErr
}

func (c *consumer) status(now time.Time) Status {
	state, lastErr := c.getState()
	q, e2e := c.stats.recentQuantiles()
	var circuit string
	var opened, halfOpened, closed uint64
	if c.brk != nil {
		circuit = c.brk.name()
		opened, halfOpened, closed = c.brk.opened.Load(), c.brk.halfOpened.Load(), c.brk.closed.Load()
	}
	thr := c.thr.config()
	return Status{
		BatchSize:             c.cfg.BatchSize,
		ThrottleMaxConcurrent: thr.MaxConcurrent,
		ThrottleDelayMs:       float64(thr.DelayBetweenCalls) / 1e6,
		Circuit:               circuit,
		CircuitOpened:         opened,
		CircuitHalfOpened:     halfOpened,
		CircuitClosed:         closed,
		Name:                  c.cfg.Name,
		Queue:                 c.cfg.Queue,
		Vhost:                 c.cfg.Vhost,
		State:                 state,
		Concurrency:           c.lim.current(),
		Prefetch:              int(c.prefetch.Load()),
		AppliedPrefetch:       int(c.applied.Load()),
		PrefetchPending:       c.prefetchPending(),
		MaxConcurrency:        c.cfg.MaxConcurrency,
		MaxPrefetch:           c.cfg.MaxPrefetch,
		InFlight:              c.stats.inFlight.Load(),
		Processed:             c.stats.processed.Load(),
		Failed:                c.stats.failed.Load(),
		Slow:                  c.stats.slow.Load(),
		Retried:               c.stats.retried.Load(),
		DeadLettered:          c.stats.deadLettered.Load(),
		StaleAcks:             c.stats.staleAcks.Load(),
		Rate:                  c.stats.currentRate(now),
		LatencyP50Ms:          q[0],
		LatencyP95Ms:          q[1],
		LatencyP99Ms:          q[2],
		LastError:             lastErr,
		E2EP50Ms:              e2e[0],
		E2EP95Ms:              e2e[1],
		E2EP99Ms:              e2e[2],
	}
}

// control runs a command on the loop if it is running and waits for its
// answer. before runs first, under the same lock (it stores desired values
// the command acts on). Before the loop started or after it ended, direct
// runs instead: the desired values are all the loop reads when it starts.
func (c *consumer) control(ctx context.Context, kind cmdKind, before, direct func()) error {
	c.ctlMu.Lock()
	defer c.ctlMu.Unlock()
	if before != nil {
		before()
	}
	if !c.loopStarted {
		direct()
		return nil
	}
	cmd := command{kind: kind, reply: make(chan error, 1)}
	select {
	case c.cmds <- cmd:
	case <-c.loopDone:
		direct()
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for consumer %q: %w", c.cfg.Name, ctx.Err())
	}
	select {
	case err := <-cmd.reply:
		return err
	case <-ctx.Done():
		return fmt.Errorf("waiting for consumer %q: %w", c.cfg.Name, ctx.Err())
	}
}

// run owns the consumer's connection until ctx ends, then stops intake
// (basic.cancel) and returns; draining and closing are the Manager's next
// shutdown steps.
func (c *consumer) run(ctx context.Context) {
	defer close(c.loopDone)
	c.ctlMu.Lock()
	c.loopStarted = true
	c.ctlMu.Unlock()

	var (
		sess     *session
		sub      *subscription
		wantWait bool // back off before the next connect attempt
		bo       = c.reconnectBackoff()

		brkSignal <-chan struct{}
		coolDown  = time.NewTimer(time.Hour) // armed when the circuit opens
		coolC     <-chan time.Time
	)
	coolDown.Stop()
	defer coolDown.Stop()
	if c.brk != nil {
		brkSignal = c.brk.signal
	}
	if c.paused.Load() {
		c.setState(StatePaused, nil)
	}
	for {
		if sub == nil && !c.paused.Load() && !c.circuitOpen() {
			if wantWait {
				wait := bo.next()
				c.logger.Info("reconnecting after backoff", "wait", wait)
				if !c.sleepServingCommands(ctx, wait) {
					c.stopIntake(nil)
					return
				}
				if c.paused.Load() || c.circuitOpen() {
					continue
				}
			}
			var err error
			sess, sub, err = c.connect(sess)
			if err != nil {
				c.connectFailed(err)
				wantWait = true
				continue
			}
			wantWait = false
			bo.reset()
			c.setState(StateRunning, nil)
		}

		var subDone <-chan struct{}
		if sub != nil {
			subDone = sub.dispatchDone
		}
		var connClosed <-chan *amqp.Error
		if sess != nil {
			connClosed = sess.closed
		}
		select {
		case <-ctx.Done():
			c.stopIntake(sub)
			return
		case cmd := <-c.cmds:
			var err error
			sess, sub, err = c.apply(cmd, sess, sub)
			if errors.Is(err, errNeedReconnect) {
				wantWait = true
				err = nil
			}
			cmd.reply <- err
		case <-subDone:
			// The deliveries channel closed without our basic.cancel: the
			// channel or connection died, or the broker cancelled us.
			if brokerCancelled(sub) {
				// Broker-side cancel (queue deleted): the connection is
				// fine, keep it; only this subscription is gone.
				c.logger.Warn("consumer cancelled by the broker; waiting for the queue to exist again")
				c.retire(sub, true)
				if !c.paused.Load() {
					c.setState(StateCancelled, fmt.Errorf("queue missing: consumer cancelled by the broker (queue %q deleted?)", c.cfg.Queue))
				}
				sub, wantWait = nil, true
			} else {
				c.lost(sess, sub, errors.New("deliveries channel closed unexpectedly"))
				sess, sub, wantWait = nil, nil, true
			}
		case <-brkSignal:
			sess, sub = c.breakerChanged(sess, sub)
			if c.circuitOpen() {
				coolDown.Reset(c.brk.cfg.CoolDown)
				coolC = coolDown.C
			}
		case <-coolC:
			coolC = nil
			c.brk.halfOpen()
			c.logger.Info("circuit half-open; letting test messages through", "test_messages", c.brk.cfg.HalfOpenMax)
			wantWait = false // subscribe at once, at the top of the loop
		case amqpErr, ok := <-connClosed:
			var err error = amqpErr
			if !ok || amqpErr == nil {
				err = errors.New("connection closed")
			}
			c.lost(sess, sub, fmt.Errorf("connection closed: %w", err))
			sess, sub, wantWait = nil, nil, true
		}
	}
}

// circuitOpen reports whether the breaker holds intake stopped.
func (c *consumer) circuitOpen() bool {
	return c.brk != nil && c.brk.state.Load() == brkOpen
}

// effectivePrefetch is the prefetch to subscribe with: the desired one, or
// the breaker's test-message limit while half-open.
func (c *consumer) effectivePrefetch() int {
	p := int(c.prefetch.Load())
	if c.brk != nil && c.brk.state.Load() == brkHalfOpen {
		p = min(p, c.brk.cfg.HalfOpenMax)
	}
	return p
}

// breakerChanged acts on a breaker transition on the loop: stop intake
// when the circuit opened, restore the normal prefetch when it closed.
func (c *consumer) breakerChanged(sess *session, sub *subscription) (*session, *subscription) {
	switch c.brk.state.Load() {
	case brkOpen:
		if sub != nil {
			c.retire(sub, true)
			sub = nil
		}
		if !c.paused.Load() {
			c.setState(StateCircuitOpen, fmt.Errorf("circuit open after %d consecutive failures; retrying in %s",
				c.brk.cfg.FailureThreshold, c.brk.cfg.CoolDown))
		}
		c.logger.Warn("circuit opened; intake stopped", "cool_down", c.brk.cfg.CoolDown)
	case brkClosed:
		c.logger.Info("circuit closed")
		if sub != nil {
			var err error
			sess, sub, err = c.apply(command{kind: cmdPrefetch}, sess, sub)
			if err != nil {
				c.logger.Warn("restoring prefetch after the circuit closed failed", "err", err)
			}
			c.setState(StateRunning, nil)
		}
	}
	return sess, sub
}

// brokerCancelled reports whether the broker sent basic.cancel for s.
// amqp091 hands the cancel over before it closes the deliveries channel,
// and closes the notification channel (ok false) when the channel dies.
func brokerCancelled(s *subscription) bool {
	select {
	case _, ok := <-s.cancelled:
		return ok
	default:
		return false
	}
}

// reconnectBackoff paces redials: from initial_retry_delay growing by
// retry_multiplier when the consumer has a retry policy, else from the
// Manager's minimum doubling; always capped at ReconnectMaxBackoff and
// jittered.
func (c *consumer) reconnectBackoff() backoff {
	b := backoff{min: c.opts.ReconnectMinBackoff, max: c.opts.ReconnectMaxBackoff, factor: 2}
	if r := c.cfg.Retry; r != nil {
		b.min, b.factor = min(r.InitialDelay, b.max), r.Multiplier
	}
	return b
}

// connectFailed records why a (re)connect failed: a missing queue is
// "cancelled" (it will not come back by redialing alone), anything else is
// "reconnecting".
func (c *consumer) connectFailed(err error) {
	if c.paused.Load() {
		c.setLastErr(err)
		return
	}
	if isAMQPCode(err, amqp.NotFound) {
		c.logger.Warn("queue missing; retrying", "err", err)
		c.setState(StateCancelled, fmt.Errorf("queue missing: %w", err))
		return
	}
	c.logger.Warn("connecting consumer failed", "err", err)
	c.setState(StateReconnecting, err)
}

// errNeedReconnect tells the loop that apply left it without a subscription
// and the next connect should back off first.
var errNeedReconnect = errors.New("reconnect needed")

// sleepServingCommands waits d, answering commands meanwhile so the API does
// not hang while the broker is down. It returns false when ctx ended.
func (c *consumer) sleepServingCommands(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		case cmd := <-c.cmds:
			// Nothing is subscribed: pause and prefetch only change the
			// desired values, which the next connect reads.
			switch cmd.kind {
			case cmdPause:
				c.paused.Store(true)
				c.setState(StatePaused, nil)
			case cmdResume:
				c.paused.Store(false)
				c.setState(StateReconnecting, nil)
			}
			cmd.reply <- nil
			if cmd.kind == cmdPause {
				return true
			}
		}
	}
}

// apply runs one command on the loop.
func (c *consumer) apply(cmd command, sess *session, sub *subscription) (*session, *subscription, error) {
	switch cmd.kind {
	case cmdPause:
		c.paused.Store(true)
		if sub != nil {
			c.retire(sub, true)
			sub = nil
		}
		c.setState(StatePaused, nil)
		return sess, sub, nil
	case cmdResume:
		c.paused.Store(false)
		if sub != nil {
			return sess, sub, nil
		}
		if c.circuitOpen() {
			// The cool-down timer subscribes again.
			c.setState(StateCircuitOpen, nil)
			return sess, sub, nil
		}
		var err error
		sess, sub, err = c.connect(sess)
		if err != nil {
			c.connectFailed(err)
			return sess, nil, errNeedReconnect
		}
		c.setState(StateRunning, nil)
		c.logger.Info("consumer resumed")
		return sess, sub, nil
	case cmdPrefetch:
		want := c.effectivePrefetch()
		if sub == nil || sub.prefetch == want {
			return sess, sub, nil // applied by the next subscribe
		}
		// basic.qos (global=false) only binds consumers created after it, so
		// the new prefetch needs a new consumer: subscribe on a new channel
		// first, then cancel the old one. The old dispatcher keeps handling
		// what was already delivered to it and acks it on the old channel;
		// the old channel closes once that work is done. Nothing is
		// requeued, so nothing is handled twice.
		next, err := c.subscribe(sess, want)
		if err != nil {
			c.setLastErr(err)
			return sess, sub, fmt.Errorf("re-subscribing with prefetch %d (still %d): %w", want, sub.prefetch, err)
		}
		c.logger.Info("prefetch changed", "prefetch", want, "previous", sub.prefetch, "consumer_tag", next.tag)
		c.retire(sub, false)
		return sess, next, nil
	}
	return sess, sub, fmt.Errorf("unknown command %d", cmd.kind)
}

// connect (re)uses sess if its connection is still open, otherwise dials, and
// subscribes with the desired prefetch.
func (c *consumer) connect(sess *session) (*session, *subscription, error) {
	if sess == nil || sess.conn.IsClosed() {
		if sess != nil {
			// Dead and without subscriptions (connect only runs with none).
			c.subsMu.Lock()
			delete(c.sessions, sess)
			c.subsMu.Unlock()
			_ = sess.close()
		}
		if c.pool != nil {
			pc, err := c.pool.acquire()
			if err != nil {
				return nil, nil, err
			}
			sess = &session{conn: pc.conn, closed: pc.conn.NotifyClose(make(chan *amqp.Error, 1)), lease: pc, pool: c.pool}
		} else {
			conn, err := amqp.DialConfig(c.amqpURL, dialConfig(c.cfg.Vhost, c.cfg.Name, c.opts.Heartbeat))
			if err != nil {
				return nil, nil, fmt.Errorf("connecting to vhost %q: %w", c.cfg.Vhost, err)
			}
			sess = &session{conn: conn, closed: conn.NotifyClose(make(chan *amqp.Error, 1))}
		}
		c.subsMu.Lock()
		c.sessions[sess] = struct{}{}
		c.subsMu.Unlock()
	}
	if c.cfg.Declare {
		if err := c.declare(sess.conn); err != nil {
			return sess, nil, err
		}
	}
	sub, err := c.subscribe(sess, c.effectivePrefetch())
	if err != nil {
		return sess, nil, err
	}
	return sess, sub, nil
}

// declare creates the queue (durable) if it does not exist. The passive
// declare runs on a throwaway channel: an existing queue declared with other
// arguments (TTL, max length, ...) must not make us fail with 406, and a
// missing one closes that channel with 404.
func (c *consumer) declare(conn *amqp.Connection) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("opening channel to check queue %q: %w", c.cfg.Queue, err)
	}
	_, err = ch.QueueDeclarePassive(c.cfg.Queue, true, false, false, false, nil)
	_ = ch.Close()
	if err == nil {
		return nil
	}
	if !isAMQPCode(err, amqp.NotFound) {
		return fmt.Errorf("checking queue %q: %w", c.cfg.Queue, err)
	}
	ch, err = conn.Channel()
	if err != nil {
		return fmt.Errorf("opening channel to declare queue %q: %w", c.cfg.Queue, err)
	}
	defer func() { _ = ch.Close() }()
	if _, err := ch.QueueDeclare(c.cfg.Queue, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declaring queue %q: %w", c.cfg.Queue, err)
	}
	c.logger.Info("queue declared")
	return nil
}

// consumerTagMaxName keeps consumer tags within AMQP's 255-byte shortstr.
const consumerTagMaxName = 200

func (c *consumer) subscribe(sess *session, prefetch int) (*subscription, error) {
	ch, err := sess.conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("opening channel: %w", err)
	}
	if err := ch.Qos(prefetch, 0, false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("setting prefetch %d: %w", prefetch, err)
	}
	name := c.cfg.Name
	if len(name) > consumerTagMaxName {
		name = name[:consumerTagMaxName]
	}
	tag := fmt.Sprintf("warren-%s-%d", name, c.tagSeq.Add(1))
	deliveries, err := ch.Consume(c.cfg.Queue, tag, false, false, false, false, nil)
	if err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("consuming from queue %q: %w", c.cfg.Queue, err)
	}
	s := &subscription{
		sess:         sess,
		ch:           ch,
		tag:          tag,
		prefetch:     prefetch,
		deliveries:   deliveries,
		chClosed:     ch.NotifyClose(make(chan *amqp.Error, 1)),
		cancelled:    ch.NotifyCancel(make(chan string, 1)),
		dispatchDone: make(chan struct{}),
		draining:     make(chan struct{}),
	}
	if c.batchHandler != nil {
		s.openBatches = make(map[uint64]struct{})
	}
	sess.subs.Add(1)
	c.subsMu.Lock()
	c.subs[s] = struct{}{}
	c.subsMu.Unlock()
	if c.batchHandler != nil {
		go c.dispatchBatches(s)
	} else {
		go c.dispatch(s)
	}
	c.applied.Store(int64(prefetch))
	c.lastApplied.Store(int64(prefetch))
	c.live.Store(s)
	return s, nil
}

// retire ends a subscription that is no longer the live one: cancel the
// broker-side consumer (waiting for cancel-ok, so nothing new arrives), let
// the dispatcher finish what was delivered (handling it, or requeueing what
// has not started when requeue is set), then close the channel once its
// in-flight work is acked.
func (c *consumer) retire(s *subscription, requeue bool) {
	if c.live.CompareAndSwap(s, nil) {
		c.applied.Store(0)
	}
	if requeue {
		s.requeueRest()
	}
	if !s.ch.IsClosed() {
		if err := s.ch.Cancel(s.tag, false); err != nil {
			// Without cancel-ok we cannot know what else is coming; closing
			// the channel ends the deliveries and the broker requeues
			// whatever is unacked.
			c.logger.Warn("cancelling consumer failed; closing its channel", "consumer_tag", s.tag, "err", err)
			_ = s.ch.Close()
		}
	}
	c.closeWhenDone(s)
}

// closeWhenDone closes the subscription's channel once its dispatcher and
// handlers are done, and the session's connection once it is retired and
// has no open subscription left (see lost).
func (c *consumer) closeWhenDone(s *subscription) {
	s.retireOnce.Do(func() {
		go func() {
			<-s.dispatchDone
			s.handlers.Wait()
			_ = s.ch.Close()
			c.subsMu.Lock()
			delete(c.subs, s)
			c.subsMu.Unlock()
			s.sess.subs.Done()
		}()
	})
}

// lost handles an unexpected end of the subscription or connection. In-flight
// handlers may still ack if their channel survived (e.g. the broker only
// cancelled the consumer); the old connection closes once they are done.
func (c *consumer) lost(sess *session, sub *subscription, err error) {
	if c.paused.Load() {
		// Nothing to reconnect while paused; resume dials again.
		c.logger.Info("connection of paused consumer closed", "err", err)
		c.setLastErr(err)
	} else {
		c.logger.Warn("consumer lost its subscription; reconnecting", "err", err)
		c.setState(StateReconnecting, err)
	}
	if sub != nil {
		c.retire(sub, true)
	}
	if sess != nil {
		go func() {
			sess.subs.Wait()
			_ = sess.close()
			c.subsMu.Lock()
			delete(c.sessions, sess)
			c.subsMu.Unlock()
		}()
	}
}

// stopIntake is the first shutdown step: cancel the live consumer and make
// every subscription requeue what it has not started.
func (c *consumer) stopIntake(sub *subscription) {
	if sub != nil {
		c.retire(sub, true)
	}
	c.subsMu.Lock()
	for s := range c.subs {
		s.requeueRest()
	}
	c.subsMu.Unlock()
}

// drain waits until every handler has finished or the deadline passed; then
// it cancels the handlers' context (they nack with requeue) and gives them
// grace to return. It reports whether everything finished.
func (c *consumer) drain(deadline time.Time, grace time.Duration) bool {
	c.subsMu.Lock()
	subs := make([]*subscription, 0, len(c.subs))
	for s := range c.subs {
		subs = append(subs, s)
	}
	c.subsMu.Unlock()
	done := make(chan struct{})
	go func() {
		for _, s := range subs {
			<-s.dispatchDone // no handler starts after this
			s.handlers.Wait()
		}
		close(done)
	}()
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
	}
	c.logger.Warn("shutdown timeout reached; cancelling in-flight handlers", "in_flight", c.stats.inFlight.Load())
	c.cancelWork()
	t.Reset(grace)
	select {
	case <-done:
		return true
	case <-t.C:
		c.logger.Error("handlers ignored cancellation; closing the connection requeues their messages",
			"in_flight", c.stats.inFlight.Load())
		return false
	}
}

// closeAll is the last shutdown step: close every connection (and so every
// channel). The broker requeues anything still unacked.
func (c *consumer) closeAll() {
	c.cancelWork()
	c.subsMu.Lock()
	sessions := make([]*session, 0, len(c.sessions))
	for s := range c.sessions {
		sessions = append(sessions, s)
	}
	c.subsMu.Unlock()
	for _, s := range sessions {
		if err := s.close(); err != nil && !errors.Is(err, amqp.ErrClosed) {
			c.logger.Warn("closing connection", "err", err)
		}
	}
	c.setState(StateStopped, nil)
}

// requeueBuffered nacks (requeue) what the client already received but no
// handler started, until the deliveries channel closes after basic.cancel.
func (c *consumer) requeueBuffered(s *subscription) {
	n := 0
	for d := range s.deliveries {
		if err := d.Nack(false, true); err != nil {
			c.logger.Debug("requeueing unstarted delivery failed", "err", err)
		}
		n++
	}
	if n > 0 {
		c.logger.Debug("requeued unstarted deliveries", "count", n, "consumer_tag", s.tag)
	}
}

func (c *consumer) handle(s *subscription, d amqp.Delivery, throttled bool) {
	defer s.handlers.Done()
	start := time.Now()
	var o outcome
	if c.watch != nil {
		o = c.handleWatched(s, &d)
	} else {
		o = c.settle(s, &d, c.invoke(c.workCtx, &d))
	}
	elapsed := time.Since(start)
	if throttled {
		c.thr.lim.release()
	}
	if !c.opts.NoObservation {
		c.observeMessage(&d, start, elapsed, o)
	}
	c.stats.inFlight.Add(-1)
	c.lim.release()
}

// settle acks, or fails the message according to the retry policy. Acks and
// nacks go through d.Acknowledger, the channel that delivered d.
func (c *consumer) settle(s *subscription, d *amqp.Delivery, err error) outcome {
	if err == nil {
		if ackErr := d.Ack(false); ackErr != nil {
			c.staleAck(s, ackErr)
			return outNone
		}
		c.stats.processed.Add(1)
		if c.brk != nil {
			c.brk.success()
		}
		return outProcessed
	}
	if c.workCtx.Err() != nil {
		// Aborted by shutdown, not a failure of the message.
		if nackErr := d.Nack(false, true); nackErr != nil {
			c.staleAck(s, nackErr)
		}
		c.logger.Debug("handler aborted by shutdown; requeued", "err", err)
		return outNone
	}
	c.stats.failed.Add(1)
	c.setLastErr(err)
	if c.brk != nil && !errors.Is(err, ErrMalformed) {
		// A malformed message says nothing about the downstream's health.
		c.brk.failure()
	}
	if c.cfg.Retry == nil {
		if nackErr := d.Nack(false, true); nackErr != nil {
			c.staleAck(s, nackErr)
		}
		if ok, dropped := c.failureLog.allow(); ok {
			c.logger.Warn("handler failed; message requeued", "err", err,
				"message_id", d.MessageId, "redelivered", d.Redelivered, "suppressed", dropped)
		}
		return outFailed
	}
	return c.failOver(s, d, err)
}

// staleAck records an ack or nack that could not be sent because the
// delivering channel is gone. amqp091 acks on the delivery's own channel,
// so it is never sent on a newer one; the broker requeued the message when
// the channel died and will deliver it again.
func (c *consumer) staleAck(s *subscription, err error) {
	c.stats.staleAcks.Add(1)
	if ok, dropped := c.failureLog.allow(); ok {
		c.logger.Info("ack for a delivery of a closed channel dropped; the broker redelivers it",
			"err", err, "consumer_tag", s.tag, "suppressed", dropped)
	}
}

// invoke decodes the body and runs the handler; a panic becomes an error so
// it fails the message, not the worker.
func (c *consumer) invoke(ctx context.Context, d *amqp.Delivery) (err error) {
	body, encoding, err := decodeBody(d)
	if err != nil {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
			if ok, _ := c.failureLog.allow(); ok {
				c.logger.Error("handler panicked", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			}
		}
	}()
	return c.handler(ctx, toDelivery(d, body, encoding))
}

// toDelivery is the handler's view of d with the decoded body.
func toDelivery(d *amqp.Delivery, body []byte, encoding string) Delivery {
	return Delivery{
		Body:            body,
		Headers:         d.Headers,
		ContentType:     d.ContentType,
		ContentEncoding: encoding,
		MessageID:       d.MessageId,
		CorrelationID:   d.CorrelationId,
		Type:            d.Type,
		Exchange:        d.Exchange,
		RoutingKey:      d.RoutingKey,
		Redelivered:     d.Redelivered,
		Timestamp:       d.Timestamp,
	}
}

// prefetchPending reports whether the desired prefetch is not yet the one
// the broker enforces: the live subscription has another, or, with none
// live, the next subscription will bring a changed value.
func (c *consumer) prefetchPending() bool {
	want := c.prefetch.Load()
	if a := c.applied.Load(); a != 0 {
		return a != want
	}
	return c.lastApplied.Load() != want
}
