package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Instance is a configured connector instance: a plugin, its parameters and
// its settings.
type Instance struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Plugin string `json:"brand"`
	// PinnedVersion is the plugin version to run; "" runs the newest.
	PinnedVersion string `json:"pinnedVersion,omitempty"`
	Enabled       bool   `json:"enabled"`
	// Params are the parameter values. Secret values arrive already
	// encrypted by the caller; the store never sees them in clear.
	Params   map[string]any `json:"params,omitempty"`
	Settings Settings       `json:"settings"`
	Created  time.Time      `json:"created"`
	Modified time.Time      `json:"modified"`
}

// Settings are the operator's settings of an instance, named after XSOAR's
// instance parameters where XSOAR has them.
type Settings struct {
	FetchEnabled         bool   `json:"isFetch"`
	FetchIntervalMinutes int    `json:"incidentFetchInterval,omitempty"`
	MirrorDirection      string `json:"mirror_direction,omitempty"`
	CloseIncident        bool   `json:"close_incident,omitempty"`
	CloseOut             bool   `json:"close_out,omitempty"`
	CommentTag           string `json:"comment_tag,omitempty"`
	WorkNotesTag         string `json:"work_notes_tag,omitempty"`
	FileTag              string `json:"file_tag,omitempty"`
	IncidentsFetchQuery  string `json:"incidents_fetch_query,omitempty"`
	// Egress narrows the manifest's egress list for this instance.
	Egress             []string `json:"egress,omitempty"`
	MemoryMiB          int      `json:"memoryMiB,omitempty"`
	CallTimeoutSeconds int      `json:"callTimeoutSeconds,omitempty"`
	LongRunning        bool     `json:"longRunning,omitempty"`
	// ExternalHTTP exposes a long-running HTTP instance outside the server
	// (XSOAR instance.execute.external).
	ExternalHTTP bool `json:"externalHTTP,omitempty"`
	// EngineGroup runs the instance's commands on the engines of this
	// group (XSOAR "Run on"); empty runs them on the server itself.
	EngineGroup string `json:"engine_group,omitempty"`
}

// ModuleHealth is an instance's health as its connector last reported it.
type ModuleHealth struct {
	Message string    `json:"message"`
	IsError bool      `json:"isError"`
	Updated time.Time `json:"updated"`
}

type contextRecord struct {
	Value   map[string]any `json:"value"`
	Version int64          `json:"version"`
}

type cacheRecord struct {
	Value json.RawMessage `json:"value"`
	// Expires is zero for an entry without TTL.
	Expires time.Time `json:"expires,omitzero"`
}

func insKey(id string) []byte { return key(pIns, id) }

func insNameKey(name string) []byte { return key(pIdxInsName, name) }

func cacheKey(instID, k string) []byte { return key(pCache, instID, sep, k) }

func getInstance(txn *badger.Txn, id string) (Instance, error) {
	var inst Instance
	if err := getJSON(txn, insKey(id), &inst); err != nil {
		return Instance{}, fmt.Errorf("instance %s: %w", id, err)
	}
	return inst, nil
}

// requireInstance fails unless the instance exists. Reading the key inside
// the write transaction also makes a concurrent DeleteInstance conflict, so
// no per-instance state outlives its instance.
func requireInstance(txn *badger.Txn, id string) error {
	ok, err := exists(txn, insKey(id))
	if err != nil {
		return fmt.Errorf("instance %s: %w", id, err)
	}
	if !ok {
		return fmt.Errorf("instance %s: %w", id, ErrNotFound)
	}
	return nil
}

func validateInstance(inst *Instance) error {
	if inst.Name == "" || inst.Plugin == "" {
		return fmt.Errorf("instance %q: empty name or plugin: %w", inst.Name, ErrInvalid)
	}
	return checkPart("instance "+inst.Name, "name", inst.Name)
}

// CreateInstance stores a new instance and returns it with its id. A taken
// name fails with ErrExists.
func (s *Store) CreateInstance(ctx context.Context, inst Instance) (Instance, error) {
	if err := validateInstance(&inst); err != nil {
		return Instance{}, err
	}
	err := s.update(ctx, func(txn *badger.Txn) error {
		if ok, err := exists(txn, insNameKey(inst.Name)); err != nil || ok {
			return errors.Join(err, fmt.Errorf("name: %w", ErrExists))
		}
		now := s.now().UTC()
		inst.ID, inst.Created, inst.Modified = s.ids.next(now), now, now
		if err := txn.Set(insNameKey(inst.Name), []byte(inst.ID)); err != nil {
			return err
		}
		return setJSON(txn, insKey(inst.ID), inst)
	})
	if err != nil {
		return Instance{}, fmt.Errorf("create instance %q: %w", inst.Name, err)
	}
	return inst, nil
}

// GetInstance returns the instance with id.
func (s *Store) GetInstance(ctx context.Context, id string) (Instance, error) {
	var inst Instance
	err := s.view(ctx, func(txn *badger.Txn) error {
		var err error
		inst, err = getInstance(txn, id)
		return err
	})
	return inst, err
}

// GetInstanceByName returns the instance called name.
func (s *Store) GetInstanceByName(ctx context.Context, name string) (Instance, error) {
	var inst Instance
	err := s.view(ctx, func(txn *badger.Txn) error {
		id, err := getString(txn, insNameKey(name))
		if err != nil {
			return err
		}
		return getJSON(txn, insKey(id), &inst)
	})
	if err != nil {
		return Instance{}, fmt.Errorf("instance %q: %w", name, err)
	}
	return inst, nil
}

// ListInstances returns all instances in creation order.
func (s *Store) ListInstances(ctx context.Context) ([]Instance, error) {
	var out []Instance
	err := s.view(ctx, func(txn *badger.Txn) error {
		return scanJSON(txn, pIns, func() any { out = append(out, Instance{}); return &out[len(out)-1] })
	})
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	return out, nil
}

// UpdateInstance applies fn to the stored instance and writes the result in
// one transaction, retrying (calling fn again) on conflict. fn may not
// change ID or Created; a rename to a taken name fails with ErrExists.
func (s *Store) UpdateInstance(ctx context.Context, id string, fn func(*Instance) error) (Instance, error) {
	var out Instance
	err := s.update(ctx, func(txn *badger.Txn) error {
		old, err := getInstance(txn, id)
		if err != nil {
			return err
		}
		inst, err := getInstance(txn, id)
		if err != nil {
			return err
		}
		if err := fn(&inst); err != nil {
			return err
		}
		inst.ID, inst.Created, inst.Modified = old.ID, old.Created, s.now().UTC()
		if err := validateInstance(&inst); err != nil {
			return err
		}
		if inst.Name != old.Name {
			if ok, err := exists(txn, insNameKey(inst.Name)); err != nil || ok {
				return errors.Join(err, fmt.Errorf("name %q: %w", inst.Name, ErrExists))
			}
			if err := txn.Delete(insNameKey(old.Name)); err != nil {
				return err
			}
			if err := txn.Set(insNameKey(inst.Name), []byte(id)); err != nil {
				return err
			}
		}
		out = inst
		return setJSON(txn, insKey(id), inst)
	})
	if err != nil {
		return Instance{}, fmt.Errorf("update instance %s: %w", id, err)
	}
	return out, nil
}

// DeleteInstance removes the instance and its state: integration context,
// cache, last runs and health. Incidents it created stay.
func (s *Store) DeleteInstance(ctx context.Context, id string) error {
	purge := "instance-" + id
	err := s.update(ctx, func(txn *badger.Txn) error {
		inst, err := getInstance(txn, id)
		if err != nil {
			return err
		}
		for _, k := range [][]byte{insKey(id), insNameKey(inst.Name), key(pCtx, id), key(pLastRun, id), key(pMirrorRun, id), key(pHealth, id)} {
			if err := txn.Delete(k); err != nil {
				return err
			}
		}
		// The cache can hold more keys than one transaction takes.
		return schedulePurge(txn, purge, pCache+id+sep)
	})
	if err != nil {
		return fmt.Errorf("delete instance %s: %w", id, err)
	}
	if err := s.runPurge(ctx, purge); err != nil {
		return fmt.Errorf("delete instance %s: cache: %w", id, err)
	}
	return nil
}

// GetContext returns the instance's integration context and its version,
// 0 (with an empty context) before the first SetContext.
func (s *Store) GetContext(ctx context.Context, instID string) (map[string]any, int64, error) {
	var rec contextRecord
	err := s.view(ctx, func(txn *badger.Txn) error {
		if err := requireInstance(txn, instID); err != nil {
			return err
		}
		if err := getJSON(txn, key(pCtx, instID), &rec); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("integration context of instance %s: %w", instID, err)
	}
	if rec.Value == nil {
		rec.Value = map[string]any{}
	}
	return rec.Value, rec.Version, nil
}

// SetContext replaces the instance's integration context and returns the
// new version. version -1 writes unconditionally; any other version must
// equal the stored one, else nothing changes and the error wraps
// ErrConflict. Of two writers holding the same version exactly one wins.
func (s *Store) SetContext(ctx context.Context, instID string, value map[string]any, version int64) (int64, error) {
	var newVersion int64
	err := s.update(ctx, func(txn *badger.Txn) error {
		if err := requireInstance(txn, instID); err != nil {
			return err
		}
		var rec contextRecord
		if err := getJSON(txn, key(pCtx, instID), &rec); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if version != -1 && version != rec.Version {
			return fmt.Errorf("version %d is stale, stored version is %d: %w", version, rec.Version, ErrConflict)
		}
		newVersion = rec.Version + 1
		return setJSON(txn, key(pCtx, instID), contextRecord{Value: value, Version: newVersion})
	})
	if err != nil {
		return 0, fmt.Errorf("set integration context of instance %s: %w", instID, err)
	}
	return newVersion, nil
}

// CacheGet returns a cache value of the instance; an expired entry reads as
// missing (found false, no error).
func (s *Store) CacheGet(ctx context.Context, instID, k string) (json.RawMessage, bool, error) {
	var rec cacheRecord
	err := s.view(ctx, func(txn *badger.Txn) error { return getJSON(txn, cacheKey(instID, k), &rec) })
	if errors.Is(err, ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("cache %q of instance %s: %w", k, instID, err)
	}
	if !rec.Expires.IsZero() && !s.now().Before(rec.Expires) {
		return nil, false, nil
	}
	return rec.Value, true, nil
}

// CacheSet stores a cache value of the instance; ttl ≤ 0 keeps it until
// deleted. Expired entries are dropped by badger's compaction (each carries
// a badger TTL a little past its own expiry), so no sweeper is needed.
func (s *Store) CacheSet(ctx context.Context, instID, k string, value json.RawMessage, ttl time.Duration) error {
	rec := cacheRecord{Value: value}
	if ttl > 0 {
		rec.Expires = s.now().UTC().Add(ttl)
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("cache %q of instance %s: %w", k, instID, err)
	}
	err = s.update(ctx, func(txn *badger.Txn) error {
		if err := requireInstance(txn, instID); err != nil {
			return err
		}
		e := badger.NewEntry(cacheKey(instID, k), b)
		if ttl > 0 {
			// Badger's TTL has one-second resolution and uses the real clock;
			// the record's own expiry decides visibility.
			e = e.WithTTL(ttl + 2*time.Second)
		}
		return txn.SetEntry(e)
	})
	if err != nil {
		return fmt.Errorf("set cache %q of instance %s: %w", k, instID, err)
	}
	return nil
}

// CacheDelete removes a cache value; a missing key is no error.
func (s *Store) CacheDelete(ctx context.Context, instID, k string) error {
	err := s.update(ctx, func(txn *badger.Txn) error { return txn.Delete(cacheKey(instID, k)) })
	if err != nil {
		return fmt.Errorf("delete cache %q of instance %s: %w", k, instID, err)
	}
	return nil
}

// LastRun returns the instance's fetch-incidents last run, nil if none.
func (s *Store) LastRun(ctx context.Context, instID string) (map[string]any, error) {
	return s.getRun(ctx, pLastRun, "last run", instID)
}

// SetLastRun stores the instance's fetch-incidents last run.
func (s *Store) SetLastRun(ctx context.Context, instID string, value map[string]any) error {
	return s.setRun(ctx, pLastRun, "last run", instID, value)
}

// LastMirrorRun returns the instance's last mirror run, nil if none.
func (s *Store) LastMirrorRun(ctx context.Context, instID string) (map[string]any, error) {
	return s.getRun(ctx, pMirrorRun, "last mirror run", instID)
}

// SetLastMirrorRun stores the instance's last mirror run.
func (s *Store) SetLastMirrorRun(ctx context.Context, instID string, value map[string]any) error {
	return s.setRun(ctx, pMirrorRun, "last mirror run", instID, value)
}

func (s *Store) getRun(ctx context.Context, prefix, what, instID string) (map[string]any, error) {
	var v map[string]any
	err := s.view(ctx, func(txn *badger.Txn) error {
		if err := getJSON(txn, key(prefix, instID), &v); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s of instance %s: %w", what, instID, err)
	}
	return v, nil
}

func (s *Store) setRun(ctx context.Context, prefix, what, instID string, v map[string]any) error {
	err := s.update(ctx, func(txn *badger.Txn) error {
		if err := requireInstance(txn, instID); err != nil {
			return err
		}
		return setJSON(txn, key(prefix, instID), v)
	})
	if err != nil {
		return fmt.Errorf("set %s of instance %s: %w", what, instID, err)
	}
	return nil
}

// Health returns the instance's module health; zero if never reported.
func (s *Store) Health(ctx context.Context, instID string) (ModuleHealth, error) {
	var h ModuleHealth
	err := s.view(ctx, func(txn *badger.Txn) error {
		if err := getJSON(txn, key(pHealth, instID), &h); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		return nil
	})
	if err != nil {
		return ModuleHealth{}, fmt.Errorf("health of instance %s: %w", instID, err)
	}
	return h, nil
}

// SetHealth records the instance's module health, stamped with now. An
// empty message with isError false clears it (XSOAR updateModuleHealth("")).
func (s *Store) SetHealth(ctx context.Context, instID, message string, isError bool) error {
	h := ModuleHealth{Message: message, IsError: isError, Updated: s.now().UTC()}
	err := s.update(ctx, func(txn *badger.Txn) error {
		if err := requireInstance(txn, instID); err != nil {
			return err
		}
		return setJSON(txn, key(pHealth, instID), h)
	})
	if err != nil {
		return fmt.Errorf("set health of instance %s: %w", instID, err)
	}
	return nil
}
