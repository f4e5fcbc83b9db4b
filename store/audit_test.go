package store

import (
	"testing"
	"time"
)

func TestAuditLogRoundTripFilterAndPaging(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	in := []AuditEntry{
		{At: tm(1000), Actor: "ana", Role: "operator", Action: "consumer.concurrency", Target: "demo", OldValue: "5", NewValue: "6", Outcome: AuditOK, RemoteAddr: "127.0.0.1"},
		{At: tm(2000), Actor: "bob", Role: "operator", Action: "consumer.pause", Target: "<b>odd</b>", OldValue: "running", NewValue: "paused", Outcome: AuditOK, RemoteAddr: "::1"},
		{At: tm(3000), Actor: "ana", Role: "operator", Action: "consumer.prefetch", Target: "demo", OldValue: "10", NewValue: "0", Outcome: AuditRejected, Detail: "prefetch must be between 1 and 100", RemoteAddr: "10.0.0.2 via 127.0.0.1"},
	}
	for i, e := range in {
		got, err := s.RecordAudit(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID <= 0 {
			t.Fatalf("entry %d got no id", i)
		}
		in[i].ID = got.ID
	}
	all, err := s.AuditLog(ctx, AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || all[0].ID != in[2].ID || all[2].ID != in[0].ID {
		t.Fatalf("want newest first, got %+v", all)
	}
	if all[0] != in[2] {
		t.Errorf("round trip:\n got %+v\nwant %+v", all[0], in[2])
	}

	ana, err := s.AuditLog(ctx, AuditQuery{Actor: "ana"})
	if err != nil || len(ana) != 2 {
		t.Fatalf("actor filter: %v %+v", err, ana)
	}
	pref, err := s.AuditLog(ctx, AuditQuery{Actor: "ana", Action: "consumer.prefetch", Target: "demo"})
	if err != nil || len(pref) != 1 || pref[0].NewValue != "0" {
		t.Fatalf("combined filter: %v %+v", err, pref)
	}
	page, err := s.AuditLog(ctx, AuditQuery{Limit: 1, Before: in[2].ID})
	if err != nil || len(page) != 1 || page[0].ID != in[1].ID {
		t.Fatalf("paging before %d: %v %+v", in[2].ID, err, page)
	}
}

func TestAuditRecordFillsTime(t *testing.T) {
	s, _ := openTest(t)
	s.now = func() time.Time { return tm(42_000) }
	e, err := s.RecordAudit(t.Context(), AuditEntry{Actor: "local", Role: "operator", Action: "webhook.test", Target: "pager", Outcome: AuditOK})
	if err != nil {
		t.Fatal(err)
	}
	if !e.At.Equal(tm(42_000)) {
		t.Errorf("at = %s, want the store clock", e.At)
	}
}

func TestPruneAllDropsOldAuditRows(t *testing.T) {
	s, _ := openTest(t)
	ctx := t.Context()
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	for _, at := range []time.Time{now.Add(-DefaultAuditRetention - time.Hour), now.Add(-DefaultAuditRetention + time.Hour)} {
		if _, err := s.RecordAudit(ctx, AuditEntry{At: at, Actor: "a", Role: "operator", Action: "consumer.resume", Outcome: AuditOK}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.PruneAll(ctx, now); err != nil {
		t.Fatal(err)
	}
	left, err := s.AuditLog(ctx, AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || !left[0].At.Equal(now.Add(-DefaultAuditRetention+time.Hour)) {
		t.Fatalf("after pruning: %+v, want only the younger row", left)
	}
}
