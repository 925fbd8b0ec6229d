package api_test

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/connhost/connhost/host/api/apitypes"
	"github.com/connhost/connhost/internal/api"
	"github.com/connhost/connhost/internal/mirror"
	"github.com/connhost/connhost/internal/service"

	"github.com/connhost/connhost/internal/store"
	"github.com/connhost/connhost/internal/testenv"
	"github.com/connhost/connhost/internal/testenv/wait"
)

// TestMetricsBounded sends 10,000 odd requests, unauthenticated and with a
// key (made-up methods, paths, instance and command names), and checks that
// /metrics does not grow with them: every label value comes from a bounded
// set, so a client cannot grow the server's memory through the metrics.
func TestMetricsBounded(t *testing.T) {
	// Not newServer: validating 10,000 responses would double the run
	// time, and other tests hold the document to the same routes.
	s := testenv.NewServer(t, testenv.ServerOptions{})
	s.Install(plugin(t, "goecho"))
	s.CreateInstance("echo", "goecho", nil, store.Settings{})
	metrics := func() string {
		t.Helper()
		r := s.Do(http.MethodGet, "/metrics", nil, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("GET /metrics: %s", r)
		}
		return string(r.Body)
	}
	fresh := len(metrics())
	odd := func(rng *rand.Rand, i int) *http.Request {
		word := fmt.Sprintf("zq%d", rng.Uint64())
		methods := []string{"GET", "POST", "DELETE", "PATCH", strings.ToUpper(word), "PROPFIND-" + word, word}
		method := methods[rng.IntN(len(methods))]
		var path, body string
		switch i % 6 {
		case 0:
			path = "/" + word + "/" + word
		case 1:
			path = "/api/v1/" + word
		case 2:
			path = "/api/v1/instances/" + word + "/execute"
			method, body = http.MethodPost, `{"command":"echo"}`
		case 3:
			path = "/api/v1/instances/echo/execute"
			method, body = http.MethodPost, `{"command":"`+word+`"}`
		case 4:
			path = "/instance/execute/" + word + "/" + word
		case 5:
			path = "/api/v1/instances/" + word + "/test"
			method = http.MethodPost
		}
		req, err := http.NewRequest(method, s.URL+path+"?"+word+"=1", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if rng.IntN(2) == 0 {
			req.Header.Set("Authorization", "Bearer "+s.Key)
			req.Header.Set("Content-Type", "application/json")
		}
		return req
	}
	send := func(n int, seed uint64) {
		var wg sync.WaitGroup
		const workers = 8
		for w := range workers {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(seed, uint64(w)))
				for i := w; i < n; i += workers {
					res, err := s.HTTP.Client().Do(odd(rng, i))
					if err != nil {
						t.Error(err)
						return
					}
					if res.StatusCode >= 500 {
						t.Errorf("%s %s: %d", res.Request.Method, res.Request.URL.Path, res.StatusCode)
					}
					res.Body.Close()
				}
			})
		}
		wg.Wait()
	}
	// A first round makes the bounded series (each route's 401, 404, 405,
	// the "other" method, ...) appear.
	send(600, 1)
	before := len(metrics())
	send(10_000, 2)
	after := metrics()
	t.Logf("/metrics: %d bytes fresh, %d after 600 odd requests, %d after 10,000 more", fresh, before, len(after))
	// Counters gain digits and the runtime's own metrics move a little.
	if grown := len(after) - before; grown > 4096 {
		t.Errorf("/metrics grew by %d bytes over 10,000 odd requests", grown)
	}
	if strings.Contains(after, "zq") || strings.Contains(after, "PROPFIND") {
		t.Errorf("a made-up name became a label value")
	}
}

// realServer serves e's API through api.Server.HTTPServer (the server
// `connhost serve` runs, with its timeouts) on a loopback listener, and
// returns its address.
func realServer(t *testing.T, e *env) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := e.srv.HTTPServer()
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	return ln.Addr().String()
}

// rawRequest opens a connection to addr and writes head (request line and
// headers, ending in an empty line) without any body.
func rawRequest(t *testing.T, addr, head string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	return conn
}

// readResponse reads one response from conn within d.
func readResponse(t *testing.T, conn net.Conn, d time.Duration) (*http.Response, error) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(d))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err == nil {
		_, _ = io.ReadAll(res.Body)
		res.Body.Close()
	}
	return res, err
}

// TestSlowClients: a client sending its headers or its body a byte at a
// time is cut off after server.read_header_timeout or server.read_timeout
// while it keeps sending.
func TestSlowClients(t *testing.T) {
	e := newEnv(t, func(o *api.Options) {
		o.ReadHeaderTimeout, o.ReadTimeout = 300*time.Millisecond, 600*time.Millisecond
	})
	addr := realServer(t, e)
	tests := []struct {
		name, head string
	}{
		{"headers", "GET /livez HTTP/1.1\r\nHost: x\r\nX-Slow: "},
		{"body", "POST /api/v1/incidents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + e.key +
			"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := rawRequest(t, addr, tt.head)
			start := time.Now()
			closed := make(chan error, 1)
			go func() {
				// Reads until the server closes the connection; a
				// response (the 400 of an unfinished body) may come first.
				_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, err := io.Copy(io.Discard, conn)
				closed <- err
			}()
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case err := <-closed:
					if ne, ok := err.(net.Error); ok && ne.Timeout() {
						t.Fatalf("connection still open after %v of trickling", time.Since(start))
					}
					t.Logf("closed after %v", time.Since(start).Round(time.Millisecond))
					return
				case <-tick.C:
					// A write may fail once the server has closed; the
					// reader reports that.
					_, _ = conn.Write([]byte("a"))
				}
			}
		})
	}
}

// TestInstanceHTTPChecksBeforeBody: /instance/execute answers an unknown
// instance, and wrong credentials, without waiting for a body the client
// announced but does not send.
func TestInstanceHTTPChecksBeforeBody(t *testing.T) {
	e := newEnv(t, nil)
	e.install("webhook")
	e.s.CreateInstance("hook", "webhook", map[string]any{"credentials_identifier": "alice", "credentials_password": "s3cret"},
		store.Settings{ExternalHTTP: true, LongRunning: true})
	addr := realServer(t, e)
	tests := []struct {
		name, path, auth string
		want             int
	}{
		{"unknown instance", "/instance/execute/nope", "", http.StatusNotFound},
		{"no credentials", "/instance/execute/hook", "", http.StatusUnauthorized},
		{"wrong password", "/instance/execute/hook", "Authorization: Basic YWxpY2U6d3Jvbmc=\r\n", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := rawRequest(t, addr, "POST "+tt.path+" HTTP/1.1\r\nHost: x\r\n"+tt.auth+"Content-Length: 100000\r\n\r\n")
			res, err := readResponse(t, conn, 5*time.Second)
			if err != nil {
				t.Fatalf("no answer before the body: %v", err)
			}
			if res.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.want)
			}
		})
	}
}

// TestInFlightPerClient: a client address with
// server.max_in_flight_per_client requests in progress gets 503 with
// Retry-After until one finishes; the address is the peer's, or the one a
// trusted proxy forwards.
func TestInFlightPerClient(t *testing.T) {
	e := newEnv(t, func(o *api.Options) {
		o.MaxInFlightPerClient = 2
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	addr := realServer(t, e)
	// Requests held in progress: the server waits for bodies that do not come.
	hold := func(forwardedFor string) net.Conn {
		return rawRequest(t, addr, "POST /api/v1/incidents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+e.key+
			"\r\nX-Forwarded-For: "+forwardedFor+"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n")
	}
	get := func(forwardedFor string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/livez", nil)
		req.Header.Set("X-Forwarded-For", forwardedFor)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.ReadAll(res.Body)
		res.Body.Close()
		return res
	}
	a1, a2 := hold("203.0.113.1"), hold("203.0.113.1")
	var res *http.Response
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if res = get("203.0.113.1"); res.StatusCode == http.StatusServiceUnavailable {
			break
		}
	}
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") != "1" {
		t.Fatalf("third request of a client: %d, Retry-After %q; want 503 and 1", res.StatusCode, res.Header.Get("Retry-After"))
	}
	if res := get("203.0.113.2"); res.StatusCode != http.StatusOK {
		t.Fatalf("another client behind the proxy: %d", res.StatusCode)
	}
	_ = a1.Close()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if res = get("203.0.113.1"); res.StatusCode == http.StatusOK {
			break
		}
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("after one request ended: %d", res.StatusCode)
	}
	_ = a2.Close()
	if !strings.Contains(e.logs.String(), `"remote":"203.0.113.2"`) {
		t.Errorf("the log does not name the forwarded client")
	}
}

// TestForwardedFor: X-Forwarded-For and X-Real-IP name the client only
// when the peer is a trusted proxy.
func TestForwardedFor(t *testing.T) {
	tests := []struct {
		name    string
		trusted []netip.Prefix
		header  string
		want    string
	}{
		{"no proxies", nil, "X-Forwarded-For: 203.0.113.7", "127.0.0.1"},
		{"no proxies, X-Real-IP", nil, "X-Real-IP: 203.0.113.7", "127.0.0.1"},
		{"peer not a proxy", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, "X-Forwarded-For: 203.0.113.7", "127.0.0.1"},
		{"trusted proxy", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, "X-Forwarded-For: 198.51.100.1, 203.0.113.7", "203.0.113.7"},
		{"trusted proxy, X-Real-IP", []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, "X-Real-IP: 203.0.113.7", "203.0.113.7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(o *api.Options) { o.TrustedProxies = tt.trusted })
			name, value, _ := strings.Cut(tt.header, ": ")
			if r := e.s.Do(http.MethodGet, "/livez", nil, http.Header{name: {value}}); r.Status != http.StatusOK {
				t.Fatal(r)
			}
			if logs := e.logs.String(); !strings.Contains(logs, `"remote":"`+tt.want+`"`) {
				t.Fatalf("log does not name %s as the remote:\n%s", tt.want, logs)
			}
		})
	}
}

// TestEgressSettingsNarrow: settings.egress may only narrow the plugin's
// allow-list; an entry the manifest does not allow is a 400 naming it, on
// create and on update, and nothing is stored.
func TestEgressSettingsNarrow(t *testing.T) {
	e := newEnv(t, nil)
	e.install("ticketdesk")
	params := map[string]any{"url": "https://tickets.example.com", "api_key": "k"}
	r := e.must(http.StatusBadRequest, "POST", "/api/v1/instances", map[string]any{"name": "td", "plugin": "ticketdesk", "params": params,
		"settings": map[string]any{"egress": []string{"tickets.example.com", "evil.example"}}})
	if msg := r.errBody(t).Detail; !strings.Contains(msg, `settings.egress "evil.example": not allowed by the plugin's manifest`) {
		t.Fatalf("message %q does not name the entry", msg)
	}
	e.must(http.StatusNotFound, "GET", "/api/v1/instances/td", nil)
	e.must(http.StatusCreated, "POST", "/api/v1/instances", map[string]any{"name": "td", "plugin": "ticketdesk", "params": params,
		"settings": map[string]any{"egress": []string{"Tickets.Example.com"}}})
	r = e.must(http.StatusBadRequest, "PATCH", "/api/v1/instances/td", map[string]any{"settings": map[string]any{"egress": []string{"tickets.example.com:8443"}}})
	if msg := r.errBody(t).Detail; !strings.Contains(msg, `"tickets.example.com:8443"`) {
		t.Fatalf("message %q does not name the entry", msg)
	}
	var v apitypes.Instance
	e.must(http.StatusOK, "GET", "/api/v1/instances/td", nil).decode(t, &v)
	if !slices.Equal(v.Settings.Egress, []string{"Tickets.Example.com"}) {
		t.Fatalf("stored egress %q", v.Settings.Egress)
	}
}

// TestUnknownQueryParameters: a query parameter the route does not declare
// in openapi.json is a 400 naming it; declared ones pass, and requests into
// plugins keep any query.
func TestUnknownQueryParameters(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		path string
		want int
		name string
	}{
		{"/api/v1/incidents?stauts=closed", http.StatusBadRequest, "stauts"},
		{"/api/v1/incidents?status=closed&limit=5&b=1&a=2", http.StatusBadRequest, "a"},
		{"/api/v1/users?limit=1", http.StatusBadRequest, "limit"},
		{"/livez?x=1", http.StatusBadRequest, "x"},
		{"/api/v1/incidents?status=closed&limit=5", http.StatusOK, ""},
		{"/api/v1/incidents/nope/entries?limit=5", http.StatusNotFound, ""},
		{"/instance/execute/nope/x?anything=1", http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			method := http.MethodGet
			if strings.HasPrefix(tt.path, "/instance/") {
				method = http.MethodPost
			}
			r := e.call(method, tt.path, nil)
			if r.status != tt.want {
				t.Fatalf("%s", r)
			}
			if tt.name != "" && !strings.Contains(r.errBody(t).Detail, fmt.Sprintf("unknown query parameter %q", tt.name)) {
				t.Fatalf("detail does not name %q: %s", tt.name, r)
			}
		})
	}
}

// TestMirrorRunUnknownInstance: running a mirroring cycle of an instance
// that does not exist is a 404, not a 409.
func TestMirrorRunUnknownInstance(t *testing.T) {
	e := newEnv(t, nil)
	e.svc.Mirroring.SetEngine(mirror.New(mirror.Options{Store: e.s.Store, Instances: e.svc.Mirroring, Logger: zerolog.Nop()}))
	r := e.must(http.StatusNotFound, http.MethodPost, "/api/v1/instances/nope/mirror/run", nil)
	if d := r.errBody(t).Detail; !strings.Contains(d, `instance "nope"`) {
		t.Fatalf("detail %q does not name the instance", d)
	}
}

// TestWatchDirSymlinks: the watched directory does not follow symlinks,
// present at start or created later; the log names each refused file.
func TestWatchDirSymlinks(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	target := filepath.Join(outside, "goecho.wasm")
	if err := os.WriteFile(target, plugin(t, "goecho"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, "at-start.wasm")); err != nil {
		t.Fatal(err)
	}
	srv := newServer(t, testenv.ServerOptions{Service: func(o *service.Options) { o.WatchDir = dir }})
	if err := os.Symlink(target, filepath.Join(dir, "later.wasm")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "webhook.wasm"), plugin(t, "webhook"), 0o600); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 20*time.Second, "the regular file installed and both links refused", func() bool {
		logs := srv.Logs.String()
		return srv.Call(http.MethodGet, "/api/v1/plugins/webhook", nil).Status == http.StatusOK &&
			strings.Contains(logs, "at-start.wasm: not a regular file; symlinks are not followed") &&
			strings.Contains(logs, "later.wasm: not a regular file; symlinks are not followed")
	})
	if r := srv.Call(http.MethodGet, "/api/v1/plugins/goecho", nil); r.Status != http.StatusNotFound {
		t.Fatalf("the linked plugin was installed: %s", r)
	}
}
