package consumers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// DefaultBatchTimeout is Config.BatchTimeout when zero: how long a partial
// batch waits for more messages before it is handled as it is.
const DefaultBatchTimeout = 100 * time.Millisecond

// BatchHandlerFunc processes up to Config.BatchSize messages at once. A nil
// error acks the whole batch (one multiple ack where the channel allows);
// an error, a panic or the deadline fails the whole batch: it is nacked
// with requeue together, or, with a retry policy, every message of it is
// retried or dead-lettered.
type BatchHandlerFunc func(ctx context.Context, batch []Delivery) error

// BatchHandlerFactory builds the batch handler of one consumer, like
// HandlerFactory.
type BatchHandlerFactory func(cfg Config, logger *slog.Logger) (BatchHandlerFunc, error)

// perMessageBatch adapts a HandlerFunc for batching: the messages are
// handled one after another and the batch fails at the first failure.
func perMessageBatch(h HandlerFunc) BatchHandlerFunc {
	return func(ctx context.Context, batch []Delivery) error {
		for i := range batch {
			if err := h(ctx, batch[i]); err != nil {
				return fmt.Errorf("message %d of %d (id %q): %w", i+1, len(batch), batch[i].MessageID, err)
			}
		}
		return nil
	}
}

// dispatchBatches is dispatch for BatchSize > 1: one limiter permit (and
// throttle slot) per batch; a batch is the first delivery plus whatever
// arrives within BatchTimeout, up to BatchSize.
func (c *consumer) dispatchBatches(s *subscription) {
	defer close(s.dispatchDone)
	size := c.cfg.BatchSize
	timeout := c.cfg.BatchTimeout
	for {
		select {
		case <-s.draining:
			c.requeueBuffered(s)
			return
		default:
		}
		select {
		case <-c.lim.tokens:
		case <-s.draining:
			c.requeueBuffered(s)
			return
		case <-s.chClosed:
			return
		}
		held, ok := c.thr.wait(s)
		release := func() {
			if held {
				c.thr.lim.release()
			}
			c.lim.release()
		}
		if !ok {
			release()
			select {
			case <-s.draining:
				c.requeueBuffered(s)
			default:
			}
			return
		}
		var batch []amqp.Delivery
		select {
		case d, ok := <-s.deliveries:
			if !ok {
				release()
				return
			}
			batch = make([]amqp.Delivery, 1, size)
			batch[0] = d
		case <-s.draining:
			release()
			c.requeueBuffered(s)
			return
		}
		t := time.NewTimer(timeout)
	fill:
		for len(batch) < size {
			select {
			case d, ok := <-s.deliveries:
				if !ok {
					break fill // the next round sees the closed channel
				}
				batch = append(batch, d)
			case <-t.C:
				break fill
			case <-s.draining:
				break fill // in hand already: handle it, requeue the rest
			}
		}
		t.Stop()
		s.batchMu.Lock()
		s.openBatches[batch[0].DeliveryTag] = struct{}{}
		s.batchMu.Unlock()
		c.stats.inFlight.Add(int64(len(batch)))
		s.handlers.Add(1)
		go c.handleBatch(s, batch, held)
	}
}

func (c *consumer) handleBatch(s *subscription, batch []amqp.Delivery, throttled bool) {
	defer s.handlers.Done()
	start := time.Now()
	first := batch[0].DeliveryTag
	ds := make([]Delivery, 0, len(batch))
	ok := batch[:0:0]
	for i := range batch {
		d := &batch[i]
		body, enc, err := decodeBody(d)
		if err != nil {
			// Malformed: out of the batch at once, on its own.
			c.settle(s, d, err)
			continue
		}
		ds = append(ds, toDelivery(d, body, enc))
		ok = append(ok, *d)
	}
	var err error
	if len(ds) > 0 {
		ctx, cancel := c.workCtx, context.CancelFunc(func() {})
		if c.cfg.HandlerTimeout > 0 {
			ctx, cancel = context.WithTimeout(c.workCtx, c.cfg.HandlerTimeout)
		}
		err = c.invokeBatch(ctx, ds)
		if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("handler deadline %s exceeded: %w", c.cfg.HandlerTimeout, err)
		}
		cancel()
		c.settleBatch(s, first, ok, err)
	} else {
		s.batchMu.Lock()
		delete(s.openBatches, first)
		s.batchMu.Unlock()
	}
	if elapsed := time.Since(start); !c.opts.NoObservation {
		c.stats.observe(elapsed)
		if thr := c.cfg.SlowProcessingThreshold; thr > 0 && elapsed >= thr {
			c.stats.slow.Add(1)
		}
	}
	if throttled {
		c.thr.lim.release()
	}
	c.stats.inFlight.Add(-int64(len(batch)))
	c.lim.release()
}

// settleBatch acks or fails a batch. A multiple ack (or nack) on the last
// tag settles every unsettled delivery up to it on the channel, so it is
// only used when no batch with lower tags is still open on this
// subscription; otherwise each message is settled on its own. batchMu is
// held from that check until the batch is settled and removed, so a later
// batch cannot settle this one's messages by a multiple ack.
func (c *consumer) settleBatch(s *subscription, first uint64, batch []amqp.Delivery, err error) {
	n := uint64(len(batch))
	last := &batch[len(batch)-1]
	shutdown := err != nil && c.workCtx.Err() != nil
	if err != nil && !shutdown {
		c.stats.failed.Add(n)
		c.setLastErr(err)
		if c.brk != nil && !errors.Is(err, ErrMalformed) {
			c.brk.failure()
		}
		if ok, dropped := c.failureLog.allow(); ok {
			c.logger.Warn("batch handler failed", "err", err, "size", n, "suppressed", dropped)
		}
		if c.cfg.Retry != nil {
			// Each message goes its own way (retry or dead letter); each
			// is acked on its own after its copy was confirmed.
			for i := range batch {
				c.failOver(s, &batch[i], err)
			}
			s.batchMu.Lock()
			delete(s.openBatches, first)
			s.batchMu.Unlock()
			return
		}
	}
	s.batchMu.Lock()
	defer s.batchMu.Unlock()
	delete(s.openBatches, first)
	lowerOpen := false
	for tag := range s.openBatches {
		if tag < first {
			lowerOpen = true
			break
		}
	}
	var sendErr error
	switch {
	case err == nil && !lowerOpen:
		sendErr = last.Ack(true)
	case err == nil:
		for i := range batch {
			if e := batch[i].Ack(false); e != nil {
				sendErr = e
			}
		}
	case !lowerOpen:
		sendErr = last.Nack(true, true)
	default:
		for i := range batch {
			if e := batch[i].Nack(false, true); e != nil {
				sendErr = e
			}
		}
	}
	if sendErr != nil {
		c.stats.staleAcks.Add(n)
		c.logger.Info("settling a batch of a closed channel dropped; the broker redelivers it", "err", sendErr, "size", n)
		return
	}
	if err == nil {
		c.stats.processed.Add(n)
		if c.brk != nil {
			c.brk.success()
		}
	}
}

// invokeBatch runs the batch handler; a panic fails the batch.
func (c *consumer) invokeBatch(ctx context.Context, ds []Delivery) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("batch handler panicked: %v", r)
			if ok, _ := c.failureLog.allow(); ok {
				c.logger.Error("batch handler panicked", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			}
		}
	}()
	return c.batchHandler(ctx, ds)
}
