package host

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/connhost/connhost/abi"
)

// Guests built once per test binary by TestMain.
var (
	guestDir   string // built .wasm files, manifests embedded
	testCache  string // wazero compilation cache shared by the tests
	faultyRoot = filepath.Join("..", "plugins", "faulty")
)

// guestSource says how to build one test guest.
type guestSource struct {
	name     string // file name of the result, without .wasm
	wat      string // WAT source, or
	goPkg    string // Go package path relative to the module root
	manifest abi.Manifest
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
		gs = append(gs, guestSource{name: n, wat: filepath.Join(faultyRoot, n, "guest.wat"), manifest: manifest("faulty-" + n)})
	}
	for _, n := range []string{"panic", "membomb", "wasisleeper"} {
		gs = append(gs, guestSource{name: n, goPkg: "./plugins/faulty/" + n, manifest: manifest("faulty-" + n)})
	}
	for _, n := range []string{"noop", "abuse", "badimports", "count"} {
		gs = append(gs, guestSource{name: n, wat: filepath.Join("testdata", "guests", n+".wat"), manifest: manifest(n)})
	}
	gs = append(gs, guestSource{name: "probe", goPkg: "./host/testdata/guests/probe", manifest: probeManifest})
	return gs
}

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "connhost-host-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	guestDir, testCache = filepath.Join(dir, "guests"), filepath.Join(dir, "cache")
	if err := buildGuests(guestDir); err != nil {
		fmt.Fprintln(os.Stderr, "build test guests:", err)
		return 1
	}
	return m.Run()
}

// buildGuests builds every guest into dir; Go builds run two at a time
// (the machine is small) and WAT ones inline.
func buildGuests(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	root, err := filepath.Abs("..")
	if err != nil {
		return err
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, 2)
	)
	for _, g := range guestSources() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := buildGuest(root, dir, g); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%s: %w", g.name, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func buildGuest(root, dir string, g guestSource) error {
	raw := filepath.Join(dir, g.name+".raw.wasm")
	var cmd *exec.Cmd
	if g.wat != "" {
		cmd = exec.Command("wat2wasm", g.wat, "-o", raw)
	} else {
		cmd = exec.Command("go", "build", "-buildmode=c-shared", "-o", raw, g.goPkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	wasm, err := os.ReadFile(raw)
	if err != nil {
		return err
	}
	m := g.manifest
	packed, err := abi.EmbedManifest(wasm, &m)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, g.name+".wasm"), packed, 0o644)
}

// guest returns a built guest's bytes.
func guest(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(guestDir, name+".wasm"))
	if err != nil {
		t.Fatal(err)
	}
	return b
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
	log := &syncBuffer{}
	rt, err := NewRuntime(context.Background(), Config{CacheDir: testCache, Logger: zerolog.New(log).Level(zerolog.DebugLevel)})
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
