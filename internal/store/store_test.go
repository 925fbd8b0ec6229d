package store

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/connhost/connhost/abi"
)

func TestSchemaVersion(t *testing.T) {
	ctx := context.Background()
	markKey := []byte("test/migrated")
	mark := Migration{From: 1, Apply: func(_ context.Context, db *badger.DB) error {
		return db.Update(func(txn *badger.Txn) error { return txn.Set(markKey, []byte("yes")) })
	}}
	tests := []struct {
		name    string
		reopen  Options // options of the second Open, on a dir created at version 1
		wantErr string
		migrate bool
	}{
		{name: "same version", reopen: Options{SchemaVersion: 1}},
		{name: "older runs migration", reopen: Options{SchemaVersion: 2, Migrations: []Migration{mark}}, migrate: true},
		{name: "older without migration", reopen: Options{SchemaVersion: 3, Migrations: []Migration{mark}}, wantErr: "no migration from schema version 2 to 3"},
		{name: "failing migration", reopen: Options{SchemaVersion: 2, Migrations: []Migration{{From: 1, Apply: func(context.Context, *badger.DB) error {
			return errors.New("boom")
		}}}}, wantErr: "migrate schema 1 to 2: boom"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			openAt(t, dir, Options{SchemaVersion: 1, Migrations: []Migration{}}).Close()
			tc.reopen.Tune = smallTables
			s, err := Open(ctx, dir, tc.reopen)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Open: %v, want error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			got := keysUnder(t, s, "test/")
			if (got[string(markKey)] == "yes") != tc.migrate {
				t.Errorf("migrated = %v, want %v", got[string(markKey)] == "yes", tc.migrate)
			}
			want := fmt.Sprint(tc.reopen.SchemaVersion)
			if v := keysUnder(t, s, string(keySchema))[string(keySchema)]; v != want {
				t.Errorf("schema version = %s, want %s", v, want)
			}
		})
	}
}

func TestSchemaNewerRefused(t *testing.T) {
	dir := t.TempDir()
	openAt(t, dir, Options{SchemaVersion: 5, Migrations: []Migration{}}).Close()
	_, err := Open(context.Background(), dir, Options{Tune: smallTables})
	if want := fmt.Sprintf("schema version 5 is newer than %d", SchemaVersion); !errors.Is(err, ErrSchema) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Open: %v, want ErrSchema containing %q", err, want)
	}
}

func TestLoggerReceivesBadgerLogs(t *testing.T) {
	var buf syncBuffer
	l := zerolog.New(&buf).Level(zerolog.TraceLevel)
	s := openAt(t, t.TempDir(), Options{Logger: &l})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"component":"badger"`) {
		t.Errorf("no badger log line reached the logger; got %q", buf.String())
	}
}

// syncBuffer is a bytes.Buffer safe for badger's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestGCLoopStopsOnClose(t *testing.T) {
	ctx := context.Background()
	s := openAt(t, t.TempDir(), Options{GCInterval: time.Millisecond})
	for i := range 50 {
		if _, err := s.CreateIncidents(ctx, []Incident{{Name: fmt.Sprint("gc ", i)}}); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return: GC goroutine not stopped")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestReopenKeepsEverything writes one record of every kind, closes the
// store and checks that a new Open sees them all.
func TestReopenKeepsEverything(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openAt(t, dir, Options{})
	inst, err := s.CreateInstance(ctx, Instance{Name: "snow", Plugin: "servicenow", Params: map[string]any{"url": "https://x"}})
	if err != nil {
		t.Fatal(err)
	}
	incs, err := s.CreateIncidentsWithLastRun(ctx, inst.ID, []Incident{{Name: "a", DbotMirrorID: "r1"}}, map[string]any{"t": "1"})
	if err != nil {
		t.Fatal(err)
	}
	ents, err := s.AddEntries(ctx, []Entry{{IncidentID: incs[0].ID, Type: abi.EntryNote, Contents: "hi", ExternalID: "e1"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetContext(ctx, inst.ID, map[string]any{"token": "x"}, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.CacheSet(ctx, inst.ID, "k", []byte(`"v"`), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.SetLastMirrorRun(ctx, inst.ID, map[string]any{"m": "1"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetHealth(ctx, inst.ID, "down", true); err != nil {
		t.Fatal(err)
	}
	u, err := s.CreateUser(ctx, User{Username: "ann", Email: "ann@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	blob := []byte("\x00asm module")
	sum := sha256.Sum256(blob)
	sha := hex.EncodeToString(sum[:])
	if err := s.PutPluginBlob(ctx, sha, blob); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutPluginVersion(ctx, PluginVersion{Name: "servicenow", Version: "1.0.0", SHA256: sha}); err != nil {
		t.Fatal(err)
	}
	key, err := s.CreateAPIKey(ctx, APIKey{Name: "ci", Hash: "h1", Prefix: "ck_", Role: "read"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openAt(t, dir, Options{})
	defer s.Close()
	checks := []struct {
		name string
		fn   func() error
	}{
		{"instance", func() error { _, err := s.GetInstanceByName(ctx, "snow"); return err }},
		{"incident", func() error { _, err := s.IncidentByMirrorID(ctx, "snow", "r1"); return err }},
		{"entry", func() error {
			got, _, err := s.ListEntries(ctx, incs[0].ID, EntryQuery{})
			if err == nil && (len(got) != 1 || got[0].ID != ents[0].ID) {
				err = fmt.Errorf("entries %v", got)
			}
			return err
		}},
		{"last run", func() error { return wantValue(s.LastRun(ctx, inst.ID)) }},
		{"last mirror run", func() error { return wantValue(s.LastMirrorRun(ctx, inst.ID)) }},
		{"context", func() error {
			v, ver, err := s.GetContext(ctx, inst.ID)
			if err == nil && (ver != 1 || v["token"] != "x") {
				err = fmt.Errorf("context %v version %d", v, ver)
			}
			return err
		}},
		{"cache", func() error {
			_, ok, err := s.CacheGet(ctx, inst.ID, "k")
			if err == nil && !ok {
				err = errors.New("cache entry gone")
			}
			return err
		}},
		{"health", func() error {
			h, err := s.Health(ctx, inst.ID)
			if err == nil && (h.Message != "down" || !h.IsError) {
				err = fmt.Errorf("health %+v", h)
			}
			return err
		}},
		{"user", func() error { _, err := s.GetUser(ctx, u.ID); return err }},
		{"plugin blob", func() error { _, err := s.GetPluginBlob(ctx, sha); return err }},
		{"plugin version", func() error { _, err := s.GetPluginVersion(ctx, "servicenow", "1.0.0"); return err }},
		{"api key", func() error { _, err := s.APIKeyByHash(ctx, key.Hash); return err }},
	}
	for _, c := range checks {
		if err := c.fn(); err != nil {
			t.Errorf("%s after reopen: %v", c.name, err)
		}
	}
	checkIndexes(t, s)
}

func wantValue(v map[string]any, err error) error {
	if err == nil && len(v) == 0 {
		return errors.New("empty")
	}
	return err
}

const (
	crashEnv        = "CONNHOST_STORE_CRASH_DIR"
	crashWritersEnv = "CONNHOST_STORE_CRASH_WRITERS"
	crashNoGroupEnv = "CONNHOST_STORE_CRASH_NO_GROUP"
)

// TestCrashKeepsAcknowledgedWrites re-runs the test binary as a child that
// creates incidents from concurrent goroutines and prints each id once
// CreateIncidents returned; the parent SIGKILLs it mid-stream and checks
// that every printed id survived intact, indexes included, and that each
// acknowledged request made exactly one incident. It runs with group
// commit on (many writers, so commits are shared) and off. A process crash
// does not lose the page cache, so this passes with synced writes off too:
// TestAcknowledgedWritesAreSynced is the check that they were synced.
func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	if dir := os.Getenv(crashEnv); dir != "" {
		writers, _ := strconv.Atoi(os.Getenv(crashWritersEnv))
		crashChild(dir, writers, os.Getenv(crashNoGroupEnv) != "")
		return
	}
	tests := []struct {
		name    string
		writers int
		noGroup bool
	}{
		{"group commit, 32 writers", 32, false},
		{"group commit off, 2 writers", 2, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^TestCrashKeepsAcknowledgedWrites$", "-test.count=1")
			cmd.Env = append(os.Environ(), crashEnv+"="+dir, crashWritersEnv+"="+strconv.Itoa(tc.writers))
			if tc.noGroup {
				cmd.Env = append(cmd.Env, crashNoGroupEnv+"=1")
			}
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			acked := map[string]string{} // id -> name
			sc := bufio.NewScanner(out)
			killed := false
			for sc.Scan() {
				id, name, ok := strings.Cut(sc.Text(), " ")
				if !ok {
					continue
				}
				acked[id] = name
				if len(acked) == 600 && !killed {
					if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
						t.Fatal(err)
					}
					killed = true // keep reading: lines already written were acknowledged too
				}
			}
			werr := cmd.Wait()
			if !killed {
				t.Fatalf("child exited before it was killed: %v", werr)
			}
			s := openAt(t, dir, Options{})
			defer s.Close()
			ctx := context.Background()
			for id, name := range acked {
				inc, err := s.GetIncident(ctx, id)
				if err != nil {
					t.Errorf("acknowledged incident %s lost: %v", id, err)
					continue
				}
				if inc.Name != name || inc.RawJSON != `{"n":"`+name+`"}` {
					t.Errorf("incident %s = %q %q, want name %q", id, inc.Name, inc.RawJSON, name)
				}
			}
			// Exactly one incident per acknowledged request: none twice.
			byName := map[string]int{}
			for cursor := ""; ; {
				page, next, err := s.SearchIncidents(ctx, IncidentQuery{Instance: "crash", Limit: 1000, Cursor: cursor})
				if err != nil {
					t.Fatal(err)
				}
				for _, inc := range page {
					byName[inc.Name]++
				}
				if next == "" {
					break
				}
				cursor = next
			}
			for _, name := range acked {
				if byName[name] != 1 {
					t.Errorf("acknowledged request %q: %d incidents, want 1", name, byName[name])
				}
			}
			t.Logf("%d acknowledged incidents survived SIGKILL (%d stored)", len(acked), len(byName))
			checkIndexes(t, s)
		})
	}
}

func crashChild(dir string, writers int, noGroup bool) {
	s, err := Open(context.Background(), dir, Options{Tune: smallTables, NoGroupCommit: noGroup})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex
	deadline := time.Now().Add(60 * time.Second) // in case the parent died
	var wg sync.WaitGroup
	for w := range max(writers, 1) {
		wg.Go(func() {
			for i := 0; time.Now().Before(deadline); i++ {
				name := fmt.Sprintf("w%d-%d", w, i)
				got, err := s.CreateIncidents(context.Background(), []Incident{{
					Name: name, RawJSON: `{"n":"` + name + `"}`, Instance: "crash", SourceID: name,
				}})
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Printf("%s %s\n", got[0].ID, name)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	os.Exit(3)
}
