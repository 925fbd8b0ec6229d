package api_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/host/api"
	"github.com/connhost/connhost/host/secrets"
	"github.com/connhost/connhost/host/service"
	"github.com/connhost/connhost/store"
)

// Built once per test binary by TestMain.
var (
	workDir   string
	cacheDir  string // wazero compilation cache shared by every test
	plugins   = map[string][]byte{}
	pluginErr error
)

func TestMain(m *testing.M) {
	var err error
	workDir, err = os.MkdirTemp("", "connhost-api-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cacheDir = filepath.Join(workDir, "cache")
	pluginErr = buildPlugins("ticketdesk", "goecho")
	code := m.Run()
	os.RemoveAll(workDir)
	os.Exit(code)
}

// buildPlugins builds Go plugins for wasip1 in parallel and embeds their
// manifests, as `make plugins` does.
func buildPlugins(names ...string) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, n := range names {
		wg.Go(func() {
			b, err := buildPlugin(n)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			plugins[n] = b
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func buildPlugin(name string) ([]byte, error) {
	raw := filepath.Join(workDir, name+".raw.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", raw, "../../plugins/"+name)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building plugins/%s: %v\n%s", name, err, out)
	}
	wasm, err := os.ReadFile(raw)
	if err != nil {
		return nil, err
	}
	mb, err := os.ReadFile("../../plugins/" + name + "/manifest.json")
	if err != nil {
		return nil, err
	}
	var m abi.Manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		return nil, fmt.Errorf("plugins/%s/manifest.json: %w", name, err)
	}
	return abi.EmbedManifest(wasm, &m)
}

func plugin(t testing.TB, name string) []byte {
	t.Helper()
	if pluginErr != nil {
		t.Fatal(pluginErr)
	}
	return plugins[name]
}

// syncBuffer is a goroutine-safe log sink.
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

// env is a service over a real badger store behind the API on loopback.
type env struct {
	t    testing.TB
	svc  *service.Service
	srv  *api.Server
	http *httptest.Server
	key  string
	logs *syncBuffer
	mu   sync.Mutex
	seen bytes.Buffer // every response body, for the secret scan
}

// newEnv starts a fresh server. opts may adjust the API options.
func newEnv(t testing.TB, opts func(*api.Options)) *env {
	t.Helper()
	ctx := context.Background()
	logs := &syncBuffer{}
	log := zerolog.New(logs).Level(zerolog.DebugLevel)
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "db"), store.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := host.NewRuntime(ctx, host.Config{CacheDir: cacheDir, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	box, err := secrets.New([]byte(rand.Text() + rand.Text())[:secrets.KeySize])
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(ctx, service.Options{Store: st, Runtime: rt, Secrets: box, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	o := api.Options{Logger: log}
	if opts != nil {
		opts(&o)
	}
	srv := api.New(svc, o)
	hs := httptest.NewServer(srv.Handler())
	key, _, err := svc.CreateAPIKey(ctx, "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		hs.Close()
		_ = svc.Close(ctx)
		_ = rt.Close(ctx)
		_ = st.Close()
	})
	return &env{t: t, svc: svc, srv: srv, http: hs, key: key, logs: logs}
}

// response is a decoded API response.
type response struct {
	status int
	body   []byte
}

func (r response) String() string { return fmt.Sprintf("%d %s", r.status, r.body) }

// decode unmarshals the body into v, failing the test on error.
func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %s: %v", r, err)
	}
}

func (r response) errBody(t testing.TB) api.ErrorBody {
	t.Helper()
	var b api.ErrorBody
	r.decode(t, &b)
	return b
}

// call sends a request with the env's key. body is sent as is when it is
// []byte or string, else as JSON.
func (e *env) call(method, path string, body any) response {
	e.t.Helper()
	return e.callAs(e.key, method, path, body, "")
}

func (e *env) callAs(key, method, path string, body any, contentType string) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, e.http.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if contentType == "" && rd != nil {
		contentType = "application/json"
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	res, err := e.http.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	e.seen.Write(b)
	e.seen.WriteByte('\n')
	e.mu.Unlock()
	if ct := res.Header.Get("Content-Type"); method != http.MethodDelete && res.StatusCode != http.StatusNoContent &&
		!strings.HasPrefix(ct, "application/json") && !strings.HasPrefix(ct, "text/plain") {
		e.t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	return response{res.StatusCode, b}
}

// must calls and asserts the status.
func (e *env) must(status int, method, path string, body any) response {
	e.t.Helper()
	r := e.call(method, path, body)
	if r.status != status {
		e.t.Fatalf("%s %s: want %d, got %s", method, path, status, r)
	}
	return r
}

// install uploads a plugin through the API.
func (e *env) install(name string) {
	e.t.Helper()
	r := e.callAs(e.key, http.MethodPost, "/api/v1/plugins", plugin(e.t, name), "application/wasm")
	if r.status != http.StatusCreated {
		e.t.Fatalf("install %s: %s", name, r)
	}
}

// responses returns every response body seen so far.
func (e *env) responses() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.seen.String()
}
