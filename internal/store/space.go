package store

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	badger "github.com/dgraph-io/badger/v4"
)

// Badger writes its memtable log and its tables through memory-mapped files
// that it sizes with ftruncate, which allocates nothing: when the
// filesystem fills up, the first store into an unallocated page raises
// SIGBUS, which kills the process (reproduced on a tmpfs: TestDiskFillsUp
// with the check off). An ENOSPC error
// from badger is therefore the rare case; the store has to stop writing
// while there is still room for what badger may write on its own. So every
// write transaction first checks the free space of the store's filesystem
// and is refused with ErrNoSpace below a reserve.

// defaultReserve is the free space kept by default: room for the memtable
// log being filled and the next one, plus a level-0 compaction, which
// rewrites up to NumLevelZeroTables tables of about a memtable each before
// it deletes them.
func defaultReserve(bo badger.Options) int64 {
	return int64(bo.NumLevelZeroTables+2) * bo.MemTableSize
}

// checkSpace refuses a write of about n bytes when the filesystem would be
// left with less than the reserve. A filesystem whose free space cannot be
// read (or a reserve below zero) is not checked.
func (s *Store) checkSpace(n int) error {
	if s.reserve < 0 {
		return nil
	}
	free, ok := freeBytes(s.dir)
	if !ok || free >= uint64(s.reserve)+uint64(n) {
		return nil
	}
	need := mib(uint64(s.reserve)) + " (the store's reserve)"
	if n > 0 {
		need += " plus the write's " + mib(uint64(n))
	}
	return fmt.Errorf("store %s: %w: %s free on its filesystem, and writes stop below %s; free disk space, writes resume at once",
		s.dir, ErrNoSpace, mib(free), need)
}

// Writable returns the ErrNoSpace error a write would meet now, or nil.
// Background loops check it before calling a plugin whose results they
// could not store, and pause (without calling anyone) until it is nil.
func (s *Store) Writable() error { return s.checkSpace(0) }

// noSpace gives an error from badger that says the disk or the quota is
// full the ErrNoSpace sentinel, so it reaches clients as such.
func (s *Store) noSpace(err error) error {
	if err == nil || errors.Is(err, ErrNoSpace) {
		return err
	}
	// Badger wraps some errors by message only, so the text is checked too.
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) ||
		strings.Contains(err.Error(), syscall.ENOSPC.Error()) || strings.Contains(err.Error(), syscall.EDQUOT.Error()) {
		return fmt.Errorf("store %s: %w: %w", s.dir, ErrNoSpace, err)
	}
	return err
}

func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
