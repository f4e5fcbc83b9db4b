package consumers

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Headers read for observation.
const (
	// HeaderMessageType names the message type for the per-type aggregates
	// (else the AMQP type property, else the JSON body's "type" field).
	HeaderMessageType = "x-message-type"
	// HeaderPublishedAt is the publish time in Unix milliseconds (loadgen
	// writes it); with it warren measures end-to-end latency.
	HeaderPublishedAt = "x-warren-published-at"
)

const (
	// maxMessageTypes bounds the per-type aggregates of one consumer; types
	// come from message data, which must not grow memory without bound.
	maxMessageTypes = 100
	// otherType collects the types beyond maxMessageTypes.
	otherType = "(other)"
	// unknownType is a message without any type.
	unknownType = "(none)"
	// maxSlowPerInterval bounds the slow-message samples kept between two
	// writes; beyond it they are only counted.
	maxSlowPerInterval = 100
	// maxTypeBytes bounds a type name read from a message.
	maxTypeBytes = 128
	// typeScanBytes is how far into a JSON body the "type" field is looked
	// for: Mmate producers put it near the start, and scanning megabytes per
	// message would cost more than the handler.
	typeScanBytes = 4096
)

// SlowMessage is one message whose handling took at least the consumer's
// slow_processing_threshold.
type SlowMessage struct {
	Consumer  string
	Type      string
	MessageID string
	Duration  time.Duration // handler time
	EndToEnd  time.Duration // publish to handled; 0 when unknown
	At        time.Time
}

// SlowMessageWriter stores slow-message samples. The Manager uses it when its
// SampleWriter also implements it; writes happen with the samples, never
// per message.
type SlowMessageWriter interface {
	WriteSlowMessages(ctx context.Context, msgs []SlowMessage) error
}

// TypeStatus is the aggregate of one message type of a consumer since
// start.
type TypeStatus struct {
	Type         string   `json:"type"`
	Processed    uint64   `json:"processed"`
	Failed       uint64   `json:"failed"`
	Retried      uint64   `json:"retried"`
	DeadLettered uint64   `json:"dead_lettered"`
	LatencyP50Ms *float64 `json:"latency_p50_ms"`
	LatencyP95Ms *float64 `json:"latency_p95_ms"`
	LatencyP99Ms *float64 `json:"latency_p99_ms"`
}

// outcome is how one message ended, for the per-type aggregates.
type outcome uint8

const (
	outNone outcome = iota // requeued by shutdown, or a stale ack
	outProcessed
	outFailed // requeued or nacked without a retry policy
	outRetried
	outDeadLettered
)

type typeStats struct {
	processed, failed, retried, deadLettered atomic.Uint64
	hist                                     histogram
}

// typeTable holds a consumer's per-type aggregates. Reads are lock-free
// (sync.Map); a new type takes the mutex once.
type typeTable struct {
	m  sync.Map // string -> *typeStats
	mu sync.Mutex
	n  int
}

func (t *typeTable) get(name string) *typeStats {
	if v, ok := t.m.Load(name); ok {
		return v.(*typeStats)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n >= maxMessageTypes {
		name = otherType
	}
	if v, ok := t.m.Load(name); ok {
		return v.(*typeStats)
	}
	ts := &typeStats{}
	t.m.Store(name, ts)
	t.n++
	return ts
}

func (t *typeTable) record(name string, d time.Duration, o outcome) {
	ts := t.get(name)
	ts.hist.record(d)
	switch o {
	case outProcessed:
		ts.processed.Add(1)
	case outFailed:
		ts.failed.Add(1)
	case outRetried:
		ts.failed.Add(1)
		ts.retried.Add(1)
	case outDeadLettered:
		ts.failed.Add(1)
		ts.deadLettered.Add(1)
	}
}

func (t *typeTable) status() []TypeStatus {
	var out []TypeStatus
	t.m.Range(func(k, v any) bool {
		ts := v.(*typeStats)
		var c counters
		for i := range c.buckets {
			c.buckets[i] = ts.hist.counts[i].Load()
		}
		q := c.quantilesMs(0.50, 0.95, 0.99)
		out = append(out, TypeStatus{
			Type:         k.(string),
			Processed:    ts.processed.Load(),
			Failed:       ts.failed.Load(),
			Retried:      ts.retried.Load(),
			DeadLettered: ts.deadLettered.Load(),
			LatencyP50Ms: q[0],
			LatencyP95Ms: q[1],
			LatencyP99Ms: q[2],
		})
		return true
	})
	slices.SortFunc(out, func(a, b TypeStatus) int {
		if a.Type < b.Type {
			return -1
		}
		if a.Type > b.Type {
			return 1
		}
		return 0
	})
	return out
}

// messageType returns the type of d: the x-message-type header, else the
// AMQP type property, else the JSON body's "type" field. The body is only
// looked at when the first two are missing.
func messageType(d *amqp.Delivery) string {
	if v, ok := d.Headers[HeaderMessageType]; ok {
		switch s := v.(type) {
		case string:
			if s != "" {
				return clipType(s)
			}
		case []byte:
			if len(s) > 0 {
				return clipType(string(s))
			}
		}
	}
	if d.Type != "" {
		return clipType(d.Type)
	}
	if d.ContentEncoding == "" {
		if t := jsonTypeField(d.Body); t != "" {
			return t
		}
	}
	return unknownType
}

func clipType(s string) string {
	if len(s) > maxTypeBytes {
		return s[:maxTypeBytes]
	}
	return s
}

var typeKey = []byte(`"type"`)

// jsonTypeField finds `"type": "..."` near the start of a JSON object body
// without decoding the whole body. It returns "" when there is none or the
// value is not a plain string (escapes are not decoded; a type name has
// none).
func jsonTypeField(body []byte) string {
	b := body[:min(len(body), typeScanBytes)]
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	if i >= len(b) || b[i] != '{' {
		return ""
	}
	for {
		j := bytes.Index(b[i:], typeKey)
		if j < 0 {
			return ""
		}
		k := i + j + len(typeKey)
		for k < len(b) && (b[k] == ' ' || b[k] == '\t' || b[k] == '\n' || b[k] == '\r') {
			k++
		}
		if k < len(b) && b[k] == ':' {
			k++
			for k < len(b) && (b[k] == ' ' || b[k] == '\t' || b[k] == '\n' || b[k] == '\r') {
				k++
			}
			if k >= len(b) || b[k] != '"' {
				return ""
			}
			end := bytes.IndexByte(b[k+1:], '"')
			if end <= 0 || bytes.IndexByte(b[k+1:k+1+end], '\\') >= 0 {
				return ""
			}
			return clipType(string(b[k+1 : k+1+end]))
		}
		i = k // "type" was a value, not a key: look further
	}
}

// publishedAt reads the publish time header (Unix ms).
func publishedAt(h amqp.Table) (time.Time, bool) {
	var ms int64
	switch v := h[HeaderPublishedAt].(type) {
	case int64:
		ms = v
	case int32:
		ms = int64(v)
	case int:
		ms = int64(v)
	default:
		return time.Time{}, false
	}
	if ms <= 0 {
		return time.Time{}, false
	}
	return time.UnixMilli(ms), true
}

// slowBuffer keeps the slow-message samples of the current interval. Only
// slow messages touch it, so its mutex is off the hot path.
type slowBuffer struct {
	mu      sync.Mutex
	msgs    []SlowMessage
	dropped uint64
}

func (b *slowBuffer) add(m SlowMessage) {
	b.mu.Lock()
	if len(b.msgs) < maxSlowPerInterval {
		b.msgs = append(b.msgs, m)
	} else {
		b.dropped++
	}
	b.mu.Unlock()
}

func (b *slowBuffer) take() ([]SlowMessage, uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	msgs, dropped := b.msgs, b.dropped
	b.msgs, b.dropped = nil, 0
	return msgs, dropped
}

// observeMessage records one handled message: consumer latency, per-type
// aggregate, end-to-end latency and, when slow, a slow sample.
func (c *consumer) observeMessage(d *amqp.Delivery, start time.Time, elapsed time.Duration, o outcome) {
	c.stats.observe(elapsed)
	var e2e time.Duration
	if len(d.Headers) > 0 {
		if pub, ok := publishedAt(d.Headers); ok {
			if e2e = start.Add(elapsed).Sub(pub); e2e >= 0 {
				c.stats.e2e.record(e2e)
			} else {
				e2e = 0 // clocks apart: no meaningful value
			}
		}
	}
	typ := messageType(d)
	c.types.record(typ, elapsed, o)
	if thr := c.cfg.SlowProcessingThreshold; thr > 0 && elapsed >= thr {
		c.stats.slow.Add(1)
		c.slow.add(SlowMessage{
			Consumer: c.cfg.Name, Type: typ, MessageID: d.MessageId,
			Duration: elapsed, EndToEnd: e2e, At: start.Add(elapsed),
		})
		if ok, dropped := c.slowLog.allow(); ok {
			c.logger.Warn("slow message", "handler_type", c.cfg.Handler.Type, "message_type", typ,
				"duration", elapsed, "threshold", thr, "message_id", d.MessageId, "suppressed", dropped)
		}
	}
}
