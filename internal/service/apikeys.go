package service

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/connhost/connhost/internal/store"
)

// APIKeys issues, lists, revokes and checks the bearer keys of the API.
// Only a key's hash is stored; the key itself is shown once, on creation.
type APIKeys struct{ c *core }

// APIKeyView is an API key as listed: never the key or its hash.
type APIKeyView struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Prefix   string    `json:"prefix"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"lastUsed,omitzero"`
	Revoked  bool      `json:"revoked,omitempty"`
}

func keyView(k store.APIKey) APIKeyView {
	return APIKeyView{ID: k.ID, Name: k.Name, Prefix: k.Prefix, Created: k.Created, LastUsed: k.LastUsed, Revoked: k.Revoked}
}

// HashAPIKey returns the stored form of an API key.
func HashAPIKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// apiKeyPrefix starts every API key, so a leaked key is recognisable by
// secret scanners.
const apiKeyPrefix = "chk_"

func newAPIKey() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return apiKeyPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// Create makes a new key and returns it in clear, the only time it is
// shown. A bad name is ErrInvalid, a taken one ErrExists.
func (ks *APIKeys) Create(ctx context.Context, name string) (string, APIKeyView, error) {
	if !instanceNameRe.MatchString(name) {
		return "", APIKeyView{}, fmt.Errorf("%w: key name %q: want letters, digits, '.', '_' or '-'", ErrInvalid, name)
	}
	key, err := newAPIKey()
	if err != nil {
		return "", APIKeyView{}, err
	}
	k, err := ks.c.st.CreateAPIKey(ctx, store.APIKey{Name: name, Hash: HashAPIKey(key), Prefix: key[:len(apiKeyPrefix)+6]})
	if err != nil {
		return "", APIKeyView{}, fromStore(err)
	}
	return key, keyView(k), nil
}

// List lists keys without their secrets.
func (ks *APIKeys) List(ctx context.Context) ([]APIKeyView, error) {
	keys, err := ks.c.st.ListAPIKeys(ctx)
	if err != nil {
		return nil, fromStore(err)
	}
	out := make([]APIKeyView, len(keys))
	for i, k := range keys {
		out[i] = keyView(k)
	}
	return out, nil
}

// Revoke revokes a key by id.
func (ks *APIKeys) Revoke(ctx context.Context, id string) error {
	if err := ks.c.st.RevokeAPIKey(ctx, id); err != nil {
		return fmt.Errorf("API key %q: %w", id, fromStore(err))
	}
	return nil
}

// Authenticate returns the key a bearer token belongs to, and records its
// use. A missing, unknown or revoked key is ErrUnauthorized.
func (ks *APIKeys) Authenticate(ctx context.Context, token string) (APIKeyView, error) {
	if token == "" {
		return APIKeyView{}, ErrUnauthorized
	}
	k, err := ks.c.st.APIKeyByHash(ctx, HashAPIKey(token))
	if errors.Is(err, store.ErrNotFound) || (err == nil && k.Revoked) {
		return APIKeyView{}, ErrUnauthorized
	}
	if err != nil {
		return APIKeyView{}, fromStore(err)
	}
	_ = ks.c.st.TouchAPIKey(ctx, k.ID)
	return keyView(k), nil
}

// Ensure creates a key named "bootstrap" when no usable key exists, and
// returns it in clear; otherwise it returns "".
func (ks *APIKeys) Ensure(ctx context.Context) (string, error) {
	keys, err := ks.c.st.ListAPIKeys(ctx)
	if err != nil {
		return "", fromStore(err)
	}
	for _, k := range keys {
		if !k.Revoked {
			return "", nil
		}
	}
	key, _, err := ks.Create(ctx, "bootstrap")
	return key, err
}
