package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// maxPreviousVersions bounds the rollback history of a plugin.
const maxPreviousVersions = 32

// PluginCurrent is the version of a plugin that instances following the
// latest run, and the versions that were current before it, most recent
// last, for rollback. It is explicit rather than "newest by semver" so a
// rollback sticks across restarts.
type PluginCurrent struct {
	Name      string    `json:"name"`
	Version   string    `json:"version"`
	Previous  []string  `json:"previous,omitempty"`
	Changed   time.Time `json:"changed"`
	ChangedBy string    `json:"changedBy,omitempty"`
}

func curKey(name string) []byte { return key(pCur, name) }

// GetPluginCurrent returns the current-version record of a plugin;
// ErrNotFound when none was ever set.
func (s *Store) GetPluginCurrent(ctx context.Context, name string) (PluginCurrent, error) {
	var c PluginCurrent
	err := s.view(ctx, func(txn *badger.Txn) error { return getJSON(txn, curKey(name), &c) })
	if err != nil {
		return PluginCurrent{}, fmt.Errorf("plugin %s: current version: %w", name, err)
	}
	return c, nil
}

// UpdatePluginCurrent changes the current-version record of a plugin in one
// transaction: fn gets the stored record (zero with Name set when there is
// none) and edits it. The version fn leaves must be installed, else the
// error wraps ErrNotFound; Previous is trimmed to its newest entries.
func (s *Store) UpdatePluginCurrent(ctx context.Context, name string, fn func(*PluginCurrent) error) (PluginCurrent, error) {
	var out PluginCurrent
	err := s.update(ctx, func(txn *badger.Txn) error {
		c := PluginCurrent{Name: name}
		if err := getJSON(txn, curKey(name), &c); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if err := fn(&c); err != nil {
			return err
		}
		c.Name = name
		if ok, err := exists(txn, pvKey(name, c.Version)); err != nil || !ok {
			return errors.Join(err, fmt.Errorf("version %q: %w", c.Version, ErrNotFound))
		}
		if n := len(c.Previous); n > maxPreviousVersions {
			c.Previous = c.Previous[n-maxPreviousVersions:]
		}
		c.Changed = s.now().UTC()
		out = c
		return setJSON(txn, curKey(name), c)
	})
	if err != nil {
		return PluginCurrent{}, fmt.Errorf("plugin %s: set current version: %w", name, err)
	}
	return out, nil
}

// DeletePluginCurrent removes the current-version record of a plugin (when
// its last version is deleted). A missing record is no error.
func (s *Store) DeletePluginCurrent(ctx context.Context, name string) error {
	err := s.update(ctx, func(txn *badger.Txn) error { return txn.Delete(curKey(name)) })
	if err != nil {
		return fmt.Errorf("plugin %s: delete current version: %w", name, err)
	}
	return nil
}
