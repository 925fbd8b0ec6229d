package engines

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/internal/testenv/wait"
	"github.com/connhost/connhost/internal/testenv/wasmbuild"
)

// backend is the service side the hub serves from: host functions over a
// real in-memory implementation, and a table of instance groups.
type backend struct {
	svc    *host.MemServices
	mu     sync.Mutex
	groups map[string]string // instance id → group
	lr     []Spec
}

func (b *backend) HostServices() host.Services { return b.svc }

func (b *backend) InstanceGroup(_ context.Context, id string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	g, ok := b.groups[id]
	if !ok {
		return "", fmt.Errorf("instance %s: not found", id)
	}
	return g, nil
}

func (b *backend) LongRunningSpecs(_ context.Context, group string) ([]Spec, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Spec
	for _, s := range b.lr {
		if b.groups[s.Info.ID] == group {
			out = append(out, s)
		}
	}
	return out, nil
}

type fixture struct {
	hub  *Hub
	be   *backend
	rt   *host.Runtime
	wasm []byte
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := t.Context()
	hub, err := StartHub(ctx, HubOptions{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hub.Close)
	be := &backend{svc: host.NewMemServices(), groups: map[string]string{}}
	hub.Attach(be)
	rt, err := host.NewRuntime(context.Background(), host.Config{CacheDir: t.TempDir(), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close(context.Background()) })
	wasm, err := wasmbuild.Build(ctx, wasmbuild.Source{Path: "e2e/testdata/engineprobe"})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{hub: hub, be: be, rt: rt, wasm: wasm}
}

// engine enrolls and connects an engine.
func (f *fixture) engine(t testing.TB, name, group string) *Engine {
	t.Helper()
	_, seed, err := f.hub.Enroll(t.Context(), name, group)
	if err != nil {
		t.Fatal(err)
	}
	e, err := Connect(t.Context(), EngineOptions{URL: f.hub.ClientURL(), Name: name, Group: group, Seed: seed,
		Runtime: f.rt, Logger: zerolog.Nop(), Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	return e
}

// spec publishes the probe plugin and assigns instance id to group.
func (f *fixture) spec(t testing.TB, id, group string) Spec {
	t.Helper()
	sha := shaHex(f.wasm)
	if err := f.hub.Publish(t.Context(), sha, f.wasm, nil); err != nil {
		t.Fatal(err)
	}
	f.be.mu.Lock()
	f.be.groups[id] = group
	f.be.mu.Unlock()
	return Spec{Info: abi.InstanceInfo{ID: id, Name: "inst-" + id, Brand: "engineprobe"}, Plugin: "engineprobe@1.0.0", SHA256: sha}.WithHash()
}

func shaHex(b []byte) string { return sha256Hex(b) }

// TestExecuteOnEngine: a command runs on an engine of the instance's group
// and its host functions act on the server's services, versions and
// conflicts included; a group with no engine is unavailable at once.
func TestExecuteOnEngine(t *testing.T) {
	f := newFixture(t)
	f.engine(t, "e1", "dmz")
	sp := f.spec(t, "i1", "dmz")
	ctx := t.Context()
	for i := 1; i <= 3; i++ {
		res, err := f.hub.Execute(ctx, "dmz", sp, "bump", json.RawMessage(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		if string(res) != fmt.Sprintf(`{"count":%d}`, i) {
			t.Fatalf("bump %d: %s", i, res)
		}
	}
	v, ver, err := f.be.svc.IntegrationContext(ctx, sp.Info)
	if err != nil || v["count"] != float64(3) || ver != 3 {
		t.Fatalf("server-side context %v version %d: %v", v, ver, err)
	}
	start := time.Now()
	_, err = f.hub.Execute(ctx, "nowhere", f.spec(t, "i2", "nowhere"), "echo", json.RawMessage(`{}`))
	var ce *host.CallError
	if !errors.As(err, &ce) || ce.Err.Kind != abi.KindUnavailable || ce.Instance != "inst-i2" || time.Since(start) > time.Second {
		t.Fatalf("no engine: %v after %v, want unavailable at once", err, time.Since(start))
	}
	if st := f.hub.Engines(); len(st) != 1 || st[0].Calls != 3 || st[0].Name != "e1" {
		t.Fatalf("engines %+v", st)
	}
	wait.For(t, 5*time.Second, "the heartbeat lists the instance", func() bool {
		st := f.hub.Engines()
		return len(st) == 1 && st[0].Connected && len(st[0].Instances) == 1 && st[0].Instances[0] == "inst-i1 (engineprobe@1.0.0)"
	})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(f.hub.Collector())
	if n, err := testutil.GatherAndCount(reg, "connhost_engine_calls_total"); err != nil || n != 1 {
		t.Fatalf("metrics: %d series, %v", n, err)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`# HELP connhost_engine_calls_total Commands an engine answered since the server started.
# TYPE connhost_engine_calls_total counter
connhost_engine_calls_total{engine="e1",group="dmz"} 3
`), "connhost_engine_calls_total"); err != nil {
		t.Fatal(err)
	}
}

// TestEngineRebindsPlugins: the hub reads plugin files from the stream's
// leader only (leaderReads). An engine that bound the bucket while direct
// gets were still on (before a hub restart turned them off again) finds
// nothing answering its reads; it binds the bucket again and loads the
// plugin.
func TestEngineRebindsPlugins(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	js, err := jetstream.New(f.hub.nc)
	if err != nil {
		t.Fatal(err)
	}
	setDirect := func(on bool) {
		t.Helper()
		st, err := js.Stream(ctx, PluginsStream)
		if err != nil {
			t.Fatal(err)
		}
		cfg := st.CachedInfo().Config
		cfg.AllowDirect = on
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	setDirect(true)
	f.engine(t, "e1", "dmz")
	setDirect(false)
	if _, err := f.hub.Execute(ctx, "dmz", f.spec(t, "i1", "dmz"), "echo", json.RawMessage(`{}`)); err != nil {
		t.Fatalf("engine bound with direct gets on: %v", err)
	}
}

// TestEngineWaitsForPluginFile: a plugin file the hub names but that the
// engine cannot read yet (on a replicated cluster, a replica behind the
// hub's write) is read again until it appears, within objectRetry.
func TestEngineWaitsForPluginFile(t *testing.T) {
	f := newFixture(t)
	f.engine(t, "e1", "dmz")
	sp := f.spec(t, "i1", "dmz")
	wasm := versionedProbe(t, f.wasm, "1.0.1")
	late := Spec{Info: sp.Info, Plugin: "engineprobe@1.0.1", SHA256: shaHex(wasm)}.WithHash()
	published := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		published <- f.hub.Publish(context.Background(), late.SHA256, wasm, nil)
	}()
	if _, err := f.hub.Execute(t.Context(), "dmz", late, "echo", json.RawMessage(`{}`)); err != nil {
		t.Fatalf("plugin published 300 ms after the call: %v", err)
	}
	if err := <-published; err != nil {
		t.Fatal(err)
	}
}

// TestEngineConfinement: what an engine may not do, each refused by the
// server: connect with a key it did not issue, take another group's
// commands, call host functions as another engine or group, or for an
// instance of another group, or as a long-running holder it is not.
func TestEngineConfinement(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	_, seed, err := f.hub.Enroll(ctx, "a1", "a")
	if err != nil {
		t.Fatal(err)
	}
	f.spec(t, "ib", "b")
	f.spec(t, "ia", "a")
	kp, _ := nkeys.FromSeed(seed)
	pub, _ := kp.PublicKey()
	errs := make(chan error, 16)
	nc, err := nats.Connect(f.hub.ClientURL(), nats.Nkey(pub, kp.Sign), nats.CustomInboxPrefix(inboxPrefix("a1")),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	stranger, _ := nkeys.CreateUser()
	strangerSeed, _ := stranger.Seed()
	if _, err := Connect(ctx, EngineOptions{URL: f.hub.ClientURL(), Name: "x", Group: "a", Seed: strangerSeed, Runtime: f.rt, Logger: zerolog.Nop()}); !errors.Is(err, ErrRefused) {
		t.Fatalf("unknown key: %v, want ErrRefused", err)
	}

	call := func(info abi.InstanceInfo, token uint64) []byte {
		raw, _ := json.Marshal(hostCall{Info: info, Token: token})
		return raw
	}
	for _, tc := range []struct {
		name    string
		subject string
		body    []byte
		want    abi.ErrorKind // "" means the request must get no answer
	}{
		{"as another group", hostPrefix + "b.a1." + opIntegrationContext, call(abi.InstanceInfo{ID: "ib"}, 0), ""},
		{"as another engine", hostPrefix + "a.a2." + opIntegrationContext, call(abi.InstanceInfo{ID: "ia"}, 0), ""},
		{"another group's commands", execPrefix + "b", nil, ""},
		{"instance of another group", hostPrefix + "a.a1." + opIntegrationContext, call(abi.InstanceInfo{ID: "ib", Name: "inst-ib"}, 0), abi.KindDenied},
		{"unknown instance", hostPrefix + "a.a1." + opIntegrationContext, call(abi.InstanceInfo{ID: "nosuch"}, 0), abi.KindDenied},
		{"lease it does not hold", hostPrefix + "a.a1." + opSetIntegrationContext, call(abi.InstanceInfo{ID: "ia", Name: "inst-ia"}, 7), abi.KindConflict},
		{"own instance", hostPrefix + "a.a1." + opIntegrationContext, call(abi.InstanceInfo{ID: "ia", Name: "inst-ia"}, 0), "ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg, err := nc.Request(tc.subject, tc.body, 500*time.Millisecond)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("answered: %s", msg.Data)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var rep reply
			_ = json.Unmarshal(msg.Data, &rep)
			if tc.want == "ok" {
				if rep.Error != nil {
					t.Fatalf("refused: %+v", rep.Error)
				}
				return
			}
			if rep.Error == nil || rep.Error.Kind != tc.want {
				t.Fatalf("reply %s, want kind %s", msg.Data, tc.want)
			}
		})
	}
	// A queue subscription to another group's commands is refused too.
	if _, err := nc.QueueSubscribe(execPrefix+"b", queueName, func(*nats.Msg) {}); err == nil {
		_ = nc.Flush()
		select {
		case err := <-errs:
			if !errors.Is(err, nats.ErrPermissionViolation) {
				t.Fatalf("subscribe to group b: %v", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("subscribing to another group's commands was not refused")
		}
	}
}

// TestEnroll: names must be one subject token, and a name is enrolled once.
func TestEnroll(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	for _, tc := range []struct {
		name, engine, group string
		want                error
	}{
		{"ok", "e1", "dmz", nil},
		{"taken", "e1", "other", ErrExists},
		{"wildcard group", "e2", "dmz.>", ErrBadName},
		{"upper case", "E3", "dmz", ErrBadName},
		{"empty group", "e4", "", ErrBadName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			en, seed, err := f.hub.Enroll(ctx, tc.engine, tc.group)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if err == nil && (len(seed) == 0 || en.PublicKey == "") {
				t.Fatalf("enrolled %+v without a seed", en)
			}
		})
	}
}

// TestLongRunningLease: a long-running instance runs on exactly one of two
// engines; when its holder closes, the other takes over, and the host calls
// of the old holder's token are refused.
func TestLongRunningLease(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for lease renewals")
	}
	f := newFixture(t)
	e1 := f.engine(t, "e1", "dmz")
	e2 := f.engine(t, "e2", "dmz")
	sp := f.spec(t, "lr", "dmz")
	sp.LongRunning = true
	sp = sp.WithHash()
	f.be.mu.Lock()
	f.be.lr = []Spec{sp}
	f.be.mu.Unlock()
	holders := func() []*Engine {
		var out []*Engine
		for _, e := range []*Engine{e1, e2} {
			e.mu.Lock()
			if e.lr["lr"] != nil {
				out = append(out, e)
			}
			e.mu.Unlock()
		}
		return out
	}
	var first *Engine
	var token uint64
	wait.For(t, 30*time.Second, "one engine holds the lease", func() bool {
		h := holders()
		if len(h) > 1 {
			t.Fatal("two engines hold the lease")
		}
		if len(h) == 1 {
			first = h[0]
			first.mu.Lock()
			token = first.lr["lr"].token
			first.mu.Unlock()
			return true
		}
		return false
	})
	// The execution's writes reach the server's context.
	wait.For(t, 30*time.Second, "the execution writes ticks", func() bool {
		v, _, _ := f.be.svc.IntegrationContext(t.Context(), sp.Info)
		n, _ := v["ticks"].(float64)
		return n >= 3
	})
	if err := first.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "the other engine takes over", func() bool {
		h := holders()
		return len(h) == 1 && h[0] != first
	})
	// The old token no longer passes the fence.
	rs := &remoteServices{e: holders()[0], token: token}
	_, err := rs.SetIntegrationContext(t.Context(), sp.Info, map[string]any{"stale": true}, -1)
	if abi.KindOf(err) != abi.KindConflict {
		t.Fatalf("host call with the old token: %v, want conflict", err)
	}
}

// TestRemove: a removed engine is cut off at once and cannot come back
// with its key; its group's calls are then unavailable.
func TestRemove(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	f.engine(t, "r1", "dmz")
	sp := f.spec(t, "i1", "dmz")
	if _, err := f.hub.Execute(ctx, "dmz", sp, "echo", json.RawMessage(`{}`)); err != nil {
		t.Fatal(err)
	}
	if err := f.hub.Remove(ctx, "nosuch"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("remove unknown: %v", err)
	}
	if err := f.hub.Remove(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	// The engine reconnects on its own; the server refuses its key.
	time.Sleep(time.Second)
	_, err := f.hub.Execute(ctx, "dmz", sp, "echo", json.RawMessage(`{}`))
	if abi.KindOf(err) != abi.KindUnavailable {
		t.Fatalf("after removal: %v, want unavailable", err)
	}
	if st := f.hub.Engines(); len(st) != 0 {
		t.Fatalf("engines after removal: %+v", st)
	}
}

// lockedBuffer collects log output from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestConcurrentFirstCallsCompileOnce: many first calls of a plugin on an
// engine wait for one compilation instead of each compiling it.
func TestConcurrentFirstCallsCompileOnce(t *testing.T) {
	f := newFixture(t)
	var logs lockedBuffer
	rt, err := host.NewRuntime(context.Background(), host.Config{CacheDir: t.TempDir(), Logger: zerolog.New(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close(context.Background()) })
	_, seed, err := f.hub.Enroll(t.Context(), "once", "dmz")
	if err != nil {
		t.Fatal(err)
	}
	e, err := Connect(t.Context(), EngineOptions{URL: f.hub.ClientURL(), Name: "once", Group: "dmz", Seed: seed, Runtime: rt, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	sp := f.spec(t, "i1", "dmz")
	var wg sync.WaitGroup
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := f.hub.Execute(t.Context(), "dmz", sp, "echo", json.RawMessage(`{}`)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := strings.Count(logs.String(), "plugin loaded"); n != 1 {
		t.Fatalf("%d plugin loads for 6 concurrent first calls, want 1:\n%s", n, logs.String())
	}
}

// TestIdleEviction: an instance's pool unused for IdleTimeout leaves the
// engine (its params with it) and comes back on the next call.
func TestIdleEviction(t *testing.T) {
	f := newFixture(t)
	_, seed, err := f.hub.Enroll(t.Context(), "idle", "dmz")
	if err != nil {
		t.Fatal(err)
	}
	e, err := Connect(t.Context(), EngineOptions{URL: f.hub.ClientURL(), Name: "idle", Group: "dmz", Seed: seed, Runtime: f.rt,
		Logger: zerolog.Nop(), IdleTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	sp := f.spec(t, "i1", "dmz")
	held := func() int {
		e.mu.Lock()
		defer e.mu.Unlock()
		return len(e.instances)
	}
	if _, err := f.hub.Execute(t.Context(), "dmz", sp, "echo", json.RawMessage(`{}`)); err != nil || held() != 1 {
		t.Fatalf("first call: %v, %d pools", err, held())
	}
	wait.For(t, 5*time.Second, "the idle pool closed", func() bool { return held() == 0 })
	if _, err := f.hub.Execute(t.Context(), "dmz", sp, "echo", json.RawMessage(`{}`)); err != nil || held() != 1 {
		t.Fatalf("call after eviction: %v, %d pools", err, held())
	}
}

// versionedProbe is wasm with its manifest's version set to version.
func versionedProbe(t testing.TB, wasm []byte, version string) []byte {
	t.Helper()
	m, err := abi.ReadManifest(wasm)
	if err != nil {
		t.Fatal(err)
	}
	m.Version = version
	out, err := abi.EmbedManifest(wasm, m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
