package supervisor

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/internal/testenv/wait"
	"github.com/connhost/connhost/internal/testenv/wasmbuild"
)

var guestWasm []byte

// TestMain builds the test guest once (from the shared cache).
func TestMain(m *testing.M) {
	var err error
	if guestWasm, err = wasmbuild.Build(context.Background(), wasmbuild.Source{Path: "internal/supervisor/testdata/lrguest"}); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

// healthLog records module health updates.
type healthLog struct {
	mu      sync.Mutex
	updates []healthUpdate
}

type healthUpdate struct {
	at      time.Time
	message string
	isError bool
}

func (h *healthLog) SetHealth(_ context.Context, _, message string, isError bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.updates = append(h.updates, healthUpdate{time.Now(), message, isError})
	return nil
}

func (h *healthLog) all() []healthUpdate {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]healthUpdate(nil), h.updates...)
}

type fixture struct {
	rt     *host.Runtime
	plugin *host.Plugin
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	rt, err := host.NewRuntime(ctx, host.Config{CacheDir: wasmbuild.CompilationCacheDir(), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(ctx) })
	p, err := rt.Load(ctx, guestWasm)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{rt: rt, plugin: p}
}

// factory makes sandboxes of the guest in mode, remembering the last.
func (f *fixture) factory(t *testing.T, mode string, last *lastInstance) Factory {
	return func(ctx context.Context) (*host.Instance, error) {
		inst, err := f.rt.NewInstance(ctx, f.plugin, host.InstanceSpec{
			Info:     abi.InstanceInfo{ID: "id-" + mode, Name: mode, Brand: "lrguest"},
			Params:   map[string]any{"mode": mode},
			Services: host.NewMemServices(),
			Limits:   host.Limits{CallTimeout: time.Hour, PoolSize: 1},
		})
		if err == nil && last != nil {
			last.set(inst)
		}
		return inst, err
	}
}

type lastInstance struct {
	mu   sync.Mutex
	inst *host.Instance
}

func (l *lastInstance) set(i *host.Instance) { l.mu.Lock(); l.inst = i; l.mu.Unlock() }
func (l *lastInstance) get() *host.Instance  { l.mu.Lock(); defer l.mu.Unlock(); return l.inst }

// TestRestartWithBackoff: an execution that panics on its third iteration
// is restarted again and again, each wait at least half the doubled
// back-off (the jitter's floor), with the error as health, while another
// instance of the plugin serves.
func TestRestartWithBackoff(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	health := &healthLog{}
	const minBackoff = 40 * time.Millisecond
	s := New(Config{MinBackoff: minBackoff, MaxBackoff: time.Second, Logger: zerolog.Nop()}, health)
	defer s.Close(ctx)
	if err := s.Start(ctx, abi.InstanceInfo{ID: "p", Name: "panicky", Brand: "lrguest"}, "lrguest@1.0.0", f.factory(t, "panic3", nil)); err != nil {
		t.Fatal(err)
	}
	other, err := f.factory(t, "cooperative", nil)(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)

	wait.For(t, 20*time.Second, "3 restarts", func() bool {
		res, err := other.Execute(ctx, "ping", nil)
		if err != nil || strings.TrimSpace(string(res)) != `"pong"` {
			t.Fatalf("other instance: ping = %s, %v", res, err)
		}
		st, _ := s.Status("p")
		return st.Restarts >= 3
	})
	st, _ := s.Status("p")
	if !strings.Contains(st.LastError, "third iteration") || !strings.Contains(st.LastError, string(abi.KindTrap)) {
		t.Errorf("last error = %q, want the trap with the panic message", st.LastError)
	}
	ups := health.all()
	if len(ups) < 3 {
		t.Fatalf("health updates = %d, want one per restart", len(ups))
	}
	for i, u := range ups {
		if !u.isError || !strings.Contains(u.message, "third iteration") {
			t.Errorf("health[%d] = %+v, want the error", i, u)
		}
	}
	// Run i+1 starts ≥ backoff_i/2 after failure i and then fails after two
	// 20 ms ticks; the back-off doubles, so failures are at least that far
	// apart.
	for i := 1; i < 3; i++ {
		if gap, want := ups[i].at.Sub(ups[i-1].at), minBackoff<<(i-1)/2; gap < want {
			t.Errorf("gap between failures %d and %d = %s, want ≥ %s", i, i+1, gap, want)
		}
	}
}

// TestStop: Stop ends the execution within a second, whether the guest
// checks should_stop or spins ignoring it, and closes its sandbox.
func TestStop(t *testing.T) {
	f := newFixture(t)
	for _, mode := range []string{"cooperative", "ignore"} {
		t.Run(mode, func(t *testing.T) {
			ctx := context.Background()
			s := New(Config{Logger: zerolog.Nop()}, &healthLog{})
			defer s.Close(ctx)
			last := &lastInstance{}
			if err := s.Start(ctx, abi.InstanceInfo{ID: mode, Name: mode}, "lrguest@1.0.0", f.factory(t, mode, last)); err != nil {
				t.Fatal(err)
			}
			wait.For(t, 20*time.Second, "the execution to run", func() bool {
				st, _ := s.Status(mode)
				inst := last.get()
				return st.Running && inst != nil && inst.Stats().Busy == 1
			})
			start := time.Now()
			if !s.Stop(ctx, mode) {
				t.Fatal("Stop found no execution")
			}
			if took := time.Since(start); took >= time.Second {
				t.Errorf("Stop took %s, want < 1s", took)
			}
			if _, ok := s.Status(mode); ok {
				t.Error("execution still listed after Stop")
			}
			if st := last.get().Stats(); st.Busy != 0 || st.Idle != 0 {
				t.Errorf("sandbox after Stop: %+v, want closed", st)
			}
			if _, err := last.get().Execute(ctx, "ping", nil); abi.KindOf(err) != abi.KindUnavailable {
				t.Errorf("sandbox after Stop: ping err = %v, want unavailable", err)
			}
		})
	}
}

// TestReturnIsRestarted: returning counts as a failure.
func TestReturnIsRestarted(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	health := &healthLog{}
	s := New(Config{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Logger: zerolog.Nop()}, health)
	if err := s.Start(ctx, abi.InstanceInfo{ID: "r", Name: "r"}, "lrguest@1.0.0", f.factory(t, "return", nil)); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 20*time.Second, "2 restarts", func() bool { st, _ := s.Status("r"); return st.Restarts >= 2 })
	s.Close(ctx)
	if ups := health.all(); !strings.Contains(ups[0].message, "returned") {
		t.Errorf("health = %q, want it to say the execution returned", ups[0].message)
	}
	if err := s.Start(ctx, abi.InstanceInfo{ID: "r", Name: "r"}, "lrguest@1.0.0", f.factory(t, "return", nil)); err == nil {
		t.Error("Start after Close succeeded")
	}
}

func TestBackoffReset(t *testing.T) {
	c := Config{HealthyAfter: time.Minute}.withDefaults()
	for _, tc := range []struct {
		failures int
		ran      time.Duration
		want     int
	}{
		{0, time.Second, 1},
		{2, time.Second, 3},
		{2, time.Minute, 1},
		{5, 2 * time.Minute, 1},
	} {
		if got := c.consecutive(tc.failures, tc.ran); got != tc.want {
			t.Errorf("consecutive(%d, ran %s) = %d, want %d", tc.failures, tc.ran, got, tc.want)
		}
	}
}
