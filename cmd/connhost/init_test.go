package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInit: `connhost init` creates a project where asked, and refuses bad
// input with exit 2 without creating anything.
func TestInit(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "existing")
	if err := os.MkdirAll(existing, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(existing, "keep"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		code    int
		out     string // in stdout, or stderr for a failure
		creates string // a file that must exist afterwards ("" for none)
		absent  string // a path that must not exist afterwards
	}{
		{"go", []string{"demo", "--dir", filepath.Join(dir, "go")}, exitOK, "created " + filepath.Join(dir, "go") + " (go,", "go/third_party/connhost/sdk-guest/go.mod", ""},
		{"wat", []string{"wdemo", "--lang", "wat", "--dir", filepath.Join(dir, "wat")}, exitOK, "(wat,", "wat/wdemo.wat", "wat/go.mod"},
		{"bad name", []string{"Demo", "--dir", filepath.Join(dir, "bad")}, exitUsage, `name "Demo"`, "", "bad"},
		{"bad language", []string{"demo", "--lang", "rust", "--dir", filepath.Join(dir, "rust")}, exitUsage, `language "rust"`, "", "rust"},
		{"not empty", []string{"demo", "--dir", existing}, exitUsage, "is not empty", "existing/keep", "existing/go.mod"},
		{"no name", nil, exitUsage, "want one NAME", "", ""},
		{"update with a name", []string{"demo", "--update-sdk", filepath.Join(dir, "go")}, exitUsage, "takes no NAME", "", ""},
		{"update a non-project", []string{"--update-sdk", existing}, exitUsage, "no go.mod", "", "existing/third_party"},
		{"update", []string{"--update-sdk", filepath.Join(dir, "go")}, exitOK, "rewrote " + filepath.Join(dir, "go", "third_party", "connhost"), "go/main.go", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := execute(context.Background(), &app{stdout: &stdout, stderr: &stderr}, append([]string{"init"}, tt.args...))
			out := stdout.String()
			if code != exitOK {
				out = stderr.String()
			}
			if code != tt.code || !strings.Contains(out, tt.out) {
				t.Fatalf("exit %d, want %d with %q\nstdout:\n%s\nstderr:\n%s", code, tt.code, tt.out, &stdout, &stderr)
			}
			if tt.creates != "" {
				if _, err := os.Stat(filepath.Join(dir, tt.creates)); err != nil {
					t.Error(err)
				}
			}
			if tt.absent != "" {
				if _, err := os.Stat(filepath.Join(dir, tt.absent)); !os.IsNotExist(err) {
					t.Errorf("%s exists: %v", tt.absent, err)
				}
			}
		})
	}
}
