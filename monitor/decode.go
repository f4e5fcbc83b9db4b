package monitor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// maxBodyBytes bounds one page. 500 queues with six columns is ~60 KB; a
// hostile or broken endpoint must not make us buffer gigabytes.
const maxBodyBytes = 32 << 20

// rawBodyTransport sits under rabbit-hole. rabbit-hole builds the request
// (URL, query, basic auth) and turns non-2xx answers into errors, but decodes
// queues into QueueInfo, whose counts are plain ints with omitempty: a count
// the broker did not send (every count of a brand-new idle queue) would read
// as 0, and a count sent as 3.0 or "3" would fail the whole page. So this
// transport keeps the raw body of a 2xx answer for our own decoding and hands
// rabbit-hole an empty object to decode instead; non-2xx bodies are passed
// through so rabbit-hole still builds its error from them.
//
// It also ties the request to the poll's context: rabbit-hole's requests
// carry none, and shutdown must not wait for a request timeout.
//
// One transport serves one request; it is not shared between goroutines.
type rawBodyTransport struct {
	ctx    context.Context
	base   http.RoundTripper
	status int    // HTTP status of the answer, 0 if none
	body   []byte // raw body of a 2xx answer
}

// RoundTrip implements http.RoundTripper.
func (t *rawBodyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// Keep the request's own context (http.Client puts its timeout there)
	// and also end the request when the poll's context ends.
	rctx, cancel := context.WithCancelCause(req.Context())
	defer cancel(nil)
	stop := context.AfterFunc(t.ctx, func() { cancel(context.Cause(t.ctx)) })
	defer stop()

	resp, err := t.base.RoundTrip(req.WithContext(rctx))
	if err != nil {
		return nil, err
	}
	// The whole body is read here, while the merged context is alive.
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes+1))
	resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("reading response body: %w", err)
	}
	if len(body) > maxBodyBytes {
		return nil, fmt.Errorf("response body larger than %d bytes", maxBodyBytes)
	}
	t.status = resp.StatusCode
	handOver := body
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		t.body = body
		handOver = []byte("{}")
	}
	resp.Body = io.NopCloser(bytes.NewReader(handOver))
	resp.ContentLength = int64(len(handOver))
	resp.Header.Del("Content-Length")
	resp.Header.Del("Content-Encoding")
	return resp, nil
}

// describeTransportError says why no HTTP answer came, in operator terms.
func describeTransportError(err error, timeout time.Duration) string {
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused: " + err.Error()
	case errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Sprintf("timed out after %s: %s", timeout, err)
	case errors.As(err, &dnsErr):
		return "host not found: " + err.Error()
	default:
		return err.Error()
	}
}

// queuePage is one decoded page of GET /api/queues.
type queuePage struct {
	pageCount  int
	totalCount *int64 // queues in the whole listing when this page was built
	queues     []QueueSample
	oddities   []oddity // values that were present but unusable
}

// oddity is one value the broker sent that could not be taken as truth.
type oddity struct {
	vhost, queue, field string
	value               string // truncated raw JSON
	reason              string
}

// Plausibility limits: a value beyond them is flagged, not stored as truth.
// No broker holds a trillion messages in one queue or moves a hundred
// million messages a second through it.
const (
	maxPlausibleCount = 1_000_000_000_000
	maxPlausibleRate  = 100_000_000
)

// rawQueuePage mirrors the paged answer, keeping every value raw so that
// "missing", "null" and odd encodings can be told apart.
type rawQueuePage struct {
	PageCount  json.RawMessage `json:"page_count"`
	TotalCount json.RawMessage `json:"total_count"`
	Items      *[]rawQueue     `json:"items"`
}

type rawQueue struct {
	Name                   json.RawMessage `json:"name"`
	Vhost                  json.RawMessage `json:"vhost"`
	Messages               json.RawMessage `json:"messages"`
	MessagesReady          json.RawMessage `json:"messages_ready"`
	MessagesUnacknowledged json.RawMessage `json:"messages_unacknowledged"`
	Consumers              json.RawMessage `json:"consumers"`
	ConsumerUtilisation    json.RawMessage `json:"consumer_utilisation"`
	MessageStats           json.RawMessage `json:"message_stats"`
	Arguments              json.RawMessage `json:"arguments"`
	Policy                 json.RawMessage `json:"effective_policy_definition"`
}

// decodeQueuePage decodes one page. A page that is not the expected object is
// an error (the poll fails); an odd value inside a queue only makes that value
// unknown (and is reported as an oddity), and a queue without a usable name or
// vhost is skipped.
func decodeQueuePage(body []byte, logger *slog.Logger) (queuePage, error) {
	if b := bytes.TrimSpace(body); len(b) > 0 && b[0] == '[' {
		// Pre-3.6 brokers ignore the page parameters and send a bare array.
		return queuePage{}, errors.New(`got a JSON array, not a paged queue listing with "items"`)
	}
	var raw rawQueuePage
	if err := json.Unmarshal(body, &raw); err != nil {
		return queuePage{}, err
	}
	if raw.Items == nil {
		return queuePage{}, errors.New(`no "items" in the answer (not a paged queue listing)`)
	}
	pc, err := parseCount(raw.PageCount)
	if err != nil || pc == nil {
		return queuePage{}, fmt.Errorf("page_count %s: not a count", truncate(raw.PageCount))
	}
	pg := queuePage{pageCount: int(min(*pc, math.MaxInt32)), queues: make([]QueueSample, 0, len(*raw.Items))}
	pg.totalCount, _ = parseCount(raw.TotalCount) // optional: only used to notice changes
	for i, item := range *raw.Items {
		var name, vhost string
		if json.Unmarshal(item.Name, &name) != nil || json.Unmarshal(item.Vhost, &vhost) != nil || name == "" {
			logger.Warn("skipping queue without a usable name or vhost",
				"index", i, "name", truncate(item.Name), "vhost", truncate(item.Vhost))
			continue
		}
		q := QueueSample{Vhost: vhost, Name: name}
		odd := func(field string, raw json.RawMessage, err error) {
			q.Flagged = append(q.Flagged, field)
			pg.oddities = append(pg.oddities, oddity{vhost: vhost, queue: name, field: field, value: truncate(raw), reason: err.Error()})
		}
		var stats struct {
			Publish json.RawMessage `json:"publish"`
		}
		// RabbitMQ 3.10 sends an empty list instead of an empty object for
		// a queue without message stats yet: nothing to read, nothing odd.
		if ms := strings.TrimSpace(string(item.MessageStats)); ms != "" && ms != "null" && ms != "[]" {
			if err := json.Unmarshal(item.MessageStats, &stats); err != nil {
				odd("message_stats", item.MessageStats, errors.New("not an object"))
			}
		}
		for _, f := range []struct {
			field string
			raw   json.RawMessage
			dst   **int64
		}{
			{"messages", item.Messages, &q.Messages},
			{"messages_ready", item.MessagesReady, &q.Ready},
			{"messages_unacknowledged", item.MessagesUnacknowledged, &q.Unacked},
			{"consumers", item.Consumers, &q.Consumers},
			{"message_stats.publish", stats.Publish, &q.PublishedTotal},
		} {
			v, err := parseCount(f.raw)
			if err == nil && v != nil && *v > maxPlausibleCount {
				v, err = nil, fmt.Errorf("absurd: above %d", int64(maxPlausibleCount))
			}
			if err != nil {
				odd(f.field, f.raw, err)
			}
			*f.dst = v
		}
		u, err := parseFloat(item.ConsumerUtilisation)
		if err == nil && u != nil && (*u < 0 || *u > 1) {
			u, err = nil, errors.New("outside 0..1")
		}
		if err != nil {
			odd("consumer_utilisation", item.ConsumerUtilisation, err)
		}
		q.ConsumerUtilisation = u
		q.DeadLetterExchange, q.deadLetterRoutingKey = deadLetterTarget(item.Arguments, item.Policy)
		pg.queues = append(pg.queues, q)
	}
	return pg, nil
}

// deadLetterTarget reads the dead-letter exchange and routing key from a
// queue's arguments, falling back to its effective policy (arguments win, as
// in RabbitMQ). Absent or odd values give nil: no dead-lettering known.
func deadLetterTarget(args, policy json.RawMessage) (exchange, routingKey *string) {
	str := func(obj json.RawMessage, key string) *string {
		var m map[string]json.RawMessage
		// Empty arguments come as [] from some broker versions: not an object, nothing to read.
		if json.Unmarshal(obj, &m) != nil {
			return nil
		}
		var v string
		if raw, ok := m[key]; !ok || json.Unmarshal(raw, &v) != nil {
			return nil
		}
		return &v
	}
	if x := str(args, "x-dead-letter-exchange"); x != nil {
		return x, str(args, "x-dead-letter-routing-key")
	}
	if x := str(policy, "dead-letter-exchange"); x != nil {
		return x, str(policy, "dead-letter-routing-key")
	}
	return nil, nil
}

// numberText returns the number a field holds as text: "" for missing or
// null, the string's content for a number sent as a JSON string (only JSON
// number syntax: not "Inf", "0x1p4", "true"), else the raw text.
func numberText(raw json.RawMessage) (string, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return "", nil
	}
	if s[0] == '"' {
		var str string
		if err := json.Unmarshal(raw, &str); err != nil {
			return "", err
		}
		s = strings.TrimSpace(str)
		if s == "" || !json.Valid([]byte(s)) || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) {
			return "", errors.New("string is not a number")
		}
	}
	return s, nil
}

// parseFloat reads a rate or ratio leniently: missing or null -> nil, a
// finite number or a string holding one -> its value, anything else -> nil
// and an error.
func parseFloat(raw json.RawMessage) (*float64, error) {
	s, err := numberText(raw)
	if s == "" || err != nil {
		return nil, err
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, errors.New("not a finite number")
	}
	return &f, nil
}

// parseCount reads a count leniently. Missing or null -> nil, no error. An
// integral number (3, 3.0, 3e0) or a string holding one ("3") -> its value.
// Anything else (1.5, -1, "abc", true, {}) -> nil and an error saying why.
func parseCount(raw json.RawMessage) (*int64, error) {
	s, err := numberText(raw)
	if s == "" || err != nil {
		return nil, err
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n < 0 {
			return nil, errors.New("negative")
		}
		return &n, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, errors.New("not a number")
	}
	// 2^63 is the first float64 outside int64.
	if math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f) || f < 0 || f >= 1<<63 {
		return nil, errors.New("not a non-negative integer")
	}
	n := int64(f)
	return &n, nil
}

// truncate keeps log lines short when a value is large.
func truncate(raw json.RawMessage) string {
	const maxLen = 64
	if len(raw) > maxLen {
		return string(raw[:maxLen]) + "..."
	}
	return string(raw)
}
