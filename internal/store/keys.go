package store

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Key prefixes, one per record kind and index; docs/store.md has the full
// layout. Variable parts that sit in the middle of a key are followed by
// sep and may not contain it.
const (
	pInc          = "inc/"
	pIdxIncMir    = "idx/inc/mirror/"
	pIdxIncSrc    = "idx/inc/source/"
	pIdxIncStat   = "idx/inc/status/"
	pIdxIncMod    = "idx/inc/modified/"
	pIdxIncOutbox = "idx/inc/outbox/"
	pEnt          = "ent/"
	pIdxEntExt    = "idx/ent/ext/"
	pUsr          = "usr/"
	pIdxUsrName   = "idx/usr/name/"
	pIdxUsrMail   = "idx/usr/email/"
	pBlob         = "blob/"
	pPV           = "pv/"
	pIdxPVBlob    = "idx/pv/blob/"
	pIns          = "ins/"
	pIdxInsName   = "idx/ins/name/"
	pCtx          = "ctx/"
	pCache        = "cache/"
	pLastRun      = "lastrun/"
	pMirrorRun    = "mirrorrun/"
	pHealth       = "health/"
	pKey          = "apikey/"
	pIdxKeyHash   = "idx/apikey/hash/"
	pPurge        = "purge/"
	pChat         = "chat/"
	pCur          = "cur/"
)

// sep ends a variable key part that is followed by more key.
const sep = "\x00"

func key(parts ...string) []byte { return []byte(strings.Join(parts, "")) }

// checkPart refuses a key part containing the separator, which would make
// two different tuples share a key.
func checkPart(kind, field, v string) error {
	if strings.Contains(v, sep) {
		return fmt.Errorf("%s: %s contains a NUL byte: %w", kind, field, ErrInvalid)
	}
	return nil
}

// idGen makes 16-byte ids, hex-encoded to 32 characters: 8 bytes of Unix
// nanoseconds, forced to grow strictly within a process, then 8 random
// bytes so that ids from two processes never collide. Ids sort by creation
// time, which is the order of entries and of unfiltered incident listings.
type idGen struct {
	mu   sync.Mutex
	last int64
}

func (g *idGen) next(now time.Time) string {
	g.mu.Lock()
	t := now.UnixNano()
	if t <= g.last {
		t = g.last + 1
	}
	g.last = t
	g.mu.Unlock()
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t))
	_, _ = rand.Read(b[8:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// idPrefixAt returns the id prefix of the first id made at or after t, for
// seeking by time.
func idPrefixAt(t time.Time) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(max(t.UnixNano(), 0)))
	return hex.EncodeToString(b[:])
}

// timeKey encodes t as 16 hex digits of Unix nanoseconds so that keys sort
// by time; times before 1970 sort first.
func timeKey(t time.Time) string { return idPrefixAt(t) }

// purgeBatch is how many keys one purge transaction deletes, far below
// badger's transaction limits.
const purgeBatch = 1000

// purgeRecord lists key prefixes to delete in the background of a delete:
// the records under them (entries of an incident, cache of an instance) can
// be too many for one transaction. The record is written in the same
// transaction that deletes the parent, so a crash midway is finished on the
// next Open.
type purgeRecord struct {
	Prefixes []string `json:"prefixes"`
}

// schedulePurge records prefixes to purge under name, in txn.
func schedulePurge(txn *badger.Txn, name string, prefixes ...string) error {
	return setJSON(txn, key(pPurge, name), purgeRecord{Prefixes: prefixes})
}

// runPurge deletes everything under the prefixes of purge record name in
// batches, then the record.
func (s *Store) runPurge(ctx context.Context, name string) error {
	var rec purgeRecord
	if err := s.view(ctx, func(txn *badger.Txn) error { return getJSON(txn, key(pPurge, name), &rec) }); err != nil {
		return fmt.Errorf("purge %s: %w", name, err)
	}
	for _, p := range rec.Prefixes {
		if err := s.deletePrefix(ctx, []byte(p)); err != nil {
			return fmt.Errorf("purge %s: prefix %q: %w", name, p, err)
		}
	}
	return s.update(ctx, func(txn *badger.Txn) error { return txn.Delete(key(pPurge, name)) })
}

// deletePrefix deletes every key under prefix, purgeBatch keys per
// transaction, without holding them all in memory.
func (s *Store) deletePrefix(ctx context.Context, prefix []byte) error {
	for {
		n := 0
		err := s.update(ctx, func(txn *badger.Txn) error {
			n = 0
			var keys [][]byte
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
			for it.Rewind(); it.Valid() && len(keys) < purgeBatch; it.Next() {
				keys = append(keys, it.Item().KeyCopy(nil))
			}
			it.Close()
			for _, k := range keys {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
			n = len(keys)
			return nil
		})
		if err != nil {
			return err
		}
		if n < purgeBatch {
			return nil
		}
	}
}

// resumePurges finishes purges a crash interrupted.
func (s *Store) resumePurges(ctx context.Context) error {
	var names []string
	err := s.view(ctx, func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pPurge)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			names = append(names, strings.TrimPrefix(string(it.Item().Key()), pPurge))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store %s: list purges: %w", s.dir, err)
	}
	for _, n := range names {
		if err := s.runPurge(ctx, n); err != nil {
			return fmt.Errorf("store %s: %w", s.dir, err)
		}
	}
	return nil
}
