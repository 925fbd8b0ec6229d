package scaffold

import (
	"bytes"
	"errors"
	"go/format"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/pluginlint"
)

// TestSDKArchiveUpToDate fails while sdk.txtar differs from the SDK modules
// in the tree, so `connhost init` never writes an SDK older than the
// binary's own.
func TestSDKArchiveUpToDate(t *testing.T) {
	fresh, err := BuildSDKArchive("../..")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh, sdkArchive) {
		t.Fatal("sdk.txtar is stale: run go generate ./internal/scaffold")
	}
	names := map[string]bool{}
	for _, f := range sdkFiles() {
		names[f.Name] = true
	}
	for _, want := range []string{"abi/go.mod", "abi/SPEC.md", "abi/manifest.go", "sdk-guest/go.mod", "sdk-guest/connector.go", "sdk-guest/sdktest/sdktest.go"} {
		if !names[want] {
			t.Errorf("archive lacks %s", want)
		}
	}
	for name := range names {
		if strings.HasSuffix(name, "_test.go") {
			t.Errorf("archive holds the test file %s", name)
		}
	}
}

// TestCreateRefuses: bad options write nothing, not even the directory.
func TestCreateRefuses(t *testing.T) {
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dir  string
		o    Options
		want string
	}{
		{"upper case", "", Options{Name: "Demo"}, `name "Demo"`},
		{"leading dash", "", Options{Name: "-demo"}, `name "-demo"`},
		{"empty", "", Options{Name: ""}, `name ""`},
		{"space", "", Options{Name: "a b"}, `name "a b"`},
		{"too long", "", Options{Name: strings.Repeat("a", 65)}, "name"},
		{"language", "", Options{Name: "demo", Lang: "rust"}, `language "rust"`},
		{"module path", "", Options{Name: "demo", Module: "a//b"}, "module path"},
		{"directory not empty", full, Options{Name: "demo"}, "is not empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.dir
			if dir == "" {
				dir = filepath.Join(t.TempDir(), "p")
			}
			_, err := Create(dir, tt.o)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want ErrInvalid naming %q", err, tt.want)
			}
			if tt.dir == "" {
				if _, err := os.Stat(dir); !os.IsNotExist(err) {
					t.Errorf("%s was created: %v", dir, err)
				}
			}
		})
	}
}

// TestCreate: each language's project has its files, a manifest the host
// accepts and the linter has nothing to say about, and gofmt'd Go.
func TestCreate(t *testing.T) {
	tests := []struct {
		o     Options
		files []string
	}{
		{Options{Name: "demo"}, []string{".gitignore", "Makefile", "README.md", "go.mod", "main.go", "main_test.go", "manifest.json",
			"third_party/connhost/README.md", "third_party/connhost/abi/go.mod", "third_party/connhost/sdk-guest/go.mod"}},
		{Options{Name: "my-tickets_2", Module: "example.com/acme/tickets"}, []string{"go.mod", "main.go"}},
		{Options{Name: "wdemo", Lang: LangWAT}, []string{".gitignore", "Makefile", "README.md", "SPEC.md", "manifest.json", "wdemo.wat"}},
		{Options{Name: strings.Repeat("w", 64), Lang: LangWAT}, []string{strings.Repeat("w", 64) + ".wat"}},
	}
	for _, tt := range tests {
		t.Run(tt.o.Name+"-"+tt.o.Lang, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "p")
			files, err := Create(dir, tt.o)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range tt.files {
				if !slices.Contains(files, f) {
					t.Errorf("no %s in %v", f, files)
				}
				if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
					t.Error(err)
				}
			}
			b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
			if err != nil {
				t.Fatal(err)
			}
			m, err := abi.DecodeManifest(b)
			if err == nil {
				err = m.Validate()
			}
			if err != nil {
				t.Fatalf("manifest: %v\n%s", err, b)
			}
			if m.Name != tt.o.Name {
				t.Errorf("manifest name %q", m.Name)
			}
			if fs := pluginlint.Lint(m); len(fs) > 0 {
				t.Errorf("lint: %v", fs)
			}
			for _, f := range files {
				if !strings.HasSuffix(f, ".go") {
					continue
				}
				src, _ := os.ReadFile(filepath.Join(dir, f))
				if out, err := format.Source(src); err != nil || !bytes.Equal(out, src) {
					t.Errorf("%s is not gofmt'd: %v", f, err)
				}
			}
			if tt.o.Module != "" {
				gomod, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
				if !strings.HasPrefix(string(gomod), "module "+tt.o.Module+"\n") {
					t.Errorf("go.mod:\n%s", gomod)
				}
			}
		})
	}
}

// TestWATLayout: the WAT skeleton's strings fit the static regions the
// module lays out, for the longest plugin name.
func TestWATLayout(t *testing.T) {
	name := strings.Repeat("x", 64)
	files, err := render(Options{Name: name, Lang: LangWAT})
	if err != nil {
		t.Fatal(err)
	}
	var wat string
	for _, f := range files {
		if f.name == name+".wat" {
			wat = string(f.data)
		}
	}
	ni := `{"error":{"kind":"not_implemented","message":"` + name + `: unknown command"}}`
	tl := `{"error":{"kind":"bad_request","message":"` + name + `: input too large"}}`
	for _, r := range []struct {
		what      string
		at, limit int
		n         int
	}{
		{"echo command", 16, 128, len(name + "-echo")},
		{"not_implemented envelope", 192, 512, len(ni)},
		{"bad_request envelope", 512, 1024, len(tl)},
	} {
		if r.at+r.n > r.limit {
			t.Errorf("%s: %d bytes at %d overrun %d", r.what, r.n, r.at, r.limit)
		}
	}
	if !strings.Contains(wat, "(i32.const "+strconv.Itoa(len(ni))+")") || !strings.Contains(wat, "(i32.const "+strconv.Itoa(len(tl))+")") {
		t.Error("the WAT does not output the envelopes' lengths")
	}
}

// TestUpdateSDK rewrites the SDK copy, dropping files that are not the
// SDK's, and leaves the author's files alone.
func TestUpdateSDK(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "p")
	if _, err := Create(dir, Options{Name: "demo"}); err != nil {
		t.Fatal(err)
	}
	sdkFile := filepath.Join(dir, SDKDir, "sdk-guest", "connector.go")
	stray := filepath.Join(dir, SDKDir, "sdk-guest", "stray.go")
	mine := filepath.Join(dir, "main.go")
	for _, f := range []string{sdkFile, stray, mine} {
		if err := os.WriteFile(f, []byte("package x\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := UpdateSDK(dir, "test"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(sdkFile); bytes.Equal(b, []byte("package x\n")) {
		t.Error("the SDK file was not rewritten")
	}
	if _, err := os.Stat(stray); !os.IsNotExist(err) {
		t.Errorf("a file not in the SDK survived: %v", err)
	}
	if b, _ := os.ReadFile(mine); !bytes.Equal(b, []byte("package x\n")) {
		t.Error("main.go was touched")
	}
	if err := UpdateSDK(t.TempDir(), "test"); !errors.Is(err, ErrInvalid) {
		t.Errorf("a directory without go.mod: %v, want ErrInvalid", err)
	}
}

// TestGoProjectOffline: a generated project's tests pass with the Go proxy
// off and an empty module cache, and its module graph is its own module
// and the SDK copy only: nothing of the server's.
func TestGoProjectOffline(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles and tests a generated project")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool")
	}
	dir := filepath.Join(t.TempDir(), "p")
	if _, err := Create(dir, Options{Name: "my-tickets_2"}); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "GOPROXY=off", "GOFLAGS=-modcacherw", "GOWORK=off", "GOTOOLCHAIN=local",
		"GOMODCACHE="+filepath.Join(t.TempDir(), "modcache"))
	run := func(args ...string) string {
		cmd := exec.Command(goTool, args...)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("test", "./...")
	got := strings.Fields(run("list", "-m", "-f", "{{.Path}}", "all"))
	want := []string{"my-tickets_2", "github.com/connhost/connhost/abi", "github.com/connhost/connhost/sdk-guest"}
	if !slices.Equal(got, want) {
		t.Errorf("go list -m all = %v, want %v", got, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.sum")); !os.IsNotExist(err) {
		t.Errorf("go.sum exists (%v): the project needed a module from outside", err)
	}
}
