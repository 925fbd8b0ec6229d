package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"

	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/internal/api"
	"github.com/connhost/connhost/internal/console"
	"github.com/connhost/connhost/internal/secrets"
	"github.com/connhost/connhost/internal/service"
	"github.com/connhost/connhost/internal/store"
)

// ServerOptions adjusts a Server. The zero value is a plain server.
type ServerOptions struct {
	// Now is the clock of the store and the service; nil means time.Now.
	Now func() time.Time
	// Service, if set, adjusts the service options (limits, long-running
	// settings) before service.New.
	Service func(*service.Options)
	// API, if set, adjusts the API options before api.New.
	API func(*api.Options)
	// Wrap, if set, wraps the API handler, e.g. in a throttling switch.
	Wrap func(http.Handler) http.Handler
	// KeyName names the bootstrap API key; "" means "test".
	KeyName string
	// StoreDir is the store's directory; "" means one in t.TempDir().
	StoreDir string
	// Store, if set, adjusts the store options before store.Open.
	Store func(*store.Options)
}

// Server is a real connhost server on loopback: a badger store in a
// temporary directory, a runtime on the shared compilation cache, the
// service and the HTTP API. Everything is closed when the test ends.
type Server struct {
	// URL is the API's base URL (scheme and host).
	URL string
	// Key is the bootstrap API key.
	Key     string
	Store   *store.Store
	Runtime *host.Runtime
	Service *service.Service
	API     *api.Server
	HTTP    *httptest.Server
	// Logs captures the server's log at debug level.
	Logs *LogBuffer

	t    testing.TB
	seen LogBuffer // every body CallAs received, for leak scans
}

// NewServer starts a fresh server for t.
func NewServer(t testing.TB, opts ServerOptions) *Server {
	t.Helper()
	ctx := context.Background()
	s := &Server{t: t, Logs: &LogBuffer{}}
	log := zerolog.New(s.Logs).Level(zerolog.DebugLevel)
	dir := opts.StoreDir
	if dir == "" {
		dir = filepath.Join(t.TempDir(), "db")
	}
	sto := store.Options{GCInterval: -1, Now: opts.Now, Tune: SmallTables}
	if opts.Store != nil {
		opts.Store(&sto)
	}
	st, err := store.Open(ctx, dir, sto)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	rt, err := host.NewRuntime(ctx, host.Config{CacheDir: CacheDir(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close(ctx) })
	box, err := secrets.New([]byte(rand.Text() + rand.Text())[:secrets.KeySize])
	if err != nil {
		t.Fatal(err)
	}
	so := service.Options{Store: st, Runtime: rt, Secrets: box, Logger: log, Now: opts.Now}
	if opts.Service != nil {
		opts.Service(&so)
	}
	svc, err := service.New(ctx, so)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close(ctx) })
	con, err := console.New(svc, console.Options{Logger: log, Now: opts.Now})
	if err != nil {
		t.Fatal(err)
	}
	ao := api.Options{Logger: log, Console: con}
	if opts.API != nil {
		opts.API(&ao)
	}
	srv := api.New(svc, ao)
	var h http.Handler = srv.Handler()
	if opts.Wrap != nil {
		h = opts.Wrap(h)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	name := opts.KeyName
	if name == "" {
		name = "test"
	}
	if s.Key, _, err = svc.APIKeys.Create(ctx, name); err != nil {
		t.Fatal(err)
	}
	s.URL, s.Store, s.Runtime, s.Service, s.API, s.HTTP = hs.URL, st, rt, svc, srv, hs
	return s
}

// SmallTables shrinks badger's tables and caches: tests write little and
// run many stores at once.
func SmallTables(bo badger.Options) badger.Options {
	return bo.WithMemTableSize(8 << 20).WithBlockCacheSize(4 << 20).WithValueLogFileSize(32 << 20).
		WithNumCompactors(2).WithNumMemtables(2).WithNumLevelZeroTables(2).WithNumLevelZeroTablesStall(4)
}

// Install installs wasm through the service and fails the test on error.
func (s *Server) Install(wasm []byte) service.PluginInfo {
	s.t.Helper()
	res, err := s.Service.Plugins.Install(context.Background(), service.InstallRequest{Wasm: wasm, By: "test"})
	if err != nil {
		s.t.Fatal(err)
	}
	return res.PluginInfo
}

// CreateInstance creates an enabled instance through the service and
// fails the test on error.
func (s *Server) CreateInstance(name, plugin string, params map[string]any, settings store.Settings) service.InstanceView {
	s.t.Helper()
	on := true
	v, err := s.Service.Instances.Create(context.Background(), service.InstanceInput{
		Name: name, Plugin: plugin, Enabled: &on, Params: params, Settings: &settings,
	})
	if err != nil {
		s.t.Fatalf("create instance %s of plugin %s: %v", name, plugin, err)
	}
	return v
}

// Response is an API response.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r Response) String() string { return fmt.Sprintf("%d %s", r.Status, r.Body) }

// Decode unmarshals the body into v, failing the test on error.
func (r Response) Decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decoding %s: %v", r, err)
	}
}

// Call sends an authenticated request: body is sent as is when it is
// []byte or string, else as JSON; nil sends none. path is the whole path, e.g.
// api.Prefix+"/instances".
func (s *Server) Call(method, path string, body any) Response {
	s.t.Helper()
	return s.CallAs(s.Key, method, path, body, "")
}

// Must is Call failing the test unless the status is status.
func (s *Server) Must(status int, method, path string, body any) Response {
	s.t.Helper()
	r := s.Call(method, path, body)
	if r.Status != status {
		s.t.Fatalf("%s %s: want %d, got %s", method, path, status, r)
	}
	return r
}

// CallAs sends a request with key as the bearer token (none when "") and
// contentType ("" means application/json when there is a body), and
// records the response body for Responses.
func (s *Server) CallAs(key, method, path string, body any, contentType string) Response {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		if b != nil {
			rd = bytes.NewReader(b)
		}
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	h := http.Header{}
	if contentType == "" && rd != nil {
		contentType = "application/json"
	}
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	if key != "" {
		h.Set("Authorization", "Bearer "+key)
	}
	r := s.send(method, path, rd, h)
	s.seen.Write(slices.Concat(r.Body, []byte{'\n'}))
	return r
}

// Do sends a request with exactly the given headers (no API key unless
// they carry one), e.g. to a plugin's HTTP endpoint.
func (s *Server) Do(method, path string, body []byte, header http.Header) Response {
	s.t.Helper()
	return s.send(method, path, bytes.NewReader(body), header.Clone())
}

func (s *Server) send(method, path string, body io.Reader, header http.Header) Response {
	s.t.Helper()
	req, err := http.NewRequest(method, s.URL+path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	if header != nil {
		req.Header = header
	}
	res, err := s.HTTP.Client().Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		s.t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return Response{Status: res.StatusCode, Header: res.Header, Body: b}
}

// Responses returns every body CallAs received so far, one per line, for
// scanning them for secrets.
func (s *Server) Responses() string { return s.seen.String() }

// LogBuffer is a log sink safe for concurrent writers.
type LogBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
