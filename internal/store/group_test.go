package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	badger "github.com/dgraph-io/badger/v4"
)

// TestGroupCommitSharesSyncs: concurrent incident creations and entries
// share synced commits when group commit is on (fewer commits than calls,
// some commit acknowledging several), and each is its own commit when it
// is off. Every call's incident or entry is stored exactly once either way.
func TestGroupCommitSharesSyncs(t *testing.T) {
	tests := []struct {
		name  string
		off   bool
		group bool // whether commits must be shared
	}{
		{"on", false, true},
		{"off", true, false},
	}
	const writers, each = 16, 12
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var commits, calls, widest atomic.Int64
			s := newStore(t, Options{NoGroupCommit: tc.off, onCommit: func(n int) {
				commits.Add(1)
				calls.Add(int64(n))
				for w := widest.Load(); int64(n) > w && !widest.CompareAndSwap(w, int64(n)); w = widest.Load() {
				}
			}})
			ctx := context.Background()
			target, err := s.CreateIncidents(ctx, []Incident{{Name: "target"}})
			if err != nil {
				t.Fatal(err)
			}
			commits.Store(0)
			calls.Store(0)
			widest.Store(0)
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					for i := range each {
						var err error
						if i%2 == 0 {
							name := fmt.Sprintf("w%d-%d", w, i)
							_, err = s.CreateIncidents(ctx, []Incident{{Name: name, Instance: "group", SourceID: name}})
						} else {
							_, err = s.AddEntries(ctx, []Entry{{IncidentID: target[0].ID, Contents: fmt.Sprintf("w%d-%d", w, i)}})
						}
						if err != nil {
							t.Error(err)
						}
					}
				})
			}
			wg.Wait()
			total := int64(writers * each)
			if calls.Load() != total {
				t.Errorf("commits acknowledged %d calls, want %d", calls.Load(), total)
			}
			if tc.group && (commits.Load() >= total || widest.Load() < 2) {
				t.Errorf("group commit on: %d commits for %d calls, widest %d: no sync was shared", commits.Load(), total, widest.Load())
			}
			if !tc.group && (commits.Load() != total || widest.Load() != 1) {
				t.Errorf("group commit off: %d commits for %d calls, widest %d; want one each", commits.Load(), total, widest.Load())
			}
			t.Logf("%d calls in %d synced commits, widest %d", total, commits.Load(), widest.Load())
			incs, _, err := s.SearchIncidents(ctx, IncidentQuery{Instance: "group", Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			if len(incs) != writers*each/2 {
				t.Errorf("%d incidents, want %d", len(incs), writers*each/2)
			}
			ents, _, err := s.ListEntries(ctx, target[0].ID, EntryQuery{Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			if len(ents) != writers*each/2 {
				t.Errorf("%d entries, want %d", len(ents), writers*each/2)
			}
			inc, err := s.GetIncident(ctx, target[0].ID)
			if err != nil {
				t.Fatal(err)
			}
			if inc.Version != 1+writers*each/2 {
				t.Errorf("target version %d, want %d (one per entry call)", inc.Version, 1+writers*each/2)
			}
			checkIndexes(t, s)
		})
	}
}

// TestCommitGroupIsolatesFailures runs one group by hand: writes that fail
// (before writing, after writing, or too big to share a transaction) get
// their own error and leave nothing behind, and the others of the group
// are committed.
func TestCommitGroupIsolatesFailures(t *testing.T) {
	var commits atomic.Int64
	// Group commit off, so no committer runs; commitGroup is called here.
	s := newStore(t, Options{NoGroupCommit: true, onCommit: func(int) { commits.Add(1) }})
	ctx := context.Background()
	inst, err := s.CreateInstance(ctx, Instance{Name: "grp", Plugin: "grp"})
	if err != nil {
		t.Fatal(err)
	}
	create := func(incs ...Incident) func(*badger.Txn) error {
		return func(txn *badger.Txn) error {
			_, err := s.createIncidents(txn, incs)
			return err
		}
	}
	// The incidents are written, then the last run cannot be encoded: a
	// failure after writing, which forces the group to be run again.
	withBadRun := func(incs ...Incident) func(*badger.Txn) error {
		return func(txn *badger.Txn) error {
			if _, err := s.createIncidents(txn, incs); err != nil {
				return err
			}
			return setJSON(txn, key(pLastRun, inst.ID), map[string]any{"x": math.NaN()})
		}
	}
	addEntry := func(incID string) func(*badger.Txn) error {
		return func(txn *badger.Txn) error {
			var inc Incident
			if err := getJSON(txn, incKey(incID), &inc); err != nil {
				return clean(fmt.Errorf("incident %s: %w", incID, err))
			}
			return nil
		}
	}
	// Two writes of about 800 KB: each fits a transaction of smallTables
	// (at most 1.2 MB), the two together do not.
	big := make([]Incident, 160)
	for i := range big {
		big[i] = Incident{Name: fmt.Sprint("big ", i), Instance: "grp", SourceID: fmt.Sprint("big-", i), RawJSON: strings.Repeat("x", 10000)}
	}
	tests := []struct {
		name    string
		fn      func(*badger.Txn) error
		wantErr error // nil: stored
		stored  []string
	}{
		{"valid first", create(Incident{Name: "a", Instance: "grp", SourceID: "a"}), nil, []string{"a"}},
		{"invalid status (clean)", create(Incident{Name: "b", Instance: "grp", SourceID: "b"}, Incident{Name: "b2", Status: 9}), ErrInvalid, nil},
		{"valid after clean failure", create(Incident{Name: "c", Instance: "grp", SourceID: "c"}), nil, []string{"c"}},
		{"fails after writing", withBadRun(Incident{Name: "d", Instance: "grp", SourceID: "d"}), errAny, nil},
		{"missing incident (clean)", addEntry("nope"), ErrNotFound, nil},
		{"valid after replay", create(Incident{Name: "e", Instance: "grp", SourceID: "e"}), nil, []string{"e"}},
		{"big", create(big[:80]...), nil, []string{"big 0", "big 79"}},
		{"too big for the group, fits alone", create(big[80:]...), nil, []string{"big 80", "big 159"}},
		{"valid last", create(Incident{Name: "f", Instance: "grp", SourceID: "f"}), nil, []string{"f"}},
	}
	ops := make([]*groupOp, len(tests))
	for i, tc := range tests {
		ops[i] = &groupOp{ctx: ctx, fn: tc.fn, done: make(chan error, 1)}
	}
	s.commitGroup(ops)
	for i, tc := range tests {
		var err error
		select {
		case err = <-ops[i].done:
		default:
			t.Fatalf("%s: not answered", tc.name)
		}
		switch {
		case tc.wantErr == nil && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.wantErr == errAny && err == nil, tc.wantErr != nil && tc.wantErr != errAny && !errors.Is(err, tc.wantErr):
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.wantErr)
		}
		var ce cleanError
		if errors.As(err, &ce) {
			t.Errorf("%s: the clean mark leaked to the caller: %v", tc.name, err)
		}
	}
	incs, _, err := s.SearchIncidents(ctx, IncidentQuery{Instance: "grp", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]int{}
	for _, inc := range incs {
		names[inc.Name]++
	}
	for _, tc := range tests {
		for _, n := range tc.stored {
			if names[n] != 1 {
				t.Errorf("%s: incident %q stored %d times, want once", tc.name, n, names[n])
			}
		}
	}
	for _, n := range []string{"b", "b2", "d"} {
		if names[n] != 0 {
			t.Errorf("incident %q of a failed write was stored", n)
		}
	}
	if len(incs) != 4+160 {
		t.Errorf("%d incidents stored, want %d", len(incs), 4+160)
	}
	if commits.Load() < 2 {
		t.Errorf("%d commits: the oversized write should have split the group", commits.Load())
	}
	checkIndexes(t, s)
}

// errAny stands for "some error" in a want column.
var errAny = errors.New("any error")
