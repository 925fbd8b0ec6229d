package service

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/connhost/connhost/internal/store"
)

// Role is what an API key may do. Each role includes the ones below it:
// read < operator < admin.
type Role string

// The roles. internal/api decides, route by route, which one a request
// needs.
const (
	// RoleRead may only read (GET).
	RoleRead Role = "read"
	// RoleOperator may also run commands and fetches, and work on
	// incidents, entries and mirroring.
	RoleOperator Role = "operator"
	// RoleAdmin may do everything: plugins, instances, keys, users.
	RoleAdmin Role = "admin"
)

// Roles lists the roles from least to most powerful.
var Roles = []Role{RoleRead, RoleOperator, RoleAdmin}

func (r Role) rank() int {
	for i, x := range Roles {
		if x == r {
			return i
		}
	}
	return -1
}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool { return r.rank() >= 0 }

// Allows reports whether a key of role r may do what needs role need. An
// unknown role allows nothing.
func (r Role) Allows(need Role) bool { return r.Valid() && need.Valid() && r.rank() >= need.rank() }

// ParseRole returns the role named s; anything else is ErrInvalid naming
// the roles.
func ParseRole(s string) (Role, error) {
	if r := Role(s); r.Valid() {
		return r, nil
	}
	return "", fmt.Errorf("%w: role %q: want read, operator or admin", ErrInvalid, s)
}

// APIKeys issues, lists, revokes and checks the bearer keys of the API.
// Only a key's hash is stored; the key itself is shown once, on creation.
type APIKeys struct {
	c *core

	// touched is when each key's LastUsed was last written (or found
	// fresh), so that of many concurrent requests only one writes.
	touchMu sync.Mutex
	touched map[string]time.Time
}

// APIKeyView is an API key as listed: never the key or its hash.
type APIKeyView struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Prefix   string    `json:"prefix"`
	Role     Role      `json:"role"`
	Created  time.Time `json:"created"`
	Expires  time.Time `json:"expires,omitzero"`
	LastUsed time.Time `json:"lastUsed,omitzero"`
	Revoked  bool      `json:"revoked,omitempty"`
}

func keyView(k store.APIKey) APIKeyView {
	return APIKeyView{ID: k.ID, Name: k.Name, Prefix: k.Prefix, Role: Role(k.Role), Created: k.Created,
		Expires: k.Expires, LastUsed: k.LastUsed, Revoked: k.Revoked}
}

// APIKeySpec describes a key to issue.
type APIKeySpec struct {
	// Name labels the key in listings and request logs: letters, digits,
	// '.', '_' or '-'.
	Name string
	// Role is what the key may do.
	Role Role
	// Expires is when the key stops working; zero means never. It must be
	// in the future.
	Expires time.Time
}

// HashAPIKey returns the stored form of an API key.
func HashAPIKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// apiKeyPrefix starts every API key, so a leaked key is recognisable by
// secret scanners.
const apiKeyPrefix = "chk_"

// touchEvery is how stale a key's LastUsed may get: writing it on every
// request would cost a synchronous disk write per request.
const touchEvery = time.Minute

func newAPIKey() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return apiKeyPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

// Create makes a new admin key that never expires and returns it in
// clear, the only time it is shown. A bad name is ErrInvalid.
func (ks *APIKeys) Create(ctx context.Context, name string) (string, APIKeyView, error) {
	return ks.Issue(ctx, APIKeySpec{Name: name, Role: RoleAdmin})
}

// Issue makes a new key as spec says and returns it in clear, the only
// time it is shown. A bad name, an unknown role or an expiry not in the
// future is ErrInvalid.
func (ks *APIKeys) Issue(ctx context.Context, spec APIKeySpec) (string, APIKeyView, error) {
	if !instanceNameRe.MatchString(spec.Name) {
		return "", APIKeyView{}, fmt.Errorf("%w: key name %q: want letters, digits, '.', '_' or '-'", ErrInvalid, spec.Name)
	}
	if _, err := ParseRole(string(spec.Role)); err != nil {
		return "", APIKeyView{}, fmt.Errorf("key %q: %w", spec.Name, err)
	}
	if !spec.Expires.IsZero() && !spec.Expires.After(ks.c.now()) {
		return "", APIKeyView{}, fmt.Errorf("%w: key %q: expiry %s is not in the future", ErrInvalid, spec.Name, spec.Expires.UTC().Format(time.RFC3339))
	}
	key, err := newAPIKey()
	if err != nil {
		return "", APIKeyView{}, err
	}
	k, err := ks.c.st.CreateAPIKey(ctx, store.APIKey{
		Name: spec.Name, Hash: HashAPIKey(key), Prefix: key[:len(apiKeyPrefix)+6],
		Role: string(spec.Role), Expires: spec.Expires.UTC(),
	})
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

// Revoke revokes a key by id. Authenticate reads the store on every
// request, so the key stops working at once.
func (ks *APIKeys) Revoke(ctx context.Context, id string) error {
	if err := ks.c.st.RevokeAPIKey(ctx, id); err != nil {
		return fmt.Errorf("API key %q: %w", id, fromStore(err))
	}
	return nil
}

// Authenticate returns the key a bearer token belongs to, and records its
// use at most once a minute. A missing, unknown, revoked or expired key is
// ErrUnauthorized, saying which. It reads the store every time, so a
// revocation or expiry applies to the next request.
func (ks *APIKeys) Authenticate(ctx context.Context, token string) (APIKeyView, error) {
	if token == "" {
		return APIKeyView{}, fmt.Errorf("%w: no API key given", ErrUnauthorized)
	}
	k, err := ks.c.st.APIKeyByHash(ctx, HashAPIKey(token))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return APIKeyView{}, fmt.Errorf("%w: unknown API key", ErrUnauthorized)
	case err != nil:
		return APIKeyView{}, fromStore(err)
	case k.Revoked:
		return APIKeyView{}, fmt.Errorf("%w: API key %q (id %s) was revoked", ErrUnauthorized, k.Name, k.ID)
	}
	now := ks.c.now()
	if !k.Expires.IsZero() && !now.Before(k.Expires) {
		return APIKeyView{}, fmt.Errorf("%w: API key %q (id %s) expired at %s", ErrUnauthorized, k.Name, k.ID, k.Expires.UTC().Format(time.RFC3339))
	}
	if !Role(k.Role).Valid() {
		return APIKeyView{}, fmt.Errorf("%w: API key %q (id %s) has unknown role %q", ErrUnauthorized, k.Name, k.ID, k.Role)
	}
	if ks.claimTouch(k.ID, k.LastUsed, now) {
		if err := ks.c.st.TouchAPIKey(ctx, k.ID); err != nil {
			ks.c.log.Warn().Err(err).Str("apikey", k.Name).Msg("recording API key use")
		}
	}
	return keyView(k), nil
}

// claimTouch reports whether this request should write the key's LastUsed:
// not when the stored time is fresh, nor when another request claimed the
// write within touchEvery.
func (ks *APIKeys) claimTouch(id string, stored, now time.Time) bool {
	if now.Sub(stored) < touchEvery {
		return false
	}
	ks.touchMu.Lock()
	defer ks.touchMu.Unlock()
	if ks.touched == nil {
		ks.touched = map[string]time.Time{}
	}
	if last, ok := ks.touched[id]; ok && now.Sub(last) < touchEvery {
		return false
	}
	// Entries of keys that were touched long ago are dropped, so the map
	// holds at most the keys used in the last touchEvery.
	for k, t := range ks.touched {
		if now.Sub(t) >= touchEvery {
			delete(ks.touched, k)
		}
	}
	ks.touched[id] = now
	return true
}

// Ensure creates an admin key named "bootstrap" when no usable key exists,
// and returns it in clear; otherwise it returns "".
func (ks *APIKeys) Ensure(ctx context.Context) (string, error) {
	keys, err := ks.c.st.ListAPIKeys(ctx)
	if err != nil {
		return "", fromStore(err)
	}
	now := ks.c.now()
	for _, k := range keys {
		if !k.Revoked && k.Role == string(RoleAdmin) && (k.Expires.IsZero() || now.Before(k.Expires)) {
			return "", nil
		}
	}
	key, _, err := ks.Create(ctx, "bootstrap")
	return key, err
}
