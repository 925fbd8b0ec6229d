package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/connhost/connhost/abi"
)

// Origins of entries. Mirrored and plugin entries carry the instance name
// after the prefix: "mirror:<instance>", "plugin:<instance>".
const (
	OriginUser         = "user"
	OriginAPI          = "api"
	OriginMirrorPrefix = "mirror:"
	OriginPluginPrefix = "plugin:"
)

// Entry is a war-room entry of an incident. JSON names are XSOAR's server
// entry keys where XSOAR has the field.
type Entry struct {
	ID         string        `json:"id"`
	IncidentID string        `json:"investigationId"`
	Type       abi.EntryType `json:"type"`
	Contents   any           `json:"contents"`
	Format     string        `json:"format,omitempty"`
	Tags       []string      `json:"tags,omitempty"`
	Note       bool          `json:"note,omitempty"`
	User       string        `json:"user,omitempty"`
	Created    time.Time     `json:"created"`
	// Origin says where the entry came from: OriginUser, OriginAPI, or a
	// prefix plus an instance name.
	Origin string `json:"origin,omitempty"`
	// ExternalID makes mirrored entries idempotent: a second entry with the
	// same IncidentID and ExternalID is not added.
	ExternalID string `json:"externalId,omitempty"`
	Footer     string `json:"footer,omitempty"`

	// New is set by AddEntries: false when the entry was already stored
	// under its ExternalID. Not stored.
	New bool `json:"-"`
}

// EntryQuery pages through an incident's entries for ListEntries.
type EntryQuery struct {
	// After continues after the entry with this id (the previous page's
	// next cursor).
	After string
	// Since keeps entries added to the store at or after this time.
	Since time.Time
	// Limit is the page size: 0 means 50, at most 1000.
	Limit int
}

func entKey(incidentID, id string) []byte { return key(pEnt, incidentID, "/", id) }

func entExtKey(incidentID, ext string) []byte { return key(pIdxEntExt, incidentID, sep, ext) }

// AddEntries stores entries, possibly of several incidents, in one
// transaction and returns them with ids and creation times. Each incident
// must exist. An entry whose (IncidentID, ExternalID) is already stored, or
// appears earlier in the batch, is returned as stored with New false.
func (s *Store) AddEntries(ctx context.Context, entries []Entry) ([]Entry, error) {
	var out []Entry
	err := s.commit(ctx, 0, func(txn *badger.Txn) error {
		out = make([]Entry, len(entries))
		now := s.now().UTC()
		// incs holds each incident of the batch as read, and as it must be
		// written back when an entry gives it something to mirror out.
		// All are read before the first write, so a bad incident id fails
		// the call cleanly (see commit).
		type pair struct {
			old, cur *Incident
			changed  bool
		}
		incs := map[string]*pair{}
		for _, e := range entries {
			if incs[e.IncidentID] != nil {
				continue
			}
			if err := checkPart("entry", "incident id", e.IncidentID); err != nil {
				return clean(err)
			}
			var old, cur Incident
			if err := getJSON(txn, incKey(e.IncidentID), &old); err != nil {
				return clean(fmt.Errorf("incident %s: %w", e.IncidentID, err))
			}
			_ = getJSON(txn, incKey(e.IncidentID), &cur)
			incs[e.IncidentID] = &pair{old: &old, cur: &cur}
		}
		for i, e := range entries {
			p := incs[e.IncidentID]
			e, err := s.putEntry(txn, e, now)
			if err != nil {
				return err
			}
			out[i] = e
			if !e.New {
				continue
			}
			p.changed = true
			if p.cur.mirrorsOut() && e.Origin != OriginMirrorPrefix+p.cur.DbotMirrorInstance {
				if p.cur.MirrorOut == nil {
					p.cur.MirrorOut = &MirrorOut{}
				}
				p.cur.MirrorOut.Pending = true
			}
		}
		// A new entry modifies its incident, so pollers that ask for
		// incidents modified since a time see entry-only changes too.
		for _, p := range incs {
			if !p.changed {
				continue
			}
			p.cur.Modified = now
			p.cur.Version++
			if err := writeIncident(txn, p.old, p.cur); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("add entries: %w", err)
	}
	return out, nil
}

// putEntry stores e in txn with a new id, unless an entry with its
// (IncidentID, ExternalID) is already stored (in the store or earlier in
// txn): then it returns that entry, New false.
func (s *Store) putEntry(txn *badger.Txn, e Entry, now time.Time) (Entry, error) {
	if e.ExternalID != "" {
		id, err := getString(txn, entExtKey(e.IncidentID, e.ExternalID))
		if err == nil {
			var ex Entry
			if err := getJSON(txn, entKey(e.IncidentID, id), &ex); err != nil {
				return Entry{}, fmt.Errorf("entry %s of incident %s: %w", id, e.IncidentID, err)
			}
			return ex, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return Entry{}, err
		}
	}
	e.ID = s.ids.next(now)
	e.New = true
	if e.Created.IsZero() {
		e.Created = now
	}
	if e.ExternalID != "" {
		if err := txn.Set(entExtKey(e.IncidentID, e.ExternalID), []byte(e.ID)); err != nil {
			return Entry{}, err
		}
	}
	return e, setJSON(txn, entKey(e.IncidentID, e.ID), e)
}

// ListEntries returns a page of the incident's entries in the order they
// were added, and the cursor of the next page (empty at the end).
func (s *Store) ListEntries(ctx context.Context, incidentID string, q EntryQuery) ([]Entry, string, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = defaultPageSize
	}
	limit = min(limit, maxPageSize)
	prefix := entKey(incidentID, "")
	start := prefix
	if !q.Since.IsZero() {
		start = entKey(incidentID, idPrefixAt(q.Since))
	}
	if q.After != "" {
		if after := entKey(incidentID, q.After+sep); string(after) > string(start) {
			start = after
		}
	}
	var (
		page []Entry
		next string
	)
	err := s.view(ctx, func(txn *badger.Txn) error {
		if ok, err := exists(txn, incKey(incidentID)); err != nil || !ok {
			return errors.Join(err, ErrNotFound)
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: min(limit, 100)})
		defer it.Close()
		for it.Seek(start); it.Valid(); it.Next() {
			item := it.Item()
			var e Entry
			if err := item.Value(func(b []byte) error { return decode(item.Key(), b, &e) }); err != nil {
				return err
			}
			page = append(page, e)
			if len(page) == limit {
				next = e.ID
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("list entries of incident %s: %w", incidentID, err)
	}
	return page, next, nil
}
