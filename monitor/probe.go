package monitor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The management API's queue counts are as old as the broker's last
// statistics emission (collect_statistics_interval, 5 s by default), so a
// queue filling fast crosses its threshold up to 5 s before any poll can see
// it. A passive queue.declare over AMQP answers with the queue's ready count
// at that moment; the poller asks it for a bounded set of queues per poll and
// puts the fresh count in place of the management API's.

// ProbeConfig turns on fresh depth reads over AMQP. Zero MaxQueues: off.
type ProbeConfig struct {
	// AMQPURL is the broker to ask (credentials included; never logged).
	// Its vhost is replaced by each probed queue's vhost.
	AMQPURL string
	// MaxQueues bounds the passive declares one poll makes.
	MaxQueues int
	// Pinned queues are probed at every poll (before the others): warren's
	// own consumers' queues and the queues with their own thresholds. An
	// empty Vhost matches the name in every vhost.
	Pinned []QueueRef
	// Timeout bounds the probing of one poll; what is not probed by then
	// keeps the management API's count. Default: 2 s.
	Timeout time.Duration
}

// depthProber is what the poller needs of a prober (a fake in tests).
type depthProber interface {
	refresh(ctx context.Context, qs []QueueSample, th Thresholds) int
	close()
}

// maxProbeVhosts bounds the AMQP connections a prober keeps open (one per vhost).
const maxProbeVhosts = 16

// maxProbeFailures bounds the memory of queues a probe failed on (exclusive
// to another connection, access refused); past it the memory starts over.
const maxProbeFailures = 10_000

// prober reads ready counts with passive declares, one connection and
// channel per vhost, reused from poll to poll.
type prober struct {
	cfg    ProbeConfig
	base   *url.URL
	logger *slog.Logger
	pinned map[QueueRef]bool // cfg.Pinned as a set

	mu       sync.Mutex // one probe round at a time
	conns    map[string]*probeConn
	failed   map[QueueRef]bool // skipped until the memory starts over
	cursor   int               // round-robin position over the unpinned queues
	lastWarn string
}

type probeConn struct {
	conn *amqp.Connection
	ch   *amqp.Channel
}

func newProber(cfg ProbeConfig, logger *slog.Logger) (*prober, error) {
	u, err := url.Parse(cfg.AMQPURL)
	if err != nil {
		return nil, errors.New("probe amqp url: not a valid URL")
	}
	if u.Scheme != "amqp" && u.Scheme != "amqps" || u.Host == "" {
		return nil, fmt.Errorf("probe amqp url %q: want amqp(s)://user:password@host:port/vhost", u.Redacted())
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	pinned := make(map[QueueRef]bool, len(cfg.Pinned))
	for _, r := range cfg.Pinned {
		pinned[r] = true
	}
	return &prober{
		cfg:    cfg,
		pinned: pinned,
		base:   u,
		logger: logger,
		conns:  map[string]*probeConn{},
		failed: map[QueueRef]bool{},
	}, nil
}

// choose picks at most MaxQueues queues of qs to probe: the pinned ones, then
// half of what is left for the queues nearest their warning level, the rest
// round-robin over all queues so every queue gets a fresh count now and then.
// Queues without both a ready and an unacked count are skipped: a fresh
// ready count alone says nothing about the total.
func (p *prober) choose(qs []QueueSample, th Thresholds) []int {
	limit := p.cfg.MaxQueues
	picked := make([]int, 0, min(limit, len(qs)))
	seen := make(map[int]bool, cap(picked))
	usable := func(i int) bool {
		q := qs[i]
		return !seen[i] && q.Ready != nil && q.Unacked != nil && !p.failed[QueueRef{q.Vhost, q.Name}]
	}
	take := func(i int) {
		seen[i] = true
		picked = append(picked, i)
	}
	if len(p.pinned) > 0 {
		for i, q := range qs {
			if len(picked) < limit && (p.pinned[QueueRef{q.Vhost, q.Name}] || p.pinned[QueueRef{"", q.Name}]) && usable(i) {
				take(i)
			}
		}
	}
	// Nearest their warning level, by depth over level.
	type ranked struct {
		i     int
		ratio float64
	}
	var near []ranked
	for i, q := range qs {
		if usable(i) && *q.Ready > 0 {
			near = append(near, ranked{i, float64(*q.Ready+*q.Unacked) / float64(th.For(q.Name).Warning)})
		}
	}
	slices.SortFunc(near, func(a, b ranked) int { return cmp.Compare(b.ratio, a.ratio) })
	nearQuota := len(picked) + (limit-len(picked))/2
	for _, r := range near {
		if len(picked) >= nearQuota {
			break
		}
		take(r.i)
	}
	// Round-robin over the rest, from where the last poll stopped.
	if len(qs) > 0 {
		start := p.cursor % len(qs)
		for k := 0; k < len(qs) && len(picked) < limit; k++ {
			i := (start + k) % len(qs)
			p.cursor = i + 1
			if usable(i) {
				take(i)
			}
		}
	}
	return picked
}

// refresh probes the chosen queues and replaces their Ready and Messages
// (and Status) with the fresh count. It returns how many were refreshed.
func (p *prober) refresh(ctx context.Context, qs []QueueSample, th Thresholds) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.failed) > maxProbeFailures {
		p.failed = map[QueueRef]bool{}
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	n := 0
	var lastErr error
	for _, i := range p.choose(qs, th) {
		if ctx.Err() != nil {
			break
		}
		q := &qs[i]
		ready, err := p.probe(ctx, q.Vhost, q.Name)
		if err != nil {
			lastErr = err
			continue
		}
		fresh := ready + *q.Unacked
		q.Ready = &ready
		q.Messages = &fresh
		q.Status = th.Classify(q.Name, q.Messages)
		// The rates stay the management API's; drain time uses the fresh depth.
		q.TimeToDrainSeconds, q.Growing = drain(q.Ready, q.IngressRate, q.EgressRate)
		n++
	}
	if lastErr != nil && lastErr.Error() != p.lastWarn {
		p.lastWarn = lastErr.Error()
		p.logger.Warn("fresh depth probe failed for some queues; they keep the management API's count", "error", lastErr)
	}
	return n
}

// probe is one passive declare. A queue that is gone (404) only costs the
// channel; one that refuses the probe (exclusive to another connection: 405,
// access refused: 403) is remembered and skipped from then on.
func (p *prober) probe(ctx context.Context, vhost, name string) (int64, error) {
	c, err := p.conn(vhost)
	if err != nil {
		return 0, err
	}
	type result struct {
		q   amqp.Queue
		err error
	}
	done := make(chan result, 1)
	go func() {
		q, err := c.ch.QueueDeclarePassive(name, false, false, false, false, nil)
		done <- result{q, err}
	}()
	select {
	case r := <-done:
		if r.err == nil {
			return int64(r.q.Messages), nil
		}
		// Any error closes the channel; the next probe opens a new one.
		c.ch = nil
		var ae *amqp.Error
		if errors.As(r.err, &ae) && (ae.Code == amqp.ResourceLocked || ae.Code == amqp.AccessRefused) {
			p.failed[QueueRef{vhost, name}] = true
		}
		return 0, fmt.Errorf("probing queue %q in vhost %q: %w", name, vhost, r.err)
	case <-ctx.Done():
		// The broker did not answer in time: drop the connection so a hung
		// one is not reused; the goroutine ends when it closes.
		p.drop(vhost)
		return 0, fmt.Errorf("probing queue %q in vhost %q: %w", name, vhost, ctx.Err())
	}
}

// conn returns the open channel of vhost, dialing or reopening as needed.
func (p *prober) conn(vhost string) (*probeConn, error) {
	c := p.conns[vhost]
	if c != nil && c.conn.IsClosed() {
		p.drop(vhost)
		c = nil
	}
	if c == nil {
		if len(p.conns) >= maxProbeVhosts {
			return nil, fmt.Errorf("probing vhost %q: more than %d vhosts", vhost, maxProbeVhosts)
		}
		u := *p.base
		u.Path = "/" + vhost
		u.RawPath = "/" + url.PathEscape(vhost)
		cfg := amqp.Config{
			Properties: amqp.Table{"connection_name": "warren monitor depth probe"},
			Heartbeat:  10 * time.Second,
			Dial:       amqp.DefaultDial(p.cfg.Timeout),
		}
		conn, err := amqp.DialConfig(u.String(), cfg)
		if err != nil {
			// amqp091's dial errors do not hold the URL; say which vhost.
			return nil, fmt.Errorf("probe connection to vhost %q: %s", vhost, scrub(err.Error(), p.base))
		}
		c = &probeConn{conn: conn}
		p.conns[vhost] = c
	}
	if c.ch == nil || c.ch.IsClosed() {
		ch, err := c.conn.Channel()
		if err != nil {
			p.drop(vhost)
			return nil, fmt.Errorf("probe channel in vhost %q: %w", vhost, err)
		}
		c.ch = ch
	}
	return c, nil
}

func (p *prober) drop(vhost string) {
	if c := p.conns[vhost]; c != nil {
		go c.conn.Close() // may block on a hung broker; nobody waits for it
		delete(p.conns, vhost)
	}
}

// Close ends the depth probe's AMQP connections, if any. Run does it when it
// returns; callers of PollOnce alone call it when done.
func (p *Poller) Close() {
	if p.probe != nil {
		p.probe.close()
	}
}

// close ends every probe connection.
func (p *prober) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for v := range p.conns {
		if c := p.conns[v]; c != nil {
			c.conn.Close()
		}
		delete(p.conns, v)
	}
}

// scrub removes the URL's password from an error text, should a library
// ever put it there.
func scrub(s string, u *url.URL) string {
	if pw, ok := u.User.Password(); ok && pw != "" {
		s = strings.ReplaceAll(s, pw, "xxxxx")
	}
	return s
}
