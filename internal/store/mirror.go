package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/connhost/connhost/abi"
)

// MirrorOut is an incident's outgoing-mirroring state. An incident with
// something to send sits in the outbox index (written in the same
// transaction as the change that caused it), so pending updates survive a
// crash, coalesce per incident, and are delivered in order per incident.
type MirrorOut struct {
	// Pending is set when an entry that did not come from the mirror was
	// added; the entries after EntryCursor are then due.
	Pending bool `json:"pending,omitempty"`
	// EntryCursor is the id of the last entry considered by a successful
	// push.
	EntryCursor string `json:"entryCursor,omitempty"`
	// Attempts counts failed deliveries since the last success.
	Attempts    int       `json:"attempts,omitempty"`
	NextAttempt time.Time `json:"nextAttempt,omitzero"`
	LastError   string    `json:"lastError,omitempty"`
	LastPush    time.Time `json:"lastPush,omitzero"`
}

// mirrorsOut reports whether local changes of the incident are sent out.
func (inc *Incident) mirrorsOut() bool {
	return inc.DbotMirrorID != "" && (inc.DbotMirrorDirection == abi.MirrorOut || inc.DbotMirrorDirection == abi.MirrorBoth)
}

// OutboxPending reports whether the incident has an outgoing update due.
func (inc *Incident) OutboxPending() bool {
	if !inc.mirrorsOut() {
		return false
	}
	return len(inc.DbotCurrentDirtyFields) > 0 || (inc.MirrorOut != nil && inc.MirrorOut.Pending)
}

// Outbox returns up to limit incidents with an outgoing update due at now,
// oldest first by id.
func (s *Store) Outbox(ctx context.Context, now time.Time, limit int) ([]Incident, error) {
	var out []Incident
	err := s.view(ctx, func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pIdxIncOutbox)})
		defer it.Close()
		for it.Rewind(); it.Valid() && len(out) < limit; it.Next() {
			id := strings.TrimPrefix(string(it.Item().Key()), pIdxIncOutbox)
			var inc Incident
			if err := getJSON(txn, incKey(id), &inc); err != nil {
				return fmt.Errorf("outbox incident %s: %w", id, err)
			}
			if inc.MirrorOut != nil && inc.MirrorOut.NextAttempt.After(now) {
				continue
			}
			out = append(out, inc)
		}
		return nil
	})
	return out, err
}

// OutboxLen counts the incidents with an outgoing update pending.
func (s *Store) OutboxLen(ctx context.Context) (int, error) {
	n := 0
	err := s.view(ctx, func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(pIdxIncOutbox)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	return n, err
}

// MirroredIncidents calls fn for every incident mirrored by instance (by
// name), in remote-id order, without loading them all at once. fn returning
// an error stops the walk with that error.
func (s *Store) MirroredIncidents(ctx context.Context, instance string, fn func(Incident) error) error {
	prefix := []byte(pIdxIncMir + instance + sep)
	var after []byte
	for {
		var batch []Incident
		err := s.view(ctx, func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
			defer it.Close()
			it.Rewind()
			if after != nil {
				it.Seek(after)
				if it.Valid() && string(it.Item().Key()) == string(after) {
					it.Next()
				}
			}
			for ; it.Valid() && len(batch) < maxPageSize; it.Next() {
				after = it.Item().KeyCopy(nil)
				id, err := it.Item().ValueCopy(nil)
				if err != nil {
					return err
				}
				var inc Incident
				if err := getJSON(txn, incKey(string(id)), &inc); err != nil {
					return fmt.Errorf("mirrored incident %s: %w", id, err)
				}
				batch = append(batch, inc)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, inc := range batch {
			if err := fn(inc); err != nil {
				return err
			}
		}
		if len(batch) < maxPageSize {
			return nil
		}
	}
}

// sameBesidesSync reports whether a and b differ at most in mirroring
// bookkeeping, which does not count as a modification: a sync that brought
// nothing new must not make the incident look changed.
func sameBesidesSync(a, b *Incident) bool {
	x, y := *a, *b
	x.DbotMirrorLastSync, y.DbotMirrorLastSync = time.Time{}, time.Time{}
	x.Version, y.Version = 0, 0
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return string(ja) == string(jb)
}

// UpdateIncidents applies fn to each incident of ids in one transaction, as
// UpdateIncident does for one: a batch costs one durable write. A missing
// incident fails the whole batch. Modified moves only when more than the
// mirroring bookkeeping changed.
func (s *Store) UpdateIncidents(ctx context.Context, ids []string, fn func(*Incident) error) error {
	err := s.update(ctx, func(txn *badger.Txn) error {
		now := s.now().UTC()
		for _, id := range ids {
			err := rewriteIncident(txn, id, now, func(inc *Incident) (bool, error) {
				if err := fn(inc); err != nil {
					return false, fmt.Errorf("incident %s: %w", id, err)
				}
				return false, nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("update incidents: %w", err)
	}
	return nil
}

// rewriteIncident reads incident id in txn, lets change modify it and
// writes it back as the next version. Modified moves when change says the
// incident was touched or more than the mirroring bookkeeping changed.
// change's errors are returned as they are.
func rewriteIncident(txn *badger.Txn, id string, now time.Time, change func(*Incident) (touched bool, err error)) error {
	var old, inc Incident
	if err := getJSON(txn, incKey(id), &old); err != nil {
		return fmt.Errorf("incident %s: %w", id, err)
	}
	_ = getJSON(txn, incKey(id), &inc)
	touched, err := change(&inc)
	if err != nil {
		return err
	}
	inc.ID, inc.Created, inc.Version = old.ID, old.Created, old.Version+1
	if touched || !sameBesidesSync(&old, &inc) {
		inc.Modified = now
	}
	inc.normalize()
	if err := inc.validate(); err != nil {
		return err
	}
	return writeIncident(txn, &old, &inc)
}

// ApplyMirrorUpdates applies incoming mirror updates to the incidents of
// ids in one transaction, so an update is stored whole or not at all: fn
// changes each incident as read in the transaction and returns the entries
// to add to it, which are stored idempotently by ExternalID as AddEntries
// does. fn is called again on fresh data when a concurrent write conflicts.
// It returns the entries per incident id as stored, New false for those
// already there. Modified moves only when an entry was added or more than
// the mirroring bookkeeping changed.
func (s *Store) ApplyMirrorUpdates(ctx context.Context, ids []string, fn func(*Incident) ([]Entry, error)) (map[string][]Entry, error) {
	var out map[string][]Entry
	err := s.update(ctx, func(txn *badger.Txn) error {
		out = make(map[string][]Entry, len(ids))
		now := s.now().UTC()
		for _, id := range ids {
			err := rewriteIncident(txn, id, now, func(inc *Incident) (bool, error) {
				entries, err := fn(inc)
				if err != nil {
					return false, fmt.Errorf("incident %s: %w", id, err)
				}
				added := false
				for _, e := range entries {
					e.IncidentID = id
					e, err := s.putEntry(txn, e, now)
					if err != nil {
						return false, err
					}
					out[id] = append(out[id], e)
					if !e.New {
						continue
					}
					added = true
					if inc.mirrorsOut() && e.Origin != OriginMirrorPrefix+inc.DbotMirrorInstance {
						if inc.MirrorOut == nil {
							inc.MirrorOut = &MirrorOut{}
						}
						inc.MirrorOut.Pending = true
					}
				}
				return added, nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("apply mirror updates: %w", err)
	}
	return out, nil
}
