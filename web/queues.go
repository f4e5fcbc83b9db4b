package web

import (
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"warren/monitor"
)

// queueJSON is one queue in the API. Pointers stay nil (JSON null) when the
// broker did not report the value: unknown is never 0.
type queueJSON struct {
	Vhost                  string `json:"vhost"`
	Name                   string `json:"name"`
	Messages               *int64 `json:"messages"`
	MessagesReady          *int64 `json:"messages_ready"`
	MessagesUnacknowledged *int64 `json:"messages_unacknowledged"`
	Consumers              *int64 `json:"consumers"`
	// Warren's own estimates from deltas between polls (messages/s), and
	// the time to drain the ready messages; null when unknown.
	IngressRate        *float64 `json:"ingress_rate"`
	EgressRate         *float64 `json:"egress_rate"`
	TimeToDrainSeconds *float64 `json:"time_to_drain_seconds"`
	Growing            *bool    `json:"growing"`
	IsDeadLetter       bool     `json:"is_dead_letter"`
	Status             string   `json:"status"`
}

// queuesJSON is the body of GET /api/queues.
type queuesJSON struct {
	Queues   []queueJSON `json:"queues"`
	PolledAt *time.Time  `json:"polled_at"` // null before the first poll
	Error    *string     `json:"error"`     // null unless the last poll failed
}

func newQueueJSON(q monitor.QueueSample) queueJSON {
	return queueJSON{
		Vhost:                  q.Vhost,
		Name:                   q.Name,
		Messages:               q.Messages,
		MessagesReady:          q.Ready,
		MessagesUnacknowledged: q.Unacked,
		Consumers:              q.Consumers,
		IngressRate:            q.IngressRate,
		EgressRate:             q.EgressRate,
		TimeToDrainSeconds:     q.TimeToDrainSeconds,
		Growing:                q.Growing,
		IsDeadLetter:           q.IsDeadLetter,
		Status:                 statusClass(q.Status),
	}
}

// apiQueues is GET /api/queues: every queue of the last poll, ordered by
// vhost and name.
func (s *Server) apiQueues(c echo.Context) error {
	snap := s.queues.Latest()
	body := queuesJSON{Queues: make([]queueJSON, 0, len(snap.Queues))}
	for _, q := range sortedQueues(snap.Queues) {
		body.Queues = append(body.Queues, newQueueJSON(q))
	}
	if !snap.At.IsZero() {
		at := snap.At.UTC()
		body.PolledAt = &at
	}
	if snap.Err != nil {
		msg := shortError(snap.Err)
		body.Error = &msg
	}
	noStore(c)
	return c.JSON(http.StatusOK, body)
}

// apiQueue is GET /api/queues/{vhost}/{name}: one queue of the last poll.
func (s *Server) apiQueue(c echo.Context) error {
	vhost, err := pathParam(c, "vhost")
	if err != nil {
		return err
	}
	name, err := pathParam(c, "name")
	if err != nil {
		return err
	}
	snap := s.queues.Latest()
	switch p := newPollView(snap); p.State {
	case pollFailed, pollPending:
		// Not knowing is not "not found": the queue may well be there.
		msg := "queue depths unknown: no poll of the management API yet"
		if p.State == pollFailed {
			msg = p.unknownText("queue depths")
		}
		noStore(c)
		return c.JSON(http.StatusServiceUnavailable, errorBody{Error: msg})
	}
	for _, q := range snap.Queues {
		if q.Vhost == vhost && q.Name == name {
			noStore(c)
			return c.JSON(http.StatusOK, newQueueJSON(q))
		}
	}
	return jsonError(http.StatusNotFound, "queue %q in vhost %q was not in the last poll", name, vhost)
}
