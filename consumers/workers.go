package consumers

// Workers: each subscription runs as many goroutines as the concurrency
// limit, and each takes a permit, then a delivery straight from the
// subscription's channel, and runs the handler itself, as a hand-written
// amqp091-go consumer does. An earlier design had one dispatcher goroutine
// hand every delivery to a handler goroutine: one more goroutine wake-up per
// message (and a goroutine, with its stack growth, per message before that),
// which on two shared cores cost several µs of CPU per message.
//
// The permit is taken before the delivery is read, so a message is only
// taken off the channel when it can start at once, and in-flight work never
// exceeds the limit. The number of workers follows the limit: a raise starts
// more (from Update at once, and from any worker after its message); after a
// cut, workers beyond the limit end after their message.

// dispatch starts the subscription's workers.
func (c *consumer) dispatch(s *subscription) {
	c.fitWorkers(s)
}

// fitWorkers starts workers until the subscription has as many as the
// concurrency limit. Extra workers are ended by the workers themselves.
func (c *consumer) fitWorkers(s *subscription) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.workersEnded {
		return
	}
	for n := int64(c.lim.current()); s.workers.Load() < n; {
		s.workers.Add(1)
		go c.work(s)
	}
}

// leave ends a worker: always when stopping, otherwise only if there are
// more workers than the limit. It reports whether the worker must return.
// The last worker to stop closes dispatchDone: no handler starts after it.
func (c *consumer) leave(s *subscription, stopping bool) bool {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if !stopping && s.workers.Load() <= int64(c.lim.current()) {
		return false
	}
	if stopping {
		s.workersEnded = true // a raise now must not start workers for a dead subscription
	}
	if s.workers.Add(-1) == 0 && s.workersEnded {
		close(s.dispatchDone)
	}
	return true
}

// work is one worker of subscription s.
func (c *consumer) work(s *subscription) {
	for {
		if !c.takeAndHandle(s) {
			c.leave(s, true)
			return
		}
		// Cheap check first: two atomic loads per message.
		if n, limit := s.workers.Load(), int64(c.lim.current()); n != limit {
			if n < limit {
				c.fitWorkers(s)
			} else if c.leave(s, false) {
				return
			}
		}
	}
}

// takeAndHandle takes a permit and a delivery and handles it. It returns
// false when the subscription is ending (draining: deliveries not started are
// requeued; channel closed: the broker requeues them).
func (c *consumer) takeAndHandle(s *subscription) bool {
	// Draining wins over a free permit: a worker back from its message
	// finds both ready, and select would pick either.
	select {
	case <-s.draining:
		c.requeueBuffered(s)
		return false
	default:
	}
	if !tryRecv(c.lim.tokens) {
		select {
		case <-c.lim.tokens:
		case <-s.draining:
			c.requeueBuffered(s)
			return false
		case <-s.chClosed:
			return false
		}
	}
	held, ok := c.thr.wait(s)
	if !ok {
		if held {
			c.thr.lim.release()
		}
		c.lim.release()
		select {
		case <-s.draining:
			c.requeueBuffered(s)
		default:
		}
		return false
	}
	select {
	case d, ok := <-s.deliveries:
		if !ok {
			if held {
				c.thr.lim.release()
			}
			c.lim.release()
			return false
		}
		select {
		case <-s.draining:
			// Both were ready; this message must not start after intake stopped.
			if err := d.Nack(false, true); err != nil {
				c.logger.Debug("requeueing unstarted delivery failed", "err", err)
			}
			if held {
				c.thr.lim.release()
			}
			c.lim.release()
			c.requeueBuffered(s)
			return false
		default:
		}
		c.stats.inFlight.Add(1)
		s.handlers.Add(1)
		c.handle(s, d, held)
		return true
	case <-s.draining:
		if held {
			c.thr.lim.release()
		}
		c.lim.release()
		c.requeueBuffered(s)
		return false
	}
}

// tryRecv takes a value from ch if one is ready: the common case under a
// backlog, without the cost of a multi-way select.
func tryRecv(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
