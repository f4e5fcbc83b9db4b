package consumers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Delivery is the part of an AMQP delivery a handler may look at. It is
// deliberately small and free of amqp091 types so handlers never ack, nack
// or touch the channel themselves: the consumer does that after the handler
// returned.
type Delivery struct {
	Body            []byte
	Headers         map[string]any
	ContentType     string
	ContentEncoding string
	MessageID       string
	CorrelationID   string
	Type            string
	Exchange        string
	RoutingKey      string
	Redelivered     bool
	Timestamp       time.Time
}

// HandlerFunc processes one message. A nil error acks the message; an error,
// a panic or a deadline nacks it.
type HandlerFunc func(ctx context.Context, d Delivery) error

// HandlerFactory builds the handler of one consumer from its configuration.
// It is called once per consumer by NewManager; an error fails NewManager.
type HandlerFactory func(cfg Config, logger *slog.Logger) (HandlerFunc, error)

// Built-in handler type names (HandlerConfig.Type).
const (
	HandlerSleep = "sleep"
	HandlerLog   = "log"
	HandlerHTTP  = "http"
)

// DefaultHTTPHandlerTimeout is the http handler's request timeout when
// HandlerConfig.Timeout is zero.
const DefaultHTTPHandlerTimeout = 10 * time.Second

// logPreviewBytes bounds the body preview of the log handler so one huge or
// binary message cannot flood the log.
const logPreviewBytes = 128

// builtinHandlers returns the factories of the built-in handler types.
func builtinHandlers() map[string]HandlerFactory {
	return map[string]HandlerFactory{
		HandlerSleep: newSleepHandler,
		HandlerLog:   newLogHandler,
		HandlerHTTP:  newHTTPHandler,
	}
}

// errSimulatedFailure is what the sleep handler returns for the fraction of
// messages FailureRatio asks to fail.
var errSimulatedFailure = errors.New("simulated failure (sleep handler failure_ratio)")

func newSleepHandler(cfg Config, _ *slog.Logger) (HandlerFunc, error) {
	h := cfg.Handler
	if h.Duration < 0 {
		return nil, fmt.Errorf("handler.duration: must not be negative, got %s", h.Duration)
	}
	// The negated form also rejects NaN.
	if !(h.FailureRatio >= 0 && h.FailureRatio <= 1) {
		return nil, fmt.Errorf("handler.failure_ratio: must be between 0 and 1, got %v", h.FailureRatio)
	}
	d, ratio := h.Duration, h.FailureRatio
	return func(ctx context.Context, _ Delivery) error {
		if d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("sleep handler interrupted: %w", ctx.Err())
			}
		}
		// rand.Float64 from math/rand/v2 is safe for concurrent use and does
		// not take a global lock.
		if ratio > 0 && rand.Float64() < ratio {
			return errSimulatedFailure
		}
		return nil
	}, nil
}

func newLogHandler(cfg Config, logger *slog.Logger) (HandlerFunc, error) {
	return func(ctx context.Context, d Delivery) error { // logger already carries consumer, queue and vhost
		logger.LogAttrs(ctx, slog.LevelInfo, "message received",
			slog.Int("size", len(d.Body)),
			slog.String("content_type", d.ContentType),
			slog.String("message_id", d.MessageID),
			slog.String("routing_key", d.RoutingKey),
			slog.String("preview", bodyPreview(d.Body, logPreviewBytes)),
		)
		return nil
	}, nil
}

// bodyPreview returns at most limit bytes of body as a quoted Go string, so
// control characters, invalid UTF-8 and log-injection attempts (newlines)
// come out escaped.
func bodyPreview(body []byte, limit int) string {
	truncated := false
	if len(body) > limit {
		// A rune cut in half is escaped as \xNN by strconv.Quote, which is
		// fine for a preview.
		body = body[:limit]
		truncated = true
	}
	s := strconv.Quote(string(body))
	if truncated {
		s += "..."
	}
	return s
}

func newHTTPHandler(cfg Config, _ *slog.Logger) (HandlerFunc, error) {
	h := cfg.Handler
	u, err := url.Parse(h.URL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL itself may carry credentials; leave it out
		}
		return nil, fmt.Errorf("handler.url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("handler.url: must be an absolute http or https URL, got %q", u.Redacted())
	}
	if h.Timeout < 0 {
		return nil, fmt.Errorf("handler.timeout: must not be negative, got %s", h.Timeout)
	}
	timeout := h.Timeout
	if timeout == 0 {
		timeout = DefaultHTTPHandlerTimeout
	}
	target := u.String()
	redacted := u.Redacted()
	client := &http.Client{Timeout: timeout}
	return func(ctx context.Context, d Delivery) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(d.Body))
		if err != nil {
			return fmt.Errorf("building POST %s: %w", redacted, err)
		}
		ct := d.ContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		req.Header.Set("Content-Type", ct)
		if d.ContentEncoding != "" {
			req.Header.Set("Content-Encoding", d.ContentEncoding)
		}
		if d.MessageID != "" {
			req.Header.Set("X-Message-Id", d.MessageID)
		}
		resp, err := client.Do(req)
		if err != nil {
			// net/http already strips the password from the URL in its errors.
			return fmt.Errorf("POST %s: %w", redacted, err)
		}
		// Drain a little so the connection can be reused, but never read an
		// unbounded body.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return fmt.Errorf("POST %s: unexpected status %s", redacted, strings.TrimSpace(resp.Status))
		}
		return nil
	}, nil
}
