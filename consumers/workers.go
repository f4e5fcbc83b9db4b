package consumers

import (
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Handlers run on goroutines that outlive one message. A goroutine per
// message paid, for every message, for its creation and for growing its
// stack again from the minimum through amqp091-go's ack path (about a tenth
// of the consumer's CPU in a profile of the serve defaults). The limiter still
// bounds how many run at once; the workers only carry them.

// workerIdle is how long a worker waits for a next message before it ends,
// so a burst's extra workers do not linger.
const workerIdle = 10 * time.Second

// job is one delivery on its way to a handler.
type job struct {
	s         *subscription
	d         amqp.Delivery
	throttled bool
}

// submit hands j to an idle worker, or starts a new one when none is
// waiting. The caller holds a limiter permit for j, so at most as many
// workers are busy as permits exist; a worker between two messages can make
// submit start one more, which ends after workerIdle.
func (c *consumer) submit(j job) {
	select {
	case c.jobs <- j:
	default:
		go c.worker(j)
	}
}

// worker handles j, then further jobs, until it idles for workerIdle or the
// consumer's work context ends (closeAll).
func (c *consumer) worker(j job) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		c.handle(j.s, j.d, j.throttled)
		j = job{} // do not keep the delivery's body alive while idle
		idle.Reset(workerIdle)
		select {
		case j = <-c.jobs:
		case <-idle.C:
			return
		case <-c.workCtx.Done():
			return
		}
	}
}
