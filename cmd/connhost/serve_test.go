package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/connhost/connhost/internal/testenv/wait"
	"github.com/connhost/connhost/plugins/ticketdesk/tdserver"
)

// lockedBuffer collects a process's stderr.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
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

// serveProc is a running `connhost serve` on a free loopback port.
type serveProc struct {
	cmd    *exec.Cmd
	url    string
	key    string // "" unless this start created the first key
	stderr *lockedBuffer
	waited chan error
}

var keyRe = regexp.MustCompile(`API key \(shown only once, store it now\): (chk_\S+)`)

func serveEnv(dataDir string) []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dataDir, "CONNHOST_CACHE_DIR=" + cacheDir,
		"CONNHOST_DATA_DIR=" + dataDir, "CONNHOST_LOG_FORMAT=json"}
}

// startServe starts the binary on dataDir, with env added to serveEnv's,
// and waits for its banner.
func startServe(t *testing.T, dataDir string, env ...string) *serveProc {
	t.Helper()
	cmd := exec.Command(binary, "serve", "--listen", "127.0.0.1:0")
	cmd.Env = append(serveEnv(dataDir), env...)
	p := &serveProc{cmd: cmd, stderr: &lockedBuffer{}, waited: make(chan error, 1)}
	cmd.Stderr = p.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		p.waited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	timeout := time.After(60 * time.Second)
	for range 2 {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("serve exited early; stderr:\n%s", p.stderr)
			}
			if u, ok := strings.CutPrefix(l, "connhost serving on "); ok {
				p.url, _, _ = strings.Cut(u, " ")
			}
			if m := keyRe.FindStringSubmatch(l); m != nil {
				p.key = m[1]
			}
		case <-timeout:
			t.Fatalf("no banner from serve; stderr:\n%s", p.stderr)
		}
	}
	go func() {
		for range lines {
		}
	}()
	if p.url == "" {
		t.Fatalf("no URL in the banner; stderr:\n%s", p.stderr)
	}
	return p
}

// wait waits for the process to exit and returns its exit code.
func (p *serveProc) wait(t *testing.T) int {
	t.Helper()
	select {
	case err := <-p.waited:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not exit; stderr:\n%s", p.stderr)
		return -1
	}
}

// call sends a JSON request with key; err is a transport error.
func call(url, key, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, err
}

// TestServeCrashSafety kills the server with SIGKILL while a client creates
// incidents, restarts it on the same data dir and finds every incident the
// server acknowledged.
func TestServeCrashSafety(t *testing.T) {
	dir := t.TempDir()
	p := startServe(t, dir)
	if p.key == "" {
		t.Fatal("first start printed no API key")
	}
	type acked struct{ id, name string }
	const killAfter = 40
	var (
		mu     sync.Mutex
		acks   []acked
		done   = make(chan struct{})
		enough = make(chan struct{}) // closed at the killAfter-th acknowledgement
	)
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			name := fmt.Sprintf("incident %04d", i)
			status, body, err := call(p.url, p.key, "POST", "/api/v1/incidents", map[string]any{"name": name, "details": strings.Repeat("d", i)})
			if err != nil {
				return // the server is gone
			}
			var inc struct{ ID string }
			if status != http.StatusCreated || json.Unmarshal(body, &inc) != nil {
				t.Errorf("create %q: %d %s", name, status, body)
				return
			}
			mu.Lock()
			acks = append(acks, acked{inc.ID, name})
			if len(acks) == killAfter {
				close(enough)
			}
			mu.Unlock()
		}
	}()
	select {
	case <-enough:
	case <-done:
		t.Fatalf("the client stopped after %d acknowledgements; stderr:\n%s", len(acks), p.stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("fewer than %d incidents acknowledged in 30 s", killAfter)
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-done
	p.wait(t)

	p2 := startServe(t, dir)
	if p2.key != "" {
		t.Fatal("restart created another API key")
	}
	for _, a := range acks {
		status, body, err := call(p2.url, p.key, "GET", "/api/v1/incidents/"+a.id, nil)
		var inc struct{ Name, Details string }
		if err != nil || status != http.StatusOK || json.Unmarshal(body, &inc) != nil {
			t.Fatalf("acknowledged incident %s (%s) after restart: %d %s %v", a.id, a.name, status, body, err)
		}
		var i int
		fmt.Sscanf(a.name, "incident %d", &i)
		if inc.Name != a.name || inc.Details != strings.Repeat("d", i) {
			t.Fatalf("incident %s after restart: %+v, want name %q", a.id, inc, a.name)
		}
	}
	t.Logf("%d acknowledged incidents survived SIGKILL", len(acks))
}

// TestServeGracefulShutdown sends SIGTERM while a slow command runs: the
// command completes and answers, then the server exits cleanly. It also
// covers `plugin install` and the data-dir lock seen by the CLI.
func TestServeGracefulShutdown(t *testing.T) {
	if tdBuildEr != nil {
		t.Fatal(tdBuildEr)
	}
	const tdKey = "td-key-graceful"
	td := tdserver.New(tdKey)
	td.CreateTicket(tdserver.Ticket{Title: "Phishing report", Severity: 3})
	// The command blocks in TicketDesk until the server has begun shutting
	// down, so it is in flight across the SIGTERM whatever the timing.
	reached, unblock := make(chan struct{}, 1), make(chan struct{})
	tds := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/tickets/TD-1" {
			reached <- struct{}{}
			<-unblock
		}
		td.ServeHTTP(w, r)
	}))
	defer tds.Close()
	release := sync.OnceFunc(func() { close(unblock) })
	defer release() // before tds.Close, which waits for the handler

	dir := t.TempDir()
	r := connhost(t, serveEnv(dir), "plugin", "install", tdWasm)
	check(t, r, exitOK, []string{"installed ticketdesk@1.0.0 sha256 "}, nil)
	p := startServe(t, dir)
	status, body, err := call(p.url, p.key, "POST", "/api/v1/instances", map[string]any{
		"name": "td", "plugin": "ticketdesk", "enabled": true, "params": map[string]any{"url": tds.URL, "api_key": tdKey},
	})
	if err != nil || status != http.StatusCreated {
		t.Fatalf("create instance: %d %s %v", status, body, err)
	}
	check(t, connhost(t, serveEnv(dir), "apikey", "list"), exitFailed, nil, []string{"is in use by another connhost process"})

	type result struct {
		status int
		body   []byte
		err    error
	}
	got := make(chan result, 1)
	go func() {
		s, b, err := call(p.url, p.key, "POST", "/api/v1/instances/td/execute", map[string]any{
			"command": "ticketdesk-get-ticket", "args": map[string]any{"id": "TD-1"},
		})
		got <- result{s, b, err}
	}()
	select {
	case <-reached:
	case <-time.After(30 * time.Second):
		t.Fatalf("the command never reached TicketDesk; stderr:\n%s", p.stderr)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 30*time.Second, "serve to log that it is shutting down", func() bool {
		return strings.Contains(p.stderr.String(), "shutting down")
	})
	release()
	res := <-got
	if res.err != nil || res.status != http.StatusOK || !strings.Contains(string(res.body), "Phishing report") {
		t.Fatalf("in-flight command across SIGTERM: %d %s %v", res.status, res.body, res.err)
	}
	if code := p.wait(t); code != 0 {
		t.Fatalf("serve exited %d after SIGTERM; stderr:\n%s", code, p.stderr)
	}
	for _, want := range []string{"shutting down", "server stopped"} {
		if !strings.Contains(p.stderr.String(), want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	if strings.Contains(p.stderr.String(), tdKey) || strings.Contains(p.stderr.String(), p.key) {
		t.Error("a secret or the API key was logged")
	}
	// With the server gone the lock is free again.
	check(t, connhost(t, serveEnv(dir), "apikey", "list"), exitOK, []string{"bootstrap"}, nil)
}

// TestServeShutdownStopsSpinningGuest: a guest spinning without host calls
// cannot hold the server past server.shutdown_timeout, however long its
// call timeout.
func TestServeShutdownStopsSpinningGuest(t *testing.T) {
	dir := t.TempDir()
	check(t, connhost(t, serveEnv(dir), "plugin", "install", spinnerWasm), exitOK, []string{"installed spinner@1.0.0"}, nil)
	p := startServe(t, dir, "CONNHOST_SERVER_SHUTDOWN_TIMEOUT=1s", "CONNHOST_LIMITS_CALL_TIMEOUT=10m")
	status, body, err := call(p.url, p.key, "POST", "/api/v1/instances", map[string]any{"name": "spin", "plugin": "spinner", "enabled": true})
	if err != nil || status != http.StatusCreated {
		t.Fatalf("create instance: %d %s %v", status, body, err)
	}
	go func() {
		_, _, _ = call(p.url, p.key, "POST", "/api/v1/instances/spin/execute", map[string]any{"command": "spin"})
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(p.stderr.String(), `"message":"spinning"`) {
		if time.Now().After(deadline) {
			t.Fatalf("the guest never started spinning; stderr:\n%s", p.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t); code != 0 {
		t.Fatalf("serve exited %d after SIGTERM; stderr:\n%s", code, p.stderr)
	}
	// The shutdown timeout, then closing the store; nowhere near 10 minutes.
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("serve took %v to stop with a spinning call and a 1s shutdown timeout", took)
	}
}

// TestAPIKeyAndInstallCLI runs the maintenance commands against one data
// dir, step by step.
func TestAPIKeyAndInstallCLI(t *testing.T) {
	dir := t.TempDir()
	env := serveEnv(dir)
	r := connhost(t, env, "apikey", "create", "--name", "ci")
	check(t, r, exitOK, []string{"chk_"}, []string{`created API key "ci"`, "role admin, never expires", "shown only this once"})
	key := strings.TrimSpace(r.stdout)
	var keys []struct {
		ID, Name string
		Revoked  bool
	}
	r = connhost(t, env, "apikey", "list", "--json")
	check(t, r, exitOK, nil, nil)
	if err := json.Unmarshal([]byte(r.stdout), &keys); err != nil || len(keys) != 1 || keys[0].Name != "ci" || strings.Contains(r.stdout, key) {
		t.Fatalf("apikey list: %v %v", r, err)
	}
	notWasm := writeTemp(t, "x.wasm", "not wasm")
	tests := []struct {
		name     string
		args     []string
		code     int
		inStdout []string
		inStderr []string
	}{
		{"create without name", []string{"apikey", "create"}, exitUsage, nil, []string{"--name NAME"}},
		{"create with a bad name", []string{"apikey", "create", "--name", "a b"}, exitUsage, nil, []string{`key name "a b"`}},
		{"create with a bad role", []string{"apikey", "create", "--name", "x", "--role", "root"}, exitUsage, nil, []string{`role "root"`, "read, operator or admin"}},
		{"create with a bad expiry", []string{"apikey", "create", "--name", "x", "--expires", "soon"}, exitUsage, nil, []string{`--expires "soon"`, "RFC 3339"}},
		{"create expired", []string{"apikey", "create", "--name", "x", "--expires", "2001-01-01T00:00:00Z"}, exitUsage, nil, []string{"not in the future"}},
		{"create a read key", []string{"apikey", "create", "--name", "dash", "--role", "read", "--expires", "720h"}, exitOK, []string{"chk_"},
			[]string{`created API key "dash"`, "role read, expires 20"}},
		{"list shows roles", []string{"apikey", "list"}, exitOK, []string{"ROLE", "EXPIRES", "dash", "read", "admin"}, nil},
		{"revoke", []string{"apikey", "revoke", keys[0].ID}, exitOK, nil, []string{"revoked API key " + keys[0].ID}},
		{"list shows revoked", []string{"apikey", "list"}, exitOK, []string{"ci", "true"}, nil},
		{"revoke unknown", []string{"apikey", "revoke", "nosuch"}, exitUsage, nil, []string{`API key "nosuch"`, "not found"}},
		{"install", []string{"plugin", "install", echoWasm}, exitOK, []string{"installed echo@0.1.0"}, nil},
		{"install again is a no-op", []string{"plugin", "install", echoWasm}, exitOK, []string{"installed echo@0.1.0"}, nil},
		{"install wrong ABI", []string{"plugin", "install", wrongABI}, exitIncompatible, nil, []string{"incompatible"}},
		{"install not wasm", []string{"plugin", "install", notWasm}, exitIncompatible, nil, []string{"x.wasm"}},
		{"install missing file", []string{"plugin", "install", "/nonexistent.wasm"}, exitUsage, nil, []string{"/nonexistent.wasm"}},
		{"rollback with one version", []string{"plugin", "rollback", "echo"}, exitUsage, nil, []string{"no previous version to roll back to (current 0.1.0)"}},
		{"rollback unknown plugin", []string{"plugin", "rollback", "nosuch"}, exitUsage, nil, []string{`plugin "nosuch" is not installed`}},
		{"serve with extra args", []string{"serve", "extra"}, exitUsage, nil, []string{"unexpected arguments"}},
		{"bad secret key", []string{"apikey", "list"}, exitUsage, nil, []string{"CONNHOST_SECRET_KEY"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := env
			if tt.name == "bad secret key" {
				e = append(append([]string(nil), env...), "CONNHOST_SECRET_KEY=xyz")
			}
			check(t, connhost(t, e, tt.args...), tt.code, tt.inStdout, tt.inStderr)
		})
	}
}

// TestServeConsole: `connhost serve` mounts the console at / beside the
// API, assets included, and names it in its banner.
func TestServeConsole(t *testing.T) {
	p := startServe(t, t.TempDir())
	for _, tc := range []struct {
		path, want string
		status     int
	}{
		{"/", `id="signin"`, http.StatusUnauthorized},
		{"/login", `id="signin"`, http.StatusOK},
		{"/assets/htmx.min.js", "/*! htmx 2.0.11", http.StatusOK},
		{"/api/v1/openapi.json", `"openapi"`, http.StatusOK},
	} {
		res, err := http.Get(p.url + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != tc.status || !strings.Contains(string(b), tc.want) {
			t.Errorf("GET %s: %d, want %d with %q", tc.path, res.StatusCode, tc.status, tc.want)
		}
		if strings.HasPrefix(tc.path, "/api/") == (res.Header.Get("Content-Security-Policy") != "") {
			t.Errorf("GET %s: Content-Security-Policy %q", tc.path, res.Header.Get("Content-Security-Policy"))
		}
	}
}
