package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Group commit. With synchronous writes every badger commit costs one sync
// of the write-ahead log, and badger syncs once per transaction even when it
// writes several concurrent transactions together. Incident creation and
// war-room entries come from many guests at once (a webhook per request),
// so the store joins their writes: a committer goroutine takes every write
// queued while the previous commit was syncing, applies them in one
// transaction and answers each caller after that transaction's synced
// commit. An acknowledged write is as durable as before; the syncs are
// shared. At low load a write finds the committer idle and commits alone at
// once: nothing waits for company.

// maxGroup bounds the writes joined in one transaction, and so the work
// replayed when one of them fails (see commitGroup) and the latency of the
// last of them.
const maxGroup = 64

// groupOp is one caller's write waiting for the committer.
type groupOp struct {
	ctx  context.Context
	size int // bytes beyond a record, for the free-space check
	fn   func(txn *badger.Txn) error
	done chan error // buffered: the committer never blocks on a caller
}

// cleanError marks an error a write function returned before it wrote
// anything to the transaction, so the transaction stays usable for the
// other writes of its group.
type cleanError struct{ error }

func (e cleanError) Unwrap() error { return e.error }

// clean marks err (if not nil) as returned before any write.
func clean(err error) error {
	if err == nil {
		return nil
	}
	return cleanError{err}
}

// unclean strips the cleanError mark, which callers never see.
func unclean(err error) error {
	var c cleanError
	if errors.As(err, &c) {
		return c.error
	}
	return err
}

// commit runs fn in a read-write transaction that is acknowledged only once
// synced, like updateSized, but joins it with concurrent writes into one
// commit when group commit is on. fn may run more than once and must not
// keep state across runs; it returns errors it meets before its first
// write wrapped by clean, so a failed call costs its group nothing.
func (s *Store) commit(ctx context.Context, size int, fn func(txn *badger.Txn) error) error {
	if s.groupCh == nil {
		return unclean(s.updateSized(ctx, size, fn))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	op := &groupOp{ctx: ctx, size: size, fn: fn, done: make(chan error, 1)}
	select {
	case s.groupCh <- op:
	case <-s.stop:
		return fmt.Errorf("store %s: %w", s.dir, badger.ErrDBClosed)
	}
	return <-op.done
}

// commitLoop is the committer: it takes one write, then every write
// already waiting (up to maxGroup), and commits them together. The channel
// is unbuffered, so a write is either taken here and answered, or its
// caller sees the store closing.
func (s *Store) commitLoop() {
	defer s.wg.Done()
	batch := make([]*groupOp, 0, maxGroup)
	for {
		select {
		case op := <-s.groupCh:
			batch = append(batch, op)
		case <-s.stop:
			return
		}
	more:
		for len(batch) < maxGroup {
			select {
			case op := <-s.groupCh:
				batch = append(batch, op)
			default:
				break more
			}
		}
		live := batch[:0]
		for _, op := range batch {
			if err := op.ctx.Err(); err != nil {
				op.done <- err
				continue
			}
			live = append(live, op)
		}
		s.commitGroup(live)
		clear(batch)
		batch = batch[:0]
	}
}

// commitGroup applies ops in one transaction with one synced commit and
// answers each. A write that fails alone gets its own error and is left
// out; if it had written before failing, the transaction is discarded and
// the others run again in a new one, because badger cannot take back part
// of a transaction. A group too big for one transaction is split. A failed
// commit fails every write of the group; a conflict with a writer outside
// the group retries the group, as update does.
func (s *Store) commitGroup(ops []*groupOp) {
	attempt := 0
	for len(ops) > 0 {
		size := 0
		for _, op := range ops {
			size += op.size
		}
		if err := s.checkSpace(size); err != nil {
			answer(ops, err)
			return
		}
		var (
			n   int
			err error
		)
		ops, n, err = s.tryGroup(ops)
		switch {
		case n < len(ops) && errors.Is(err, badger.ErrTxnTooBig) && n > 0:
			// ops[n] did not fit with those before it: commit them, then
			// go on from ops[n].
			s.commitGroup(ops[:n])
			ops, attempt = ops[n:], 0
		case n < len(ops):
			ops[n].done <- s.noSpace(unclean(err))
			ops = append(ops[:n:n], ops[n+1:]...)
		case errors.Is(err, badger.ErrConflict) && attempt < maxRetries:
			attempt++
			time.Sleep(time.Duration(rand.IntN(1000*min(attempt, 20))) * time.Microsecond)
		case errors.Is(err, badger.ErrConflict):
			answer(ops, fmt.Errorf("transaction kept conflicting after %d attempts: %w", maxRetries, ErrConflict))
			return
		default:
			answer(ops, s.noSpace(err))
			return
		}
	}
}

// tryGroup runs ops in one transaction. An op that fails before writing
// is answered with its error and dropped: the ops returned are the others.
// If the op at index n of them fails after writing, tryGroup returns n and
// that error with nothing committed. Otherwise it commits and returns
// len(ops) and the commit's error.
func (s *Store) tryGroup(ops []*groupOp) ([]*groupOp, int, error) {
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	kept := make([]*groupOp, 0, len(ops))
	for i, op := range ops {
		err := op.run(txn)
		if err == nil {
			kept = append(kept, op)
			continue
		}
		if c := (cleanError{}); errors.As(err, &c) && !errors.Is(err, badger.ErrTxnTooBig) {
			op.done <- s.noSpace(c.error)
			continue
		}
		n := len(kept)
		return append(kept, ops[i:]...), n, err
	}
	err := txn.Commit()
	if err == nil && s.onCommit != nil && len(kept) > 0 {
		s.onCommit(len(kept))
	}
	return kept, len(kept), err
}

// run calls the op's function, turning a panic into an error so that one
// bad write does not take the committer down.
func (op *groupOp) run(txn *badger.Txn) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("write panicked: %v", r)
		}
	}()
	return op.fn(txn)
}

func answer(ops []*groupOp, err error) {
	for _, op := range ops {
		op.done <- err
	}
}
