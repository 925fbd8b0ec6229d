package mirror

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/store"
	"github.com/connhost/connhost/internal/testenv/smallfs"
)

// syncBuffer is a log sink the engine's goroutines and the test share.
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

// TestLoopsPauseWhileDiskFull runs the engine's loops, polling every 10 ms,
// over a store whose tmpfs is filled below the store's reserve: no fetch,
// no incoming cycle and no outgoing update is attempted (an update sent
// but not recorded would go out again on every poll), the pause is logged
// once, and once space is freed the pending update goes out exactly once.
func TestLoopsPauseWhileDiskFull(t *testing.T) {
	fs := smallfs.Mount(t, 96<<20)
	f := newFixture(t, filepath.Join(fs, "db"), store.Settings{FetchEnabled: true})
	inc := f.mirrored(t, 1, abi.StatusActive)[0]
	dirty(t, f.st, inc.ID, func(i *store.Incident) { i.Severity = 3 }, "severity")

	var logs syncBuffer
	e := New(Options{Store: f.st, Instances: f.conn, Logger: zerolog.New(&logs), MirrorEnabled: true, Now: f.clk.Now,
		MirrorInterval: 10 * time.Millisecond, OutboxPoll: 10 * time.Millisecond, FetchTick: 10 * time.Millisecond})
	release := smallfs.Fill(t, fs, 16<<20) // the fixture's tables keep a 32 MiB reserve
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e.Start(ctx)
	defer e.Stop(context.Background())

	time.Sleep(300 * time.Millisecond)
	f.conn.mu.Lock()
	calls, fetches := slices.Clone(f.conn.calls), f.conn.fetches
	f.conn.mu.Unlock()
	if len(calls) != 0 || fetches != 0 {
		t.Fatalf("with the disk full: %d plugin calls (first %q) and %d fetches, want none", len(calls), calls[:min(len(calls), 3)], fetches)
	}
	if n := strings.Count(logs.String(), "store is out of space"); n != 1 {
		t.Errorf("the pause logged %d times, want once:\n%s", n, logs.String())
	}

	release()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if got := f.incident(t, inc.ID); !got.OutboxPending() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pending update was not delivered after space was freed:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.Stop(context.Background())
	if n := len(f.conn.callsOf(abi.CommandUpdateRemoteSystem)); n != 1 {
		t.Errorf("update-remote-system called %d times, want once", n)
	}
	if f.conn.fetches == 0 {
		t.Error("no fetch after space was freed")
	}
	if !strings.Contains(logs.String(), "the store has space again") {
		t.Errorf("the resume is not logged:\n%s", logs.String())
	}
}
