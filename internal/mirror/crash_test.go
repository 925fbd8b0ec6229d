package mirror

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/store"
)

const (
	crashDirEnv = "CONNHOST_MIRROR_CRASH_DIR"
	crashN      = 300
	// crashKillAfter is how many deliveries the parent sees before SIGKILL.
	crashKillAfter = 10
)

// scriptRemote gives every remote incident a name and two comments.
func scriptRemote(f *fixture) {
	for i := 1; i <= crashN; i++ {
		id := fmt.Sprintf("r%d", i)
		f.conn.remote[id] = &remoteIncident{
			fields:  map[string]any{"name": "remote " + id},
			entries: []abi.Entry{note(id+"-c1", id+" first"), note("", id+" second")},
		}
	}
}

// TestMirrorCrashChild is the process the crash test kills; it does nothing
// unless started by TestSIGKILLMidCycle.
func TestMirrorCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		return
	}
	f := newFixture(t, dir, store.Settings{})
	scriptRemote(f)
	f.conn.delay = 5 * time.Millisecond
	log, err := os.OpenFile(filepath.Join(dir, "delivered"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.conn.onUpdate = func(a abi.UpdateRemoteSystemArgs) {
		fmt.Fprintln(log, a.RemoteIncidentID)
		_ = log.Sync()
		fmt.Println("delivered", a.RemoteIncidentID)
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _, _ = f.engine.RunIncoming(ctx, "peer") }()
	go func() { defer wg.Done(); _, _ = f.engine.DeliverOutbox(ctx) }()
	wg.Wait()
	fmt.Println("finished") // the parent kills the process long before this
}

func TestSIGKILLMidCycle(t *testing.T) {
	if os.Getenv(crashDirEnv) != "" {
		t.Skip("running as the crash child")
	}
	ctx := context.Background()
	dir := t.TempDir()

	// A store with crashN mirrored incidents, each with a local change
	// waiting in the outbox.
	f := newFixture(t, dir, store.Settings{})
	incs := f.mirrored(t, crashN, abi.StatusActive)
	for _, inc := range incs {
		dirty(t, f.st, inc.ID, func(i *store.Incident) { i.Severity = 2 }, "severity")
	}
	if n, _ := f.st.OutboxLen(ctx); n != crashN {
		t.Fatalf("outbox holds %d, want %d", n, crashN)
	}
	if err := f.st.Close(); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestMirrorCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill once the child is visibly mid-way: some updates delivered, most
	// still in the outbox (each takes 5 ms).
	sc := bufio.NewScanner(out)
	for seen := 0; seen < crashKillAfter && sc.Scan(); {
		if strings.HasPrefix(sc.Text(), "delivered ") {
			seen++
		}
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	delivered, _ := os.ReadFile(filepath.Join(dir, "delivered"))
	before := strings.Fields(string(delivered))
	if len(before) == 0 || len(before) >= crashN {
		t.Fatalf("the child delivered %d of %d before the kill; the test needs a kill mid-way", len(before), crashN)
	}

	// Restart on the same directory and run the cycle and the outbox again.
	g := newFixture(t, dir, store.Settings{})
	scriptRemote(g)
	if _, err := g.engine.RunIncoming(ctx, "peer"); err != nil {
		t.Fatal(err)
	}
	if _, err := g.engine.DeliverOutbox(ctx); err != nil {
		t.Fatal(err)
	}

	for _, inc := range incs {
		got := g.incident(t, inc.ID)
		id := inc.DbotMirrorID
		if got.Name != "remote "+id {
			t.Fatalf("incident %s: name %q after restart", id, got.Name)
		}
		es := contents(g.entries(t, inc.ID))
		if want := []string{id + " first", id + " second"}; strings.Join(es, "|") != strings.Join(want, "|") {
			t.Fatalf("incident %s: entries %q, want %q (lost or duplicated)", id, es, want)
		}
		if got.OutboxPending() {
			t.Fatalf("incident %s: outgoing update still pending after restart", id)
		}
	}
	count := map[string]int{}
	for _, id := range before {
		count[id]++
	}
	for _, u := range g.conn.updates {
		count[u.RemoteIncidentID]++
	}
	dups := 0
	for _, inc := range incs {
		switch n := count[inc.DbotMirrorID]; {
		case n == 0:
			t.Fatalf("incident %s: pending outgoing update never delivered", inc.DbotMirrorID)
		case n > 1:
			dups++
		}
	}
	// At-least-once: only updates in flight at the kill may repeat.
	if dups > g.engine.opts.Concurrency {
		t.Fatalf("%d outgoing updates delivered twice; at most %d were in flight", dups, g.engine.opts.Concurrency)
	}
	t.Logf("child delivered %d before SIGKILL; restart delivered %d; %d repeated", len(before), len(g.conn.updates), dups)
}
