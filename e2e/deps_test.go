package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCIDeps: .ci/deps names exactly the Debian packages of the missing
// tools (CONNHOST_DEPS=print), installs nothing when all are there, fails
// naming them with CONNHOST_DEPS=off, and the Makefile targets that need a
// tool beyond Go and make call it, so `make run` and `make test` work on a
// machine with only Go and make.
func TestCIDeps(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	have := t.TempDir() // fake tools, found by command -v
	for _, tool := range []string{"wat2wasm", "gcc"} {
		if err := os.WriteFile(filepath.Join(have, tool), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, path, mode string
		args             []string
		code             int
		out              string
	}{
		{"all missing", "/nonexistent", "print", nil, 0, "apt-get install -y -q --no-install-recommends make wabt minisign git gcc\n"},
		{"one missing", "/nonexistent", "print", []string{"wat2wasm"}, 0, "apt-get install -y -q --no-install-recommends wabt\n"},
		{"present", have, "print", []string{"wat2wasm", "gcc"}, 0, ""},
		{"present, some missing", have, "print", []string{"wat2wasm", "minisign"}, 0, "apt-get install -y -q --no-install-recommends minisign\n"},
		{"off", "/nonexistent", "off", []string{"wat2wasm"}, 1, ".ci/deps: missing Debian packages: wabt"},
		{"unknown tool", have, "print", []string{"frob"}, 2, ".ci/deps: unknown tool frob"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bash, append([]string{".ci/deps"}, tt.args...)...)
			cmd.Dir = ".."
			cmd.Env = []string{"PATH=" + tt.path, "CONNHOST_DEPS=" + tt.mode}
			out, err := cmd.CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tt.code || !strings.HasPrefix(string(out), tt.out) || (tt.out == "" && len(out) > 0) {
				t.Errorf("exit %d, output %q; want exit %d, output starting %q", code, out, tt.code, tt.out)
			}
		})
	}

	// The targets that need the tools check for them first.
	out, err := exec.Command("make", "-C", "..", "-n", "plugins", "test-race").CombinedOutput()
	if err != nil {
		t.Fatalf("make -n: %v\n%s", err, out)
	}
	for _, want := range []string{".ci/deps wat2wasm", ".ci/deps gcc"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("make -n plugins test-race does not run %s:\n%s", want, out)
		}
	}
}
