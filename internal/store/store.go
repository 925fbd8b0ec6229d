// Package store is the embedded, on-disk database of the connhost server:
// incidents, war-room entries, users, plugin blobs and versions, connector
// instances with their per-instance state (integration context, cache, last
// runs, module health) and API keys. It is built on badger with synchronous
// writes, so an acknowledged write survives a crash. docs/store.md describes
// the key layout and the durability guarantees.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	badger "github.com/dgraph-io/badger/v4"
	"github.com/rs/zerolog"
)

// Sentinel errors. Every error the store returns for these conditions wraps
// one of them (test with errors.Is) and names the record kind and id.
var (
	// ErrNotFound means the record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict means a concurrent writer won: a stale version, or a
	// transaction that kept conflicting after retries.
	ErrConflict = errors.New("conflict")
	// ErrExists means a unique key (name, username, hash, ...) is taken.
	ErrExists = errors.New("already exists")
	// ErrCorrupt means stored data failed verification (hash, JSON).
	ErrCorrupt = errors.New("corrupt")
	// ErrInvalid means the caller passed a value the store cannot hold.
	ErrInvalid = errors.New("invalid")
	// ErrSchema means the directory holds a schema this binary cannot use.
	ErrSchema = errors.New("unsupported schema version")
	// ErrNoSpace means a write was refused because the store's filesystem
	// is (nearly) full; reads go on, and writes succeed again once space
	// is freed.
	ErrNoSpace = errors.New("insufficient storage")
)

// SchemaVersion is the layout version this package writes. Bump it and
// register a Migration whenever the key layout or a stored record changes
// incompatibly.
const SchemaVersion = 2

// Migration upgrades a store from schema version From to From+1. Apply runs
// before the store serves anything; it may use any number of transactions.
// The new version is recorded only after Apply returns nil, so Apply must be
// safe to run again after a crash.
type Migration struct {
	From  int
	Apply func(ctx context.Context, db *badger.DB) error
}

// migrations is the built-in registry, in order.
var migrations = []Migration{
	// 1 → 2: API keys got roles; keys made before are admin keys.
	{From: 1, Apply: migrateKeyRoles},
}

// Options tunes Open. The zero value is a sensible production setting.
type Options struct {
	// Logger receives badger's log lines (info as debug, debug as trace).
	// Nil means no logging.
	Logger *zerolog.Logger
	// GCInterval is how often the value log is garbage-collected; 0 means
	// 10 minutes, a negative value disables the collector.
	GCInterval time.Duration
	// Now is the clock used for timestamps and cache expiry; nil means
	// time.Now. Tests use it to move time without sleeping.
	Now func() time.Time
	// Migrations replaces the built-in migration registry (tests).
	Migrations []Migration
	// SchemaVersion replaces SchemaVersion as the target version (tests).
	SchemaVersion int
	// Tune, if set, adjusts badger's options before Open (cache and table
	// sizes). SyncWrites and Logger are set after it and cannot be changed.
	Tune func(badger.Options) badger.Options
	// MinFreeBytes is the free space the store leaves on its filesystem:
	// a write is refused with ErrNoSpace when less than this (plus the
	// write's size, for plugin blobs) is available. 0 means
	// (NumLevelZeroTables+2) × MemTableSize of the badger options (448 MiB
	// by default); a negative value turns the check off.
	MinFreeBytes int64

	// NoGroupCommit turns group commit off: each incident creation and
	// each AddEntries call is then its own synced transaction, as every
	// other write is. Group commit (the default) lets concurrent calls
	// share one synced commit; both acknowledge only durable writes.
	NoGroupCommit bool

	// onCommit, if set, is called after each successful synced commit with
	// the number of calls it acknowledged (tests count syncs with it).
	onCommit func(calls int)
	// noSync turns synchronous writes off; only benchmarks measuring the
	// cost of durability set it.
	noSync bool
}

// Store is an open database. Its methods are safe for concurrent use.
type Store struct {
	db      *badger.DB
	dir     string
	reserve int64 // Options.MinFreeBytes resolved
	now     func() time.Time
	log     zerolog.Logger
	ids     idGen
	stop    chan struct{}
	// groupCh feeds the group committer; nil when group commit is off.
	groupCh  chan *groupOp
	onCommit func(calls int)
	wg       sync.WaitGroup
	once     sync.Once
}

const defaultGCInterval = 10 * time.Minute

// maxRetries bounds the retries of a transaction that hits a badger
// conflict; past it the caller gets ErrConflict. It is generous because on a
// loaded machine a hot key (one incident many writers update) can lose the
// race many times in a row; the jittered wait below keeps that cheap.
const maxRetries = 64

var keySchema = []byte("meta/schema")

// Open opens or creates the store in dir, checks the schema version and
// runs pending migrations, finishes any interrupted purge, and starts the
// value-log collector.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	logger := zerolog.Nop()
	if opts.Logger != nil {
		logger = *opts.Logger
	}
	bo := badger.DefaultOptions(dir)
	if opts.Tune != nil {
		bo = opts.Tune(bo)
	}
	bo = bo.WithSyncWrites(!opts.noSync).WithLogger(badgerLogger{logger}).WithMetricsEnabled(false)
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("store %s: open: %w", dir, err)
	}
	s := &Store{db: db, dir: dir, reserve: opts.MinFreeBytes, now: opts.Now, log: logger, stop: make(chan struct{}), onCommit: opts.onCommit}
	if s.reserve == 0 {
		s.reserve = defaultReserve(bo)
	}
	if s.now == nil {
		s.now = time.Now
	}
	target, regs := SchemaVersion, migrations
	if opts.SchemaVersion != 0 {
		target = opts.SchemaVersion
	}
	if opts.Migrations != nil {
		regs = opts.Migrations
	}
	if err := s.migrate(ctx, target, regs); err != nil {
		_ = db.Close()
		return nil, err
	}
	if err := s.resumePurges(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	if !opts.NoGroupCommit {
		s.groupCh = make(chan *groupOp)
		s.wg.Add(1)
		go s.commitLoop()
	}
	interval := opts.GCInterval
	if interval == 0 {
		interval = defaultGCInterval
	}
	if interval > 0 {
		s.wg.Add(1)
		go s.gcLoop(interval)
	}
	return s, nil
}

// Close stops the collector and closes the database. Calling it twice is
// harmless.
func (s *Store) Close() error {
	var err error
	s.once.Do(func() {
		close(s.stop)
		s.wg.Wait()
		if cerr := s.db.Close(); cerr != nil {
			err = fmt.Errorf("store %s: close: %w", s.dir, cerr)
		}
	})
	return err
}

// migrate records the version in a new store, runs the registered
// migrations on an older one and refuses a newer one.
func (s *Store) migrate(ctx context.Context, target int, regs []Migration) error {
	var cur int
	err := s.db.View(func(txn *badger.Txn) error { return getJSON(txn, keySchema, &cur) })
	switch {
	case errors.Is(err, ErrNotFound):
		empty, eerr := s.isEmpty()
		if eerr != nil {
			return eerr
		}
		if !empty {
			return fmt.Errorf("store %s: data without a schema version key: %w", s.dir, ErrSchema)
		}
		return s.setSchema(target)
	case err != nil:
		return fmt.Errorf("store %s: read schema version: %w", s.dir, err)
	}
	if cur > target {
		return fmt.Errorf("store %s: schema version %d is newer than %d, the newest this connhost binary knows (upgrade connhost or restore a backup): %w",
			s.dir, cur, target, ErrSchema)
	}
	for cur < target {
		m, ok := findMigration(regs, cur)
		if !ok {
			return fmt.Errorf("store %s: no migration from schema version %d to %d: %w", s.dir, cur, cur+1, ErrSchema)
		}
		s.log.Info().Str("dir", s.dir).Int("from", cur).Int("to", cur+1).Msg("migrating store schema")
		if err := m.Apply(ctx, s.db); err != nil {
			return fmt.Errorf("store %s: migrate schema %d to %d: %w", s.dir, cur, cur+1, err)
		}
		cur++
		if err := s.setSchema(cur); err != nil {
			return err
		}
	}
	return nil
}

func findMigration(regs []Migration, from int) (Migration, bool) {
	for _, m := range regs {
		if m.From == from {
			return m, true
		}
	}
	return Migration{}, false
}

func (s *Store) setSchema(v int) error {
	if err := s.update(context.Background(), func(txn *badger.Txn) error { return setJSON(txn, keySchema, v) }); err != nil {
		return fmt.Errorf("store %s: write schema version %d: %w", s.dir, v, err)
	}
	return nil
}

func (s *Store) isEmpty() (bool, error) {
	empty := true
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		it.Rewind()
		empty = !it.Valid()
		return nil
	})
	return empty, err
}

// gcLoop runs badger's value-log GC, which badger leaves to the
// application; each pass rewrites files until one yields nothing.
func (s *Store) gcLoop(interval time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		// Collection rewrites live values before it frees a file: it
		// waits until writes are allowed again.
		if s.Writable() != nil {
			s.log.Warn().Str("dir", s.dir).Msg("value log GC skipped: the disk is nearly full")
			continue
		}
		for {
			err := s.db.RunValueLogGC(0.5)
			if err != nil {
				if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
					s.log.Warn().Err(err).Str("dir", s.dir).Msg("value log GC")
				}
				break
			}
			select {
			case <-s.stop:
				return
			default:
			}
		}
	}
}

// update runs fn in a read-write transaction, retrying when badger reports
// a conflict with a concurrent transaction. fn must not keep state across
// attempts. A write is refused with ErrNoSpace, before it starts, while
// the filesystem has less free space than the reserve.
func (s *Store) update(ctx context.Context, fn func(txn *badger.Txn) error) error {
	return s.updateSized(ctx, 0, fn)
}

// updateSized is update for a transaction known to write about n bytes
// more than a record: the free-space check counts them.
func (s *Store) updateSized(ctx context.Context, n int, fn func(txn *badger.Txn) error) error {
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.checkSpace(n); err != nil {
			return err
		}
		err := s.db.Update(fn)
		if err == nil && s.onCommit != nil {
			s.onCommit(1)
		}
		if !errors.Is(err, badger.ErrConflict) {
			return s.noSpace(err)
		}
		if attempt == maxRetries {
			return fmt.Errorf("transaction kept conflicting after %d attempts: %w", maxRetries, ErrConflict)
		}
		// Jitter keeps two retrying writers from colliding in lockstep.
		time.Sleep(time.Duration(rand.IntN(1000*min(attempt+1, 20))) * time.Microsecond)
	}
}

// view runs fn in a read-only transaction.
func (s *Store) view(ctx context.Context, fn func(txn *badger.Txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(fn)
}

// getJSON decodes the value at key into v; a missing key is ErrNotFound and
// undecodable JSON is ErrCorrupt.
func getJSON(txn *badger.Txn, key []byte, v any) error {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	return item.Value(func(b []byte) error { return decode(key, b, v) })
}

func decode(key, b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("key %q: %w: %v", key, ErrCorrupt, err)
	}
	return nil
}

func setJSON(txn *badger.Txn, key []byte, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("key %q: encode: %w", key, err)
	}
	return txn.Set(key, b)
}

// exists reports whether key is present.
func exists(txn *badger.Txn, key []byte) (bool, error) {
	_, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	return err == nil, err
}

// getString returns the value at key as a string (index keys hold ids).
func getString(txn *badger.Txn, key []byte) (string, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", err
	}
	b, err := item.ValueCopy(nil)
	return string(b), err
}

// badgerLogger routes badger's logging to zerolog one level lower than
// badger's own, because badger reports routine compaction at info level.
type badgerLogger struct{ l zerolog.Logger }

func (b badgerLogger) Errorf(f string, a ...any) {
	b.l.Error().Str("component", "badger").Msgf(trimNL(f), a...)
}

func (b badgerLogger) Warningf(f string, a ...any) {
	b.l.Warn().Str("component", "badger").Msgf(trimNL(f), a...)
}

func (b badgerLogger) Infof(f string, a ...any) {
	b.l.Debug().Str("component", "badger").Msgf(trimNL(f), a...)
}

func (b badgerLogger) Debugf(f string, a ...any) {
	b.l.Trace().Str("component", "badger").Msgf(trimNL(f), a...)
}

func trimNL(f string) string {
	for len(f) > 0 && f[len(f)-1] == '\n' {
		f = f[:len(f)-1]
	}
	return f
}
