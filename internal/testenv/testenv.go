// Package testenv is the shared test toolkit: plugins built once and cached
// across test binaries and runs, a shared wazero compilation cache, and an
// in-process connhost server (store, runtime, service, HTTP API) on
// loopback. Only _test.go files import it.
//
// Tests of packages that testenv itself imports (host, store, ...) and that
// live inside those packages use package wasmbuild directly, which imports
// nothing from the host.
package testenv

import (
	"context"
	"testing"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/testenv/wasmbuild"
)

// Plugin returns plugins/<name> built (Go with the SDK for wasip1, or its
// single .wat file with wat2wasm) with its manifest.json embedded. The
// module comes from the shared cache when its sources have not changed.
func Plugin(t testing.TB, name string) []byte {
	t.Helper()
	return Guest(t, wasmbuild.Source{Path: "plugins/" + name})
}

// PluginWithManifest is Plugin with the manifest adjusted by edit before it
// is embedded, e.g. another version for hot-swap tests. The module itself
// is shared with Plugin's.
func PluginWithManifest(t testing.TB, name string, edit func(*abi.Manifest)) []byte {
	t.Helper()
	return Guest(t, wasmbuild.Source{Path: "plugins/" + name, Edit: edit})
}

// Guest builds any guest, e.g. one under a package's testdata, failing the
// test when the build fails.
func Guest(t testing.TB, src wasmbuild.Source) []byte {
	t.Helper()
	wasm, err := wasmbuild.Build(context.Background(), src)
	if err != nil {
		t.Fatalf("build guest %s: %v", src.Path, err)
	}
	return wasm
}

// CacheDir returns the wazero compilation cache shared by every test
// binary, so each compiles a given guest once across runs.
func CacheDir() string { return wasmbuild.CompilationCacheDir() }
