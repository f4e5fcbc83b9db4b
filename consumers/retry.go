package consumers

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Headers warren writes on retried and dead-lettered messages.
const (
	HeaderAttempts      = "x-warren-attempts"       // failed handlings so far
	HeaderReason        = "x-warren-reason"         // last error
	HeaderOriginalQueue = "x-warren-original-queue" // queue the message failed on
	HeaderFailedAt      = "x-warren-failed-at"      // unix milliseconds of the last failure
)

const (
	// maxRetryDelay caps the delay of one retry; a message should not hide
	// in a delay queue for days because of a large multiplier.
	maxRetryDelay = 24 * time.Hour
	// maxReasonBytes bounds the reason header; error texts can be long.
	maxReasonBytes = 512
	// republishTimeout bounds one retry or dead-letter publish including its
	// confirm; when it passes the original is requeued instead.
	republishTimeout = 30 * time.Second
	// maxDecodedBody bounds a gunzipped body so a small compressed message
	// cannot exhaust memory.
	maxDecodedBody = 128 << 20
)

// retryDelay is the wait before retry n (0-based).
func retryDelay(r *RetryConfig, n int) time.Duration {
	d := float64(r.InitialDelay) * math.Pow(r.Multiplier, float64(n))
	if d > float64(maxRetryDelay) || math.IsInf(d, 0) || math.IsNaN(d) {
		return maxRetryDelay
	}
	return max(time.Duration(d), time.Millisecond)
}

// retryQueueName is the delay queue for one delay. One queue per distinct
// delay keeps every queue's TTL the same, so expiry (which RabbitMQ only
// applies at the head of a queue) is never held up by a longer-lived
// message in front; and a queue with a TTL survives a broker restart.
func retryQueueName(queue string, delay time.Duration) string {
	return queue + ".warren.retry." + delay.String() // monitor.RetryQueueMarker recognises this name
}

// deadLetterQueueName is the dead-letter queue of a consumer.
func deadLetterQueueName(cfg Config) string {
	if cfg.Retry != nil && cfg.Retry.DeadLetterQueue != "" {
		return cfg.Retry.DeadLetterQueue
	}
	return cfg.Queue + ".warren.dlq"
}

// retrySpec is the delay queue for delay: messages expire after it and are
// dead-lettered by the broker through the default exchange back to queue.
func retrySpec(queue string, delay time.Duration) queueSpec {
	return queueSpec{
		name: retryQueueName(queue, delay),
		args: amqp.Table{
			"x-message-ttl":             delay.Milliseconds(),
			"x-dead-letter-exchange":    "",
			"x-dead-letter-routing-key": queue,
		},
	}
}

// attemptsOf reads the attempt header warren wrote on an earlier retry.
func attemptsOf(h amqp.Table) int {
	switch v := h[HeaderAttempts].(type) {
	case int64:
		return int(v)
	case int32:
		return int(v)
	case int:
		return v
	case int16:
		return int(v)
	case int8:
		return int(v)
	case uint8:
		return int(v)
	}
	return 0
}

// republishing is a copy of d for a retry or dead-letter queue: same body
// and properties, headers copied so the delivery's own table is not
// touched. Expiration is dropped (a dead letter must not vanish, and the
// delay queue sets its own TTL) and so is UserId (the broker rejects a
// user id other than the publishing connection's).
func republishing(d *amqp.Delivery, extra int) amqp.Publishing {
	h := make(amqp.Table, len(d.Headers)+extra+1)
	for k, v := range d.Headers {
		h[k] = v
	}
	return amqp.Publishing{
		Headers:         h,
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		DeliveryMode:    d.DeliveryMode,
		Priority:        d.Priority,
		CorrelationId:   d.CorrelationId,
		ReplyTo:         d.ReplyTo,
		MessageId:       d.MessageId,
		Timestamp:       d.Timestamp,
		Type:            d.Type,
		AppId:           d.AppId,
		Body:            d.Body,
	}
}

// failOver handles a failed message under the retry policy: republish it to
// a delay queue or the dead-letter queue, then ack the original. If the
// republish is not confirmed the original is nacked with requeue, so the
// message is never lost (at worst handled once more).
func (c *consumer) failOver(s *subscription, d *amqp.Delivery, cause error) outcome {
	r := c.cfg.Retry
	attempts := attemptsOf(d.Headers) + 1
	var (
		spec  queueSpec
		msg   amqp.Publishing
		toDLQ = errors.Is(cause, ErrMalformed) || attempts > r.MaxAttempts
	)
	if toDLQ {
		spec = queueSpec{name: deadLetterQueueName(c.cfg), passiveFirst: true}
		msg = republishing(d, 4)
		reason := cause.Error()
		if len(reason) > maxReasonBytes {
			reason = reason[:maxReasonBytes]
		}
		msg.Headers[HeaderReason] = reason
		msg.Headers[HeaderOriginalQueue] = c.cfg.Queue
		msg.Headers[HeaderFailedAt] = time.Now().UnixMilli()
	} else {
		spec = retrySpec(c.cfg.Queue, retryDelay(r, attempts-1))
		msg = republishing(d, 1)
	}
	msg.Headers[HeaderAttempts] = int64(attempts)

	ctx, cancel := context.WithTimeout(context.Background(), republishTimeout)
	err := c.pub.publish(ctx, spec, msg)
	cancel()
	if err != nil {
		if nackErr := d.Nack(false, true); nackErr != nil {
			c.staleAck(s, nackErr)
		}
		c.setLastErr(fmt.Errorf("moving failed message to %q: %w", spec.name, err))
		c.logger.Warn("republishing failed message failed; requeued it instead", "err", err,
			"target", spec.name, "message_id", d.MessageId)
		return outFailed
	}
	if ackErr := d.Ack(false); ackErr != nil {
		// The copy is safe; the original comes back too (at-least-once).
		c.staleAck(s, ackErr)
	}
	if toDLQ {
		c.stats.deadLettered.Add(1)
		if ok, dropped := c.failureLog.allow(); ok {
			c.logger.Warn("message dead-lettered", "queue", spec.name, "attempts", attempts,
				"reason", cause, "message_id", d.MessageId, "suppressed", dropped)
		}
		return outDeadLettered
	}
	c.stats.retried.Add(1)
	return outRetried
}

// decodeBody returns the body the handler sees: gunzipped for
// content-encoding gzip (the encoding is then cleared), as is otherwise. A
// body that does not decode is malformed.
func decodeBody(d *amqp.Delivery) ([]byte, string, error) {
	if d.ContentEncoding == "" || !strings.EqualFold(d.ContentEncoding, "gzip") {
		return d.Body, d.ContentEncoding, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(d.Body))
	if err != nil {
		return nil, "", Malformed(fmt.Errorf("decoding gzip body: %w", err))
	}
	out, err := io.ReadAll(io.LimitReader(zr, maxDecodedBody+1))
	if err == nil {
		err = zr.Close()
	}
	if err != nil {
		return nil, "", Malformed(fmt.Errorf("decoding gzip body: %w", err))
	}
	if len(out) > maxDecodedBody {
		return nil, "", Malformed(fmt.Errorf("decoding gzip body: larger than %d bytes", maxDecodedBody))
	}
	return out, "", nil
}
