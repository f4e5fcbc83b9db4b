package consumers

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// connPool shares consuming connections of one vhost between consumers: at
// most maxConns connections, each carrying at most maxChans consumers (one
// channel each, briefly two while a prefetch change re-subscribes). A
// consumer leases a slot; the connection closes when its last lease is
// released. Publishing never uses these connections (see publisher), so a
// blocked publisher cannot stall acks.
type connPool struct {
	amqpURL   string
	vhost     string
	maxConns  int
	maxChans  int
	heartbeat time.Duration
	logger    *slog.Logger

	mu    sync.Mutex
	conns []*pooledConn
	seq   int
}

type pooledConn struct {
	conn   *amqp.Connection
	name   string
	leases int
}

// errPoolExhausted: every connection carries max_channels_per_connection
// consumers and max_connections are open.
var errPoolExhausted = errors.New("connection pool exhausted")

func newConnPool(amqpURL, vhost string, maxConns, maxChans int, heartbeat time.Duration, logger *slog.Logger) *connPool {
	return &connPool{amqpURL: amqpURL, vhost: vhost, maxConns: maxConns, maxChans: maxChans, heartbeat: heartbeat, logger: logger}
}

// acquire leases a slot on the least-loaded live connection with room, or
// dials a new one when none has room and fewer than maxConns are open.
func (p *connPool) acquire() (*pooledConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	live := p.conns[:0]
	for _, pc := range p.conns {
		if !pc.conn.IsClosed() {
			live = append(live, pc)
		}
	}
	clear(p.conns[len(live):])
	p.conns = live
	var best *pooledConn
	for _, pc := range p.conns {
		if pc.leases < p.maxChans && (best == nil || pc.leases < best.leases) {
			best = pc
		}
	}
	// Prefer a new connection while below the limit and the best one is
	// not empty: consumers spread over connections.
	if len(p.conns) < p.maxConns && (best == nil || best.leases > 0) {
		p.seq++
		name := fmt.Sprintf("warren-pool-%d", p.seq)
		conn, err := amqp.DialConfig(p.amqpURL, dialConfig(p.vhost, name[len("warren-"):], p.heartbeat))
		if err != nil {
			if best == nil {
				return nil, fmt.Errorf("connecting to vhost %q: %w", p.vhost, err)
			}
			p.logger.Warn("opening another pooled connection failed; sharing an existing one", "err", err)
		} else {
			best = &pooledConn{conn: conn, name: name}
			p.conns = append(p.conns, best)
			p.logger.Info("pooled connection opened", "connection", name, "open", len(p.conns))
		}
	}
	if best == nil {
		return nil, fmt.Errorf("%w: %d connections with %d consumers each in vhost %q (raise connection.max_connections or max_channels_per_connection)",
			errPoolExhausted, p.maxConns, p.maxChans, p.vhost)
	}
	best.leases++
	return best, nil
}

// release returns a lease; the connection closes with its last lease.
func (p *connPool) release(pc *pooledConn) {
	p.mu.Lock()
	pc.leases--
	last := pc.leases <= 0
	if last {
		for i, x := range p.conns {
			if x == pc {
				p.conns = append(p.conns[:i], p.conns[i+1:]...)
				break
			}
		}
	}
	p.mu.Unlock()
	if last {
		if err := pc.conn.Close(); err != nil && !errors.Is(err, amqp.ErrClosed) {
			p.logger.Warn("closing pooled connection", "connection", pc.name, "err", err)
		}
	}
}

// closeAll closes every connection (the last shutdown step).
func (p *connPool) closeAll() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, pc := range conns {
		if err := pc.conn.Close(); err != nil && !errors.Is(err, amqp.ErrClosed) {
			p.logger.Warn("closing pooled connection", "connection", pc.name, "err", err)
		}
	}
}
