package api_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/connhost/connhost/host/api/apitypes"
	"github.com/connhost/connhost/internal/api"
	"github.com/connhost/connhost/internal/service"
	"github.com/connhost/connhost/internal/testenv"
)

// plugin returns plugins/<name> built and packed.
func plugin(t testing.TB, name string) []byte {
	t.Helper()
	return testenv.Plugin(t, name)
}

// env is a testenv.Server whose calls also check each response's
// Content-Type.
type env struct {
	t    testing.TB
	s    *testenv.Server
	svc  *service.Service
	srv  *api.Server
	http *httptest.Server
	key  string
	logs *testenv.LogBuffer
}

// newEnv starts a fresh server. opts may adjust the API options.
func newEnv(t testing.TB, opts func(*api.Options)) *env {
	t.Helper()
	s := newServer(t, testenv.ServerOptions{API: opts})
	return &env{t: t, s: s, svc: s.Service, srv: s.API, http: s.HTTP, key: s.Key, logs: s.Logs}
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
	testenv.Response{Status: r.status, Body: r.body}.Decode(t, v)
}

func (r response) errBody(t testing.TB) apitypes.Error {
	t.Helper()
	var b apitypes.Error
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
	r := e.s.CallAs(key, method, path, body, contentType)
	if ct := r.Header.Get("Content-Type"); method != http.MethodDelete && r.Status != http.StatusNoContent &&
		!strings.HasPrefix(ct, "application/json") && !strings.HasPrefix(ct, "text/plain") {
		e.t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	return response{r.Status, r.Body}
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
func (e *env) responses() string { return e.s.Responses() }
