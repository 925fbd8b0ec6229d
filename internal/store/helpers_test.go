package store

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// smallTables keeps each test store's memory small: tests open many.
func smallTables(bo badger.Options) badger.Options {
	return bo.WithMemTableSize(8 << 20).WithBlockCacheSize(4 << 20).WithValueLogFileSize(32 << 20).
		WithNumCompactors(2).WithNumMemtables(2).WithNumLevelZeroTables(2).WithNumLevelZeroTablesStall(4)
}

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// openAt opens a store in dir with test sizes.
func openAt(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	opts.Tune = smallTables
	s, err := Open(context.Background(), dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return s
}

// newStore opens a store in a fresh temporary directory, closed at cleanup.
func newStore(t testing.TB, opts Options) *Store {
	t.Helper()
	s := openAt(t, t.TempDir(), opts)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// keysUnder returns every key under prefix with its value.
func keysUnder(t testing.TB, s *Store, prefix string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix), PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			out[string(it.Item().Key())] = string(v)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("scan %q: %v", prefix, err)
	}
	return out
}

// checkIndexes rebuilds every index key from the stored records and
// compares with the index keys actually stored: no index key may dangle and
// none may be missing.
func checkIndexes(t testing.TB, s *Store) {
	t.Helper()
	ctx := context.Background()
	want := map[string]string{}
	var incs []Incident
	err := s.db.View(func(txn *badger.Txn) error {
		return scanJSON(txn, pInc, func() any { incs = append(incs, Incident{}); return &incs[len(incs)-1] })
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, inc := range incs {
		for _, ix := range incIndexes(&inc) {
			want[ix.key] = inc.ID
		}
		var ents []Entry
		err := s.db.View(func(txn *badger.Txn) error {
			return scanJSON(txn, pEnt+inc.ID+"/", func() any { ents = append(ents, Entry{}); return &ents[len(ents)-1] })
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if e.ExternalID != "" {
				want[string(entExtKey(e.IncidentID, e.ExternalID))] = e.ID
			}
		}
	}
	users, err := s.ListUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		want[string(usrNameKey(u.Username))] = u.ID
		if u.Email != "" {
			want[string(usrMailKey(u.Email))] = u.ID
		}
	}
	insts, err := s.ListInstances(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range insts {
		want[string(insNameKey(in.Name))] = in.ID
	}
	keys, err := s.ListAPIKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		want[string(apiKeyHashKey(k.Hash))] = k.ID
	}
	for pv := range keysUnder(t, s, pPV) {
		name, version, _ := strings.Cut(strings.TrimPrefix(pv, pPV), sep)
		got, err := s.GetPluginVersion(ctx, name, version)
		if err != nil {
			t.Fatal(err)
		}
		want[string(pvBlobKey(got.SHA256, name, version))] = ""
	}
	got := keysUnder(t, s, "idx/")
	for k, v := range got {
		w, ok := want[k]
		switch {
		case !ok:
			t.Errorf("dangling index key %q -> %q", k, v)
		case strings.HasPrefix(k, pIdxIncStat) || strings.HasPrefix(k, pIdxIncMod) || strings.HasPrefix(k, pIdxPVBlob):
			// the id is in the key
		case v != w:
			t.Errorf("index key %q -> %q, want %q", k, v, w)
		}
	}
	for k := range want {
		if _, ok := got[k]; !ok {
			t.Errorf("missing index key %q", k)
		}
	}
}

func ids[T any](xs []T, id func(T) string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = id(x)
	}
	return out
}

func incIDs(xs []Incident) []string { return ids(xs, func(i Incident) string { return i.ID }) }

func sortedCopy(xs []string) []string {
	out := slices.Clone(xs)
	slices.Sort(out)
	return out
}
