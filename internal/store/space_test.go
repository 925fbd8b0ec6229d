package store_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/connhost/connhost/internal/store"
	"github.com/connhost/connhost/internal/testenv/smallfs"
)

// TestDiskFull runs a store on a 48 MiB tmpfs filled to below its reserve:
// every kind of write is refused with ErrNoSpace naming the free space,
// without a crash (badger itself dies of SIGBUS when a memory-mapped file
// meets a full disk); reads go on; once space is freed writes succeed
// again; and after a reopen exactly the acknowledged writes are there.
func TestDiskFull(t *testing.T) {
	fs := smallfs.Mount(t, 48<<20)
	dir := filepath.Join(fs, "db")
	ctx := context.Background()
	open := func() *store.Store {
		t.Helper()
		s, err := store.Open(ctx, dir, store.Options{GCInterval: -1, Tune: smallfs.TinyTables})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := open()
	defer func() { _ = s.Close() }()
	incident := func(name string) error {
		_, err := s.CreateIncidents(ctx, []store.Incident{{Name: name}})
		return err
	}
	blob := func() error {
		b := make([]byte, 2<<20) // above the value threshold: into the value log
		_, _ = rand.Read(b)
		sum := sha256.Sum256(b)
		return s.PutPluginBlob(ctx, hex.EncodeToString(sum[:]), b)
	}
	for i := range 20 {
		if err := incident(fmt.Sprintf("before %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := blob(); err != nil {
		t.Fatal(err)
	}
	user, err := s.CreateUser(ctx, store.User{Username: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	found, _, err := s.SearchIncidents(ctx, store.IncidentQuery{Limit: 1})
	if err != nil || len(found) != 1 {
		t.Fatalf("search: %v", err)
	}
	first := found[0]

	// 8 MiB is the reserve of TinyTables; leave half of it.
	release := smallfs.Fill(t, fs, 4<<20)
	writes := []struct {
		name string
		do   func() error
	}{
		{"create incidents", func() error { return incident("refused") }},
		{"update an incident", func() error {
			incs, _, err := s.SearchIncidents(ctx, store.IncidentQuery{Limit: 1})
			if err != nil || len(incs) == 0 {
				return fmt.Errorf("search: %v", err)
			}
			_, err = s.UpdateIncident(ctx, incs[0].ID, func(inc *store.Incident) error { inc.Name = "refused"; return nil })
			return err
		}},
		{"create a user", func() error { _, err := s.CreateUser(ctx, store.User{Username: "bob"}); return err }},
		{"store a plugin blob", blob},
		{"delete an incident", func() error { return s.DeleteIncident(ctx, first.ID) }},
	}
	for _, w := range writes {
		t.Run("refused/"+w.name, func(t *testing.T) {
			for range 3 { // not once by luck: every attempt
				err := w.do()
				if !errors.Is(err, store.ErrNoSpace) {
					t.Fatalf("want ErrNoSpace, got %v", err)
				}
				if !strings.Contains(err.Error(), "free on its filesystem") || !strings.Contains(err.Error(), dir) {
					t.Errorf("message %q does not say where and why", err)
				}
			}
		})
	}
	incs, _, err := s.SearchIncidents(ctx, store.IncidentQuery{Limit: 100})
	if err != nil || len(incs) != 20 {
		t.Fatalf("reading while full: %d incidents, %v", len(incs), err)
	}
	if u, err := s.GetUser(ctx, user.ID); err != nil || u.Username != "alice" {
		t.Fatalf("reading while full: %+v %v", u, err)
	}

	release()
	// Above the reserve but not by a blob's size: records go in, the blob
	// is refused.
	release = smallfs.Fill(t, fs, 9<<20)
	if err := incident("after"); err != nil {
		t.Fatalf("a record with 1 MiB above the reserve: %v", err)
	}
	if err := blob(); !errors.Is(err, store.ErrNoSpace) {
		t.Fatalf("a 2 MiB blob with 1 MiB above the reserve: %v", err)
	}
	release()
	if err := incident("after"); err != nil {
		t.Fatalf("write after space was freed: %v", err)
	}
	if err := blob(); err != nil {
		t.Fatalf("blob after space was freed: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open()
	incs, _, err = s.SearchIncidents(ctx, store.IncidentQuery{Limit: 100})
	if err != nil || len(incs) != 22 {
		t.Fatalf("after reopening: %d incidents (want 20 before and 2 after), %v", len(incs), err)
	}
	for _, inc := range incs {
		if inc.Name == "refused" {
			t.Errorf("a refused write is stored: %+v", inc)
		}
	}
	if inc, err := s.GetIncident(ctx, first.ID); err != nil || inc.Name != first.Name {
		t.Errorf("the incident whose delete and update were refused: %+v %v", inc, err)
	}
}

// TestDiskFillsUp writes incidents and plugin blobs from four goroutines
// into a 48 MiB tmpfs until the store refuses them: the reserve must leave
// badger room for its flushes and compactions, or the process dies of
// SIGBUS. Then reads work and a reopened store holds every acknowledged
// incident.
func TestDiskFillsUp(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: writes until a 48 MiB filesystem is full")
	}
	fs := smallfs.Mount(t, 48<<20)
	dir := filepath.Join(fs, "db")
	ctx := context.Background()
	s, err := store.Open(ctx, dir, store.Options{GCInterval: -1, Tune: smallfs.TinyTables})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	details := strings.Repeat("x", 8<<10)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				var err error
				if w == 0 && i%8 == 0 {
					b := make([]byte, 1<<20)
					_, _ = rand.Read(b)
					sum := sha256.Sum256(b)
					err = s.PutPluginBlob(ctx, hex.EncodeToString(sum[:]), b)
				} else {
					var out []store.Incident
					out, err = s.CreateIncidents(ctx, []store.Incident{{Name: fmt.Sprintf("w%d-%d", w, i), Details: details}})
					if err == nil {
						mu.Lock()
						acked = append(acked, out[0].ID)
						mu.Unlock()
					}
				}
				if errors.Is(err, store.ErrNoSpace) {
					return
				}
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if len(acked) < 100 {
		t.Fatalf("only %d incidents before the disk filled up", len(acked))
	}
	t.Logf("%d incidents acknowledged before writes were refused with %.1f MiB free", len(acked), float64(smallfs.Free(t, fs))/(1<<20))
	if _, err := s.GetIncident(ctx, acked[len(acked)-1]); err != nil {
		t.Fatalf("reading when full: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = store.Open(ctx, dir, store.Options{GCInterval: -1, Tune: smallfs.TinyTables})
	if err != nil {
		t.Fatalf("reopening a full store: %v", err)
	}
	for _, id := range acked {
		if _, err := s.GetIncident(ctx, id); err != nil {
			t.Fatalf("acknowledged incident %s after reopening: %v", id, err)
		}
	}
}
