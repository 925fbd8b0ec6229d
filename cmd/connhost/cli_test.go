package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/plugins/ticketdesk/tdserver"
)

// run executes args in-process, as main does, with environ.
func run(t *testing.T, environ []string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := execute(context.Background(), &app{stdout: &stdout, stderr: &stderr, environ: environ}, args)
	return result{stdout.String(), stderr.String(), code}
}

// flagRe finds the flag names of a help text.
var flagRe = regexp.MustCompile(`(?m)^\s+(?:-\w, )?--([a-z0-9-]+)`)

// TestCommandFlags: each command's help lists its own flags and the
// configuration options it uses, and no other; a flag not listed is
// refused.
func TestCommandFlags(t *testing.T) {
	tests := []struct {
		cmd     []string
		present []string
		absent  []string
	}{
		{[]string{"serve"}, []string{"listen", "data-dir", "server-shutdown-timeout", "metrics-auth", "mirror-job-delay", "signing-trusted-keys", "plugins-watch-dir", "limits-memory-mib", "config"},
			[]string{"param", "json"}},
		{[]string{"run"}, []string{"param", "param-file", "arg", "args-json", "json", "egress", "last-run", "cache-dir", "log-level", "limits-call-timeout", "limits-module-bytes", "config"},
			[]string{"data-dir", "listen", "server-max-body-bytes", "secrets-key-file", "signing-trusted-keys", "mirror-concurrency", "metrics-auth", "timeout"}},
		{[]string{"plugin", "inspect"}, []string{"json", "cache-dir", "limits-module-bytes"},
			[]string{"data-dir", "listen", "secrets-key-file", "param"}},
		{[]string{"plugin", "pack"}, []string{"manifest", "output"},
			[]string{"config", "log-level", "data-dir", "cache-dir", "limits-memory-mib"}},
		{[]string{"plugin", "install"}, []string{"force", "verify-instances", "data-dir", "cache-dir", "secrets-key-file", "signing-trusted-keys", "signing-require-signed", "limits-compile-timeout"},
			[]string{"listen", "server-max-body-bytes", "mirror-job-enable", "metrics-auth", "plugins-watch-dir"}},
		{[]string{"plugin", "rollback"}, []string{"force", "data-dir", "secrets-key-file"},
			[]string{"listen", "signing-trusted-keys", "manifest"}},
		{[]string{"plugin", "keygen"}, []string{"output", "no-password", "force", "password-file", "kdf-cost"},
			[]string{"out", "data-dir", "config", "log-level"}},
		{[]string{"plugin", "sign"}, []string{"key", "password-file"}, []string{"data-dir", "config"}},
		{[]string{"plugin", "verify"}, []string{"pub", "sig"}, []string{"data-dir", "config"}},
		{[]string{"bundle", "create"}, []string{"output", "key", "password-file"}, []string{"data-dir", "config"}},
		{[]string{"bundle", "install"}, []string{"data-dir", "signing-trusted-keys", "signing-require-signed"},
			[]string{"trusted-key", "require-signed", "listen", "metrics-auth"}},
		{[]string{"apikey", "create"}, []string{"name", "data-dir", "secrets-key-file", "log-level"},
			[]string{"listen", "limits-memory-mib", "signing-trusted-keys", "cache-dir"}},
		{[]string{"apikey", "list"}, []string{"json", "data-dir"}, []string{"listen", "name"}},
		{[]string{"apikey", "revoke"}, []string{"data-dir"}, []string{"listen", "json"}},
		{[]string{"version"}, []string{"json"}, []string{"config", "data-dir"}},
		{[]string{"completion"}, []string{"no-descriptions"}, []string{"config"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.cmd, " "), func(t *testing.T) {
			r := run(t, nil, append(slices.Clone(tt.cmd), "--help")...)
			check(t, r, exitOK, []string{"Usage:\n  connhost " + strings.Join(tt.cmd, " ")}, nil)
			var listed []string
			for _, m := range flagRe.FindAllStringSubmatch(r.stdout, -1) {
				listed = append(listed, m[1])
			}
			for _, f := range tt.present {
				if !slices.Contains(listed, f) {
					t.Errorf("--%s not listed; help:\n%s", f, r.stdout)
				}
			}
			for _, f := range tt.absent {
				if slices.Contains(listed, f) {
					t.Errorf("--%s listed; help:\n%s", f, r.stdout)
				}
			}
			// A flag of another command is refused, not ignored.
			for _, f := range tt.absent {
				if f == "timeout" || f == "out" || f == "trusted-key" || f == "require-signed" {
					continue // deprecated aliases: hidden, still accepted
				}
				r := run(t, nil, append(slices.Clone(tt.cmd), "--"+f, "x")...)
				check(t, r, exitUsage, nil, []string{"unknown flag: --" + f})
			}
		})
	}
}

// TestDeprecatedAliases: the old spelling of a renamed flag still works,
// is hidden and warns.
func TestDeprecatedAliases(t *testing.T) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "k")
	r := connhost(t, nil, "plugin", "keygen", "--no-password", "--out", prefix)
	check(t, r, exitOK, []string{"key ID "}, []string{"warning: --out is deprecated", "use --output"})
	for _, p := range []string{prefix, prefix + ".pub"} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("keygen --out: %v", err)
		}
	}
	r = connhost(t, nil, "run", echoWasm, "spin", "--param", "token=x", "--timeout", "300ms")
	check(t, r, exitFailed, nil, []string{"warning: --timeout is deprecated", "use --limits-call-timeout", "error: timeout"})
	// bundle install --trusted-key and --require-signed: TestBundleInstallRefuses.
}

// TestVersion: --version and `version` print one line naming the version,
// commit, ABI and Go versions; --json the same as an object.
func TestVersion(t *testing.T) {
	line := regexp.MustCompile(`^connhost \S+ \(commit \S+, ABI v1, ` + regexp.QuoteMeta(runtime.Version()) + ` \S+/\S+\)\n$`)
	for _, args := range [][]string{{"--version"}, {"version"}, {"-v"}} {
		r := connhost(t, nil, args...)
		check(t, r, exitOK, nil, nil)
		if !line.MatchString(r.stdout) {
			t.Errorf("%v: %q does not match %s", args, r.stdout, line)
		}
	}
	r := connhost(t, nil, "version", "--json")
	check(t, r, exitOK, nil, nil)
	var b buildInfo
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		t.Fatalf("%v: %v", err, r)
	}
	if b.Version == "" || b.Commit == "" || b.GoVersion != runtime.Version() || b.ABIVersion != abi.Version ||
		b.Platform != runtime.GOOS+"/"+runtime.GOARCH {
		t.Fatalf("version --json: %+v", b)
	}
	short := connhost(t, nil, "--version").stdout
	if c, _, _ := strings.Cut(b.Commit, "-"); !strings.Contains(short, c[:min(12, len(c))]) {
		t.Errorf("--version %q and version --json commit %q differ", short, b.Commit)
	}

	// What -ldflags "-X main.version=... -X main.commit=..." set.
	t.Run("ldflags", func(t *testing.T) {
		defer func(v, c string) { version, commit = v, c }(version, commit)
		version, commit = "v1.4.2", "0123456789abcdef0123456789abcdef01234567-dirty"
		r := run(t, nil, "--version")
		check(t, r, exitOK, []string{"connhost v1.4.2 (commit 0123456789ab-dirty, ABI v1, "}, nil)
		r = run(t, nil, "version", "--json")
		check(t, r, exitOK, []string{`"version": "v1.4.2"`, `"commit": "0123456789abcdef0123456789abcdef01234567-dirty"`}, nil)
	})
}

// TestCompletion: scripts for bash, zsh and fish, syntax-checked by the
// shell when it is installed, and the dynamic completions they call.
func TestCompletion(t *testing.T) {
	tests := []struct {
		shell  string
		marker string
		check  []string // syntax check command, script path appended
	}{
		{"bash", "__start_connhost", []string{"bash", "-n"}},
		{"zsh", "#compdef connhost", []string{"zsh", "-n"}},
		{"fish", "complete -c connhost", []string{"fish", "--no-execute"}},
	}
	for _, tt := range tests {
		t.Run(tt.shell, func(t *testing.T) {
			for _, args := range [][]string{{"completion", tt.shell}, {"completion", tt.shell, "--no-descriptions"}} {
				r := run(t, nil, args...)
				check(t, r, exitOK, []string{tt.marker, "__complete"}, nil)
				if _, err := exec.LookPath(tt.check[0]); err != nil {
					t.Logf("%s not installed: syntax not checked", tt.check[0])
					continue
				}
				script := writeTemp(t, "connhost."+tt.shell, r.stdout)
				if out, err := exec.Command(tt.check[0], append(tt.check[1:], script)...).CombinedOutput(); err != nil {
					t.Fatalf("%s: %v\n%s", strings.Join(tt.check, " "), err, out)
				}
			}
		})
	}
	t.Run("unknown shell", func(t *testing.T) {
		check(t, run(t, nil, "completion", "tcsh"), exitUsage, nil, []string{`unknown shell "tcsh"`})
	})

	dynamic := []struct {
		name string
		args []string
		want []string
	}{
		{"commands", []string{"plugin", "in"}, []string{"inspect\t", "install\t"}},
		{"flags", []string{"plugin", "keygen", "--k"}, []string{"--kdf-cost"}},
		{"flag values", []string{"plugin", "keygen", "--kdf-cost", ""}, []string{"sensitive", "interactive"}},
		{"run: plugin commands", []string{"run", echoWasm, ""}, []string{"test-module\t", "echo\treturn the arguments", "spin\t"}},
		{"run: params", []string{"run", echoWasm, "echo", "--param", ""}, []string{"url=", "token=", "mode="}},
		{"run: arguments", []string{"run", echoWasm, "echo", "--arg", ""}, []string{"msg=", "tone="}},
		{"help topics", []string{"help", "bun"}, []string{"bundle"}},
	}
	for _, tt := range dynamic {
		t.Run(tt.name, func(t *testing.T) {
			check(t, run(t, nil, append([]string{"__complete"}, tt.args...)...), exitOK, tt.want, nil)
		})
	}
}

// files lists the paths under dir, relative to it.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// connhostIn runs the binary in dir with HOME=dir and no cache setting, so
// that anything a command creates lands under dir.
func connhostIn(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running connhost %v: %v", args, err)
	}
	return result{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()}
}

// TestRefusedCommandsCreateNothing: a command refused for its flags,
// configuration or input leaves its working directory (which is also HOME,
// so the user cache directory) as it was: no data dir, secret.key, store
// or compilation cache. (A plugin found incompatible only once compiled,
// by its connhost_abi_version export, leaves its compilation cached.)
func TestRefusedCommandsCreateNothing(t *testing.T) {
	keyDir := t.TempDir()
	key := keygen(t, keyDir, "author")
	notWasm := writeTemp(t, "x.wasm", "not wasm")
	badKey := "CONNHOST_SECRET_KEY=xyz"
	tests := []struct {
		name     string
		env      []string
		args     []string
		before   []string // files made first, relative to the directory
		code     int
		inStderr string
	}{
		{"apikey create: bad name", nil, []string{"apikey", "create", "--name", "a b"}, nil, exitUsage, `key name "a b"`},
		{"apikey create: bad secret key", []string{badKey}, []string{"apikey", "create", "--name", "ci"}, nil, exitUsage, "CONNHOST_SECRET_KEY"},
		{"apikey create: bad config", []string{"CONNHOST_LOG_LEVEL=loud"}, []string{"apikey", "create", "--name", "ci"}, nil, exitUsage, "log.level"},
		{"apikey list: no store", nil, []string{"apikey", "list"}, nil, exitUsage, "holds no store"},
		{"apikey revoke: no store", nil, []string{"apikey", "revoke", "k1"}, nil, exitUsage, "holds no store"},
		{"plugin rollback: no store", nil, []string{"plugin", "rollback", "echo"}, nil, exitUsage, "holds no store"},
		{"plugin install: missing file", nil, []string{"plugin", "install", "/nonexistent.wasm"}, nil, exitUsage, "/nonexistent.wasm"},
		{"plugin install: not wasm", nil, []string{"plugin", "install", notWasm}, nil, exitIncompatible, "x.wasm"},
		{"plugin install: no manifest", nil, []string{"plugin", "install", echoWasm, echoRaw}, nil, exitIncompatible, abi.ManifestSection},
		{"plugin install: bad trusted key", nil, []string{"plugin", "install", echoWasm, "--signing-trusted-keys", "nope"}, nil, exitUsage, "signing.trusted_keys"},
		{"plugin install: bad secret key", []string{badKey}, []string{"plugin", "install", echoWasm}, nil, exitUsage, "CONNHOST_SECRET_KEY"},
		{"bundle install: bad trusted key", nil, []string{"bundle", "install", notWasm, "--signing-trusted-keys", "nope"}, nil, exitUsage, "signing.trusted_keys"},
		{"bundle install: not a bundle", nil, []string{"bundle", "install", notWasm}, nil, exitFailed, "bundle install"},
		{"serve: bad trusted key", nil, []string{"serve", "--signing-trusted-keys", "nope"}, nil, exitUsage, "signing.trusted_keys"},
		{"serve: bad secret key", []string{badKey}, []string{"serve"}, nil, exitUsage, "CONNHOST_SECRET_KEY"},
		{"serve: bad listen", nil, []string{"serve", "--listen", "nowhere"}, nil, exitUsage, "listen"},
		{"run: missing param", nil, []string{"run", echoWasm, "test-module"}, nil, exitUsage, `param "token": required`},
		{"run: unknown command", nil, []string{"run", echoWasm, "nosuch", "--param", "token=x"}, nil, exitUsage, `does not support command "nosuch"`},
		{"run: bad argument", nil, []string{"run", echoWasm, "echo", "--param", "token=x"}, nil, exitUsage, `argument "msg" is required`},
		{"run: no manifest", nil, []string{"run", echoRaw, "test-module"}, nil, exitIncompatible, abi.ManifestSection},
		{"run: unknown param variable", []string{"CONNHOST_PARAM_COLOUR=red"}, []string{"run", echoWasm, "test-module", "--param", "token=x"}, nil, exitUsage, "CONNHOST_PARAM_COLOUR"},
		{"plugin inspect: missing file", nil, []string{"plugin", "inspect", "/nonexistent.wasm"}, nil, exitUsage, "/nonexistent.wasm"},
		{"plugin keygen: public key exists", nil, []string{"plugin", "keygen", "--no-password", "-o", "k"}, []string{"k.pub"}, exitUsage, "k.pub exists"},
		{"plugin sign: one file missing", nil, []string{"plugin", "sign", "--key", key, "a.wasm", "/nonexistent.wasm"}, []string{"a.wasm"}, exitUsage, "/nonexistent.wasm"},
		{"plugin sign: one file not a plugin", nil, []string{"plugin", "sign", "--key", key, "a.wasm", notWasm}, []string{"a.wasm"}, exitIncompatible, "x.wasm"},
	}
	wasm, err := os.ReadFile(echoWasm)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tt.before {
				if err := os.WriteFile(filepath.Join(dir, f), wasm, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			r := connhostIn(t, dir, tt.env, tt.args...)
			check(t, r, tt.code, nil, []string{tt.inStderr})
			if got := files(t, dir); !slices.Equal(got, tt.before) {
				t.Fatalf("the refused command left %q (had %q); %v", got, tt.before, r)
			}
		})
	}
}

// TestRunCacheDir: `connhost run` and `plugin inspect` cache compilations
// in the user cache directory, or --cache-dir, never under the working
// directory.
func TestRunCacheDir(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the user cache directory is $XDG_CACHE_HOME or $HOME/.cache on Linux only")
	}
	tests := []struct {
		name  string
		env   func(home, other string) []string
		args  func(other string) []string
		cache func(home, other string) string // "" for an error
	}{
		{"XDG_CACHE_HOME", func(_, other string) []string { return []string{"XDG_CACHE_HOME=" + other} }, nil,
			func(_, other string) string { return filepath.Join(other, "connhost") }},
		{"HOME", func(string, string) []string { return nil }, nil,
			func(home, _ string) string { return filepath.Join(home, ".cache", "connhost") }},
		{"--cache-dir", func(string, string) []string { return nil }, func(other string) []string { return []string{"--cache-dir", other} },
			func(_, other string) string { return other }},
		{"CONNHOST_CACHE_DIR", func(_, other string) []string { return []string{"CONNHOST_CACHE_DIR=" + other} }, nil,
			func(_, other string) string { return other }},
	}
	for _, tt := range tests {
		for _, cmd := range [][]string{{"run", echoWasm, "test-module", "--param", "token=x"}, {"plugin", "inspect", echoWasm}} {
			t.Run(tt.name+"/"+cmd[0], func(t *testing.T) {
				home, other := t.TempDir(), t.TempDir()
				args := slices.Clone(cmd)
				if tt.args != nil {
					args = append(args, tt.args(other)...)
				}
				check(t, connhostIn(t, home, tt.env(home, other), args...), exitOK, nil, nil)
				cache := tt.cache(home, other)
				if len(files(t, cache)) == 0 {
					t.Fatalf("nothing cached in %s", cache)
				}
				if _, err := os.Stat(filepath.Join(home, "data")); err == nil {
					t.Fatal("a data directory was created in the working directory")
				}
			})
		}
	}
	t.Run("no user cache directory", func(t *testing.T) {
		dir := t.TempDir()
		cmd := exec.Command(binary, "run", echoWasm, "test-module", "--param", "token=x")
		cmd.Dir, cmd.Env = dir, []string{"PATH=" + os.Getenv("PATH")}
		out, err := cmd.CombinedOutput()
		if cmd.ProcessState.ExitCode() != exitUsage || !strings.Contains(string(out), "set --cache-dir") {
			t.Fatalf("want exit 2 asking for --cache-dir, got %v:\n%s", err, out)
		}
		if got := files(t, dir); len(got) != 0 {
			t.Fatalf("left %q", got)
		}
	})
}

// TestRunParamSources: params reach the plugin from --param-file and
// CONNHOST_PARAM_ variables, which keep secrets out of the command line,
// with --param over the environment over the file.
func TestRunParamSources(t *testing.T) {
	if tdBuildEr != nil {
		t.Fatal(tdBuildEr)
	}
	const key = "td-secret-5c4b3a"
	srv := tdserver.New(key)
	// While the plugin calls TicketDesk, the runner's process is alive:
	// the handler reads its command line as ps would (/proc on Linux).
	var pid atomic.Int64
	var seen atomic.Value // string: the last command line read
	ts := newHTTPServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid.Load())); err == nil {
			seen.Store(string(b))
		}
		srv.ServeHTTP(w, r)
	}))
	paramFile := func(apiKey string) string {
		b, _ := json.Marshal(map[string]any{"url": ts, "api_key": apiKey})
		return writeTemp(t, "params.json", string(b))
	}
	tests := []struct {
		name     string
		env      []string
		args     []string
		code     int
		inStderr []string
	}{
		{"file", nil, []string{"--param-file", paramFile(key)}, exitOK, nil},
		{"environment", []string{"CONNHOST_PARAM_API_KEY=" + key, "CONNHOST_PARAM_URL=" + ts}, nil, exitOK, nil},
		{"environment over file", []string{"CONNHOST_PARAM_API_KEY=" + key}, []string{"--param-file", paramFile("wrong")}, exitOK, nil},
		{"--param over environment", []string{"CONNHOST_PARAM_API_KEY=wrong"}, []string{"--param-file", paramFile("wrong"), "--param", "api_key=" + key}, exitOK, nil},
		{"file over nothing: wrong key reaches the plugin", nil, []string{"--param-file", paramFile("wrong")}, exitFailed, []string{"check the API key"}},
		{"unknown variable", []string{"CONNHOST_PARAM_API_KEY=" + key, "CONNHOST_PARAM_APIKEY=x"}, []string{"--param-file", paramFile(key)},
			exitUsage, []string{"CONNHOST_PARAM_APIKEY: no such param of plugin ticketdesk", "CONNHOST_PARAM_API_KEY"}},
		{"file not an object", nil, []string{"--param-file", writeTemp(t, "p.json", `["x"]`)}, exitUsage, []string{"--param-file", "want a JSON object"}},
		{"file with trailing data", nil, []string{"--param-file", writeTemp(t, "p.json", `{"url":"x"} {}`)}, exitUsage, []string{"data after the JSON object"}},
		{"file missing", nil, []string{"--param-file", "/nonexistent.json"}, exitUsage, []string{"/nonexistent.json"}},
		{"file with a wrong type", nil, []string{"--param-file", writeTemp(t, "p.json", `{"url":"x","api_key":7}`)}, exitUsage, []string{`param "api_key": want a string`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"run", tdWasm, "test-module"}, tt.args...)
			cmd := exec.Command(binary, args...)
			cmd.Dir = t.TempDir()
			cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + cmd.Dir, "CONNHOST_CACHE_DIR=" + cacheDir}, tt.env...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			seen.Store("")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			pid.Store(int64(cmd.Process.Pid))
			_ = cmd.Wait()
			r := result{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()}
			check(t, r, tt.code, nil, tt.inStderr)
			if tt.code == exitOK && !strings.Contains(r.stdout, "ok") {
				t.Fatalf("test-module did not pass: %v", r)
			}
			cmdline := seen.Load().(string)
			if tt.name == "--param over environment" {
				// The one case that puts the secret in argv: the check sees it.
				if runtime.GOOS == "linux" && !strings.Contains(cmdline, key) {
					t.Fatalf("the command line read while the plugin ran lacks the --param secret: %q", cmdline)
				}
				return
			}
			if slices.ContainsFunc(cmd.Args, func(a string) bool { return strings.Contains(a, key) }) {
				t.Fatalf("the secret is on the command line: %q", cmd.Args)
			}
			if runtime.GOOS == "linux" && tt.code != exitUsage && !strings.Contains(cmdline, "test-module") {
				t.Fatalf("the process's command line was not read while the plugin ran: %q", cmdline)
			}
			if strings.Contains(cmdline, key) {
				t.Fatalf("ps shows the secret: %q", cmdline)
			}
			if strings.Contains(r.stdout+r.stderr, key) {
				t.Fatalf("the secret was printed: %v", r)
			}
		})
	}
}

// newHTTPServer serves h on loopback for the test and returns its URL.
func newHTTPServer(t *testing.T, h http.Handler) string {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts.URL
}

// TestEnvParams: how CONNHOST_PARAM_ variables map to a plugin's params.
func TestEnvParams(t *testing.T) {
	m := &abi.Manifest{Name: "p", Params: []abi.Param{{Name: "url"}, {Name: "api_key"}, {Name: "apiKey"}, {Name: "apikey"}, {Name: "x.y-z"}}}
	tests := []struct {
		name    string
		environ []string
		want    map[string]string
		wantErr string
	}{
		{"upper-cased name", []string{"CONNHOST_PARAM_URL=u"}, map[string]string{"url": "u"}, ""},
		{"other characters as _", []string{"CONNHOST_PARAM_API_KEY=k", "CONNHOST_PARAM_X_Y_Z=1"}, map[string]string{"api_key": "k", "x.y-z": "1"}, ""},
		{"value with =", []string{"CONNHOST_PARAM_URL=http://h/?a=b"}, map[string]string{"url": "http://h/?a=b"}, ""},
		{"other variables ignored", []string{"CONNHOST_LOG_LEVEL=debug", "PARAM_URL=x", "HOME=/h"}, map[string]string{}, ""},
		{"unknown", []string{"CONNHOST_PARAM_TOKEN=t", "CONNHOST_PARAM_URL=u"}, nil, "CONNHOST_PARAM_TOKEN: no such param of plugin p (it takes CONNHOST_PARAM_APIKEY, CONNHOST_PARAM_API_KEY, CONNHOST_PARAM_URL, CONNHOST_PARAM_X_Y_Z)"},
		{"not upper-cased", []string{"CONNHOST_PARAM_url=u"}, nil, "CONNHOST_PARAM_url: no such param"},
		{"ambiguous", []string{"CONNHOST_PARAM_APIKEY=k"}, nil, "CONNHOST_PARAM_APIKEY is ambiguous: params apiKey and apikey"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := envParams(m, tt.environ)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || !maps.Equal(got, tt.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}
