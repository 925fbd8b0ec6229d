package host

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/testenv/wait"
)

func TestHandleHTTP(t *testing.T) {
	e := newEnv(t)
	inst := e.instance(t, "probe", NewMemServices(), InstanceSpec{})
	resp, err := inst.HandleHTTP(context.Background(), abi.HTTPRequest{Method: "POST", Path: "/hook", Body: []byte("ping")})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 || string(resp.Body) != "echo:ping" || resp.Headers["X-Path"][0] != "/hook" {
		t.Errorf("response %+v", resp)
	}
	noop := e.instance(t, "noop", nil, InstanceSpec{})
	_, err = noop.HandleHTTP(context.Background(), abi.HTTPRequest{Method: "GET", Path: "/"})
	wantCallError(t, err, abi.KindIncompatible, "does not export connhost_http")
}

// TestConcurrentExecute: many goroutines share a pool of two module
// instances; no module instance is entered concurrently (the guest would
// corrupt its Go heap) and the pool never grows past its size.
func TestConcurrentExecute(t *testing.T) {
	e := newEnv(t)
	inst := e.instance(t, "probe", NewMemServices(), InstanceSpec{Limits: Limits{PoolSize: 2}})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for k := range 25 {
				got := mustExec[map[string]int](t, inst, "echo", map[string]int{"g": g, "k": k})
				if got["g"] != g || got["k"] != k {
					t.Errorf("echo %d/%d returned %v", g, k, got)
					return
				}
			}
		})
	}
	wg.Wait()
	if st := inst.Stats(); st.Created > 2 || st.Discarded != 0 || st.Busy != 0 {
		t.Errorf("stats %+v, want at most 2 module instances, none discarded", st)
	}
}

// TestStop: Stop makes should_stop and sleep return 1 for a call in flight.
func TestStop(t *testing.T) {
	e := newEnv(t)
	inst := e.instance(t, "probe", NewMemServices(), InstanceSpec{})
	done := make(chan string, 1)
	go func() { done <- mustExec[string](t, inst, "wait-stop", nil) }()
	wait.For(t, 20*time.Second, "the call to start", func() bool { return inst.Stats().Busy > 0 })
	inst.Stop()
	if got := <-done; got != "stopped" {
		t.Errorf("wait-stop returned %q", got)
	}
	if interrupted := mustExec[bool](t, inst, "sleep", map[string]int{"ms": 60000}); !interrupted {
		t.Error("sleep after Stop was not interrupted")
	}
}

// TestClose: Close waits for the call in flight; later calls are refused.
func TestClose(t *testing.T) {
	e := newEnv(t)
	inst := e.instance(t, "probe", NewMemServices(), InstanceSpec{})
	done := make(chan error, 1)
	go func() {
		_, err := exec1(t, inst, "wait-stop", nil)
		done <- err
	}()
	wait.For(t, 20*time.Second, "the call to start", func() bool { return inst.Stats().Busy > 0 })
	if err := inst.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("in-flight call: %v", err)
	}
	_, err := exec1(t, inst, "test-module", nil)
	wantCallError(t, err, abi.KindUnavailable, "instance closed")
	if st := inst.Stats(); st.Idle != 0 || st.Discarded != st.Created {
		t.Errorf("stats after Close %+v, want every module instance closed", st)
	}
}

// TestMemoryLimitBelowInitial: an instance whose limit is below the
// module's initial memory fails with memory_limit.
func TestMemoryLimitBelowInitial(t *testing.T) {
	e := newEnv(t)
	inst := e.instance(t, "outputbomb", nil, InstanceSpec{Limits: Limits{MemoryBytes: 1 << 20}})
	_, err := exec1(t, inst, "ok", nil)
	wantCallError(t, err, abi.KindMemoryLimit, "needs 6291456 bytes of initial memory, limit is 1048576")
}

// TestGoGuestMemoryPlateaus: a pooled Go guest that allocates on every call
// keeps its linear memory bounded over 100,000 calls, because its GC runs as
// it allocates.
func TestGoGuestMemoryPlateaus(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000 calls on one goroutine: slow, and nothing for the race run (make test-race)")
	}
	e := newEnv(t)
	inst := e.instance(t, "probe", NewMemServices(), InstanceSpec{Limits: Limits{PoolSize: 1}})
	ctx := context.Background()
	args := []byte(`{"n":4096}`)
	var atTenth uint64
	for k := range 100_000 {
		if _, err := inst.Execute(ctx, "alloc", args); err != nil {
			t.Fatalf("call %d: %v", k, err)
		}
		if k == 10_000 {
			atTenth = inst.memoryBytes()
		}
	}
	final := inst.memoryBytes()
	t.Logf("linear memory after 10,000 calls %d KiB, after 100,000 %d KiB", atTenth>>10, final>>10)
	if final > atTenth+atTenth/4 {
		t.Errorf("memory grew from %d to %d bytes between call 10,000 and 100,000", atTenth, final)
	}
	if st := inst.Stats(); st.Created != 1 {
		t.Errorf("stats %+v, want one module instance serving every call", st)
	}
}

// TestCorruptCacheRecompiles: a damaged compilation cache entry is
// discarded and the plugin compiled afresh.
func TestCorruptCacheRecompiles(t *testing.T) {
	cache := t.TempDir()
	wasm := guest(t, "noop")
	ctx := context.Background()
	rt, err := NewRuntime(ctx, Config{CacheDir: cache, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	p, err := rt.Load(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	_ = filepath.WalkDir(filepath.Join(cache, p.SHA256), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, path)
		}
		return nil
	})
	if len(files) == 0 {
		t.Fatalf("no cache entry under %s", filepath.Join(cache, p.SHA256))
	}
	for _, f := range files {
		if err := os.WriteFile(f, []byte("WAZEVO garbage"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rt2, err := NewRuntime(ctx, Config{CacheDir: cache, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer rt2.Close(ctx)
	p2, err := rt2.Load(ctx, wasm)
	if err != nil {
		t.Fatalf("load with a corrupt cache: %v", err)
	}
	inst, err := rt2.NewInstance(ctx, p2, InstanceSpec{Info: abi.InstanceInfo{ID: "c", Name: "c"}})
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close(ctx)
	if _, err := inst.Execute(ctx, "test-module", nil); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil && string(b) == "WAZEVO garbage" {
			t.Errorf("corrupt cache entry %s kept", f)
		}
	}
}

// TestPoolIdle: with Limits.PoolIdle set, a pool nobody calls closes every
// module instance and the next call instantiates one again; with it 0 the
// pool keeps them. A module instance in use is not closed, however long the
// call.
func TestPoolIdle(t *testing.T) {
	tests := []struct {
		name   string
		idle   time.Duration
		shrink bool
	}{
		{"idle period set: shrinks to zero", 150 * time.Millisecond, true},
		{"0: never shrinks", 0, false},
	}
	e := newEnv(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inst := e.instance(t, "probe", NewMemServices(), InstanceSpec{Limits: Limits{PoolSize: 3, PoolIdle: tc.idle}})
			// Fill the pool: three calls at once need three module instances.
			var wg sync.WaitGroup
			for range 3 {
				wg.Go(func() { mustExec[bool](t, inst, "sleep", map[string]int{"ms": 300}) })
			}
			wg.Wait()
			if st := inst.Stats(); st.Idle != 3 || st.Created != 3 {
				t.Fatalf("after three concurrent calls: %+v, want 3 idle", st)
			}
			if !tc.shrink {
				time.Sleep(500 * time.Millisecond)
				if st := inst.Stats(); st.Idle != 3 || st.Reaped != 0 {
					t.Fatalf("PoolIdle 0: %+v, want the 3 kept", st)
				}
				return
			}
			// A call longer than the idle period keeps its module instance.
			longDone := make(chan bool, 1)
			go func() { longDone <- mustExec[bool](t, inst, "sleep", map[string]int{"ms": 700}) }()
			wait.For(t, 10*time.Second, "the idle module instances to close", func() bool {
				st := inst.Stats()
				return st.Idle == 0 && st.Reaped == 2
			})
			if st := inst.Stats(); st.Busy != 1 {
				t.Errorf("the long call's module instance: %+v, want it busy", st)
			}
			<-longDone
			wait.For(t, 10*time.Second, "the pool to shrink to zero", func() bool {
				st := inst.Stats()
				return st.Idle == 0 && st.Reaped == 3
			})
			if got := mustExec[map[string]int](t, inst, "echo", map[string]int{"n": 1}); got["n"] != 1 {
				t.Errorf("echo after the pool emptied = %v", got)
			}
			if st := inst.Stats(); st.Created != 4 || st.Idle != 1 || st.Discarded != 3 {
				t.Errorf("after refill: %+v, want a 4th module instance created and idle", st)
			}
		})
	}
}
