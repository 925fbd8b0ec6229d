package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/testenv"
	"github.com/connhost/connhost/internal/testenv/wasmbuild"
	"github.com/connhost/connhost/plugins/ticketdesk/tdserver"
)

// Built once per test binary by TestMain.
var (
	binary      string               // the connhost binary
	workDir     string               // scratch directory shared by the tests
	cacheDir    = testenv.CacheDir() // wazero compilation cache shared by every run
	echoWasm    string               // testdata/echo.wat, packed with testdata/echo.manifest.json
	spinnerWasm string               // testdata/spinner.wat, packed with testdata/spinner.manifest.json
	echoRaw     string               // testdata/echo.wat without a manifest
	wrongABI    string               // testdata/wrongabi.wat, packed
	tdWasm      string               // plugins/ticketdesk, packed; "" if it failed to build
	tdBuildEr   error
)

func TestMain(m *testing.M) {
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "setup:", err)
		code = 1
	}
	if workDir != "" {
		os.RemoveAll(workDir)
	}
	os.Exit(code)
}

func setup(m *testing.M) (int, error) {
	var err error
	workDir, err = os.MkdirTemp("", "connhost-cli-test-")
	if err != nil {
		return 1, err
	}
	binary = filepath.Join(workDir, "connhost")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		return 1, fmt.Errorf("go build: %v\n%s", err, out)
	}
	echoRaw = filepath.Join(workDir, "echo.raw.wasm")
	echoWasm = filepath.Join(workDir, "echo.wasm")
	wrongRaw := filepath.Join(workDir, "wrongabi.raw.wasm")
	spinnerRaw := filepath.Join(workDir, "spinner.raw.wasm")
	spinnerWasm = filepath.Join(workDir, "spinner.wasm")
	wrongABI = filepath.Join(workDir, "wrongabi.wasm")
	for _, step := range [][]string{
		{"wat2wasm", "testdata/echo.wat", "-o", echoRaw},
		{"wat2wasm", "testdata/wrongabi.wat", "-o", wrongRaw},
		{"wat2wasm", "testdata/spinner.wat", "-o", spinnerRaw},
		{binary, "plugin", "pack", "--manifest", "testdata/spinner.manifest.json", "-o", spinnerWasm, spinnerRaw},
		{binary, "plugin", "pack", "--manifest", "testdata/echo.manifest.json", "-o", echoWasm, echoRaw},
		{binary, "plugin", "pack", "--manifest", "testdata/wrongabi.manifest.json", "-o", wrongABI, wrongRaw},
	} {
		if out, err := exec.Command(step[0], step[1:]...).CombinedOutput(); err != nil {
			return 1, fmt.Errorf("%v: %v\n%s", step, err, out)
		}
	}
	tdWasm, tdBuildEr = buildTicketDesk()
	return m.Run(), nil
}

// buildTicketDesk builds the example connector to wasm (from the shared
// plugin cache) and writes it to the scratch directory.
func buildTicketDesk() (string, error) {
	wasm, err := wasmbuild.Build(context.Background(), wasmbuild.Source{Path: "plugins/ticketdesk"})
	if err != nil {
		return "", err
	}
	out := filepath.Join(workDir, "ticketdesk.wasm")
	return out, os.WriteFile(out, wasm, 0o644)
}

type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// connhost runs the binary in a fresh directory with a clean environment
// plus env.
func connhost(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + cmd.Dir, "CONNHOST_CACHE_DIR=" + cacheDir}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running connhost %v: %v", args, err)
	}
	return result{stdout.String(), stderr.String(), code}
}

// check asserts the exit code and that stdout and stderr contain the given
// substrings.
func check(t *testing.T, r result, code int, inStdout, inStderr []string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("want exit %d, got %v", code, r)
	}
	for _, s := range inStdout {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("stdout lacks %q; %v", s, r)
		}
	}
	for _, s := range inStderr {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr lacks %q; %v", s, r)
		}
	}
}

func writeTemp(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestDispatch: help goes to stdout with exit 0, usage errors to stderr
// with exit 2 and nothing on stdout.
func TestDispatch(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		inStdout []string
		inStderr []string
	}{
		{"version", []string{"version"}, exitOK, []string{"connhost ", "ABI v1"}, nil},
		{"--help", []string{"--help"}, exitOK, []string{"Usage:", "connhost [command]", "plugin", "run", "completion"}, nil},
		{"-h", []string{"-h"}, exitOK, []string{"Usage:", "connhost [command]"}, nil},
		{"help", []string{"help"}, exitOK, []string{"Usage:", "connhost [command]"}, nil},
		{"help command", []string{"help", "run"}, exitOK, []string{"Usage:", "connhost run FILE.wasm COMMAND"}, nil},
		{"help nested command", []string{"help", "plugin", "keygen"}, exitOK, []string{"connhost plugin keygen -o PREFIX"}, nil},
		{"version help", []string{"version", "--help"}, exitOK, []string{"Usage:", "connhost version"}, nil},
		{"group help", []string{"plugin", "--help"}, exitOK, []string{"inspect", "pack"}, nil},
		{"run help", []string{"run", "--help"}, exitOK, []string{"--param", "--param-file", "--log-level", "--limits-call-timeout"}, nil},
		{"leaf -h", []string{"bundle", "install", "-h"}, exitOK, []string{"connhost bundle install FILE.chb"}, nil},
		{"version argument", []string{"version", "x"}, exitUsage, nil, []string{"no arguments", "Run 'connhost version --help'"}},
		{"no command", nil, exitUsage, nil, []string{"Usage:", "connhost [command]", "plugin", "run"}},
		{"group without command", []string{"apikey"}, exitUsage, nil, []string{"create", "want a command"}},
		{"unknown command", []string{"serv"}, exitUsage, nil, []string{`unknown command "serv" for "connhost" (did you mean serve?)`}},
		{"unknown plugin command", []string{"plugin", "instal"}, exitUsage, nil, []string{`unknown command "instal" for "connhost plugin"`}},
		{"unknown help topic", []string{"help", "frobnicate"}, exitUsage, nil, []string{`help: unknown command "frobnicate"`}},
		{"bad flag", []string{"run", "--nope"}, exitUsage, nil, []string{"unknown flag: --nope", "Run 'connhost run --help' for usage."}},
		{"bad flag value", []string{"run", "x.wasm", "c", "--limits-call-timeout", "soon"}, exitUsage, nil, []string{"invalid argument"}},
		{"missing arguments", []string{"run", "x.wasm"}, exitUsage, nil, []string{"want FILE.wasm and COMMAND"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := connhost(t, nil, tt.args...)
			check(t, r, tt.code, tt.inStdout, tt.inStderr)
			if tt.code == exitOK && r.stderr != "" {
				t.Errorf("stderr not empty: %v", r)
			}
			if tt.code == exitUsage && r.stdout != "" {
				t.Errorf("stdout not empty on a usage error: %v", r)
			}
		})
	}
}

func TestPack(t *testing.T) {
	good, err := filepath.Abs("testdata/echo.manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	unknownField := writeTemp(t, "m.json", `{"name":"x","version":"1.0.0","abi_version":1,"commands":[{"name":"c","arguments":[{"name":"a","Required":true}]}]}`)
	invalid := writeTemp(t, "m.json", `{"name":"X","version":"1","abi_version":1}`)
	keyCase := writeTemp(t, "m.json", `{"name":"x","NAME":"y","version":"1.0.0","abi_version":1}`)
	longHelp := writeTemp(t, "m.json", `{"name":"x","version":"1.0.0","abi_version":1,"params":[{"name":"url","type":"string","help":"`+
		strings.Repeat("h", abi.MaxHelpBytes+1)+`"}],"egress":["*","param:url"]}`)
	trailing := writeTemp(t, "m.json", `{"name":"x","version":"1.0.0","abi_version":1}]`)
	notWasm := writeTemp(t, "x.wasm", "not wasm")
	// A module of a few hundred bytes declaring tables of 2^27 elements (the
	// hostile-guest corpus's): pack runs the load-time gate.
	hugeTable := filepath.Join(t.TempDir(), "table_huge.wasm")
	if b, err := exec.Command("wat2wasm", "../../host/testdata/hostile/table_huge.wat", "-o", hugeTable).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm: %v\n%s", err, b)
	}
	out := filepath.Join(t.TempDir(), "out.wasm")
	tests := []struct {
		name     string
		args     []string
		code     int
		inStderr []string
	}{
		{"good", []string{"--manifest", good, "-o", out, echoRaw}, exitOK, []string{"packed echo@0.1.0"}},
		{"repack replaces the manifest", []string{"--manifest", good, "-o", out, echoWasm}, exitOK, nil},
		{"unknown field", []string{"--manifest", unknownField, "-o", out, echoRaw}, exitUsage, []string{`commands[0].arguments[0]: unknown key "Required" (keys are case-sensitive: did you mean "required"?)`}},
		{"invalid manifest", []string{"--manifest", invalid, "-o", out, echoRaw}, exitUsage, []string{`name "X"`, `version "1"`}},
		{"key case", []string{"--manifest", keyCase, "-o", out, echoRaw}, exitUsage, []string{`unknown key "NAME" (keys are case-sensitive: did you mean "name"?)`}},
		{"caps and egress", []string{"--manifest", longHelp, "-o", out, echoRaw}, exitUsage,
			[]string{fmt.Sprintf("params[0].help: %d bytes, limit %d", abi.MaxHelpBytes+1, abi.MaxHelpBytes), `egress[0] "*": a bare "*"`}},
		{"trailing data", []string{"--manifest", trailing, "-o", out, echoRaw}, exitUsage, []string{"trailing data after the JSON object"}},
		{"not wasm", []string{"--manifest", good, "-o", out, notWasm}, exitUsage, []string{"not a wasm module"}},
		{"huge table", []string{"--manifest", good, "-o", out, hugeTable}, exitIncompatible,
			[]string{"table 0 initial size: 134217728 elements, limit 100000 (limits.module.table_elements)"}},
		{"no output", []string{"--manifest", good, echoRaw}, exitUsage, []string{"-o OUT.wasm"}},
		{"missing input", []string{"--manifest", good, "-o", out, "/nonexistent.wasm"}, exitUsage, []string{"/nonexistent.wasm"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			os.Remove(out)
			r := connhost(t, nil, append([]string{"plugin", "pack"}, tt.args...)...)
			check(t, r, tt.code, nil, tt.inStderr)
			if tt.code != exitOK {
				if _, err := os.Stat(out); err == nil {
					t.Fatal("a failed pack left an output file")
				}
				return
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			m, err := abi.ReadManifest(b)
			if err != nil || m.Name != "echo" || len(m.Commands) != 3 {
				t.Fatalf("packed manifest %+v, %v", m, err)
			}
			if n := bytes.Count(b, []byte(abi.ManifestSection)); n != 1 {
				t.Fatalf("%d manifest sections, want 1", n)
			}
		})
	}
}

func TestInspect(t *testing.T) {
	packed, err := os.ReadFile(echoWasm)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(packed)

	t.Run("json", func(t *testing.T) {
		r := connhost(t, nil, "plugin", "inspect", echoWasm, "--json")
		check(t, r, exitOK, nil, nil)
		var rep inspectReport
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatalf("%v: %v", err, r)
		}
		if !rep.Compatible || rep.SHA256 != hex.EncodeToString(sum[:]) || rep.Size != len(packed) ||
			rep.Manifest == nil || rep.Manifest.Name != "echo" || rep.Manifest.Params[1].Type != abi.ParamSecret {
			t.Fatalf("report %+v", rep)
		}
	})

	tests := []struct {
		name     string
		args     []string
		code     int
		inStdout []string
		inStderr []string
	}{
		{"human", []string{echoWasm}, exitOK,
			[]string{"name:", "echo", hex.EncodeToString(sum[:]), "compatible:", "yes", "token", "secret", "echo", "msg*", "test-module"}, nil},
		{"wrong abi", []string{wrongABI}, exitIncompatible,
			[]string{"compatible:", "NO"}, []string{"incompatible", "wrongabi", "2"}},
		{"wrong abi json", []string{wrongABI, "--json"}, exitIncompatible,
			[]string{`"compatible": false`, `"problem"`}, []string{"incompatible"}},
		{"no manifest", []string{echoRaw}, exitIncompatible, nil, []string{abi.ManifestSection}},
		{"missing file", []string{"/nonexistent.wasm"}, exitUsage, nil, []string{"/nonexistent.wasm"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := connhost(t, nil, append([]string{"plugin", "inspect"}, tt.args...)...)
			check(t, r, tt.code, tt.inStdout, tt.inStderr)
		})
	}
}

func TestRun(t *testing.T) {
	const secret = "s3cr3t-t0ken-value"
	lastRun := filepath.Join(t.TempDir(), "last-run.json")
	tests := []struct {
		name     string
		env      []string
		args     []string
		code     int
		inStdout []string
		inStderr []string
	}{
		{"test-module prints ok", nil, []string{"test-module", "--param", "token=" + secret},
			exitOK, []string{"ok\n"}, []string{"params:", "token=" + secretMask, "mode=fast"}},
		{"echo with default arg", nil, []string{"echo", "--param", "token=" + secret, "--arg", "msg=hi", "--json"},
			exitOK, []string{`{"msg":"hi","tone":"calm"}`}, nil},
		{"args-json with arg override", nil, []string{"echo", "--param", "token=x", "--args-json", `{"msg":"a","tone":"loud"}`, "--arg", "msg=b"},
			exitOK, []string{`"msg": "b"`, `"tone": "loud"`}, nil},
		{"missing required param", nil, []string{"test-module"},
			exitUsage, nil, []string{`param "token": required`}},
		{"bad select param", nil, []string{"test-module", "--param", "token=x", "--param", "mode=warp"},
			exitUsage, nil, []string{`param "mode"`, "warp"}},
		{"undeclared param", nil, []string{"test-module", "--param", "token=x", "--param", "colour=red"},
			exitUsage, nil, []string{`param "colour": not declared`}},
		{"malformed param", nil, []string{"test-module", "--param", "token"},
			exitUsage, nil, []string{"NAME=VALUE"}},
		{"unknown command", nil, []string{"fetch-incidents", "--param", "token=x"},
			exitUsage, nil, []string{`does not support command "fetch-incidents"`, "echo, fail, spin"}},
		{"missing required arg", nil, []string{"echo", "--param", "token=x"},
			exitUsage, nil, []string{`argument "msg" is required`}},
		{"unknown arg", nil, []string{"echo", "--param", "token=x", "--arg", "msg=a", "--arg", "volume=11"},
			exitUsage, nil, []string{`argument "volume" is not declared`}},
		{"bad arg option", nil, []string{"echo", "--param", "token=x", "--arg", "msg=a", "--arg", "tone=shouty"},
			exitUsage, nil, []string{`argument "tone": "shouty" is not one of calm, loud`}},
		{"args-json not an object", nil, []string{"echo", "--param", "token=x", "--args-json", `[1]`},
			exitUsage, nil, []string{"--args-json: want a JSON object"}},
		{"command fails", nil, []string{"fail", "--param", "token=" + secret},
			exitFailed, nil, []string{"error: failed: boom: remote said no", "command fail"}},
		{"timeout", nil, []string{"spin", "--param", "token=x", "--limits-call-timeout", "300ms"},
			exitFailed, nil, []string{"error: timeout"}},
		{"config timeout from env", []string{"CONNHOST_LIMITS_CALL_TIMEOUT=300ms"}, []string{"spin", "--param", "token=x"},
			exitFailed, nil, []string{"error: timeout"}},
		{"bad config", []string{"CONNHOST_LOG_LEVEL=verbose"}, []string{"test-module", "--param", "token=x"},
			exitUsage, nil, []string{"log.level", "env CONNHOST_LOG_LEVEL"}},
		{"bad last-run file", nil, []string{"test-module", "--param", "token=x", "--last-run", writeTemp(t, "lr.json", "[]")},
			exitUsage, nil, []string{"--last-run", "want a JSON object"}},
		{"missing last-run file is a first run", nil, []string{"test-module", "--param", "token=x", "--last-run", lastRun},
			exitOK, []string{"ok"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"run", echoWasm}, tt.args...)
			r := connhost(t, tt.env, args...)
			check(t, r, tt.code, tt.inStdout, tt.inStderr)
			if strings.Contains(r.stdout+r.stderr, secret) {
				t.Fatalf("secret printed: %v", r)
			}
		})
	}

	t.Run("incompatible plugin", func(t *testing.T) {
		check(t, connhost(t, nil, "run", wrongABI, "test-module"), exitIncompatible, nil, []string{"incompatible"})
	})
}

// TestRunTicketDesk runs the example connector against a TicketDesk server
// on loopback, through the binary.
func TestRunTicketDesk(t *testing.T) {
	if tdBuildEr != nil {
		t.Fatal(tdBuildEr)
	}
	const key = "td-key-9f8e7d"
	srv := tdserver.New(key)
	srv.CreateTicket(tdserver.Ticket{Title: "Phishing report", Severity: 3})
	srv.CreateTicket(tdserver.Ticket{Title: "Malware alert", Severity: 4})
	ts := httptest.NewServer(srv)
	defer ts.Close()
	lastRun := filepath.Join(t.TempDir(), "last-run.json")
	params := func(key string) []string { return []string{"--param", "url=" + ts.URL, "--param", "api_key=" + key} }

	tests := []struct {
		name     string
		args     []string
		code     int
		inStdout []string
		inStderr []string
	}{
		{"test-module", append([]string{"test-module"}, params(key)...), exitOK, []string{"ok\n"}, []string{"api_key=" + secretMask}},
		{"wrong api key", append([]string{"test-module"}, params("wrong-key")...), exitFailed, nil,
			[]string{"error: failed:", "check the API key", "command test-module"}},
		{"missing api key", []string{"test-module", "--param", "url=" + ts.URL}, exitUsage, nil, []string{`param "api_key": required`}},
		{"first fetch", append([]string{"fetch-incidents", "--last-run", lastRun}, params(key)...), exitOK,
			[]string{"incidents created: 2", "Phishing report", "Malware alert", "last run"}, nil},
		{"second fetch continues from the last run", append([]string{"fetch-incidents", "--last-run", lastRun, "--json"}, params(key)...), exitOK,
			[]string{`"incidents":[]`}, nil},
		{"custom command", append([]string{"ticketdesk-get-ticket", "--arg", "id=TD-2", "--json"}, params(key)...), exitOK,
			[]string{"Malware alert"}, nil},
		{"custom command, human output", append([]string{"ticketdesk-get-ticket", "--arg", "id=TD-2"}, params(key)...), exitOK,
			[]string{"TD-2", "Malware alert", "outputs (TicketDesk.Ticket):"}, nil},
		{"custom command without its argument", append([]string{"ticketdesk-get-ticket"}, params(key)...), exitUsage,
			nil, []string{`argument "id" is required`}},
		{"egress narrowed by the operator", append([]string{"test-module", "--egress", "tickets.example.com"}, params(key)...), exitFailed,
			nil, []string{"error: failed", "denied"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := connhost(t, nil, append([]string{"run", tdWasm}, tt.args...)...)
			check(t, r, tt.code, tt.inStdout, tt.inStderr)
			if strings.Contains(r.stdout+r.stderr, key) {
				t.Fatalf("API key printed: %v", r)
			}
		})
	}
	b, err := os.ReadFile(lastRun)
	if err != nil || !json.Valid(b) {
		t.Fatalf("last run file: %q, %v", b, err)
	}
}
