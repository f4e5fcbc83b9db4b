package consumers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// publishSeqHeader carries a per-publish number so a basic.return can be
// matched to the publish it belongs to.
const publishSeqHeader = "x-warren-publish-seq"

// returnBuffer is the capacity of the basic.return channel. Waiters drain
// it while they wait for their confirm, so it never blocks the reader for
// long; the buffer only smooths bursts.
const returnBuffer = 256

// queueSpec is a queue the publisher makes sure exists before it publishes
// to it (through the default exchange, routing key = queue name).
type queueSpec struct {
	name string
	args amqp.Table
	// passiveFirst checks for the queue before declaring it, so an
	// operator's existing queue with other arguments is used as it is
	// instead of failing with 406.
	passiveFirst bool
}

// publisher republishes failed messages (retries, dead letters) on its own
// connection, separate from the consuming ones, so a blocked or slow
// publish never stalls acks. Every publish is mandatory and confirmed: it
// succeeds only if the broker routed it to a queue and took responsibility
// for it. Safe for concurrent use; amqp091 serialises frames on a channel.
type publisher struct {
	amqpURL   string
	vhost     string
	heartbeat time.Duration
	logger    *slog.Logger

	mu       sync.Mutex // guards conn, ch, returns, declared
	conn     *amqp.Connection
	ch       *amqp.Channel
	returns  chan amqp.Return
	declared map[string]bool
	closed   bool

	seq      atomic.Uint64
	retMu    sync.Mutex
	returned map[uint64]struct{}
}

func newPublisher(amqpURL, vhost string, heartbeat time.Duration, logger *slog.Logger) *publisher {
	return &publisher{
		heartbeat: heartbeat,
		amqpURL:   amqpURL,
		vhost:     vhost,
		logger:    logger,
		returned:  make(map[uint64]struct{}),
	}
}

// prepare returns an open confirm-mode channel on which spec exists,
// dialing and declaring as needed.
func (p *publisher) prepare(spec queueSpec) (*amqp.Channel, chan amqp.Return, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, nil, errors.New("publisher closed")
	}
	if p.conn == nil || p.conn.IsClosed() {
		conn, err := amqp.DialConfig(p.amqpURL, dialConfig(p.vhost, "publisher", p.heartbeat))
		if err != nil {
			return nil, nil, fmt.Errorf("connecting publisher to vhost %q: %w", p.vhost, err)
		}
		p.conn, p.ch, p.declared = conn, nil, make(map[string]bool)
	}
	if p.ch == nil || p.ch.IsClosed() {
		ch, err := p.conn.Channel()
		if err != nil {
			return nil, nil, fmt.Errorf("opening publisher channel: %w", err)
		}
		if err := ch.Confirm(false); err != nil {
			_ = ch.Close()
			return nil, nil, fmt.Errorf("enabling publisher confirms: %w", err)
		}
		p.ch = ch
		p.returns = ch.NotifyReturn(make(chan amqp.Return, returnBuffer))
	}
	if !p.declared[spec.name] {
		if err := p.declare(spec); err != nil {
			return nil, nil, err
		}
		p.declared[spec.name] = true
	}
	return p.ch, p.returns, nil
}

// declare runs on throwaway channels: a failing declare closes its channel,
// and that must not take the confirms of other publishes with it.
func (p *publisher) declare(spec queueSpec) error {
	if spec.passiveFirst {
		ch, err := p.conn.Channel()
		if err != nil {
			return fmt.Errorf("opening channel to check queue %q: %w", spec.name, err)
		}
		_, err = ch.QueueDeclarePassive(spec.name, true, false, false, false, nil)
		_ = ch.Close()
		if err == nil {
			return nil
		}
		if !isAMQPCode(err, amqp.NotFound) {
			return fmt.Errorf("checking queue %q: %w", spec.name, err)
		}
	}
	ch, err := p.conn.Channel()
	if err != nil {
		return fmt.Errorf("opening channel to declare queue %q: %w", spec.name, err)
	}
	defer func() { _ = ch.Close() }()
	if _, err := ch.QueueDeclare(spec.name, true, false, false, false, spec.args); err != nil {
		return fmt.Errorf("declaring queue %q: %w", spec.name, err)
	}
	p.logger.Debug("queue declared", "queue", spec.name)
	return nil
}

// forget makes the next publish to name declare it again (it was deleted).
func (p *publisher) forget(name string) {
	p.mu.Lock()
	delete(p.declared, name)
	p.mu.Unlock()
}

// dropChannel closes ch so that every confirm still pending on it completes
// (as a nack) and the next publish opens a fresh channel.
func (p *publisher) dropChannel(ch *amqp.Channel) {
	p.mu.Lock()
	if p.ch == ch {
		p.ch = nil
	}
	p.mu.Unlock()
	_ = ch.Close()
}

// publish sends msg to spec's queue and returns nil only once the broker
// confirmed it and did not return it as unroutable. msg.Headers must be a
// table the caller owns (a header is added).
func (p *publisher) publish(ctx context.Context, spec queueSpec, msg amqp.Publishing) error {
	ch, returns, err := p.prepare(spec)
	if err != nil {
		return err
	}
	id := p.seq.Add(1)
	msg.Headers[publishSeqHeader] = int64(id)
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", spec.name, true, false, msg)
	if err != nil {
		p.dropChannel(ch)
		return fmt.Errorf("publishing to %q: %w", spec.name, err)
	}
	// Wait for the confirm without giving up on ctx alone: a return for this
	// publish arrives before its confirm and must be drained by a waiter, or
	// the connection's reader could block. On ctx's end the channel is
	// closed, which completes the confirm as a nack.
	ctxDone := ctx.Done()
	for waiting := true; waiting; {
		select {
		case r, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			p.noteReturn(r)
		case <-dc.Done():
			waiting = false
		case <-ctxDone:
			ctxDone = nil
			p.dropChannel(ch)
		}
	}
	// The broker sends basic.return before the ack of the same publish and
	// amqp091 hands both over in order, so the return (if any) is buffered
	// by now.
	for drained := false; !drained && returns != nil; {
		select {
		case r, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			p.noteReturn(r)
		default:
			drained = true
		}
	}
	if !dc.Acked() {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("publishing to %q: %w", spec.name, err)
		}
		return fmt.Errorf("publishing to %q: not confirmed by the broker", spec.name)
	}
	if p.takeReturned(id) {
		p.forget(spec.name)
		return fmt.Errorf("publishing to %q: unroutable (queue missing)", spec.name)
	}
	return nil
}

func (p *publisher) noteReturn(r amqp.Return) {
	id, ok := r.Headers[publishSeqHeader].(int64)
	if !ok {
		return
	}
	p.retMu.Lock()
	p.returned[uint64(id)] = struct{}{}
	p.retMu.Unlock()
}

func (p *publisher) takeReturned(id uint64) bool {
	p.retMu.Lock()
	defer p.retMu.Unlock()
	_, ok := p.returned[id]
	delete(p.returned, id)
	return ok
}

// close closes the connection; later publishes fail.
func (p *publisher) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.conn != nil {
		if err := p.conn.Close(); err != nil && !errors.Is(err, amqp.ErrClosed) {
			p.logger.Warn("closing publisher connection", "err", err)
		}
	}
}
