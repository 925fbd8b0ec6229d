// Package wasmbuild builds test guests (a Go main package for wasip1, or a
// WAT file) and caches the raw modules across test binaries and runs, so
// that `go test ./...` builds each guest once rather than once per package
// and per run. It imports nothing from the host, so that the host's own
// in-package tests can use it; package testenv builds on it.
//
// The cache lives under $CONNHOST_TEST_CACHE, else
// os.UserCacheDir()/connhost-test. A module is keyed by a hash of every
// input of its build: the guest's files, the non-test files of each
// package of this module it imports (transitively: the SDK, abi, ...),
// go.mod, go.sum and the Go version. Entries are written to a temporary
// file and renamed into place, and builds of one key are serialised by a
// lock file, so parallel test binaries neither clash nor duplicate work.
package wasmbuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/connhost/connhost/abi"
)

// EnvCacheDir names the environment variable that overrides the cache root.
const EnvCacheDir = "CONNHOST_TEST_CACHE"

// modulePath is this module's import path, to tell its packages apart from
// dependencies (which go.sum already pins).
const modulePath = "github.com/connhost/connhost"

// Lock files older than this are taken to be left by a killed build.
const staleLock = 5 * time.Minute

// Root returns the cache root: $CONNHOST_TEST_CACHE, else
// os.UserCacheDir()/connhost-test, else a directory under os.TempDir().
func Root() string {
	if d := os.Getenv(EnvCacheDir); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "connhost-test")
	}
	return filepath.Join(os.TempDir(), "connhost-test")
}

// CompilationCacheDir returns the wazero compilation cache shared by every
// test binary (wazero writes its entries atomically and keys them by its
// own version, so sharing is safe).
func CompilationCacheDir() string { return filepath.Join(Root(), "wazero") }

// ModuleRoot returns the directory holding this module's go.mod, found by
// walking up from the working directory (a test runs in its package's
// directory).
func ModuleRoot() (string, error) {
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			rootErr = err
			return
		}
		for {
			b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
			if err == nil && bytes.Contains(b, []byte("module "+modulePath+"\n")) {
				root = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				rootErr = fmt.Errorf("no go.mod of %s above the working directory", modulePath)
				return
			}
			dir = parent
		}
	})
	return root, rootErr
}

var (
	rootOnce sync.Once
	root     string
	rootErr  error
)

// Source is a guest to build.
type Source struct {
	// Path is a Go main package directory, a directory holding exactly one
	// .wat file, or a .wat file. A relative path is relative to the module
	// root.
	Path string
	// Manifest, if set, is embedded instead of Path's manifest.json.
	Manifest *abi.Manifest
	// Edit, if set, adjusts a copy of the manifest before it is embedded
	// (e.g. another version, for hot-swap tests).
	Edit func(*abi.Manifest)
}

// Build returns the guest's module with its manifest embedded, building it
// only when the cache has no module for its current sources.
func Build(ctx context.Context, src Source) ([]byte, error) {
	path, err := abs(src.Path)
	if err != nil {
		return nil, err
	}
	var m abi.Manifest
	if src.Manifest != nil {
		m = *src.Manifest
	} else if m, err = readManifest(path); err != nil {
		return nil, err
	}
	if src.Edit != nil {
		src.Edit(&m)
	}
	raw, err := Raw(ctx, path)
	if err != nil {
		return nil, err
	}
	out, err := abi.EmbedManifest(raw, &m)
	if err != nil {
		return nil, fmt.Errorf("embed manifest of %s: %w", src.Path, err)
	}
	return out, nil
}

// Raw returns the guest's module as built, without a manifest. path is as
// Source.Path.
func Raw(ctx context.Context, path string) ([]byte, error) {
	path, err := abs(path)
	if err != nil {
		return nil, err
	}
	wat, err := watFile(path)
	if err != nil {
		return nil, err
	}
	var key string
	if wat != "" {
		key, err = hashWAT(wat)
	} else {
		key, err = hashGo(path)
	}
	if err != nil {
		return nil, fmt.Errorf("hash sources of %s: %w", path, err)
	}
	// One build per key in this process; other processes wait on the lock.
	e, _ := memo.LoadOrStore(key, &entry{})
	en := e.(*entry)
	en.once.Do(func() { en.wasm, en.err = cached(ctx, path, wat, key) })
	return bytes.Clone(en.wasm), en.err // callers may modify their copy
}

// entry is one key's module, built or read once per process.
type entry struct {
	once sync.Once
	wasm []byte
	err  error
}

var memo sync.Map // key → *entry

func abs(path string) (string, error) {
	if filepath.IsAbs(path) {
		return path, nil
	}
	r, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(r, path), nil
}

// watFile returns the WAT file path stands for, or "" for a Go package.
func watFile(path string) (string, error) {
	if strings.HasSuffix(path, ".wat") {
		return path, nil
	}
	wats, err := filepath.Glob(filepath.Join(path, "*.wat"))
	if err != nil {
		return "", err
	}
	switch len(wats) {
	case 0:
		return "", nil
	case 1:
		return wats[0], nil
	}
	return "", fmt.Errorf("%s: %d .wat files, want at most one", path, len(wats))
}

// readManifest reads dir/manifest.json strictly, as `connhost plugin pack`
// does, so that a typo in a fixture fails the test.
func readManifest(path string) (abi.Manifest, error) {
	if strings.HasSuffix(path, ".wat") {
		path = filepath.Dir(path)
	}
	name := filepath.Join(path, "manifest.json")
	b, err := os.ReadFile(name)
	if err != nil {
		return abi.Manifest{}, err
	}
	m, err := abi.DecodeManifest(b)
	if err != nil {
		return abi.Manifest{}, fmt.Errorf("manifest %s: %w", name, err)
	}
	return *m, nil
}

// cached returns the module for key from the cache, building it under the
// key's lock when it is missing.
func cached(ctx context.Context, path, wat, key string) ([]byte, error) {
	dir := filepath.Join(Root(), "plugins")
	file := filepath.Join(dir, strings.TrimSuffix(filepath.Base(path), ".wat")+"-"+key+".wasm")
	if b, err := os.ReadFile(file); err == nil {
		return b, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	unlock, err := lock(ctx, file+".lock")
	if err != nil {
		return nil, err
	}
	defer unlock()
	// Another process may have built it while this one waited.
	if b, err := os.ReadFile(file); err == nil {
		return b, nil
	}
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "guest.wasm")
	var cmd *exec.Cmd
	if wat != "" {
		cmd = exec.CommandContext(ctx, "wat2wasm", wat, "-o", out)
	} else {
		cmd = exec.CommandContext(ctx, "go", "build", "-buildmode=c-shared", "-o", out, ".")
		cmd.Dir = path
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build %s: %w\n%s", path, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	if err := os.Rename(out, file); err != nil {
		return nil, err
	}
	return b, nil
}

// lock creates name exclusively, waiting while another process holds it,
// and returns the function that releases it. A lock left by a killed
// process is taken over once it is stale.
func lock(ctx context.Context, name string) (func(), error) {
	for {
		f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err == nil {
			f.Close()
			return func() { os.Remove(name) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		if fi, err := os.Stat(name); err == nil && time.Since(fi.ModTime()) > staleLock {
			os.Remove(name)
			continue
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func hashWAT(wat string) (string, error) {
	h := sha256.New()
	h.Write([]byte("wat\x00"))
	if err := hashFile(h, wat); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:24], nil
}

// hashGo hashes every input of a Go guest's build: the Go version, GOFLAGS,
// go.mod and go.sum, and the files of the guest's package and of each
// package of this module it imports.
func hashGo(dir string) (string, error) {
	r, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "go\x00%s\x00%s\x00", runtime.Version(), os.Getenv("GOFLAGS"))
	for _, f := range []string{"go.mod", "go.sum"} {
		if err := hashFile(h, filepath.Join(r, f)); err != nil {
			return "", err
		}
	}
	dirs, err := packageDirs(r, dir)
	if err != nil {
		return "", err
	}
	for _, d := range dirs {
		rel, _ := filepath.Rel(r, d)
		fmt.Fprintf(h, "pkg\x00%s\x00", filepath.ToSlash(rel))
		entries, err := os.ReadDir(d)
		if err != nil {
			return "", err
		}
		for _, e := range entries {
			if !e.Type().IsRegular() || strings.HasSuffix(e.Name(), "_test.go") {
				continue
			}
			fmt.Fprintf(h, "file\x00%s\x00", e.Name())
			if err := hashFile(h, filepath.Join(d, e.Name())); err != nil {
				return "", err
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:24], nil
}

// packageDirs returns dir and the directories of the packages of this
// module that it imports, transitively, sorted. Build constraints are
// ignored: hashing a file that the wasip1 build leaves out only costs a
// rebuild.
func packageDirs(root, dir string) ([]string, error) {
	seen := map[string]bool{}
	queue := []string{dir}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		if seen[d] {
			continue
		}
		seen[d] = true
		files, err := filepath.Glob(filepath.Join(d, "*.go"))
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
			if err != nil {
				return nil, err
			}
			for _, imp := range af.Imports {
				p, err := strconv.Unquote(imp.Path.Value)
				if err != nil {
					return nil, err
				}
				if rest, ok := strings.CutPrefix(p, modulePath+"/"); ok {
					queue = append(queue, filepath.Join(root, filepath.FromSlash(rest)))
				}
			}
		}
	}
	dirs := make([]string, 0, len(seen))
	for d := range seen {
		dirs = append(dirs, d)
	}
	slices.Sort(dirs)
	return dirs, nil
}

func hashFile(h io.Writer, name string) error {
	b, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	fmt.Fprintf(h, "%d\x00", len(b))
	_, err = h.Write(b)
	return err
}
