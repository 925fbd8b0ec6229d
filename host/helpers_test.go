package host

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/testenv/wasmbuild"
)

// Guests built once per test binary by TestMain, from the shared cache.
var (
	guests    = map[string][]byte{} // name → module, manifest embedded
	testCache = wasmbuild.CompilationCacheDir()
)

// guestSource is one test guest: a WAT file or Go package (relative to
// the module root) and the manifest embedded into it.
type guestSource struct {
	name     string // the name tests ask for
	path     string
	manifest abi.Manifest // zero: the guest's own manifest.json
}

func manifest(name string) abi.Manifest {
	return abi.Manifest{Name: name, Version: "1.0.0", ABIVersion: abi.Version}
}

var probeManifest = abi.Manifest{
	Name: "probe", Version: "1.2.0", ABIVersion: abi.Version, IsFetch: true,
	LongRunning: true, LongRunningHTTP: true,
	Params: []abi.Param{
		{Name: "url", Type: abi.ParamString},
		{Name: "api_key", Type: abi.ParamSecret},
	},
	Egress: []string{"param:url"},
}

func guestSources() []guestSource {
	var gs []guestSource
	for _, n := range []string{"trap", "loop", "outputbomb", "badjson", "sleeper", "wrongabi", "noexports"} {
		gs = append(gs, guestSource{name: n, path: "plugins/faulty/" + n + "/guest.wat", manifest: manifest("faulty-" + n)})
	}
	for _, n := range []string{"panic", "membomb", "wasisleeper"} {
		gs = append(gs, guestSource{name: n, path: "plugins/faulty/" + n, manifest: manifest("faulty-" + n)})
	}
	for _, n := range []string{"noop", "abuse", "badimports", "count", "hostile", "memspin"} {
		gs = append(gs, guestSource{name: n, path: "host/testdata/guests/" + n + ".wat", manifest: manifest(n)})
	}
	gs = append(gs, guestSource{name: "probe", path: "host/testdata/guests/probe", manifest: probeManifest})
	// The SDK's echo plugin: what a connector author's trivial command costs.
	gs = append(gs, guestSource{name: "goecho", path: "plugins/goecho", manifest: manifest("goecho")})
	// An author's own types through encoding/json and through jsonwire.
	gs = append(gs, guestSource{name: "typedecho", path: "host/testdata/guests/typedecho", manifest: manifest("typedecho")})
	// The webhook connector: connhost_http and create_incidents through the SDK.
	gs = append(gs, guestSource{name: "webhook", path: "plugins/webhook"})
	return gs
}

func TestMain(m *testing.M) {
	if err := buildGuests(); err != nil {
		fmt.Fprintln(os.Stderr, "build test guests:", err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// buildGuests builds every guest, two at a time (the machine is small);
// unchanged ones come from the cache.
func buildGuests() error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, 2)
	)
	for _, g := range guestSources() {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			src := wasmbuild.Source{Path: g.path}
			if g.manifest.Name != "" { // else the package's manifest.json
				src.Manifest = &g.manifest
			}
			wasm, err := wasmbuild.Build(context.Background(), src)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", g.name, err))
				return
			}
			guests[g.name] = wasm
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// guest returns a built guest's bytes.
func guest(t testing.TB, name string) []byte {
	t.Helper()
	b, ok := guests[name]
	if !ok {
		t.Fatalf("no test guest %q", name)
	}
	return bytes.Clone(b) // tests may damage their copy
}

// syncBuffer is a concurrency-safe log sink.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// env is a Runtime with a captured log.
type env struct {
	rt  *Runtime
	log *syncBuffer
}

func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvConfig(t, Config{})
}

// newEnvConfig is newEnv with cfg (its cache and logger are the test's).
func newEnvConfig(t testing.TB, cfg Config) *env {
	t.Helper()
	log := &syncBuffer{}
	cfg.CacheDir, cfg.Logger = testCache, zerolog.New(log).Level(zerolog.DebugLevel)
	rt, err := NewRuntime(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close(context.Background()) })
	return &env{rt: rt, log: log}
}

func (e *env) load(t testing.TB, name string) *Plugin {
	t.Helper()
	p, err := e.rt.Load(context.Background(), guest(t, name))
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return p
}

// instance loads a guest and creates an instance of it on svc.
func (e *env) instance(t testing.TB, name string, svc Services, spec InstanceSpec) *Instance {
	t.Helper()
	p := e.load(t, name)
	if spec.Info.ID == "" {
		spec.Info = abi.InstanceInfo{ID: "id-" + name, Name: "inst-" + name, Brand: p.Manifest.Name}
	}
	if spec.Services == nil {
		spec.Services = svc
	}
	inst, err := e.rt.NewInstance(context.Background(), p, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = inst.Close(context.Background()) })
	return inst
}

// exec1 runs a command with args given as a Go value.
func exec1(t testing.TB, inst *Instance, command string, args any) (json.RawMessage, error) {
	t.Helper()
	raw, err := json.Marshal(args)
	if err != nil {
		t.Fatal(err)
	}
	return inst.Execute(context.Background(), command, raw)
}

// mustExec runs a command that must succeed and decodes its result.
func mustExec[T any](t testing.TB, inst *Instance, command string, args any) T {
	t.Helper()
	res, err := exec1(t, inst, command, args)
	if err != nil {
		t.Fatalf("%s: %v", command, err)
	}
	var v T
	if err := json.Unmarshal(res, &v); err != nil {
		t.Fatalf("%s: result %s: %v", command, res, err)
	}
	return v
}

// wantCallError checks err is a *CallError of kind naming want.
func wantCallError(t testing.TB, err error, kind abi.ErrorKind, want string) *CallError {
	t.Helper()
	var ce *CallError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T), want *CallError of kind %s", err, err, kind)
	}
	if ce.Err.Kind != kind || !strings.Contains(ce.Error(), want) {
		t.Fatalf("error %q, want kind %s containing %q", ce.Error(), kind, want)
	}
	return ce
}

// memoryBytes returns the linear memory of the idle module instances, summed.
func (i *Instance) memoryBytes() uint64 {
	i.mu.Lock()
	defer i.mu.Unlock()
	var n uint64
	for _, mi := range i.idle {
		n += mi.memoryBytes()
	}
	return n
}
