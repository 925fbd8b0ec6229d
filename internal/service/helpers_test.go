package service_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/internal/secrets"
	"github.com/connhost/connhost/internal/service"
	"github.com/connhost/connhost/internal/store"
	"github.com/connhost/connhost/internal/testenv"
	"github.com/connhost/connhost/internal/testenv/wasmbuild"
)

// rt is the runtime every test's service shares: each plugin compiles
// into its own wazero runtime, so services over one Runtime do not
// interfere, and the compilation cache is read once.
var rt *host.Runtime

func TestMain(m *testing.M) {
	ctx := context.Background()
	var err error
	rt, err = host.NewRuntime(ctx, host.Config{CacheDir: testenv.CacheDir(), Logger: zerolog.Nop()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "runtime:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = rt.Close(ctx)
	os.Exit(code)
}

// env is a service over a fresh badger store in t.TempDir().
type env struct {
	t    *testing.T
	st   *store.Store
	box  *secrets.Box
	opts service.Options
	svc  *service.Service
	logs *testenv.LogBuffer
}

// newEnv opens a store and a service over it; edit adjusts the service
// options. Chat delivery runs only when a test calls DeliverChat. Tests
// with an env share nothing but the runtime, so they run in parallel.
func newEnv(t *testing.T, edit ...func(*service.Options)) *env {
	t.Helper()
	t.Parallel()
	return newEnvAt(t, filepath.Join(t.TempDir(), "db"), testenv.SmallTables, edit...)
}

// newEnvAt is newEnv with the store in dir, its tables tuned by tune, and
// without t.Parallel (for tests that mount a filesystem first).
func newEnvAt(t *testing.T, dir string, tune func(badger.Options) badger.Options, edit ...func(*service.Options)) *env {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, dir, store.Options{GCInterval: -1, Tune: tune})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	box, err := secrets.New([]byte(rand.Text() + rand.Text())[:secrets.KeySize])
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, st: st, box: box, logs: &testenv.LogBuffer{}}
	e.opts = service.Options{Store: st, Runtime: rt, Secrets: box, Logger: zerolog.New(e.logs),
		LongRunning: service.LongRunningOptions{ChatInterval: time.Hour}}
	for _, f := range edit {
		f(&e.opts)
	}
	e.open()
	return e
}

// open starts a service over the env's store.
func (e *env) open() {
	e.t.Helper()
	svc, err := service.New(context.Background(), e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.svc = svc
	e.t.Cleanup(func() { _ = svc.Close(context.Background()) })
}

// restart closes the service and opens another over the same store, as a
// server restart.
func (e *env) restart() {
	e.t.Helper()
	if err := e.svc.Close(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.open()
}

// install installs wasm, failing the test on error.
func (e *env) install(wasm []byte) service.InstallResult {
	e.t.Helper()
	res, err := e.svc.Plugins.Install(context.Background(), service.InstallRequest{Wasm: wasm, By: "test"})
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

// instance creates an instance, failing the test on error.
func (e *env) instance(in service.InstanceInput) service.InstanceView {
	e.t.Helper()
	v, err := e.svc.Instances.Create(context.Background(), in)
	if err != nil {
		e.t.Fatalf("create instance %s: %v", in.Name, err)
	}
	return v
}

// run executes a command, failing the test on error, and returns its
// result.
func (e *env) run(instance, command string, args map[string]any) string {
	e.t.Helper()
	res, err := e.svc.Commands.Execute(context.Background(), instance, service.ExecuteRequest{Command: command, Args: args})
	if err != nil {
		e.t.Fatalf("%s on %s: %v", command, instance, err)
	}
	return strings.TrimSpace(string(res.Result))
}

// incident creates an incident named name, failing the test on error.
func (e *env) incident(name string) store.Incident {
	e.t.Helper()
	inc, err := e.svc.Incidents.Create(context.Background(), service.IncidentInput{Name: &name})
	if err != nil {
		e.t.Fatal(err)
	}
	return inc
}

// wantErr fails unless err matches want (nil: no error).
func wantErr(t *testing.T, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != nil && !errors.Is(err, want):
		t.Fatalf("error %v, want %v", err, want)
	}
}

// Guests are built once per test binary, from the shared cache.
var (
	guestMu sync.Mutex
	guests  = map[string][]byte{}
)

func guest(t testing.TB, key string, src wasmbuild.Source) []byte {
	t.Helper()
	guestMu.Lock()
	defer guestMu.Unlock()
	if b, ok := guests[key]; ok {
		return b
	}
	b := testenv.Guest(t, src)
	guests[key] = b
	return b
}

// echo is plugins/goecho at version, with the params of params (and its
// own commands: echo, version).
func echo(t testing.TB, version string, params ...abi.Param) []byte {
	t.Helper()
	return guest(t, fmt.Sprintf("goecho@%s %v", version, params), wasmbuild.Source{Path: "plugins/goecho", Edit: func(m *abi.Manifest) {
		m.Version, m.Params = version, params
	}})
}

// Params of probe.
var (
	paramURL    = abi.Param{Name: "url", Type: abi.ParamString}
	paramAPIKey = abi.Param{Name: "api_key", Type: abi.ParamSecret}
)

// probe is the host's test guest (host/testdata/guests/probe): a fetching,
// long-running HTTP plugin whose commands exercise the host functions.
func probe(t testing.TB, version string) []byte {
	t.Helper()
	m := abi.Manifest{
		Name: "probe", Version: version, ABIVersion: abi.Version, IsFetch: true, LongRunning: true, LongRunningHTTP: true,
		Egress: []string{"param:url", "*.example.com"},
		Params: []abi.Param{paramURL, paramAPIKey,
			{Name: service.ParamCredentialsIdentifier, Type: abi.ParamString},
			{Name: service.ParamCredentialsPassword, Type: abi.ParamSecret}},
		Commands: []abi.Command{
			{Name: "echo", Arguments: []abi.Argument{{Name: "msg"}}},
			{Name: "param-is", Arguments: []abi.Argument{{Name: "param", Required: true}, {Name: "msg"}}},
			{Name: "rpc", Arguments: []abi.Argument{{Name: "name", Required: true}, {Name: "req"}}},
			{Name: "fail", Arguments: []abi.Argument{{Name: "msg", Required: true}}},
		},
	}
	return guest(t, "probe@"+version, wasmbuild.Source{Path: "host/testdata/guests/probe", Manifest: &m})
}

// chatbot is plugins/chatbot: it mirrors incidents to its "channel" (its
// integration context), answers questions and sends direct messages.
func chatbot(t testing.TB) []byte {
	t.Helper()
	return guest(t, "chatbot", wasmbuild.Source{Path: "plugins/chatbot"})
}

func ptr[T any](v T) *T { return &v }
