package monitor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Columns of the lighter listings: only what the Snapshot keeps.
const (
	nodeColumns     = "name,running,mem_used,mem_limit,mem_alarm,disk_free,disk_free_limit,disk_free_alarm,fd_used,fd_total,partitions"
	consumerColumns = "queue.name,queue.vhost,consumer_tag,channel_details.name,prefetch_count,ack_required,active"
	// The overview ignores nested column paths, so only top-level keys.
	overviewColumns = "cluster_name,rabbitmq_version,queue_totals,object_totals,message_stats"
	// maxDeadLetterLookups bounds the binding requests one poll makes to find
	// where dead-letter exchanges route.
	maxDeadLetterLookups = 50
)

// pathSegment escapes s as exactly one URL path segment: everything but
// RFC 3986 unreserved characters is percent-encoded. url.PathEscape keeps
// '+' and a few others literal, which some servers read differently; this
// leaves nothing to interpretation.
func pathSegment(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// apiPath joins escaped segments under /api.
func apiPath(segments ...string) string {
	var b strings.Builder
	b.WriteString("/api")
	for _, s := range segments {
		b.WriteByte('/')
		b.WriteString(pathSegment(s))
	}
	return b.String()
}

// get fetches endpoint+escapedPath?query with the poller's credentials,
// transport and timeout, and returns the body of a 2xx answer. Other answers
// become errors wrapping ErrCredentialsRejected, ErrPermissionDenied or
// ErrUnreachable where they apply.
func (p *Poller) get(ctx context.Context, what, escapedPath string, query url.Values) ([]byte, error) {
	raw := p.endpoint + escapedPath
	if len(query) > 0 {
		raw += "?" + query.Encode()
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("polling %s at %s: building request: %w", what, p.endpoint, err)
	}
	rctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("polling %s at %s: building request: %w", what, p.endpoint, err)
	}
	req.SetBasicAuth(p.cfg.Username, p.cfg.Password)
	req.Header.Set("Accept", "application/json")
	tr := &rawBodyTransport{ctx: ctx, base: p.base}
	resp, err := tr.RoundTrip(req)
	where := fmt.Sprintf("polling %s at %s", what, p.endpoint)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("%s: %w", where, ctxErr)
		}
		return nil, fmt.Errorf("%s: %w: %s", where, ErrUnreachable, describeTransportError(err, p.cfg.Timeout))
	}
	resp.Body.Close()
	switch {
	case tr.status == http.StatusUnauthorized:
		return nil, fmt.Errorf("%s: %w for user %q (HTTP 401)", where, ErrCredentialsRejected, p.cfg.Username)
	case tr.status == http.StatusForbidden:
		return nil, fmt.Errorf("%s: %w for user %q (HTTP 403; it needs the monitoring or management tag)",
			where, ErrPermissionDenied, p.cfg.Username)
	case tr.status == http.StatusNotFound:
		return nil, fmt.Errorf("%s: %w (HTTP 404)", where, errNotFound)
	case tr.status < 200 || tr.status > 299:
		return nil, fmt.Errorf("%s: management API answered HTTP %d", where, tr.status)
	}
	return tr.body, nil
}

// errNotFound marks a 404: the object asked for does not exist.
var errNotFound = errors.New("not found")

// isAccessError reports whether err means the poll as a whole cannot work.
func isAccessError(err error) bool {
	return errors.Is(err, ErrCredentialsRejected) || errors.Is(err, ErrPermissionDenied) || errors.Is(err, ErrUnreachable)
}

// fetchOverview reads GET /api/overview.
func (p *Poller) fetchOverview(ctx context.Context) (*Overview, error) {
	body, err := p.get(ctx, "overview", "/api/overview", url.Values{"columns": {overviewColumns}})
	if err != nil {
		return nil, err
	}
	var raw struct {
		ClusterName     json.RawMessage `json:"cluster_name"`
		RabbitMQVersion json.RawMessage `json:"rabbitmq_version"`
		QueueTotals     struct {
			Messages        json.RawMessage `json:"messages"`
			MessagesReady   json.RawMessage `json:"messages_ready"`
			MessagesUnacked json.RawMessage `json:"messages_unacknowledged"`
		} `json:"queue_totals"`
		ObjectTotals struct {
			Queues      json.RawMessage `json:"queues"`
			Connections json.RawMessage `json:"connections"`
			Channels    json.RawMessage `json:"channels"`
			Consumers   json.RawMessage `json:"consumers"`
			Exchanges   json.RawMessage `json:"exchanges"`
		} `json:"object_totals"`
		MessageStats struct {
			Publish    struct{ Rate json.RawMessage } `json:"publish_details"`
			DeliverGet struct{ Rate json.RawMessage } `json:"deliver_get_details"`
		} `json:"message_stats"`
	}
	// A broker with no traffic sends queue_totals and message_stats as []
	// (an empty Erlang list); decode leniently, field by field.
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, fmt.Errorf("polling overview at %s: undecodable answer: %w", p.endpoint, err)
	}
	for key, dst := range map[string]any{
		"cluster_name": &raw.ClusterName, "rabbitmq_version": &raw.RabbitMQVersion,
		"queue_totals": &raw.QueueTotals, "object_totals": &raw.ObjectTotals, "message_stats": &raw.MessageStats,
	} {
		if v, ok := top[key]; ok {
			_ = json.Unmarshal(v, dst) // odd shape: the fields stay unknown
		}
	}
	o := &Overview{}
	_ = json.Unmarshal(raw.ClusterName, &o.ClusterName)
	_ = json.Unmarshal(raw.RabbitMQVersion, &o.RabbitMQVersion)
	for _, f := range []struct {
		raw json.RawMessage
		dst **int64
	}{
		{raw.QueueTotals.Messages, &o.Messages}, {raw.QueueTotals.MessagesReady, &o.MessagesReady},
		{raw.QueueTotals.MessagesUnacked, &o.MessagesUnacked},
		{raw.ObjectTotals.Queues, &o.Queues}, {raw.ObjectTotals.Connections, &o.Connections},
		{raw.ObjectTotals.Channels, &o.Channels}, {raw.ObjectTotals.Consumers, &o.Consumers},
		{raw.ObjectTotals.Exchanges, &o.Exchanges},
	} {
		*f.dst = plausibleCount(f.raw)
	}
	o.PublishRate = plausibleRate(raw.MessageStats.Publish.Rate)
	o.DeliverGetRate = plausibleRate(raw.MessageStats.DeliverGet.Rate)
	return o, nil
}

// plausibleCount is parseCount with absurd values dropped.
func plausibleCount(raw json.RawMessage) *int64 {
	v, err := parseCount(raw)
	if err != nil || v != nil && *v > maxPlausibleCount {
		return nil
	}
	return v
}

// plausibleRate is parseFloat with negative and absurd rates dropped.
func plausibleRate(raw json.RawMessage) *float64 {
	v, err := parseFloat(raw)
	if err != nil || v != nil && (*v < 0 || *v > maxPlausibleRate) {
		return nil
	}
	return v
}

func parseBool(raw json.RawMessage) *bool {
	var b bool
	if json.Unmarshal(raw, &b) != nil {
		return nil
	}
	return &b
}

// fetchNodes reads GET /api/nodes.
func (p *Poller) fetchNodes(ctx context.Context) ([]Node, error) {
	body, err := p.get(ctx, "nodes", "/api/nodes", url.Values{"columns": {nodeColumns}})
	if err != nil {
		return nil, err
	}
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("polling nodes at %s: undecodable answer: %w", p.endpoint, err)
	}
	out := make([]Node, 0, len(raw))
	for _, r := range raw {
		n := Node{
			Running: parseBool(r["running"]), MemAlarm: parseBool(r["mem_alarm"]),
			DiskFreeAlarm: parseBool(r["disk_free_alarm"]),
			MemUsed:       plausibleCount(r["mem_used"]), MemLimit: plausibleCount(r["mem_limit"]),
			DiskFree: plausibleCount(r["disk_free"]), DiskFreeLimit: plausibleCount(r["disk_free_limit"]),
			FDUsed: plausibleCount(r["fd_used"]), FDTotal: plausibleCount(r["fd_total"]),
		}
		if json.Unmarshal(r["name"], &n.Name) != nil || n.Name == "" {
			continue
		}
		_ = json.Unmarshal(r["partitions"], &n.Partitions) // odd: none known
		out = append(out, n)
	}
	return out, nil
}

// fetchConsumers reads GET /api/consumers and groups the consumers by queue.
func (p *Poller) fetchConsumers(ctx context.Context) (map[queueKey][]ConsumerInfo, error) {
	body, err := p.get(ctx, "consumers", "/api/consumers", url.Values{"columns": {consumerColumns}})
	if err != nil {
		return nil, err
	}
	var raw []struct {
		Queue struct {
			Name  string `json:"name"`
			Vhost string `json:"vhost"`
		} `json:"queue"`
		Tag json.RawMessage `json:"consumer_tag"`
		// An object, but the broker sends [] for a consumer whose channel is
		// closing: decoded per entry so one such entry cannot fail the list.
		Channel     json.RawMessage `json:"channel_details"`
		Prefetch    json.RawMessage `json:"prefetch_count"`
		AckRequired json.RawMessage `json:"ack_required"`
		Active      json.RawMessage `json:"active"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("polling consumers at %s: undecodable answer: %w", p.endpoint, err)
	}
	out := map[queueKey][]ConsumerInfo{}
	for _, r := range raw {
		var ch struct {
			Name string `json:"name"`
		}
		_ = json.Unmarshal(r.Channel, &ch) // [] or odd: channel unknown
		c := ConsumerInfo{Channel: ch.Name, Prefetch: plausibleCount(r.Prefetch),
			AckRequired: parseBool(r.AckRequired), Active: parseBool(r.Active)}
		_ = json.Unmarshal(r.Tag, &c.Tag)
		k := queueKey{r.Queue.Vhost, r.Queue.Name}
		out[k] = append(out[k], c)
	}
	return out, nil
}

// fetchBindingTargets returns the queues an exchange routes to (GET
// /api/exchanges/VHOST/NAME/bindings/source). With routingKey set, only
// bindings with that key count (a fanout or headers exchange ignores keys,
// so for those every queue binding counts).
func (p *Poller) fetchBindingTargets(ctx context.Context, vhost, exchange string, routingKey *string) ([]string, error) {
	body, err := p.get(ctx, "bindings", apiPath("exchanges", vhost, exchange, "bindings", "source"), nil)
	if err != nil {
		return nil, err
	}
	var raw []struct {
		Destination     string `json:"destination"`
		DestinationType string `json:"destination_type"`
		RoutingKey      string `json:"routing_key"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("polling bindings at %s: undecodable answer: %w", p.endpoint, err)
	}
	var all, keyed []string
	for _, b := range raw {
		if b.DestinationType != "queue" {
			continue
		}
		all = append(all, b.Destination)
		if routingKey != nil && b.RoutingKey == *routingKey {
			keyed = append(keyed, b.Destination)
		}
	}
	if len(keyed) > 0 {
		return keyed, nil
	}
	return all, nil
}
