package web

import (
	"strings"
	"testing"
	"time"
)

// The throttle keys of PATCH /api/consumers/{name} decode into the change;
// ranges are the controller's to judge.
func TestDecodeChangeThrottleKeys(t *testing.T) {
	ch, err := decodeChange([]byte(`{"throttle_max_concurrent": 3, "throttle_delay_ms": 250}`))
	if err != nil {
		t.Fatal(err)
	}
	if ch.ThrottleMaxConcurrent == nil || *ch.ThrottleMaxConcurrent != 3 {
		t.Errorf("throttle_max_concurrent: %v", ch.ThrottleMaxConcurrent)
	}
	if ch.ThrottleDelay == nil || *ch.ThrottleDelay != 250*time.Millisecond {
		t.Errorf("throttle_delay_ms: %v", ch.ThrottleDelay)
	}
	if ch.Concurrency != nil || ch.Prefetch != nil {
		t.Errorf("untouched fields set: %+v", ch)
	}
	ch, err = decodeChange([]byte(`{"throttle_delay_ms": 0}`))
	if err != nil || ch.ThrottleDelay == nil || *ch.ThrottleDelay != 0 {
		t.Errorf("zero delay (turns it off): %v %v", ch.ThrottleDelay, err)
	}

	for _, tc := range []struct{ body, field string }{
		{`{"throttle_delay_ms": 1.5}`, "throttle_delay_ms"},
		{`{"throttle_delay_ms": "100"}`, "throttle_delay_ms"},
		{`{"throttle_delay_ms": 9223372036854775807}`, "throttle_delay_ms"},
		{`{"throttle_max_concurrent": null}`, "throttle_max_concurrent"},
		{`{"throttle": 5}`, "throttle_max_concurrent"}, // unknown key: the message lists the known ones
	} {
		if _, err := decodeChange([]byte(tc.body)); err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: error %v does not name %s", tc.body, err, tc.field)
		}
	}
}
