package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/testenv"
	"github.com/connhost/connhost/internal/testenv/wait"
	"github.com/connhost/connhost/internal/testenv/wasmbuild"
)

// startEngineServer starts `connhost serve` with engines enabled: embedded
// NATS on a loopback port unless extra says otherwise.
func startEngineServer(t *testing.T, extra ...string) *server {
	t.Helper()
	if extra == nil {
		extra = []string{"--engines-listen", "127.0.0.1:0"}
	}
	return startServer(t, "server", append([]string{"--api-rate-limit", "0", "--engines-enable"}, extra...)...)
}

// engineProc is a `connhost engine` process.
type engineProc struct {
	name string
	cmd  *exec.Cmd
	logs *testenv.LogBuffer
}

// enroll enrolls an engine through the API and writes its credentials file.
func enroll(t *testing.T, s *server, name, group string) string {
	t.Helper()
	var en map[string]any
	s.call(http.MethodPost, "/engines", map[string]any{"name": name, "group": group}, &en)
	if en["seed"] == "" || en["url"] == "" {
		t.Fatalf("enrollment %v", en)
	}
	path := filepath.Join(t.TempDir(), name+".creds")
	raw, _ := json.Marshal(map[string]any{"name": name, "group": group, "url": en["url"], "seed": en["seed"]})
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// enrollCLI enrolls an engine with `connhost engine enroll`, checking
// that it refuses to overwrite a file and wants the API key from the
// environment.
func enrollCLI(t *testing.T, s *server, name, group string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name+".creds")
	enroll := func(env []string, args ...string) (int, string) {
		cmd := exec.Command(binary, append([]string{"engine", "enroll", "--server", s.url, "--name", name, "--group", group}, args...)...)
		cmd.Env = append(serverEnv(), env...)
		out, _ := cmd.CombinedOutput()
		return cmd.ProcessState.ExitCode(), string(out)
	}
	if code, out := enroll(nil, "-o", path); code != 2 || !strings.Contains(out, "CONNHOST_API_KEY") {
		t.Fatalf("enroll without a key: %d %s", code, out)
	}
	if code, out := enroll([]string{"CONNHOST_API_KEY=" + s.key}, "-o", path); code != 0 || !strings.Contains(out, "enrolled in group "+group) {
		t.Fatalf("enroll: %d %s", code, out)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v %v", fi, err)
	}
	if code, out := enroll([]string{"CONNHOST_API_KEY=" + s.key}, "-o", path); code != 2 || !strings.Contains(out, "exists") {
		t.Fatalf("enroll over an existing file: %d %s", code, out)
	}
	return path
}

// startEngine runs `connhost engine run --creds creds` and waits until it is
// connected; a refused engine's error is returned with its output.
func startEngine(t *testing.T, name, creds string) (*engineProc, error) {
	t.Helper()
	e := &engineProc{name: name, logs: &testenv.LogBuffer{}}
	e.cmd = exec.Command(binary, "engine", "run", "--creds", creds, "--cache-dir", t.TempDir(), "--log-format", "json")
	e.cmd.Env = serverEnv()
	e.cmd.Stderr = e.logs
	out, err := e.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.cmd.Process.Signal(syscall.SIGTERM)
		_ = e.cmd.Wait()
		if t.Failed() {
			t.Logf("engine %s log:\n%s", name, e.logs.String())
		}
	})
	sc := bufio.NewScanner(out)
	if sc.Scan() && strings.Contains(sc.Text(), "connected to") {
		go func() { _, _ = io.Copy(io.Discard, out) }()
		return e, nil
	}
	err = e.cmd.Wait()
	return nil, fmt.Errorf("engine %s did not connect (%v):\n%s", name, err, e.logs.String())
}

type engineView struct {
	Name        string   `json:"name"`
	Connected   bool     `json:"connected"`
	Calls       int64    `json:"calls"`
	Failures    int64    `json:"failures"`
	LongRunning []string `json:"longRunning"`
}

func (s *server) engines() map[string]engineView {
	var list struct {
		Engines []engineView `json:"engines"`
	}
	s.call(http.MethodGet, "/engines", nil, &list)
	out := map[string]engineView{}
	for _, e := range list.Engines {
		out[e.Name] = e
	}
	return out
}

// execute runs a command and returns the status and body (the result, or
// the error); safe to call from any goroutine.
func (s *server) execute(instance, command string, args map[string]any) (int, map[string]any) {
	raw, _ := json.Marshal(map[string]any{"command": command, "args": args})
	req, _ := http.NewRequest(http.MethodPost, s.url+"/api/v1/instances/"+instance+"/execute", bytes.NewReader(raw))
	req.Header.Set("Authorization", "Bearer "+s.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, map[string]any{"error": err.Error()}
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// TestEngines is the end-to-end proof of engines (docs/engines.md): a
// server with embedded NATS on loopback and two engine processes of one
// group serve an instance's commands between them, host functions reach
// the server, a SIGKILLed engine leaves later calls succeeding, the
// long-running execution fails over within 10 s and never runs twice at
// once, a plugin swap under load fails no call, and an engine with wrong
// credentials is refused.
func TestEngines(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server and three engine processes")
	}
	s := startEngineServer(t)
	e1, err := startEngine(t, "e1", enroll(t, s, "e1", "dmz"))
	if err != nil {
		t.Fatal(err)
	}
	e2, err := startEngine(t, "e2", enrollCLI(t, s, "e2", "dmz"))
	if err != nil {
		t.Fatal(err)
	}
	procs := map[string]*engineProc{"e1": e1, "e2": e2}

	// An engine with a key the server never issued is refused.
	kp, _ := nkeys.CreateUser()
	seed, _ := kp.Seed()
	bad := filepath.Join(t.TempDir(), "bad.creds")
	var good map[string]any
	raw, _ := os.ReadFile(enroll(t, s, "e3", "dmz"))
	_ = json.Unmarshal(raw, &good)
	good["seed"] = string(seed)
	raw, _ = json.Marshal(good)
	_ = os.WriteFile(bad, raw, 0o600)
	if _, err := startEngine(t, "impostor", bad); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("engine with a wrong key: %v, want refused", err)
	}

	wasm, err := wasmbuild.Build(context.Background(), wasmbuild.Source{Path: "e2e/testdata/engineprobe"})
	if err != nil {
		t.Fatal(err)
	}
	s.call(http.MethodPost, "/plugins", wasm, &map[string]any{})
	s.call(http.MethodPost, "/instances", map[string]any{"name": "probe", "plugin": "engineprobe", "enabled": true,
		"settings": map[string]any{"engine_group": "dmz"}}, &map[string]any{})

	// Commands are spread over both engines.
	for i := range 40 {
		code, out := s.execute("probe", "echo", map[string]any{"i": i})
		if code != http.StatusOK || out["result"].(map[string]any)["i"] != float64(i) {
			t.Fatalf("echo %d: %d %v", i, code, out)
		}
	}
	if es := s.engines(); es["e1"].Calls == 0 || es["e2"].Calls == 0 || !es["e1"].Connected || !es["e2"].Connected {
		t.Fatalf("commands not served by both engines: %+v", es)
	}
	// Host functions reach the server's store: the versioned counter counts
	// every bump, whichever engine ran it.
	for i := 1; i <= 10; i++ {
		code, out := s.execute("probe", "bump", nil)
		if code != http.StatusOK || out["result"].(map[string]any)["count"] != float64(i) {
			t.Fatalf("bump %d: %d %v", i, code, out)
		}
	}

	// fetch-incidents runs on an engine; the server keeps the incidents and
	// the last run, so successive fetches continue where the last one
	// stopped, whichever engine ran it.
	for i := 1; i <= 3; i++ {
		var sum struct {
			Result struct {
				Created []string `json:"created"`
			} `json:"result"`
		}
		s.call(http.MethodPost, "/instances/probe/fetch", nil, &sum)
		if len(sum.Result.Created) != 1 || s.incident(sum.Result.Created[0]).Name != fmt.Sprintf("fetched %d", i) {
			t.Fatalf("fetch %d: %+v", i, sum)
		}
	}

	// A group with no engine fails fast, naming the group.
	s.call(http.MethodPost, "/instances", map[string]any{"name": "lonely", "plugin": "engineprobe", "enabled": true,
		"settings": map[string]any{"engine_group": "nowhere"}}, &map[string]any{})
	start := time.Now()
	code, out := s.execute("lonely", "echo", nil)
	if code != http.StatusBadGateway || out["kind"] != string(abi.KindUnavailable) || !strings.Contains(fmt.Sprint(out["detail"]), `"nowhere"`) || time.Since(start) > 2*time.Second {
		t.Fatalf("no engine: %d %v after %v", code, out, time.Since(start))
	}

	// The long-running execution runs on one engine, and moves to the other
	// when its engine is killed.
	var lr map[string]any
	s.call(http.MethodPost, "/instances", map[string]any{"name": "lr", "plugin": "engineprobe", "enabled": true,
		"settings": map[string]any{"engine_group": "dmz", "longRunning": true}}, &lr)
	failover(t, s, procs, lr["id"].(string))
	hotSwapUnderLoad(t, s)
}

// runOf returns the run id and tick count the long-running execution of
// instance lr (engineprobe) last wrote to its integration context.
func runOf(s *server) (string, float64) {
	var c struct {
		Context map[string]any `json:"context"`
		Version int64          `json:"version"`
	}
	s.call(http.MethodGet, "/instances/lr/context", nil, &c)
	r, _ := c.Context["run"].(string)
	n, _ := c.Context["ticks"].(float64)
	return r, n
}

// failover waits for the long-running execution of instance lr (id lrID)
// to run on an engine, SIGKILLs that engine, and checks that every later
// call to instance probe succeeds and that another engine takes the
// execution over within 10 s, the first run never writing again.
func failover(t *testing.T, s *server, procs map[string]*engineProc, lrID string) {
	t.Helper()
	var holder string
	wait.For(t, 15*time.Second, "long-running execution started on an engine", func() bool {
		r, n := runOf(s)
		for name, e := range s.engines() {
			for _, id := range e.LongRunning {
				if id == lrID {
					holder = name
				}
			}
		}
		return r != "" && n >= 3 && holder != ""
	})
	first, _ := runOf(s)

	// Calls go on while the holder is SIGKILLed: every call after the kill
	// succeeds.
	if err := procs[holder].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = procs[holder].cmd.Wait()
	killed := time.Now()
	time.Sleep(100 * time.Millisecond)
	for i := range 20 {
		if code, out := s.execute("probe", "echo", map[string]any{"i": i}); code != http.StatusOK {
			t.Fatalf("echo %d after SIGKILL of %s: %d %v", i, holder, code, out)
		}
	}
	// Failover within 10 s; the first run never writes again once the
	// second has (a second copy at once would also lose version races).
	var second string
	var took time.Duration
	seen := []string{first}
	wait.For(t, 15*time.Second, "long-running execution taken over", func() bool {
		r, _ := runOf(s)
		if r != seen[len(seen)-1] {
			seen = append(seen, r)
		}
		if r != first && r != "" {
			second, took = r, time.Since(killed)
			return true
		}
		return false
	})
	if took > 10*time.Second {
		t.Fatalf("failover took %v, want ≤ 10s", took)
	}
	for range 10 {
		time.Sleep(100 * time.Millisecond)
		if r, _ := runOf(s); r != second {
			t.Fatalf("run %q wrote after %q took over (runs seen %v)", r, second, seen)
		}
	}
	t.Logf("long-running failover from %s took %v", holder, took)
}

// hotSwapUnderLoad installs engineprobe 1.0.1 while four clients call
// instance probe (on 1.0.0): no call may fail.
func hotSwapUnderLoad(t *testing.T, s *server) {
	t.Helper()
	v2, err := wasmbuild.Build(context.Background(), wasmbuild.Source{Path: "e2e/testdata/engineprobe",
		Edit: func(m *abi.Manifest) { m.Version = "1.0.1" }})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var failed []string
	var calls int
	var wg sync.WaitGroup
	var mu sync.Mutex
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				code, out := s.execute("probe", "echo", map[string]any{"w": w, "i": i})
				mu.Lock()
				calls++
				if code != http.StatusOK {
					failed = append(failed, fmt.Sprintf("%d %v", code, out))
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	s.call(http.MethodPost, "/plugins", v2, &map[string]any{})
	wait.For(t, 10*time.Second, "1.0.1 answering", func() bool {
		_, out := s.execute("probe", "version", nil)
		r, _ := out["result"].(map[string]any)
		return r != nil && r["version"] == "1.0.1"
	})
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if len(failed) > 0 || calls < 10 {
		t.Fatalf("hot swap under load: %d of %d calls failed: %v", len(failed), calls, failed[:min(len(failed), 5)])
	}
}
