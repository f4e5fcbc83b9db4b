// Package loadgen publishes paced, persistent, publisher-confirmed messages so
// an operator (or a test) can feed a queue at a known rate.
package loadgen

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Config describes one run.
type Config struct {
	URL      string        // AMQP URL, vhost included
	Queue    string        // target queue (default exchange, routing key = queue)
	Rate     float64       // messages per second; 0 = as fast as confirms allow
	Duration time.Duration // how long to publish; 0 with Count > 0 = until Count
	Count    int64         // stop after this many messages; 0 = no limit
	Size     int           // body size in bytes
	Declare  bool          // declare the queue durable if missing
	// MaxOutstanding bounds unconfirmed messages so a slow broker applies
	// back-pressure instead of growing memory.
	MaxOutstanding int
	// Progress, if set, is called about once a second with the running totals.
	Progress func(Report)
}

// Report is a run's totals.
type Report struct {
	Sent      int64
	Confirmed int64
	Nacked    int64
	Errors    int64
	Elapsed   time.Duration
}

// Rate is the achieved confirmed-message rate.
func (r Report) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Confirmed) / r.Elapsed.Seconds()
}

// Validate reports the first bad field by its flag name.
func (c Config) Validate() error {
	switch {
	case c.Queue == "":
		return errors.New("--queue is required")
	case c.Rate < 0:
		return fmt.Errorf("--rate must not be negative, got %g", c.Rate)
	case c.Duration < 0:
		return fmt.Errorf("--duration must not be negative, got %s", c.Duration)
	case c.Count < 0:
		return fmt.Errorf("--count must not be negative, got %d", c.Count)
	case c.Duration == 0 && c.Count == 0:
		return errors.New("give --duration or --count (or both)")
	case c.Size < 0 || c.Size > 128<<20:
		return fmt.Errorf("--size must be between 0 and 134217728 bytes, got %d", c.Size)
	}
	return nil
}

// Run publishes until the duration or count is reached or ctx ends, then
// waits (bounded) for outstanding confirms and returns the totals.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if err := cfg.Validate(); err != nil {
		return Report{}, err
	}
	if cfg.MaxOutstanding <= 0 {
		cfg.MaxOutstanding = 1000
	}
	conn, err := amqp.DialConfig(cfg.URL, amqp.Config{Properties: amqp.Table{"connection_name": "warren loadgen"}})
	if err != nil {
		return Report{}, fmt.Errorf("connecting to the broker: %w", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return Report{}, fmt.Errorf("opening a channel: %w", err)
	}
	defer ch.Close()
	if cfg.Declare {
		if _, err := ch.QueueDeclare(cfg.Queue, true, false, false, false, nil); err != nil {
			return Report{}, fmt.Errorf("declaring queue %q: %w", cfg.Queue, err)
		}
	}
	if err := ch.Confirm(false); err != nil {
		return Report{}, fmt.Errorf("enabling publisher confirms: %w", err)
	}
	returns := ch.NotifyReturn(make(chan amqp.Return, 16))
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, cfg.MaxOutstanding))
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))

	var sent, confirmed, nacked, errs atomic.Int64
	slots := make(chan struct{}, cfg.MaxOutstanding)
	go func() { // confirm reader; ends when the channel closes
		for c := range confirms {
			if c.Ack {
				confirmed.Add(1)
			} else {
				nacked.Add(1)
			}
			<-slots
		}
	}()
	go func() {
		for range returns { // unroutable (e.g. the queue does not exist); the broker still confirms these
			errs.Add(1)
		}
	}()

	body := make([]byte, cfg.Size)
	_, _ = rand.Read(body)
	start := time.Now()
	snapshot := func() Report {
		return Report{Sent: sent.Load(), Confirmed: confirmed.Load(), Nacked: nacked.Load(), Errors: errs.Load(), Elapsed: time.Since(start)}
	}
	var progressDone chan struct{}
	if cfg.Progress != nil {
		progressDone = make(chan struct{})
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-progressDone:
					return
				case <-t.C:
					cfg.Progress(snapshot())
				}
			}
		}()
	}

	var deadline <-chan time.Time
	if cfg.Duration > 0 {
		timer := time.NewTimer(cfg.Duration)
		defer timer.Stop()
		deadline = timer.C
	}
	var runErr error
publish:
	for n := int64(0); cfg.Count == 0 || n < cfg.Count; n++ {
		if cfg.Rate > 0 { // pace against the schedule, not the previous send, so the rate does not drift
			due := start.Add(time.Duration(float64(n) / cfg.Rate * float64(time.Second)))
			if wait := time.Until(due); wait > 0 {
				t := time.NewTimer(wait)
				select {
				case <-ctx.Done():
					t.Stop()
					break publish
				case <-deadline:
					t.Stop()
					break publish
				case <-t.C:
				}
			}
		}
		select {
		case <-ctx.Done():
			break publish
		case <-deadline:
			break publish
		case e := <-closed:
			runErr = fmt.Errorf("channel closed by the broker: %v", e)
			break publish
		case slots <- struct{}{}:
		}
		err := ch.PublishWithContext(ctx, "", cfg.Queue, true, false, amqp.Publishing{
			DeliveryMode: amqp.Persistent,
			ContentType:  "application/octet-stream",
			MessageId:    strconv.FormatInt(n, 10),
			Timestamp:    time.Now(),
			Headers:      amqp.Table{"x-warren-published-at": time.Now().UnixMilli()},
			Body:         body,
		})
		if err != nil {
			errs.Add(1)
			<-slots
			if ctx.Err() != nil {
				break
			}
			runErr = fmt.Errorf("publishing: %w", err)
			break
		}
		sent.Add(1)
	}
	publishTime := time.Since(start)
	// Wait for what is still unconfirmed, bounded, so Ctrl-C still reports.
	wait := time.NewTimer(10 * time.Second)
	defer wait.Stop()
	for confirmed.Load()+nacked.Load() < sent.Load() {
		select {
		case <-wait.C:
			runErr = errors.Join(runErr, fmt.Errorf("%d messages still unconfirmed after 10s", sent.Load()-confirmed.Load()-nacked.Load()))
			goto done
		case <-time.After(5 * time.Millisecond):
		}
	}
done:
	if progressDone != nil {
		close(progressDone)
	}
	rep := snapshot()
	rep.Elapsed = publishTime
	return rep, runErr
}
