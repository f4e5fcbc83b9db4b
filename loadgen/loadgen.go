// Package loadgen publishes paced messages in phases (duration x arrival
// rate) so an operator, a benchmark or a test can feed a queue at a known
// rate and see what the broker confirmed.
package loadgen

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// PublishedAtHeader carries the publish time in Unix milliseconds so a
// consumer can report end-to-end latency.
const PublishedAtHeader = "x-warren-published-at"

// MessageTypeHeader carries the message type, Mmate style; it is also sent as
// the AMQP type property.
const MessageTypeHeader = "x-message-type"

// Config describes one run.
type Config struct {
	URL string // AMQP URL, vhost included

	// Target: Queue (through the default exchange), or Exchange with RoutingKey.
	Queue      string
	Exchange   string
	RoutingKey string

	// Phases run in order. When empty, Rate and Duration form the single phase.
	Phases   []Phase
	Rate     float64       // messages per second; 0 = as fast as confirms allow
	Duration time.Duration // how long to publish; 0 with Count > 0 = until Count
	Count    int64         // stop after this many messages in all; 0 = no limit

	Size    int // body size in bytes, when SizeMax is 0
	SizeMax int // when > Size, each body size is drawn uniformly from [Size, SizeMax]

	Types      []MessageType // sent as x-message-type and the AMQP type; none = no type
	Gzip       bool          // gzip bodies, with content-encoding gzip
	Transient  bool          // delivery mode 1 instead of persistent
	NoConfirms bool          // publish without publisher confirms
	Publishers int           // parallel publishers (one connection each) sharing the rate; 0 = 1
	Declare    bool          // declare Queue durable if missing

	// MaxOutstanding bounds unconfirmed messages (in all) so a slow broker
	// applies back-pressure instead of growing memory.
	MaxOutstanding int
	// Progress, if set, is called about once a second with the running totals.
	Progress func(Report)
}

// PhaseReport is one phase's totals.
type PhaseReport struct {
	Phase      Phase
	Sent       int64
	Confirmed  int64
	Nacked     int64
	Errors     int64 // unroutable (returned) or failed publishes
	Elapsed    time.Duration
	ConfirmP50 time.Duration // publish -> confirm; 0 without confirms
	ConfirmP99 time.Duration
	confirms   bool
}

// Rate is the achieved rate: confirmed messages per second, or sent ones
// when confirms are off.
func (p PhaseReport) Rate() float64 {
	return rate(p.Sent, p.Confirmed, p.confirms, p.Elapsed)
}

// Report is a run's totals; Phases holds the phases started so far.
type Report struct {
	Sent       int64
	Confirmed  int64
	Nacked     int64
	Errors     int64
	Elapsed    time.Duration
	ConfirmP50 time.Duration
	ConfirmP99 time.Duration
	Confirms   bool // false: Confirmed and the latencies are not measured
	Phases     []PhaseReport
}

// Rate is the achieved confirmed-message rate (sent, without confirms).
func (r Report) Rate() float64 {
	return rate(r.Sent, r.Confirmed, r.Confirms, r.Elapsed)
}

func rate(sent, confirmed int64, confirms bool, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	if confirms {
		return float64(confirmed) / elapsed.Seconds()
	}
	return float64(sent) / elapsed.Seconds()
}

func (c Config) phases() []Phase {
	if len(c.Phases) > 0 {
		return c.Phases
	}
	return []Phase{{Duration: c.Duration, Rate: c.Rate}}
}

// Validate reports the first bad field by its flag name.
func (c Config) Validate() error {
	switch {
	case c.Queue == "" && c.Exchange == "":
		return errors.New("--queue is required (or --exchange with --routing-key)")
	case c.Queue != "" && c.Exchange != "":
		return fmt.Errorf("--queue %q and --exchange %q cannot be combined: give one target", c.Queue, c.Exchange)
	case c.Queue != "" && c.RoutingKey != "":
		return fmt.Errorf("--routing-key %q needs --exchange (--queue publishes with the queue name as routing key)", c.RoutingKey)
	case c.Declare && c.Queue == "":
		return errors.New("--declare declares --queue; declare the exchange and its bindings yourself")
	case len(c.Phases) > 0 && (c.Rate != 0 || c.Duration != 0):
		return errors.New("--phase cannot be combined with --rate or --duration")
	case c.Rate < 0:
		return fmt.Errorf("--rate must not be negative, got %g", c.Rate)
	case c.Duration < 0:
		return fmt.Errorf("--duration must not be negative, got %s", c.Duration)
	case c.Count < 0:
		return fmt.Errorf("--count must not be negative, got %d", c.Count)
	case c.Publishers < 0 || c.Publishers > 1000:
		return fmt.Errorf("--publishers must be between 1 and 1000, got %d", c.Publishers)
	case c.MaxOutstanding < 0:
		return fmt.Errorf("max outstanding must not be negative, got %d", c.MaxOutstanding)
	}
	if c.SizeMax != 0 || c.Size != 0 {
		if err := c.sizes().validate(); err != nil {
			return fmt.Errorf("--size %s: %w", c.sizes(), err)
		}
	}
	for _, t := range c.Types {
		if t.Name == "" || t.Weight < 1 {
			return fmt.Errorf("--type %q:%d: want a name and a positive weight", t.Name, t.Weight)
		}
	}
	phases := c.phases()
	for i, p := range phases {
		switch {
		case p.Rate < 0 || math.IsNaN(p.Rate) || math.IsInf(p.Rate, 0):
			return fmt.Errorf("--phase %d (%s): the rate must be a non-negative number", i+1, p)
		case p.Duration < 0:
			return fmt.Errorf("--phase %d (%s): the duration must be positive", i+1, p)
		case p.Duration == 0 && c.Count == 0:
			if len(phases) == 1 {
				return errors.New("give --duration or --count (or both)")
			}
			return fmt.Errorf("--phase %d has no duration", i+1)
		case p.Duration == 0 && i < len(phases)-1:
			return fmt.Errorf("--phase %d has no duration but is not the last phase", i+1)
		}
	}
	return nil
}

func (c Config) sizes() SizeRange {
	if c.SizeMax > c.Size {
		return SizeRange{Min: c.Size, Max: c.SizeMax}
	}
	if c.SizeMax != 0 && c.SizeMax < c.Size {
		return SizeRange{Min: c.Size, Max: c.SizeMax} // invalid; Validate says so
	}
	return SizeRange{Min: c.Size, Max: c.Size}
}

func (c Config) routingKey() string {
	if c.Queue != "" {
		return c.Queue
	}
	return c.RoutingKey
}

// phaseStats accumulates one phase's counters; publishers and confirm
// readers update it concurrently.
type phaseStats struct {
	phase                           Phase
	start                           time.Time // scheduled start (or actual, if later)
	lastSend                        atomic.Int64
	sent, confirmed, nacked, errors atomic.Int64
	latency                         latencyHistogram
}

// ticket is one message's slot in the schedule.
type ticket struct {
	phase int
	seq   int64
	due   time.Time
}

// schedule hands out tickets: message n of a paced phase is due at
// phaseStart + n/rate, measured against the schedule rather than the previous
// send so the rate does not drift, and shared by all publishers so they split
// the rate between them.
type schedule struct {
	mu      sync.Mutex
	phases  []*phaseStats
	count   int64 // 0 = no limit
	cur     int   // current phase
	n       int64 // tickets issued in the current phase
	seq     int64 // tickets issued in all
	firstOf []int64
	stopped bool
}

// lateness is how far past its end a phase that cannot keep up may run
// before its remaining messages are dropped from the schedule. The floor
// keeps a short phase from losing messages to one scheduling hiccup on a
// busy host.
func lateness(d time.Duration) time.Duration {
	return min(max(d/10, 250*time.Millisecond), time.Second)
}

func (s *schedule) next(now time.Time) (ticket, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped || (s.count > 0 && s.seq >= s.count) {
		return ticket{}, false
	}
	for s.cur < len(s.phases) {
		p := s.phases[s.cur]
		d := p.phase.Duration
		end := p.start.Add(d)
		due := now
		if p.phase.Rate > 0 {
			due = p.start.Add(time.Duration(float64(s.n) / p.phase.Rate * float64(time.Second)))
		}
		switch {
		case d > 0 && !due.Before(end): // schedule exhausted
		case d > 0 && now.After(end.Add(lateness(d))): // too far behind: end the phase
		default:
			t := ticket{phase: s.cur, seq: s.seq, due: due}
			s.n++
			s.seq++
			return t, true
		}
		s.cur++
		s.n = 0
		if s.cur < len(s.phases) {
			// The next phase starts on schedule, unless this one overran
			// its allowance: then it starts now rather than bursting to
			// catch up.
			s.phases[s.cur].start = end
			if d == 0 || now.After(end.Add(lateness(d))) {
				s.phases[s.cur].start = now
			}
			s.firstOf = append(s.firstOf, s.seq)
		}
	}
	return ticket{}, false
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// phaseOfSeq maps a message sequence number back to its phase (for returns).
func (s *schedule) phaseOfSeq(seq int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := 0
	for i, first := range s.firstOf {
		if seq >= first {
			p = i
		}
	}
	return p
}

func (s *schedule) stop() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
}

// started reports how many phases have begun.
func (s *schedule) started() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return min(s.cur+1, len(s.phases))
}

// Run publishes the phases until they end, Count is reached or ctx ends,
// then waits (bounded) for outstanding confirms and returns the totals. The
// report is valid even when an error is returned.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	if cfg.MaxOutstanding <= 0 {
		cfg.MaxOutstanding = 1000
	}
	if cfg.Publishers <= 0 {
		cfg.Publishers = 1
	}
	perPublisher := max(cfg.MaxOutstanding/cfg.Publishers, 1)

	pubs := make([]*publisher, 0, cfg.Publishers)
	defer func() {
		for _, p := range pubs {
			p.conn.Close()
		}
	}()
	for i := range cfg.Publishers {
		p, err := dial(cfg, i, perPublisher)
		if err != nil {
			return Report{}, err
		}
		pubs = append(pubs, p)
		if i == 0 && cfg.Declare {
			if _, err := p.ch.QueueDeclare(cfg.Queue, true, false, false, false, nil); err != nil {
				return Report{}, fmt.Errorf("declaring queue %q: %w", cfg.Queue, err)
			}
		}
	}

	phases := cfg.phases()
	sched := &schedule{count: cfg.Count, firstOf: []int64{0}}
	start := time.Now()
	for _, p := range phases {
		sched.phases = append(sched.phases, &phaseStats{phase: p, start: start})
	}
	var stopTime atomic.Int64 // unix nanos when publishing stopped early; 0 = ran to the end
	snapshot := func(final bool) Report {
		return buildReport(sched, !cfg.NoConfirms, start, time.Unix(0, stopTime.Load()), final)
	}

	var progressDone chan struct{}
	var progressWG sync.WaitGroup
	if cfg.Progress != nil {
		progressDone = make(chan struct{})
		progressWG.Go(func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-progressDone:
					return
				case <-t.C:
					cfg.Progress(snapshot(false))
				}
			}
		})
	}

	var wg sync.WaitGroup
	errs := make([]error, len(pubs))
	for i, p := range pubs {
		wg.Go(func() {
			errs[i] = p.run(ctx, cfg, sched)
			if errs[i] != nil || ctx.Err() != nil {
				// One publisher failing ends the run for all, so the
				// report describes a known load.
				if stopTime.CompareAndSwap(0, time.Now().UnixNano()) {
					sched.stop()
				}
			}
		})
	}
	wg.Wait()
	if stopTime.Load() == 0 && cfg.Count > 0 {
		sched.mu.Lock()
		reached := sched.seq >= cfg.Count
		sched.mu.Unlock()
		if reached {
			stopTime.Store(time.Now().UnixNano())
		}
	}
	runErr := errors.Join(errs...)

	// Wait for what is still unconfirmed, bounded, so Ctrl-C still reports.
	wait := time.NewTimer(10 * time.Second)
	defer wait.Stop()
	for _, p := range pubs {
		select {
		case <-p.drained:
		case <-wait.C:
			rep := snapshot(true)
			runErr = errors.Join(runErr, fmt.Errorf("%d messages still unconfirmed after 10s", rep.Sent-rep.Confirmed-rep.Nacked))
			goto done
		}
	}
done:
	if progressDone != nil {
		close(progressDone)
		progressWG.Wait()
	}
	return snapshot(true), runErr
}

func buildReport(s *schedule, confirms bool, start, stoppedAt time.Time, final bool) Report {
	now := time.Now()
	rep := Report{Confirms: confirms}
	overall := &latencyHistogram{}
	n := s.started()
	var last time.Time
	for i := range n {
		p := s.phases[i]
		pr := PhaseReport{
			Phase: p.phase, Sent: p.sent.Load(), Confirmed: p.confirmed.Load(),
			Nacked: p.nacked.Load(), Errors: p.errors.Load(), confirms: confirms,
		}
		if !final && p.start.After(now) {
			break // scheduled but not begun: the previous phase is still on
		}
		// A phase lasts its scheduled window, stretched by late sends and
		// cut short by a stop; a phase without duration lasts to its last
		// send; while running, a phase lasts until now.
		var phaseEnd time.Time
		if d := p.phase.Duration; d > 0 {
			phaseEnd = later(p.start.Add(d), time.Unix(0, p.lastSend.Load()))
		} else {
			phaseEnd = time.Unix(0, p.lastSend.Load())
		}
		if stoppedAt.UnixNano() > 0 && phaseEnd.After(stoppedAt) {
			phaseEnd = stoppedAt
		}
		if !final && (phaseEnd.After(now) || p.phase.Duration == 0) {
			phaseEnd = now
		}
		if phaseEnd.Before(p.start) {
			phaseEnd = p.start
		}
		pr.Elapsed = phaseEnd.Sub(p.start)
		if confirms {
			pr.ConfirmP50 = p.latency.quantile(0.50)
			pr.ConfirmP99 = p.latency.quantile(0.99)
			overall.merge(&p.latency)
		}
		rep.Sent += pr.Sent
		rep.Confirmed += pr.Confirmed
		rep.Nacked += pr.Nacked
		rep.Errors += pr.Errors
		last = later(last, phaseEnd)
		rep.Phases = append(rep.Phases, pr)
	}
	if !last.IsZero() {
		rep.Elapsed = last.Sub(start)
	}
	if confirms {
		rep.ConfirmP50 = overall.quantile(0.50)
		rep.ConfirmP99 = overall.quantile(0.99)
	}
	return rep
}

// publisher is one connection and channel publishing its share.
type publisher struct {
	id      int
	conn    *amqp.Connection
	ch      *amqp.Channel
	pending chan pending // FIFO of unconfirmed messages; its capacity bounds them
	drained chan struct{}
	closed  chan *amqp.Error
	returns chan amqp.Return
}

type pending struct {
	dc    *amqp.DeferredConfirmation
	stats *phaseStats
	sent  time.Time
}

func dial(cfg Config, id, maxPending int) (*publisher, error) {
	conn, err := amqp.DialConfig(cfg.URL, amqp.Config{Properties: amqp.Table{"connection_name": fmt.Sprintf("warren loadgen %d", id+1)}})
	if err != nil {
		return nil, fmt.Errorf("connecting to the broker: %w", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("opening a channel: %w", err)
	}
	if !cfg.NoConfirms {
		if err := ch.Confirm(false); err != nil {
			conn.Close()
			return nil, fmt.Errorf("enabling publisher confirms: %w", err)
		}
	}
	return &publisher{
		id: id, conn: conn, ch: ch,
		pending: make(chan pending, maxPending),
		drained: make(chan struct{}),
		closed:  ch.NotifyClose(make(chan *amqp.Error, 1)),
		// Room for a return per unconfirmed message, so the library never
		// blocks handing one over while the reader waits for a confirm.
		returns: ch.NotifyReturn(make(chan amqp.Return, maxPending+2)),
	}, nil
}

// run publishes tickets until the schedule ends, ctx ends or the channel
// fails; p.drained closes once every sent message is confirmed or nacked.
func (p *publisher) run(ctx context.Context, cfg Config, sched *schedule) error {
	countReturn := func(r amqp.Return) { // unroutable; the broker still confirms these
		if seq, err := strconv.ParseInt(r.MessageId, 10, 64); err == nil {
			sched.phases[sched.phaseOfSeq(seq)].errors.Add(1)
		}
	}
	if cfg.NoConfirms {
		go func() {
			for r := range p.returns {
				countReturn(r)
			}
		}()
	}
	go func() { // confirm reader: confirms arrive in publish order on one channel
		defer close(p.drained)
		for m := range p.pending {
			<-m.dc.Done() // also closed, as a nack, if the channel closes
			// The broker sends a message's basic.return before its ack, so
			// draining returns here counts them before the report can.
		drain:
			for {
				select {
				case r, ok := <-p.returns:
					if !ok {
						break drain
					}
					countReturn(r)
				default:
					break drain
				}
			}
			if m.dc.Acked() {
				m.stats.confirmed.Add(1)
			} else {
				m.stats.nacked.Add(1)
			}
			m.stats.latency.observe(time.Since(m.sent))
		}
	}()
	defer close(p.pending)

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(p.id)))
	sizes := cfg.sizes()
	// Bodies are hex text so gzip has something to compress, as with real
	// JSON payloads; each message is a slice of one random buffer.
	raw := make([]byte, (sizes.Max+1)/2)
	for i := range raw {
		raw[i] = byte(rng.Uint32())
	}
	text := []byte(hex.EncodeToString(raw))[:sizes.Max]
	types := newTypePicker(cfg.Types)
	var gz *gzip.Writer
	var gzBuf bytes.Buffer
	if cfg.Gzip {
		gz, _ = gzip.NewWriterLevel(&gzBuf, gzip.BestSpeed)
	}
	mode := amqp.Persistent
	if cfg.Transient {
		mode = amqp.Transient
	}
	key := cfg.routingKey()

	for {
		t, ok := sched.next(time.Now())
		if !ok {
			return nil
		}
		stats := sched.phases[t.phase]
		if wait := time.Until(t.due); wait > 0 {
			timer := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				return nil
			case e := <-p.closed:
				timer.Stop()
				return fmt.Errorf("publisher %d: channel closed by the broker: %v", p.id+1, e)
			case <-timer.C:
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		body := text[:sizes.pick(rng)]
		msg := amqp.Publishing{
			DeliveryMode: mode,
			ContentType:  "application/octet-stream",
			MessageId:    strconv.FormatInt(t.seq, 10),
			Headers:      amqp.Table{PublishedAtHeader: time.Now().UnixMilli()},
		}
		if typ := types.pick(rng); typ != "" {
			msg.Type = typ
			msg.Headers[MessageTypeHeader] = typ
		}
		if gz != nil {
			gzBuf.Reset()
			gz.Reset(&gzBuf)
			_, _ = gz.Write(body)
			_ = gz.Close()
			body = bytes.Clone(gzBuf.Bytes())
			msg.ContentEncoding = "gzip"
		}
		msg.Body = body
		now := time.Now()
		msg.Timestamp = now
		dc, err := p.ch.PublishWithDeferredConfirmWithContext(ctx, cfg.Exchange, key, true, false, msg)
		if err != nil {
			stats.errors.Add(1)
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("publisher %d: publishing: %w", p.id+1, err)
		}
		stats.sent.Add(1)
		stats.lastSend.Store(now.UnixNano())
		if dc != nil {
			select { // blocks when too many are unconfirmed: back-pressure
			case p.pending <- pending{dc: dc, stats: stats, sent: now}:
			case e := <-p.closed:
				return fmt.Errorf("publisher %d: channel closed by the broker: %v", p.id+1, e)
			}
		}
	}
}
