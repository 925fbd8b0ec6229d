package e2e

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAuthoringGuide runs the shell blocks of docs/authoring.md, in order,
// in one bash, in a directory outside the checkout: connhost init, the
// project's own Makefile (test, pack, validate, run, keygen, sign), the
// local runner, a server that trusts the key, install, a command, a hot
// swap to 0.2.0, and a bundle. The generated project builds with
// GOPROXY=off and an empty module cache, so it can use nothing of the
// checkout but the SDK copy that connhost init wrote. It fails when the
// guide and the tools drift apart.
func TestAuthoringGuide(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a generated project end to end")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	guide, err := os.ReadFile(filepath.Join(root, "docs", "authoring.md"))
	if err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	for _, blk := range shellBlocks(string(guide)) {
		script.WriteString(blk)
	}
	// The guide's port, replaced by a free one.
	addr := freeAddr(t)
	src := strings.ReplaceAll(script.String(), "127.0.0.1:8080", addr)
	if src == script.String() {
		t.Fatal("the guide starts no server on 127.0.0.1:8080: the test would check nothing")
	}

	work := t.TempDir()
	if rel, err := filepath.Rel(root, work); err == nil && !strings.HasPrefix(rel, "..") {
		t.Fatalf("work dir %s is inside the checkout %s", work, root)
	}
	env := authorEnv(t, work)
	out := runScript(t, work, env, src)

	for _, want := range []string{
		"created demo (go,",
		"ok  \tdemo\t",                          // go test in the project
		".: 0 errors, 0 warnings",               // make test: connhost plugin validate .
		"build/demo.wasm: 0 errors, 0 warnings", // make validate
		`"Greeting":"Hello, you!"`,              // connhost run --json
		`"PluginVersion":"0.1.0"`,               // execute through the server
		`"PluginVersion":"0.2.0"`,               // after the hot swap
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output has no %q", want)
		}
	}
	if i, j := strings.Index(out, `"PluginVersion":"0.1.0"`), strings.LastIndex(out, `"PluginVersion":"0.2.0"`); i < 0 || j < i {
		t.Errorf("version 0.2.0 did not answer after 0.1.0")
	}
	for _, f := range []string{"demo/build/demo.wasm.minisig", "demo/keys/demo.pub", "demo/demo.chb"} {
		if _, err := os.Stat(filepath.Join(work, f)); err != nil {
			t.Errorf("the guide did not make %s: %v", f, err)
		}
	}

	// The project's module graph is its own module and the SDK copy, and
	// every package it builds comes from inside the project or the
	// standard library.
	project := filepath.Join(work, "demo")
	mods := strings.Fields(goOut(t, project, env, "list", "-m", "-f", "{{.Path}} {{with .Replace}}{{.Path}}{{end}}", "all"))
	wantMods := []string{"demo", "github.com/connhost/connhost/abi", "./third_party/connhost/abi",
		"github.com/connhost/connhost/sdk-guest", "./third_party/connhost/sdk-guest"}
	if !slices.Equal(mods, wantMods) {
		t.Errorf("go list -m all = %q, want %q", mods, wantMods)
	}
	for _, line := range strings.Split(goOut(t, project, append(env, "GOOS=wasip1", "GOARCH=wasm"),
		"list", "-deps", "-test", "-f", "{{.Standard}} {{.Dir}}", "./..."), "\n") {
		std, dir, _ := strings.Cut(line, " ")
		if std == "false" && !strings.HasPrefix(dir, project+string(filepath.Separator)) && dir != project {
			t.Errorf("package in %s, outside the project", dir)
		}
	}
}

// TestAuthoringWAT: `connhost init --lang wat` makes a project whose own
// `make test` packs, validates and runs it; it needs wat2wasm.
func TestAuthoringWAT(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs a generated project end to end")
	}
	if _, err := exec.LookPath("wat2wasm"); err != nil {
		t.Skip("no wat2wasm on PATH")
	}
	work := t.TempDir()
	out := runScript(t, work, authorEnv(t, work), "set -euo pipefail\nconnhost init wdemo --lang wat\ncd wdemo\nmake test\nmake run COMMAND=wdemo-echo RUN_FLAGS='--arg text=hi --json'\n")
	for _, want := range []string{"created wdemo (wat,", "build/wdemo.wasm: 0 errors, 0 warnings", `{"text":"hi"}`} {
		if !strings.Contains(out, want) {
			t.Errorf("output has no %q", want)
		}
	}
}

// shellBlocks returns the ```sh blocks of a markdown document.
func shellBlocks(md string) []string {
	var out []string
	var cur *strings.Builder
	for _, line := range strings.Split(md, "\n") {
		switch {
		case cur == nil && line == "```sh":
			cur = &strings.Builder{}
		case cur != nil && line == "```":
			out = append(out, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
	}
	return out
}

// authorEnv is a connector author's environment: connhost (this test
// run's binary) on PATH, a home of its own, no CONNHOST_ variables but the
// compilation cache, and Go offline with an empty module cache.
func authorEnv(t *testing.T, work string) []string {
	t.Helper()
	bin := filepath.Join(work, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(binary, filepath.Join(bin, "connhost")); err != nil {
		t.Fatal(err)
	}
	gocache := strings.TrimSpace(goOut(t, work, os.Environ(), "env", "GOCACHE"))
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "CONNHOST_"), strings.HasPrefix(k, "GO"), k == "PATH", k == "HOME", k == "CGO_ENABLED":
		default:
			env = append(env, kv)
		}
	}
	return append(env,
		"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"HOME="+filepath.Join(work, "home"),
		"GOCACHE="+gocache, // the shared build cache, so the SDK compiles once
		"GOMODCACHE="+filepath.Join(work, "gomodcache"),
		"GOPROXY=off", "GOWORK=off", "GOTOOLCHAIN=local", "GOFLAGS=-modcacherw",
		"CONNHOST_CACHE_DIR="+filepath.Join(work, "wazero-cache"),
	)
}

// runScript runs src with bash in dir and returns its output; the whole
// process group is killed when the test ends.
func runScript(t *testing.T, dir string, env []string, src string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", src)
	cmd.Dir, cmd.Env = dir, env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // a server left behind
	}
	if err != nil {
		t.Fatalf("script failed: %v\n--- script:\n%s\n--- output:\n%s", err, src, &out)
	}
	return out.String()
}

func goOut(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
