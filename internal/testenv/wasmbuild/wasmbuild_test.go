package wasmbuild

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connhost/connhost/abi"
)

// writeGuest writes a WAT guest whose memory has pages pages, and its
// manifest, into a new directory.
func writeGuest(t *testing.T, pages string, manifest string) string {
	t.Helper()
	dir := t.TempDir()
	wat := `(module (memory (export "memory") ` + pages + `))`
	if err := os.WriteFile(filepath.Join(dir, "g.wat"), []byte(wat), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// cacheFiles lists the modules in the cache.
func cacheFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(Root(), "plugins", "*.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

const manifest = `{"name":"g","version":"1.0.0","abi_version":1}`

// TestCacheKeyedBySources: a module is built once, read back from the
// cache file afterwards, and rebuilt when its source changes.
func TestCacheKeyedBySources(t *testing.T) {
	t.Setenv(EnvCacheDir, t.TempDir())
	ctx := context.Background()
	dir := writeGuest(t, "1", manifest)
	first, err := Raw(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	files := cacheFiles(t)
	if len(files) != 1 || !strings.HasPrefix(filepath.Base(files[0]), filepath.Base(dir)+"-") {
		t.Fatalf("cache holds %v, want one module named after %s", files, dir)
	}
	// Mark the cached module: a cache hit returns the file's bytes as is.
	marked := append(bytes.Clone(first), 0)
	if err := os.WriteFile(files[0], marked, 0o644); err != nil {
		t.Fatal(err)
	}
	memo.Clear() // as a new test binary would start
	t.Cleanup(memo.Clear)
	if again, err := Raw(ctx, dir); err != nil || !bytes.Equal(again, marked) {
		t.Fatalf("second build = %d bytes, %v; want the cached file", len(again), err)
	}
	if err := os.WriteFile(filepath.Join(dir, "g.wat"), []byte(`(module (memory (export "memory") 2))`), 0o644); err != nil {
		t.Fatal(err)
	}
	changed, err := Raw(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(changed, first) || len(cacheFiles(t)) != 2 {
		t.Errorf("after a source change: same module %v, cache %v", bytes.Equal(changed, first), cacheFiles(t))
	}
}

// TestBuildManifest: the manifest embedded is manifest.json, an explicit
// one, or either edited; an unknown key in manifest.json fails the build.
func TestBuildManifest(t *testing.T) {
	t.Setenv(EnvCacheDir, t.TempDir())
	dir := writeGuest(t, "4", manifest)
	bad := writeGuest(t, "4", `{"name":"g","version":"1.0.0","abi_version":1,"bogus":1}`)
	tests := []struct {
		name        string
		src         Source
		wantName    string
		wantVersion string
		wantErr     string
	}{
		{"manifest.json", Source{Path: dir}, "g", "1.0.0", ""},
		{"edited", Source{Path: dir, Edit: func(m *abi.Manifest) { m.Version = "1.1.0" }}, "g", "1.1.0", ""},
		{"explicit", Source{Path: filepath.Join(dir, "g.wat"), Manifest: &abi.Manifest{Name: "h", Version: "2.0.0", ABIVersion: abi.Version}}, "h", "2.0.0", ""},
		{"unknown key", Source{Path: bad}, "", "", `unknown key "bogus"`},
		{"no such guest", Source{Path: filepath.Join(dir, "nope")}, "", "", "manifest.json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wasm, err := Build(context.Background(), tc.src)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			m, err := abi.ReadManifest(wasm)
			if err != nil || m.Name != tc.wantName || m.Version != tc.wantVersion {
				t.Fatalf("manifest %+v, %v; want %s@%s", m, err, tc.wantName, tc.wantVersion)
			}
		})
	}
}

// TestConcurrentBuilds: a build waits for a lock held elsewhere rather
// than racing it, and goroutines asking for one module at once all get the
// same module, cached once.
func TestConcurrentBuilds(t *testing.T) {
	t.Setenv(EnvCacheDir, t.TempDir())
	dir := writeGuest(t, "3", manifest)
	wat := filepath.Join(dir, "g.wat")
	key, err := hashWAT(wat)
	if err != nil {
		t.Fatal(err)
	}
	lockFile := filepath.Join(Root(), "plugins", filepath.Base(dir)+"-"+key+".wasm.lock")
	if err := os.MkdirAll(filepath.Dir(lockFile), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(lockFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// While another process holds the lock, a build can only end by its
	// context: a build that ignored the lock would succeed instead. (cached,
	// not Raw, so the error is not memoised for the builds below.)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := cached(ctx, dir, wat, key); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("build under a held lock: %v, want it to wait until its deadline", err)
	}
	if files := cacheFiles(t); len(files) != 0 {
		t.Fatalf("built while the lock was held: %v", files)
	}

	os.Remove(lockFile)
	var wg sync.WaitGroup
	results := make([][]byte, 4)
	for i := range results {
		wg.Go(func() {
			b, err := Raw(context.Background(), dir)
			if err != nil {
				t.Error(err)
			}
			results[i] = b
		})
	}
	wg.Wait()
	for _, r := range results[1:] {
		if len(r) == 0 || !bytes.Equal(r, results[0]) {
			t.Fatal("builders got different modules")
		}
	}
	if files := cacheFiles(t); len(files) != 1 {
		t.Errorf("cache holds %v, want one module", files)
	}
	if _, err := os.Stat(lockFile); !os.IsNotExist(err) {
		t.Errorf("lock file left behind: %v", err)
	}
}

// TestPackageDirs: a Go guest's key covers the packages of this module it
// imports, transitively, and no others.
func TestPackageDirs(t *testing.T) {
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		guest string
		want  []string
	}{
		{"plugins/goecho", []string{"abi", "plugins/goecho", "sdk-guest"}},
		{"plugins/faulty/panic", []string{"abi", "plugins/faulty/panic", "plugins/faulty/rawabi"}},
	}
	for _, tc := range tests {
		t.Run(tc.guest, func(t *testing.T) {
			dirs, err := packageDirs(root, filepath.Join(root, tc.guest))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, d := range dirs {
				rel, _ := filepath.Rel(root, d)
				got = append(got, filepath.ToSlash(rel))
			}
			for _, w := range tc.want {
				if !slices.Contains(got, w) {
					t.Errorf("dirs %v lack %s", got, w)
				}
			}
			for _, g := range got {
				if strings.HasPrefix(g, "host") || strings.HasPrefix(g, "store") {
					t.Errorf("dirs %v include the host package %s", got, g)
				}
			}
		})
	}
}
