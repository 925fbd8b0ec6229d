// Package e2e runs whole connhost servers, as users run them, and checks
// what they do together.
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
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/connhost/connhost/internal/testenv"
	"github.com/connhost/connhost/internal/testenv/wait"
	"github.com/connhost/connhost/internal/testenv/wasmbuild"
)

var (
	binary   string // bin/connhost built for this test run
	peerWasm string // plugins/connhost-peer, built and packed
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "connhost-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		if err := build(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

func run(dir string, env []string, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// build makes the connhost binary and the connhost-peer plugin.
func build(dir string) error {
	binary = filepath.Join(dir, "connhost")
	if err := run("..", []string{"CGO_ENABLED=0"}, "go", "build", "-o", binary, "./cmd/connhost"); err != nil {
		return err
	}
	wasm, err := wasmbuild.Build(context.Background(), wasmbuild.Source{Path: "plugins/connhost-peer"})
	if err != nil {
		return err
	}
	peerWasm = filepath.Join(dir, "connhost-peer.wasm")
	return os.WriteFile(peerWasm, wasm, 0o644)
}

// serverEnv is the test's environment without CONNHOST_ variables: the
// server refuses unknown ones, and the test's own (such as the test cache
// location) are not server configuration.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONNHOST_") {
			env = append(env, kv)
		}
	}
	return env
}

// server is a `connhost serve` process on a loopback port.
type server struct {
	t    *testing.T
	name string
	url  string
	key  string
	cmd  *exec.Cmd
	logs testenv.LogBuffer
}

// startServer starts `connhost serve` on a loopback port with a data dir of
// its own and the flags given, and reads its URL and API key.
func startServer(t *testing.T, name string, flags ...string) *server {
	t.Helper()
	dir := t.TempDir()
	s := &server{t: t, name: name}
	s.cmd = exec.Command(binary, append([]string{"serve", "--listen", "127.0.0.1:0", "--data-dir", dir, "--log-format", "json"}, flags...)...)
	s.cmd.Env = serverEnv()
	s.cmd.Stderr = &s.logs
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		_ = s.cmd.Wait()
		if t.Failed() {
			t.Logf("%s log:\n%s", name, s.logs.String())
		}
	})
	sc := bufio.NewScanner(out)
	for sc.Scan() && (s.url == "" || s.key == "") {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "connhost serving on "); ok {
			s.url = strings.Fields(rest)[0]
		}
		if rest, ok := strings.CutPrefix(line, "API key (shown only once, store it now): "); ok {
			s.key = strings.TrimSpace(rest)
		}
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	if s.url == "" || s.key == "" {
		t.Fatalf("%s did not print its URL and key:\n%s", name, s.logs.String())
	}
	return s
}

// call makes an authenticated API call and decodes the answer into out.
func (s *server) call(method, path string, body, out any) int {
	s.t.Helper()
	var raw []byte
	ct := "application/json"
	switch b := body.(type) {
	case nil:
	case []byte:
		raw, ct = b, "application/wasm"
	default:
		raw, _ = json.Marshal(b)
	}
	// The server limits each key's rate (api.rate_limit); like any client,
	// the test waits as 429's Retry-After says and tries again.
	var resp *http.Response
	var data []byte
	for attempt := 0; ; attempt++ {
		var rd io.Reader
		if raw != nil {
			rd = bytes.NewReader(raw)
		}
		req, _ := http.NewRequest(method, s.url+"/api/v1"+path, rd)
		req.Header.Set("Authorization", "Bearer "+s.key)
		req.Header.Set("Content-Type", ct)
		var err error
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			s.t.Fatalf("%s %s %s: %v", s.name, method, path, err)
		}
		data, _ = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests || attempt == 30 {
			break
		}
		secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
		if err != nil || secs < 1 {
			s.t.Fatalf("%s %s %s: 429 with Retry-After %q", s.name, method, path, resp.Header.Get("Retry-After"))
		}
		time.Sleep(time.Duration(secs) * time.Second)
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			s.t.Fatalf("%s %s %s: %v: %s", s.name, method, path, err, data)
		}
	}
	if resp.StatusCode >= 300 && out != nil {
		s.t.Fatalf("%s %s %s: %d %s", s.name, method, path, resp.StatusCode, data)
	}
	return resp.StatusCode
}

type incident struct {
	ID                  string         `json:"id"`
	Name                string         `json:"name"`
	Severity            float64        `json:"severity"`
	Owner               string         `json:"owner"`
	Details             string         `json:"details"`
	Status              int            `json:"status"`
	CloseReason         string         `json:"closeReason"`
	CloseNotes          string         `json:"closeNotes"`
	CustomFields        map[string]any `json:"CustomFields"`
	DbotMirrorID        string         `json:"dbotMirrorId"`
	DbotMirrorInstance  string         `json:"dbotMirrorInstance"`
	DbotMirrorDirection string         `json:"dbotMirrorDirection"`
	DbotDirtyFields     []string       `json:"dbotDirtyFields"`
}

type entry struct {
	ID       string   `json:"id"`
	Contents any      `json:"contents"`
	Tags     []string `json:"tags"`
	Origin   string   `json:"origin"`
}

func (s *server) incident(id string) incident {
	var inc incident
	s.call(http.MethodGet, "/incidents/"+id, nil, &inc)
	return inc
}

func (s *server) incidents() []incident {
	var page struct {
		Incidents []incident `json:"incidents"`
	}
	s.call(http.MethodGet, "/incidents?limit=500", nil, &page)
	return page.Incidents
}

func (s *server) entries(id string) []entry {
	var page struct {
		Entries []entry `json:"entries"`
	}
	s.call(http.MethodGet, "/incidents/"+id+"/entries?limit=500", nil, &page)
	return page.Entries
}

// texts returns the string contents of entries, in order.
func texts(es []entry) []string {
	var out []string
	for _, e := range es {
		if s, ok := e.Contents.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func count(list []string, s string) int {
	n := 0
	for _, x := range list {
		if strings.Contains(x, s) {
			n++
		}
	}
	return n
}

// TestTwoTenantMirroring is the end-to-end proof of mirroring: tenant A runs
// a connhost-peer instance pointed at tenant B, configured by XSOAR's
// conventional params only (no settings), and the two stay in sync both
// ways without loops or duplicates.
func TestTwoTenantMirroring(t *testing.T) {
	a := startServer(t, "tenant A", "--mirror-job-delay-advanced", "1")
	b := startServer(t, "tenant B", "--mirror-job-delay-advanced", "1")

	wasm, err := os.ReadFile(peerWasm)
	if err != nil {
		t.Fatal(err)
	}
	a.call(http.MethodPost, "/plugins", wasm, &map[string]any{})

	// 1. An incident created on B appears on A by the scheduled fetch that
	// isFetch turns on: nobody asks for it.
	var onB incident
	b.call(http.MethodPost, "/incidents", map[string]any{"name": "Phishing wave", "severity": 2, "details": "from B"}, &onB)
	var inst struct {
		Settings map[string]any `json:"settings"`
	}
	a.call(http.MethodPost, "/instances", map[string]any{
		"name": "b", "plugin": "connhost-peer", "enabled": true,
		"params": map[string]any{"url": b.url, "api_key": b.key, "isFetch": true, "incidentFetchInterval": 1,
			"mirror_direction": "Incoming And Outgoing", "mirror_tags": "comment", "close_incident": true, "close_out": true},
	}, &inst)
	if len(inst.Settings) != 1 || inst.Settings["isFetch"] != false {
		t.Fatalf("settings %v: the params should configure everything", inst.Settings)
	}
	if code := a.call(http.MethodPost, "/instances/b/test", nil, &map[string]any{}); code != http.StatusOK {
		t.Fatalf("test-module: %d", code)
	}
	var onA incident
	wait.For(t, 20*time.Second, "B's incident fetched into A on schedule", func() bool {
		for _, inc := range a.incidents() {
			if inc.DbotMirrorID == onB.ID {
				onA = inc
				return true
			}
		}
		return false
	})
	if onA.Name != "Phishing wave" || onA.DbotMirrorInstance != "b" || onA.DbotMirrorDirection != "Both" {
		t.Fatalf("fetched incident %+v", onA)
	}

	// 2. A field change and a tagged entry on A reach B; an untagged one does not.
	a.call(http.MethodPatch, "/incidents/"+onA.ID, map[string]any{"owner": "alice"}, &map[string]any{})
	a.call(http.MethodPost, "/incidents/"+onA.ID+"/entries", map[string]any{"contents": "note from A", "tags": []string{"comment"}}, &map[string]any{})
	a.call(http.MethodPost, "/incidents/"+onA.ID+"/entries", map[string]any{"contents": "private to A"}, &map[string]any{})
	wait.For(t, 20*time.Second, "A's owner and tagged entry on B", func() bool {
		return b.incident(onB.ID).Owner == "alice" && count(texts(b.entries(onB.ID)), "note from A") == 1
	})

	// 3. A field changed on B reaches A, except a field dirty on A. Outgoing
	// mirroring is paused (param mirror_direction Incoming) so A's change
	// stays pending.
	direction := func(d string) {
		a.call(http.MethodPatch, "/instances/b", map[string]any{"params": map[string]any{"mirror_direction": d}}, &map[string]any{})
	}
	direction("Incoming")
	a.call(http.MethodPatch, "/incidents/"+onA.ID, map[string]any{"severity": 4}, &map[string]any{})
	b.call(http.MethodPatch, "/incidents/"+onB.ID, map[string]any{"severity": 1, "details": "edited on B"}, &map[string]any{})
	b.call(http.MethodPost, "/incidents/"+onB.ID+"/entries", map[string]any{"contents": "note from B"}, &map[string]any{})
	wait.For(t, 20*time.Second, "B's details and entry on A", func() bool {
		return a.incident(onA.ID).Details == "edited on B" && count(texts(a.entries(onA.ID)), "note from B") == 1
	})
	if got := a.incident(onA.ID); got.Severity != 4 {
		t.Fatalf("A's dirty severity was overwritten: %v (dirty %v)", got.Severity, got.DbotDirtyFields)
	}
	direction("Incoming And Outgoing")
	wait.For(t, 20*time.Second, "A's pending severity delivered to B once outgoing resumes", func() bool {
		return b.incident(onB.ID).Severity == 4
	})

	// 4. Closing on B closes A with the reason. Then B is commented, edited
	// and reopened while A does not mirror in, so one update carries the
	// reopen with an entry and a field change: A takes all of it.
	b.call(http.MethodPost, "/incidents/"+onB.ID+"/close", map[string]any{"closeReason": "Resolved", "closeNotes": "fixed on B"}, &map[string]any{})
	wait.For(t, 20*time.Second, "A closed from B", func() bool {
		got := a.incident(onA.ID)
		return got.Status == 2 && got.CloseReason == "Resolved" && got.CloseNotes == "fixed on B"
	})
	direction("Outgoing")
	var refusal struct {
		Detail string `json:"detail"`
	}
	if code := a.callRaw(http.MethodPost, "/instances/b/mirror/run", &refusal); code != http.StatusConflict || !strings.Contains(refusal.Detail, "param mirror_direction") {
		t.Fatalf("mirror/run on an instance mirroring out only: %d %q, want 409 naming the param", code, refusal.Detail)
	}
	b.call(http.MethodPost, "/incidents/"+onB.ID+"/entries", map[string]any{"contents": "note before the reopen"}, &map[string]any{})
	b.call(http.MethodPatch, "/incidents/"+onB.ID, map[string]any{"details": "reopened on B"}, &map[string]any{})
	b.call(http.MethodPost, "/incidents/"+onB.ID+"/reopen", nil, &map[string]any{})
	direction("Incoming And Outgoing")
	wait.For(t, 20*time.Second, "A reopened from B with the entry and the field of the same update", func() bool {
		got := a.incident(onA.ID)
		return got.Status == 1 && got.Details == "reopened on B" && count(texts(a.entries(onA.ID)), "note before the reopen") == 1
	})

	// 5. Closing on A closes B.
	a.call(http.MethodPost, "/incidents/"+onA.ID+"/close", map[string]any{"closeReason": "Duplicate", "closeNotes": "closed on A"}, &map[string]any{})
	wait.For(t, 20*time.Second, "B closed from A", func() bool { return b.incident(onB.ID).Status == 2 })

	// 6. Nothing loops and nothing is duplicated: after three more incoming
	// cycles on A, with its outbox empty, each side has each entry once, and
	// B has still one incident.
	after := a.mirrorStats().Cycles + 3
	wait.For(t, 20*time.Second, "three more mirroring cycles on A and an empty outbox", func() bool {
		st := a.mirrorStats()
		return st.Cycles >= after && st.OutboxPending == 0
	})
	for _, side := range []struct {
		s  *server
		id string
	}{{a, onA.ID}, {b, onB.ID}} {
		got := texts(side.s.entries(side.id))
		for _, want := range []string{"note from A", "note from B", "note before the reopen"} {
			if n := count(got, want); n != 1 {
				t.Errorf("%s has %q %d times: %q", side.s.name, want, n, got)
			}
		}
		if n := count(got, "private to A"); (side.s == a) != (n == 1) {
			t.Errorf("%s has the untagged entry %d times", side.s.name, n)
		}
	}
	if n := len(b.incidents()); n != 1 {
		t.Errorf("B has %d incidents, want 1: something looped back", n)
	}
	if n := len(a.incidents()); n != 1 {
		t.Errorf("A has %d incidents, want 1", n)
	}
	if st := a.mirrorStats(); st.Mirrored != 1 {
		t.Errorf("mirror stats %+v", st)
	}
}

type mirrorStats struct {
	Mirrored      int `json:"mirrored"`
	Cycles        int `json:"cycles"`
	OutboxPending int `json:"outboxPending"`
}

// callRaw makes an authenticated API call and decodes the answer, error
// or not, into out.
func (s *server) callRaw(method, path string, out any) int {
	s.t.Helper()
	req, _ := http.NewRequest(method, s.url+"/api/v1"+path, nil)
	req.Header.Set("Authorization", "Bearer "+s.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s %s: %v", s.name, method, path, err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		s.t.Fatalf("%s %s %s: %v", s.name, method, path, err)
	}
	return resp.StatusCode
}

// mirrorStats returns the statistics of instance b, the peer of tenant B.
func (s *server) mirrorStats() mirrorStats {
	var st mirrorStats
	s.call(http.MethodGet, "/instances/b/mirror/stats", nil, &st)
	return st
}
