package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

func TestInstanceCRUD(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, Options{})
	snow, err := s.CreateInstance(ctx, Instance{
		Name: "snow", Plugin: "servicenow", Enabled: true, Params: map[string]any{"url": "https://x", "password": "enc:v1:abc"},
		Settings: Settings{FetchEnabled: true, FetchIntervalMinutes: 5, MirrorDirection: "Both", Egress: []string{"x.service-now.com"}, MemoryMiB: 64},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateInstance(ctx, Instance{Name: "jira", Plugin: "jira"}); err != nil {
		t.Fatal(err)
	}
	creates := []struct {
		name    string
		in      Instance
		wantErr error
	}{
		{"name taken", Instance{Name: "snow", Plugin: "other"}, ErrExists},
		{"empty name", Instance{Plugin: "p"}, ErrInvalid},
		{"empty plugin", Instance{Name: "p"}, ErrInvalid},
		{"NUL in name", Instance{Name: "a\x00b", Plugin: "p"}, ErrInvalid},
	}
	for _, tc := range creates {
		if _, err := s.CreateInstance(ctx, tc.in); !errors.Is(err, tc.wantErr) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.wantErr)
		}
	}
	got, err := s.GetInstanceByName(ctx, "snow")
	if err != nil || got.ID != snow.ID || got.Settings.FetchIntervalMinutes != 5 || got.Params["password"] != "enc:v1:abc" {
		t.Fatalf("GetInstanceByName = %+v, %v", got, err)
	}
	updates := []struct {
		name    string
		fn      func(*Instance) error
		wantErr error
	}{
		{"disable", func(i *Instance) error { i.Enabled = false; return nil }, nil},
		{"rename", func(i *Instance) error { i.Name = "snow-prod"; return nil }, nil},
		{"rename onto a taken name", func(i *Instance) error { i.Name = "jira"; return nil }, ErrExists},
		{"pin", func(i *Instance) error { i.PinnedVersion = "2.1.0"; i.ID = "hijack"; return nil }, nil},
	}
	for _, tc := range updates {
		if _, err := s.UpdateInstance(ctx, snow.ID, tc.fn); !errors.Is(err, tc.wantErr) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.wantErr)
		}
	}
	got, err = s.GetInstance(ctx, snow.ID)
	if err != nil || got.Name != "snow-prod" || got.Enabled || got.PinnedVersion != "2.1.0" || got.ID != snow.ID {
		t.Errorf("after updates = %+v, %v", got, err)
	}
	if _, err := s.GetInstanceByName(ctx, "snow"); !errors.Is(err, ErrNotFound) {
		t.Errorf("old name still resolves: %v", err)
	}
	list, err := s.ListInstances(ctx)
	if err != nil || len(list) != 2 || list[0].ID != snow.ID {
		t.Errorf("ListInstances = %+v, %v", list, err)
	}
	checkIndexes(t, s)
}

// TestDeleteInstanceRemovesState fills every kind of per-instance state
// and checks that no key of the instance is left after the delete, while a
// second instance keeps its own.
func TestDeleteInstanceRemovesState(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, Options{})
	var insts []Instance
	for _, name := range []string{"a", "b"} {
		inst, err := s.CreateInstance(ctx, Instance{Name: name, Plugin: "p"})
		if err != nil {
			t.Fatal(err)
		}
		insts = append(insts, inst)
		steps := []error{
			func() error { _, err := s.SetContext(ctx, inst.ID, map[string]any{"k": 1}, -1); return err }(),
			s.SetLastRun(ctx, inst.ID, map[string]any{"t": 1}),
			s.SetLastMirrorRun(ctx, inst.ID, map[string]any{"t": 1}),
			s.SetHealth(ctx, inst.ID, "ok", false),
		}
		steps = append(steps, s.CacheSet(ctx, inst.ID, "key", json.RawMessage(`1`), time.Hour))
		// More cache keys than one purge transaction deletes, written in one
		// transaction rather than one synchronous write each.
		steps = append(steps, s.db.Update(func(txn *badger.Txn) error {
			for i := range purgeBatch + 4 {
				if err := setJSON(txn, cacheKey(inst.ID, fmt.Sprint("bulk", i)), cacheRecord{Value: json.RawMessage(`1`)}); err != nil {
					return err
				}
			}
			return nil
		}))
		if err := errors.Join(steps...); err != nil {
			t.Fatal(err)
		}
	}
	incs, err := s.CreateIncidentsWithLastRun(ctx, insts[0].ID, []Incident{{Name: "kept"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteInstance(ctx, insts[0].ID); err != nil {
		t.Fatal(err)
	}
	a, b := insts[0].ID, insts[1].ID
	all := keysUnder(t, s, "")
	for k := range all {
		if strings.Contains(k, a) {
			t.Errorf("key %q of the deleted instance is left", k)
		}
	}
	if n := len(keysUnder(t, s, pCache+b+sep)); n != purgeBatch+5 {
		t.Errorf("other instance has %d cache keys, want %d", n, purgeBatch+5)
	}
	if _, err := s.GetIncident(ctx, incs[0].ID); err != nil {
		t.Errorf("incident of the deleted instance: %v", err)
	}
	writes := []error{
		func() error { _, err := s.SetContext(ctx, a, nil, -1); return err }(),
		s.SetLastRun(ctx, a, nil),
		s.SetHealth(ctx, a, "", false),
		s.CacheSet(ctx, a, "k", json.RawMessage(`1`), 0),
		s.DeleteInstance(ctx, a),
		func() error { _, err := s.CreateIncidentsWithLastRun(ctx, a, nil, nil); return err }(),
	}
	for i, err := range writes {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("write %d to a deleted instance: %v, want ErrNotFound", i, err)
		}
	}
	checkIndexes(t, s)
}

func TestIntegrationContext(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, Options{})
	inst, err := s.CreateInstance(ctx, Instance{Name: "a", Plugin: "p"})
	if err != nil {
		t.Fatal(err)
	}
	v, ver, err := s.GetContext(ctx, inst.ID)
	if err != nil || ver != 0 || len(v) != 0 || v == nil {
		t.Fatalf("initial context = %v, %d, %v", v, ver, err)
	}
	steps := []struct {
		name        string
		version     int64
		wantErr     error
		wantVersion int64
	}{
		{"first write at 0", 0, nil, 1},
		{"stale 0", 0, ErrConflict, 1},
		{"current 1", 1, nil, 2},
		{"ahead 5", 5, ErrConflict, 2},
		{"unconditional", -1, nil, 3},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			newVer, err := s.SetContext(ctx, inst.ID, map[string]any{"step": st.name}, st.version)
			if !errors.Is(err, st.wantErr) {
				t.Fatalf("SetContext: %v, want %v", err, st.wantErr)
			}
			if err == nil && newVer != st.wantVersion {
				t.Errorf("new version %d, want %d", newVer, st.wantVersion)
			}
			_, ver, err := s.GetContext(ctx, inst.ID)
			if err != nil || ver != st.wantVersion {
				t.Errorf("stored version %d, %v; want %d", ver, err, st.wantVersion)
			}
		})
	}
	if _, _, err := s.GetContext(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("context of missing instance: %v", err)
	}
}

// TestSetContextRace starts many writers holding the same version at once:
// exactly one may win, every other gets ErrConflict.
func TestSetContextRace(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, Options{})
	inst, err := s.CreateInstance(ctx, Instance{Name: "a", Plugin: "p"})
	if err != nil {
		t.Fatal(err)
	}
	for round := range 5 {
		_, ver, err := s.GetContext(ctx, inst.ID)
		if err != nil {
			t.Fatal(err)
		}
		const writers = 8
		var (
			wg        sync.WaitGroup
			mu        sync.Mutex
			wins      []int
			conflicts int
			start     = make(chan struct{})
		)
		for w := range writers {
			wg.Go(func() {
				<-start
				_, err := s.SetContext(ctx, inst.ID, map[string]any{"writer": float64(w)}, ver)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins = append(wins, w)
				case errors.Is(err, ErrConflict):
					conflicts++
				default:
					t.Error(err)
				}
			})
		}
		close(start)
		wg.Wait()
		if len(wins) != 1 || conflicts != writers-1 {
			t.Fatalf("round %d: %d winners, %d conflicts; want 1 and %d", round, len(wins), conflicts, writers-1)
		}
		v, newVer, err := s.GetContext(ctx, inst.ID)
		if err != nil || newVer != ver+1 || v["writer"] != float64(wins[0]) {
			t.Errorf("round %d: stored %v version %d, want writer %d version %d", round, v, newVer, wins[0], ver+1)
		}
	}
}

func TestCacheTTL(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	s := newStore(t, Options{Now: clk.Now})
	inst, err := s.CreateInstance(ctx, Instance{Name: "a", Plugin: "p"})
	if err != nil {
		t.Fatal(err)
	}
	sets := []struct {
		key string
		ttl time.Duration
	}{{"short", time.Minute}, {"long", time.Hour}, {"forever", 0}, {"negative", -time.Second}}
	for _, st := range sets {
		if err := s.CacheSet(ctx, inst.ID, st.key, json.RawMessage(`{"v":"`+st.key+`"}`), st.ttl); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		advance time.Duration
		found   map[string]bool
	}{
		{0, map[string]bool{"short": true, "long": true, "forever": true, "negative": true, "absent": false}},
		{time.Minute - time.Nanosecond, map[string]bool{"short": true, "long": true}},
		{time.Nanosecond, map[string]bool{"short": false, "long": true, "forever": true}},
		{2 * time.Hour, map[string]bool{"long": false, "forever": true, "negative": true}},
	}
	for i, st := range steps {
		clk.Advance(st.advance)
		for k, want := range st.found {
			v, ok, err := s.CacheGet(ctx, inst.ID, k)
			if err != nil || ok != want {
				t.Errorf("step %d: CacheGet(%s) found = %v, %v; want %v", i, k, ok, err, want)
			}
			if ok && string(v) != `{"v":"`+k+`"}` {
				t.Errorf("step %d: CacheGet(%s) = %s", i, k, v)
			}
		}
	}
	if err := s.CacheDelete(ctx, inst.ID, "forever"); err != nil {
		t.Fatal(err)
	}
	if err := s.CacheDelete(ctx, inst.ID, "never-set"); err != nil {
		t.Errorf("deleting a missing key: %v", err)
	}
	if _, ok, _ := s.CacheGet(ctx, inst.ID, "forever"); ok {
		t.Error("deleted key still found")
	}
}

func TestRunsAndHealth(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	s := newStore(t, Options{Now: clk.Now})
	inst, err := s.CreateInstance(ctx, Instance{Name: "a", Plugin: "p"})
	if err != nil {
		t.Fatal(err)
	}
	type getter func(context.Context, string) (map[string]any, error)
	type setter func(context.Context, string, map[string]any) error
	runs := []struct {
		name string
		get  getter
		set  setter
	}{
		{"last run", s.LastRun, s.SetLastRun},
		{"last mirror run", s.LastMirrorRun, s.SetLastMirrorRun},
	}
	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			if v, err := r.get(ctx, inst.ID); err != nil || v != nil {
				t.Errorf("before set: %v, %v; want nil", v, err)
			}
			if err := r.set(ctx, inst.ID, map[string]any{"name": r.name}); err != nil {
				t.Fatal(err)
			}
			if v, err := r.get(ctx, inst.ID); err != nil || v["name"] != r.name {
				t.Errorf("after set: %v, %v", v, err)
			}
		})
	}
	if v, _ := s.LastRun(ctx, inst.ID); v["name"] != "last run" {
		t.Errorf("last run and last mirror run share storage: %v", v)
	}
	if err := s.SetHealth(ctx, inst.ID, "API down", true); err != nil {
		t.Fatal(err)
	}
	h, err := s.Health(ctx, inst.ID)
	if err != nil || h.Message != "API down" || !h.IsError || !h.Updated.Equal(clk.Now()) {
		t.Errorf("Health = %+v, %v", h, err)
	}
}
