package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// APIKey is an API key as stored: the caller hashes the secret and the
// store keeps only the hash, plus a short prefix for display.
type APIKey struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Hash   string `json:"hash"`
	Prefix string `json:"prefix,omitempty"`
	// Role is what the key may do (the service defines the roles); the
	// store only requires one.
	Role    string    `json:"role"`
	Created time.Time `json:"created"`
	// Expires is when the key stops working; zero means never.
	Expires  time.Time `json:"expires,omitzero"`
	LastUsed time.Time `json:"lastUsed,omitzero"`
	Revoked  bool      `json:"revoked,omitempty"`
}

// legacyKeyRole is the role of keys stored before keys had roles: they
// could do everything, so schema 2 makes them admin keys.
const legacyKeyRole = "admin"

// touchEvery is how stale LastUsed may get: recording every use would cost
// a synchronous disk write per API request.
const touchEvery = time.Minute

func apiKeyKey(id string) []byte { return key(pKey, id) }

func apiKeyHashKey(hash string) []byte { return key(pIdxKeyHash, hash) }

// CreateAPIKey stores a new key and returns it with its id. A hash already
// stored fails with ErrExists.
func (s *Store) CreateAPIKey(ctx context.Context, k APIKey) (APIKey, error) {
	if k.Hash == "" {
		return APIKey{}, fmt.Errorf("create API key %q: empty hash: %w", k.Name, ErrInvalid)
	}
	if k.Role == "" {
		return APIKey{}, fmt.Errorf("create API key %q: empty role: %w", k.Name, ErrInvalid)
	}
	err := s.update(ctx, func(txn *badger.Txn) error {
		if ok, err := exists(txn, apiKeyHashKey(k.Hash)); err != nil || ok {
			return errors.Join(err, fmt.Errorf("hash: %w", ErrExists))
		}
		now := s.now().UTC()
		k.ID, k.Created, k.LastUsed, k.Revoked = s.ids.next(now), now, time.Time{}, false
		if err := txn.Set(apiKeyHashKey(k.Hash), []byte(k.ID)); err != nil {
			return err
		}
		return setJSON(txn, apiKeyKey(k.ID), k)
	})
	if err != nil {
		return APIKey{}, fmt.Errorf("create API key %q: %w", k.Name, err)
	}
	return k, nil
}

// ListAPIKeys returns all keys, revoked ones included, in creation order.
func (s *Store) ListAPIKeys(ctx context.Context) ([]APIKey, error) {
	var out []APIKey
	err := s.view(ctx, func(txn *badger.Txn) error {
		return scanJSON(txn, pKey, func() any { out = append(out, APIKey{}); return &out[len(out)-1] })
	})
	if err != nil {
		return nil, fmt.Errorf("list API keys: %w", err)
	}
	return out, nil
}

// RevokeAPIKey marks a key revoked; it stays listed for audit.
func (s *Store) RevokeAPIKey(ctx context.Context, id string) error {
	err := s.update(ctx, func(txn *badger.Txn) error {
		var k APIKey
		if err := getJSON(txn, apiKeyKey(id), &k); err != nil {
			return err
		}
		k.Revoked = true
		return setJSON(txn, apiKeyKey(id), k)
	})
	if err != nil {
		return fmt.Errorf("revoke API key %s: %w", id, err)
	}
	return nil
}

// APIKeyByHash returns the key with this hash, revoked or not: the caller
// must refuse a revoked key.
func (s *Store) APIKeyByHash(ctx context.Context, hash string) (APIKey, error) {
	var k APIKey
	err := s.view(ctx, func(txn *badger.Txn) error {
		id, err := getString(txn, apiKeyHashKey(hash))
		if err != nil {
			return err
		}
		return getJSON(txn, apiKeyKey(id), &k)
	})
	if err != nil {
		// The hash identifies a secret; it is not echoed into errors.
		return APIKey{}, fmt.Errorf("API key by hash: %w", err)
	}
	return k, nil
}

// TouchAPIKey records that the key was used at now, unless it was already
// recorded less than a minute ago.
func (s *Store) TouchAPIKey(ctx context.Context, id string) error {
	now := s.now().UTC()
	var k APIKey
	if err := s.view(ctx, func(txn *badger.Txn) error { return getJSON(txn, apiKeyKey(id), &k) }); err != nil {
		return fmt.Errorf("touch API key %s: %w", id, err)
	}
	if now.Sub(k.LastUsed) < touchEvery {
		return nil
	}
	err := s.update(ctx, func(txn *badger.Txn) error {
		if err := getJSON(txn, apiKeyKey(id), &k); err != nil {
			return err
		}
		k.LastUsed = now
		return setJSON(txn, apiKeyKey(id), k)
	})
	if err != nil {
		return fmt.Errorf("touch API key %s: %w", id, err)
	}
	return nil
}

// migrateKeyRoles is the schema 1 to 2 migration: every key stored without
// a role becomes an admin key. Keys with a role are left alone, so running
// it again after a crash changes nothing.
func migrateKeyRoles(ctx context.Context, db *badger.DB) error {
	var old []APIKey
	err := db.View(func(txn *badger.Txn) error {
		return scanJSON(txn, pKey, func() any { old = append(old, APIKey{}); return &old[len(old)-1] })
	})
	if err != nil {
		return fmt.Errorf("read API keys: %w", err)
	}
	for _, k := range old {
		if k.Role != "" {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		err := db.Update(func(txn *badger.Txn) error {
			var cur APIKey
			if err := getJSON(txn, apiKeyKey(k.ID), &cur); err != nil {
				return err
			}
			if cur.Role != "" {
				return nil
			}
			cur.Role = legacyKeyRole
			return setJSON(txn, apiKeyKey(k.ID), cur)
		})
		if err != nil {
			return fmt.Errorf("API key %s (%q): give it role %s: %w", k.ID, k.Name, legacyKeyRole, err)
		}
	}
	return nil
}
