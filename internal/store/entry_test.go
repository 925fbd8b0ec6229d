package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/connhost/connhost/abi"
)

func TestEntries(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	s := newStore(t, Options{Now: clk.Now})
	incs, err := s.CreateIncidents(ctx, []Incident{{Name: "a"}, {Name: "b"}})
	if err != nil {
		t.Fatal(err)
	}
	a, b := incs[0].ID, incs[1].ID

	var want []string // ids of a's entries in order
	var mid time.Time
	for i := range 12 {
		clk.Advance(time.Second)
		if i == 6 {
			mid = clk.Now()
		}
		got, err := s.AddEntries(ctx, []Entry{
			{IncidentID: a, Type: abi.EntryNote, Contents: fmt.Sprint("a", i), Origin: OriginUser},
			{IncidentID: b, Type: abi.EntryNote, Contents: map[string]any{"i": float64(i)}, Origin: OriginMirrorPrefix + "x"},
		})
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, got[0].ID)
	}

	tests := []struct {
		name string
		q    EntryQuery
		want []string
	}{
		{"all", EntryQuery{}, want},
		{"since", EntryQuery{Since: mid}, want[6:]},
		{"after", EntryQuery{After: want[3]}, want[4:]},
		{"after wins over an earlier since", EntryQuery{After: want[8], Since: mid}, want[9:]},
	}
	for _, tc := range tests {
		for _, limit := range []int{1, 5, 0} {
			t.Run(fmt.Sprintf("%s/limit %d", tc.name, limit), func(t *testing.T) {
				q := tc.q
				q.Limit = limit
				var got []string
				for pages := 0; pages < 30; pages++ {
					page, next, err := s.ListEntries(ctx, a, q)
					if err != nil {
						t.Fatal(err)
					}
					for _, e := range page {
						if e.IncidentID != a {
							t.Fatalf("entry of incident %s listed for %s", e.IncidentID, a)
						}
						got = append(got, e.ID)
					}
					if next == "" {
						break
					}
					q.After = next
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("got %v\nwant %v", got, tc.want)
				}
			})
		}
	}

	page, _, err := s.ListEntries(ctx, b, EntryQuery{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := page[0].Contents.(map[string]any); !ok || m["i"] != 0.0 || page[0].Origin != "mirror:x" {
		t.Errorf("first entry of b = %+v", page[0])
	}
	if se := page[0].ServerEntry(); se.ID != page[0].ID || se.Date == "" || se.Type != abi.EntryNote {
		t.Errorf("ServerEntry = %+v", se)
	}
}

func TestAddEntriesIdempotent(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, Options{})
	incs, err := s.CreateIncidents(ctx, []Incident{{Name: "a"}, {Name: "b"}})
	if err != nil {
		t.Fatal(err)
	}
	a, b := incs[0].ID, incs[1].ID
	first, err := s.AddEntries(ctx, []Entry{{IncidentID: a, Contents: "one", ExternalID: "c-1"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		in      []Entry
		wantNew []bool
		wantErr error
	}{
		{"same external id", []Entry{{IncidentID: a, Contents: "again", ExternalID: "c-1"}}, []bool{false}, nil},
		{"same external id, other incident", []Entry{{IncidentID: b, Contents: "b", ExternalID: "c-1"}}, []bool{true}, nil},
		{"twice in one batch", []Entry{{IncidentID: a, ExternalID: "c-2"}, {IncidentID: a, ExternalID: "c-2"}}, []bool{true, false}, nil},
		{"no external id", []Entry{{IncidentID: a}, {IncidentID: a}}, []bool{true, true}, nil},
		{"missing incident fails the batch", []Entry{{IncidentID: a, ExternalID: "c-3"}, {IncidentID: "nope"}}, nil, ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.AddEntries(ctx, tc.in)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			for i, g := range got {
				if g.New != tc.wantNew[i] {
					t.Errorf("[%d] New = %v, want %v", i, g.New, tc.wantNew[i])
				}
			}
		})
	}
	all, _, err := s.ListEntries(ctx, a, EntryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 4 || all[0].ID != first[0].ID || all[0].Contents != "one" {
		t.Errorf("entries of a = %+v", all)
	}
	checkIndexes(t, s)

	if err := s.DeleteIncident(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ListEntries(ctx, a, EntryQuery{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("ListEntries of deleted incident: %v", err)
	}
	for _, p := range []string{pEnt + a + "/", pIdxEntExt + a + sep, pPurge} {
		if left := keysUnder(t, s, p); len(left) != 0 {
			t.Errorf("keys left under %q: %v", p, left)
		}
	}
	if rest, _, err := s.ListEntries(ctx, b, EntryQuery{}); err != nil || len(rest) != 1 {
		t.Errorf("entries of b = %v, %v", rest, err)
	}
	checkIndexes(t, s)
}

// TestDeleteIncidentPurgeResumes simulates a crash between deleting an
// incident and purging its entries: the next Open finishes the purge.
func TestDeleteIncidentPurgeResumes(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openAt(t, dir, Options{})
	incs, err := s.CreateIncidents(ctx, []Incident{{Name: "a"}})
	if err != nil {
		t.Fatal(err)
	}
	id := incs[0].ID
	batch := make([]Entry, purgeBatch+10) // more than one purge transaction
	for i := range batch {
		batch[i] = Entry{IncidentID: id, Contents: i, ExternalID: fmt.Sprint(i)}
	}
	if _, err := s.AddEntries(ctx, batch); err != nil {
		t.Fatal(err)
	}
	// What DeleteIncident commits before purging.
	if err := s.db.Update(func(txn *badger.Txn) error {
		if err := txn.Delete(incKey(id)); err != nil {
			return err
		}
		return schedulePurge(txn, "incident-"+id, pEnt+id+"/", pIdxEntExt+id+sep)
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, dir, Options{})
	defer s.Close()
	for _, p := range []string{pEnt, pIdxEntExt, pPurge} {
		if left := keysUnder(t, s, p); len(left) != 0 {
			t.Errorf("%d keys left under %q", len(left), p)
		}
	}
}
