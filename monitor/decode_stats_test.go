package monitor

import "testing"

// RabbitMQ 3.10 sends "message_stats": [] for a queue without stats yet (seen
// by a trial on the real broker, where each one logged a warning). It is not
// an oddity: the publish count is simply unknown. An actual non-object still is.
func TestEmptyMessageStatsListIsNotOdd(t *testing.T) {
	body := []byte(`{"page_count":1,"total_count":2,"items":[
		{"name":"a","vhost":"/","messages":0,"messages_ready":0,"messages_unacknowledged":0,"consumers":0,"message_stats":[]},
		{"name":"b","vhost":"/","messages":0,"messages_ready":0,"messages_unacknowledged":0,"consumers":0,"message_stats":"x"}]}`)
	pg, err := decodeQueuePage(body, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(pg.queues) != 2 {
		t.Fatalf("%d queues, want 2", len(pg.queues))
	}
	if a := pg.queues[0]; len(a.Flagged) != 0 || a.PublishedTotal != nil {
		t.Errorf("queue a: flagged %v published %v, want nothing flagged and no publish count", a.Flagged, a.PublishedTotal)
	}
	if len(pg.oddities) != 1 || pg.oddities[0].queue != "b" {
		t.Errorf("oddities %+v, want one, for queue b", pg.oddities)
	}
}
