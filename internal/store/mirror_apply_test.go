package store

import (
	"context"
	"errors"
	"testing"

	"github.com/connhost/connhost/abi"
)

// TestApplyMirrorUpdatesIsAllOrNothing: entries and incident changes of a
// batch are written together: a failure on one incident leaves every
// incident of the batch, and their entries, as they were.
func TestApplyMirrorUpdatesIsAllOrNothing(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, Options{})
	incs, err := s.CreateIncidents(ctx, []Incident{
		{Name: "a", Status: abi.StatusDone, DbotMirrorID: "r1", DbotMirrorInstance: "peer", DbotMirrorDirection: abi.MirrorIn},
		{Name: "b", Status: abi.StatusActive, DbotMirrorID: "r2", DbotMirrorInstance: "peer", DbotMirrorDirection: abi.MirrorIn},
	})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{incs[0].ID, incs[1].ID}
	reopen := func(inc *Incident) ([]Entry, error) {
		inc.Status = abi.StatusActive
		return []Entry{{Type: abi.EntryNote, Contents: "with the reopen", Origin: "mirror:peer", ExternalID: "id:c1"}}, nil
	}
	boom := errors.New("boom")
	_, err = s.ApplyMirrorUpdates(ctx, ids, func(inc *Incident) ([]Entry, error) {
		if inc.ID == ids[1] {
			return nil, boom
		}
		return reopen(inc)
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err %v, want boom", err)
	}
	if got, _ := s.GetIncident(ctx, ids[0]); got.Status != abi.StatusDone {
		t.Fatalf("a failed batch reopened incident a")
	}
	if es, _, _ := s.ListEntries(ctx, ids[0], EntryQuery{}); len(es) != 0 {
		t.Fatalf("a failed batch left %d entries", len(es))
	}
	for round := range 2 {
		out, err := s.ApplyMirrorUpdates(ctx, ids[:1], reopen)
		if err != nil {
			t.Fatal(err)
		}
		if e := out[ids[0]]; len(e) != 1 || e[0].New != (round == 0) {
			t.Fatalf("round %d: entries %+v; want one, new the first time only", round, e)
		}
	}
	got, _ := s.GetIncident(ctx, ids[0])
	es, _, _ := s.ListEntries(ctx, ids[0], EntryQuery{})
	if got.Status != abi.StatusActive || len(es) != 1 || es[0].IncidentID != ids[0] {
		t.Fatalf("after apply: status %d, entries %+v", got.Status, es)
	}
}
