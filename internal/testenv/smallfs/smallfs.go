// Package smallfs gives tests a small filesystem to fill: a size-limited
// tmpfs, and a filler file that leaves a chosen amount free. It imports
// nothing from connhost, so tests of any package (store, mirror) use it.
package smallfs

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	badger "github.com/dgraph-io/badger/v4"
	"golang.org/x/sys/unix"
)

// Mount mounts a tmpfs of size bytes on a fresh temporary directory and
// returns the directory; it is unmounted when the test ends (after the
// cleanups registered later, such as closing a store in it). Mounting needs
// root (CAP_SYS_ADMIN): without it the test is skipped with the reason, so
// a run as an ordinary user says what it did not cover.
func Mount(t testing.TB, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skipf("needs root to mount a size-limited tmpfs (running as uid %d); the disk-full behaviour is not tested", os.Geteuid())
	}
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+strconv.FormatInt(size, 10), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("cannot mount a tmpfs on %s (%v: %s); the disk-full behaviour is not tested", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// Free returns the space available on dir's filesystem.
func Free(t testing.TB, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// Fill writes a file into dir that leaves about leave bytes free on its
// filesystem, and returns a func that removes it again.
func Fill(t testing.TB, dir string, leave int64) (release func()) {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for n := Free(t, dir) - leave; n > 0; n -= int64(len(chunk)) {
		if _, err := f.Write(chunk[:min(n, int64(len(chunk)))]); err != nil {
			f.Close()
			t.Fatalf("filling %s: %v", dir, err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
}

// TinyTables shrinks badger's tables for stores on a small filesystem: the store's free-space reserve, (NumLevelZeroTables+2) ×
// MemTableSize, is 8 MiB with them.
func TinyTables(bo badger.Options) badger.Options {
	return bo.WithMemTableSize(2 << 20).WithBlockCacheSize(1 << 20).WithValueLogFileSize(16 << 20).WithBaseTableSize(1 << 20).WithValueThreshold(256 << 10).
		WithNumCompactors(2).WithNumMemtables(2).WithNumLevelZeroTables(2).WithNumLevelZeroTablesStall(4)
}
