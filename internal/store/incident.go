package store

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/connhost/connhost/abi"
)

// Incident is a stored incident. JSON names are XSOAR's where XSOAR has the
// field.
type Incident struct {
	ID           string             `json:"id"`
	Name         string             `json:"name"`
	Type         string             `json:"type,omitempty"`
	Severity     float64            `json:"severity"`
	Status       abi.IncidentStatus `json:"status"`
	Occurred     time.Time          `json:"occurred"`
	Created      time.Time          `json:"created"`
	Modified     time.Time          `json:"modified"`
	Owner        string             `json:"owner,omitempty"`
	Labels       []abi.Label        `json:"labels,omitempty"`
	Details      string             `json:"details,omitempty"`
	RawJSON      string             `json:"rawJSON,omitempty"`
	CustomFields map[string]any     `json:"CustomFields,omitempty"`
	CloseReason  string             `json:"closeReason,omitempty"`
	CloseNotes   string             `json:"closeNotes,omitempty"`
	Closed       time.Time          `json:"closed,omitzero"`
	// Instance is the name of the connector instance the incident came
	// from; empty for incidents created by users or the API.
	Instance string `json:"sourceInstance,omitempty"`
	// SourceID is the connector's own key for the incident; with Instance
	// it deduplicates creation.
	SourceID               string    `json:"sourceId,omitempty"`
	DbotMirrorID           string    `json:"dbotMirrorId,omitempty"`
	DbotMirrorDirection    string    `json:"dbotMirrorDirection,omitempty"`
	DbotMirrorInstance     string    `json:"dbotMirrorInstance,omitempty"`
	DbotMirrorTags         []string  `json:"dbotMirrorTags,omitempty"`
	DbotDirtyFields        []string  `json:"dbotDirtyFields,omitempty"`
	DbotCurrentDirtyFields []string  `json:"dbotCurrentDirtyFields,omitempty"`
	DbotMirrorLastSync     time.Time `json:"dbotMirrorLastSync,omitzero"`
	// Version starts at 1 and grows by one per update, for optimistic
	// concurrency in the API above the store.
	Version int64 `json:"version"`

	// MirrorOut is the state of outgoing mirroring (the durable outbox);
	// nil until the incident first has something to send.
	MirrorOut *MirrorOut `json:"mirrorOut,omitempty"`
	// MirrorPurged stops incoming mirroring of a closed incident, after its
	// sync record was purged.
	MirrorPurged bool `json:"mirrorPurged,omitempty"`

	// New is set by CreateIncidents: true when the call created the
	// incident, false when it returned an existing duplicate. Not stored.
	New bool `json:"-"`
}

// IncidentQuery selects incidents for SearchIncidents. Zero fields do not
// filter.
type IncidentQuery struct {
	Status         *abi.IncidentStatus
	Instance       string
	MirrorInstance string
	Type           string
	// Text matches incidents whose name contains it, ignoring case.
	Text string
	// ModifiedAfter keeps incidents modified strictly after it and orders
	// the result by modification time; otherwise results are in creation
	// order.
	ModifiedAfter time.Time
	// Limit is the page size: 0 means 50, at most 1000.
	Limit int
	// Cursor continues after the previous page (its next cursor); it is
	// only valid with the same filters.
	Cursor string
	// Offset skips that many matches first (after Cursor, if any).
	Offset int
}

const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

func incKey(id string) []byte { return key(pInc, id) }

// mirrorInstance is the instance half of the mirror index key: XSOAR's
// mapper sets dbotMirrorInstance to the fetching instance, so an incident
// with a mirror id and no mirror instance belongs to its source instance.
func (inc *Incident) normalize() {
	if inc.DbotMirrorID != "" && inc.DbotMirrorInstance == "" {
		inc.DbotMirrorInstance = inc.Instance
	}
}

func (inc *Incident) validate() error {
	what := "incident " + inc.ID
	if inc.Status < abi.StatusPending || inc.Status > abi.StatusArchive {
		return fmt.Errorf("%s: status %d out of range 0..3: %w", what, inc.Status, ErrInvalid)
	}
	for f, v := range map[string]string{"instance": inc.Instance, "mirror instance": inc.DbotMirrorInstance} {
		if err := checkPart(what, f, v); err != nil {
			return err
		}
	}
	return nil
}

// incIndex is one index key of an incident; unique keys hold the id and
// refuse a second incident.
type incIndex struct {
	key    string
	unique bool
}

func incIndexes(inc *Incident) []incIndex {
	idx := []incIndex{
		{key: pIdxIncStat + strconv.Itoa(int(inc.Status)) + "/" + inc.ID},
		{key: pIdxIncMod + timeKey(inc.Modified) + "/" + inc.ID},
	}
	if inc.DbotMirrorID != "" {
		idx = append(idx, incIndex{key: mirrorIdxKey(inc.DbotMirrorInstance, inc.DbotMirrorID), unique: true})
	}
	if inc.OutboxPending() {
		idx = append(idx, incIndex{key: pIdxIncOutbox + inc.ID})
	}
	if inc.SourceID != "" {
		idx = append(idx, incIndex{key: sourceIdxKey(inc.Instance, inc.SourceID), unique: true})
	}
	return idx
}

func mirrorIdxKey(instance, mirrorID string) string {
	return pIdxIncMir + instance + sep + mirrorID
}

func sourceIdxKey(instance, sourceID string) string {
	return pIdxIncSrc + instance + sep + sourceID
}

// writeIncident stores inc and moves its index keys from old (nil for a new
// incident) to the current ones.
func writeIncident(txn *badger.Txn, old, inc *Incident) error {
	var oldIdx []incIndex
	if old != nil {
		oldIdx = incIndexes(old)
	}
	newIdx := incIndexes(inc)
	keep := map[string]bool{}
	for _, n := range newIdx {
		keep[n.key] = true
	}
	for _, o := range oldIdx {
		if !keep[o.key] {
			if err := txn.Delete([]byte(o.key)); err != nil {
				return err
			}
		}
	}
	for _, n := range newIdx {
		if n.unique {
			owner, err := getString(txn, []byte(n.key))
			switch {
			case err == nil && owner != inc.ID:
				return fmt.Errorf("incident %s: index %q already points to incident %s: %w", inc.ID, n.key, owner, ErrExists)
			case err != nil && !errors.Is(err, ErrNotFound):
				return err
			}
		}
		if err := txn.Set([]byte(n.key), []byte(inc.ID)); err != nil {
			return err
		}
	}
	return setJSON(txn, incKey(inc.ID), inc)
}

// CreateIncidents stores incidents in one transaction and returns them with
// ids and timestamps, in order. An incident whose (Instance, SourceID) or
// (DbotMirrorInstance, DbotMirrorID) is already stored, or appears earlier
// in the same batch, is not created again: the existing incident is
// returned with New false.
func (s *Store) CreateIncidents(ctx context.Context, incs []Incident) ([]Incident, error) {
	var out []Incident
	err := s.commit(ctx, 0, func(txn *badger.Txn) error {
		var err error
		out, err = s.createIncidents(txn, incs)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create incidents: %w", err)
	}
	return out, nil
}

// CreateIncidentsWithLastRun stores incidents and the instance's
// fetch-incidents last run in one transaction: both or neither. Incidents
// without Instance get the instance's name.
func (s *Store) CreateIncidentsWithLastRun(ctx context.Context, instanceID string, incs []Incident, lastRun map[string]any) ([]Incident, error) {
	var out []Incident
	err := s.commit(ctx, 0, func(txn *badger.Txn) error {
		inst, err := getInstance(txn, instanceID)
		if err != nil {
			return clean(err)
		}
		named := make([]Incident, len(incs))
		for i, inc := range incs {
			if inc.Instance == "" {
				inc.Instance = inst.Name
			}
			named[i] = inc
		}
		if out, err = s.createIncidents(txn, named); err != nil {
			return err
		}
		return setJSON(txn, key(pLastRun, instanceID), lastRun)
	})
	if err != nil {
		return nil, fmt.Errorf("create incidents for instance %s: %w", instanceID, err)
	}
	return out, nil
}

// createIncidents writes incs in txn. Invalid input fails the call before
// it writes anything (a clean error, see commit).
func (s *Store) createIncidents(txn *badger.Txn, incs []Incident) ([]Incident, error) {
	for _, inc := range incs {
		inc.normalize()
		if err := inc.validate(); err != nil {
			return nil, clean(err)
		}
	}
	out := make([]Incident, len(incs))
	now := s.now().UTC()
	for i, inc := range incs {
		inc.normalize()
		existing, err := findDuplicate(txn, &inc)
		if err != nil {
			return nil, err
		}
		if existing != nil {
			existing.New = false
			out[i] = *existing
			continue
		}
		inc.ID = s.ids.next(now)
		inc.Created, inc.Modified, inc.Version, inc.New = now, now, 1, true
		if inc.Occurred.IsZero() {
			inc.Occurred = now // as XSOAR: occurred defaults to creation
		}
		if err := writeIncident(txn, nil, &inc); err != nil {
			return nil, err
		}
		out[i] = inc
	}
	return out, nil
}

// findDuplicate returns the stored incident sharing inc's source or mirror
// key, or nil.
func findDuplicate(txn *badger.Txn, inc *Incident) (*Incident, error) {
	var keys []string
	if inc.SourceID != "" {
		keys = append(keys, sourceIdxKey(inc.Instance, inc.SourceID))
	}
	if inc.DbotMirrorID != "" {
		keys = append(keys, mirrorIdxKey(inc.DbotMirrorInstance, inc.DbotMirrorID))
	}
	for _, k := range keys {
		id, err := getString(txn, []byte(k))
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var ex Incident
		if err := getJSON(txn, incKey(id), &ex); err != nil {
			return nil, fmt.Errorf("incident %s (index %q): %w", id, k, err)
		}
		return &ex, nil
	}
	return nil, nil
}

// GetIncident returns the incident with id.
func (s *Store) GetIncident(ctx context.Context, id string) (Incident, error) {
	var inc Incident
	err := s.view(ctx, func(txn *badger.Txn) error { return getJSON(txn, incKey(id), &inc) })
	if err != nil {
		return Incident{}, fmt.Errorf("incident %s: %w", id, err)
	}
	return inc, nil
}

// IncidentByMirrorID returns the incident mirrored by instance under the
// remote id mirrorID.
func (s *Store) IncidentByMirrorID(ctx context.Context, instance, mirrorID string) (Incident, error) {
	var inc Incident
	err := s.view(ctx, func(txn *badger.Txn) error {
		id, err := getString(txn, []byte(mirrorIdxKey(instance, mirrorID)))
		if err != nil {
			return err
		}
		return getJSON(txn, incKey(id), &inc)
	})
	if err != nil {
		return Incident{}, fmt.Errorf("incident mirrored by instance %q as %q: %w", instance, mirrorID, err)
	}
	return inc, nil
}

// UpdateIncident applies fn to the stored incident and writes the result in
// the same transaction, retrying (and so calling fn again on fresh data)
// when a concurrent write conflicts. fn may not change ID, Created or
// Version; Modified is set to now and Version grows by one. An error from
// fn aborts the update and is returned wrapped.
func (s *Store) UpdateIncident(ctx context.Context, id string, fn func(*Incident) error) (Incident, error) {
	var out Incident
	err := s.update(ctx, func(txn *badger.Txn) error {
		var old, inc Incident
		if err := getJSON(txn, incKey(id), &old); err != nil {
			return err
		}
		if err := getJSON(txn, incKey(id), &inc); err != nil {
			return err
		}
		if err := fn(&inc); err != nil {
			return err
		}
		inc.ID, inc.Created, inc.Version = old.ID, old.Created, old.Version+1
		inc.Modified = s.now().UTC()
		inc.normalize()
		if err := inc.validate(); err != nil {
			return err
		}
		if err := writeIncident(txn, &old, &inc); err != nil {
			return err
		}
		out = inc
		return nil
	})
	if err != nil {
		return Incident{}, fmt.Errorf("update incident %s: %w", id, err)
	}
	return out, nil
}

// DeleteIncident removes the incident, its index keys and its entries.
func (s *Store) DeleteIncident(ctx context.Context, id string) error {
	purge := "incident-" + id
	err := s.update(ctx, func(txn *badger.Txn) error {
		var inc Incident
		if err := getJSON(txn, incKey(id), &inc); err != nil {
			return err
		}
		for _, ix := range incIndexes(&inc) {
			if err := txn.Delete([]byte(ix.key)); err != nil {
				return err
			}
		}
		if err := txn.Delete(incKey(id)); err != nil {
			return err
		}
		return schedulePurge(txn, purge, pEnt+id+"/", pIdxEntExt+id+sep)
	})
	if err != nil {
		return fmt.Errorf("delete incident %s: %w", id, err)
	}
	if err := s.runPurge(ctx, purge); err != nil {
		return fmt.Errorf("delete incident %s: entries: %w", id, err)
	}
	return nil
}

// SearchIncidents returns one page of incidents matching q and the cursor
// of the next page, empty when the scan reached the end. It walks the
// narrowest index (modified time, then status, then all incidents) and
// holds one page in memory, whatever the store's size.
func (s *Store) SearchIncidents(ctx context.Context, q IncidentQuery) ([]Incident, string, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = defaultPageSize
	}
	limit = min(limit, maxPageSize)
	prefix, start := pInc, pInc
	switch {
	case !q.ModifiedAfter.IsZero():
		prefix, start = pIdxIncMod, pIdxIncMod+timeKey(q.ModifiedAfter.Add(time.Nanosecond))
	case q.Status != nil:
		prefix = pIdxIncStat + strconv.Itoa(int(*q.Status)) + "/"
		start = prefix
	}
	if q.Cursor != "" {
		c, err := base64.RawURLEncoding.DecodeString(q.Cursor)
		if err != nil || !strings.HasPrefix(string(c), prefix) {
			return nil, "", fmt.Errorf("search incidents: cursor %q does not fit this query: %w", q.Cursor, ErrInvalid)
		}
		start = string(c) + sep // the smallest key after the cursor
	}
	byIndex := prefix != pInc
	text := strings.ToLower(q.Text)
	var (
		page []Incident
		next string
	)
	err := s.view(ctx, func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefix), PrefetchValues: !byIndex, PrefetchSize: 16})
		defer it.Close()
		skip := q.Offset
		n := 0
		for it.Seek([]byte(start)); it.Valid(); it.Next() {
			if n++; n%256 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			item := it.Item()
			k := string(item.Key())
			var inc Incident
			if byIndex {
				id := k[strings.LastIndexByte(k, '/')+1:]
				if err := getJSON(txn, incKey(id), &inc); err != nil {
					return fmt.Errorf("incident %s (index %q): %w", id, k, err)
				}
			} else if err := item.Value(func(b []byte) error { return decode(item.Key(), b, &inc) }); err != nil {
				return err
			}
			if !q.matches(&inc, text) {
				continue
			}
			if skip > 0 {
				skip--
				continue
			}
			page = append(page, inc)
			if len(page) == limit {
				next = base64.RawURLEncoding.EncodeToString([]byte(k))
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("search incidents: %w", err)
	}
	return page, next, nil
}

func (q *IncidentQuery) matches(inc *Incident, lowerText string) bool {
	switch {
	case q.Status != nil && inc.Status != *q.Status,
		q.Instance != "" && inc.Instance != q.Instance,
		q.MirrorInstance != "" && inc.DbotMirrorInstance != q.MirrorInstance,
		q.Type != "" && inc.Type != q.Type,
		!q.ModifiedAfter.IsZero() && !inc.Modified.After(q.ModifiedAfter),
		lowerText != "" && !strings.Contains(strings.ToLower(inc.Name), lowerText):
		return false
	}
	return true
}
