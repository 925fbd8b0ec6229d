package mirror

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/store"
)

// remoteIncident is one incident of the scripted remote system.
type remoteIncident struct {
	fields   map[string]any
	entries  []abi.Entry
	modified time.Time
}

// scripted is a connector whose remote system lives in memory and whose
// failures are set by the test: the engine's Instances, without wasm, so
// engine tests run many cycles quickly. Plugins are tested over the real
// runtime elsewhere.
type scripted struct {
	mu          sync.Mutex
	target      Target
	remote      map[string]*remoteIncident
	modified    bool           // get-modified-remote-data implemented
	modifiedErr abi.ErrorKind  // error kind get-modified-remote-data returns
	rateLimit   map[string]int // remote id → rate-limited answers left
	failGet     map[string]bool
	failUpdates int           // update-remote-system failures left
	delay       time.Duration // per get-remote-data call
	calls       []string      // "command remote-id"
	updates     []abi.UpdateRemoteSystemArgs
	onUpdate    func(abi.UpdateRemoteSystemArgs)
	fetches     int
}

func (s *scripted) Targets(context.Context) []Target { return []Target{s.target} }

func (s *scripted) Target(_ context.Context, name string) (Target, bool) {
	return s.target, name == s.target.Instance.Name
}

func (s *scripted) RunFetch(context.Context, string) error {
	s.mu.Lock()
	s.fetches++
	s.mu.Unlock()
	return nil
}

func (s *scripted) Call(ctx context.Context, _ string, command string, args any) (json.RawMessage, error) {
	if s.delay > 0 {
		time.Sleep(s.delay)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch command {
	case abi.CommandGetModifiedRemoteData:
		s.calls = append(s.calls, command)
		if s.modifiedErr != "" {
			return nil, abi.Errorf(s.modifiedErr, "scripted %s", s.modifiedErr)
		}
		if !s.modified {
			return nil, abi.Errorf(abi.KindNotImplemented, "get-modified-remote-data")
		}
		since, err := time.Parse(time.RFC3339Nano, args.(abi.GetModifiedRemoteDataArgs).LastUpdate)
		if err != nil {
			return nil, abi.Errorf(abi.KindBadRequest, "last_update: %v", err)
		}
		var ids []string
		for id, r := range s.remote {
			if r.modified.After(since) {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		return json.Marshal(abi.GetModifiedRemoteDataResponse{ModifiedIncidentIDs: ids})
	case abi.CommandGetRemoteData:
		a := args.(abi.GetRemoteDataArgs)
		s.calls = append(s.calls, command+" "+a.RemoteIncidentID)
		if s.rateLimit[a.RemoteIncidentID] > 0 {
			s.rateLimit[a.RemoteIncidentID]--
			return nil, abi.Errorf(abi.KindFailed, "429: API rate limit exceeded")
		}
		r, ok := s.remote[a.RemoteIncidentID]
		if !ok || s.failGet[a.RemoteIncidentID] {
			return nil, abi.Errorf(abi.KindNotFound, "no remote incident %s", a.RemoteIncidentID)
		}
		return json.Marshal(abi.GetRemoteDataResponse{MirroredObject: r.fields, Entries: r.entries})
	case abi.CommandUpdateRemoteSystem:
		a := args.(abi.UpdateRemoteSystemArgs)
		s.calls = append(s.calls, command+" "+a.RemoteIncidentID)
		if s.failUpdates > 0 {
			s.failUpdates--
			return nil, abi.Errorf(abi.KindFailed, "remote unavailable")
		}
		s.updates = append(s.updates, a)
		if s.onUpdate != nil {
			s.onUpdate(a)
		}
		return json.Marshal(a.RemoteIncidentID)
	}
	return nil, abi.Errorf(abi.KindNotImplemented, "%s", command)
}

func (s *scripted) callsOf(prefix string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, c := range s.calls {
		if len(c) >= len(prefix) && c[:len(prefix)] == prefix {
			out = append(out, c)
		}
	}
	return out
}

// clock is a settable clock shared by the store and the engine.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func smallTables(bo badger.Options) badger.Options {
	return bo.WithMemTableSize(8 << 20).WithBlockCacheSize(4 << 20).WithValueLogFileSize(32 << 20).
		WithNumCompactors(2).WithNumMemtables(2).WithNumLevelZeroTables(2).WithNumLevelZeroTablesStall(4)
}

func openStore(t testing.TB, dir string, now func() time.Time) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), dir, store.Options{Now: now, Tune: smallTables})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// fixture is a store with one mirroring instance and a scripted connector.
type fixture struct {
	st     *store.Store
	clk    *clock
	conn   *scripted
	engine *Engine
	inst   store.Instance
}

func newFixture(t testing.TB, dir string, settings store.Settings) *fixture {
	t.Helper()
	clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	st := openStore(t, dir, clk.Now)
	t.Cleanup(func() { _ = st.Close() })
	ctx := context.Background()
	inst, err := st.GetInstanceByName(ctx, "peer")
	if err != nil {
		if settings.MirrorDirection == "" {
			settings.MirrorDirection = abi.MirrorBoth
		}
		settings.CommentTag = "comment"
		inst, err = st.CreateInstance(ctx, store.Instance{Name: "peer", Plugin: "scripted", Enabled: true, Settings: settings})
		if err != nil {
			t.Fatal(err)
		}
	}
	conn := &scripted{
		target: Target{Instance: inst, Manifest: &abi.Manifest{Name: "scripted", Version: "1.0.0", ABIVersion: 1,
			IsFetch: true, IsRemoteSyncIn: true, IsRemoteSyncOut: true}},
		remote: map[string]*remoteIncident{}, rateLimit: map[string]int{},
	}
	e := New(Options{Store: st, Instances: conn, Logger: zerolog.Nop(), Concurrency: 4, Now: clk.Now,
		RetryBase: time.Second, RetryMax: time.Minute})
	return &fixture{st: st, clk: clk, conn: conn, engine: e, inst: inst}
}

// mirrored creates local incidents mirroring remote ids r1..rn, with
// remote counterparts named "remote i".
func (f *fixture) mirrored(t testing.TB, n int, status abi.IncidentStatus) []store.Incident {
	t.Helper()
	var incs []store.Incident
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("r%d", i)
		incs = append(incs, store.Incident{Name: "local " + id, Status: status, Instance: "peer",
			DbotMirrorID: id, DbotMirrorInstance: "peer", DbotMirrorDirection: abi.MirrorBoth, DbotMirrorTags: []string{"comment"}})
		f.conn.remote[id] = &remoteIncident{fields: map[string]any{"name": "remote " + id}, modified: f.clk.Now()}
	}
	out, err := f.st.CreateIncidents(context.Background(), incs)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (f *fixture) incident(t testing.TB, id string) store.Incident {
	t.Helper()
	inc, err := f.st.GetIncident(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return inc
}

func (f *fixture) entries(t testing.TB, id string) []store.Entry {
	t.Helper()
	es, _, err := f.st.ListEntries(context.Background(), id, store.EntryQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func contents(es []store.Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, fmt.Sprint(e.Contents))
	}
	slices.Sort(out)
	return out
}
