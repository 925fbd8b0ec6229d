// Package cache is a typed, TTL-aware view of a connector instance's
// integration cache (the cache_get, cache_set and cache_delete host
// functions). Entries live on the host, per connector instance, so every
// module instance of the plugin sees them; a value kept in guest memory would
// be seen by one module instance only.
package cache

import (
	"context"
	"fmt"
	"time"

	sdk "github.com/connhost/connhost/sdk-guest"
)

// Cache stores values of type T, JSON-encoded, under keys that share a
// prefix. The zero TTL keeps entries until deleted. A Cache is a small value:
// build one per call from the handler's Host.
type Cache[T any] struct {
	h      *sdk.Host
	prefix string
	ttl    time.Duration
}

// New returns a Cache over h's integration cache whose keys start with
// prefix and whose entries expire after ttl (≤ 0: never).
func New[T any](h *sdk.Host, prefix string, ttl time.Duration) Cache[T] {
	return Cache[T]{h: h, prefix: prefix, ttl: ttl}
}

func (c Cache[T]) key(k string) string { return c.prefix + k }

// Get returns the value under key and whether it was found; an expired entry
// is not found.
func (c Cache[T]) Get(ctx context.Context, key string) (T, bool, error) {
	var v T
	ok, err := c.h.CacheGet(ctx, c.key(key), &v)
	if err != nil {
		var zero T
		return zero, false, fmt.Errorf("cache get %q: %w", c.key(key), err)
	}
	return v, ok, nil
}

// Set stores v under key with the Cache's TTL.
func (c Cache[T]) Set(ctx context.Context, key string, v T) error {
	return c.SetTTL(ctx, key, v, c.ttl)
}

// SetTTL stores v under key with its own TTL (≤ 0: never expires).
func (c Cache[T]) SetTTL(ctx context.Context, key string, v T, ttl time.Duration) error {
	if err := c.h.CacheSet(ctx, c.key(key), v, ttl); err != nil {
		return fmt.Errorf("cache set %q: %w", c.key(key), err)
	}
	return nil
}

// Delete removes key; a missing key is no error.
func (c Cache[T]) Delete(ctx context.Context, key string) error {
	if err := c.h.CacheDelete(ctx, c.key(key)); err != nil {
		return fmt.Errorf("cache delete %q: %w", c.key(key), err)
	}
	return nil
}

// GetOrLoad returns the cached value under key, or calls load, stores its
// value with the TTL it returns (≤ 0: the Cache's TTL) and returns it. A
// load error is returned as is and nothing is stored. Concurrent module
// instances may both load on a miss; for values that must be fetched once
// (tokens) coordinate through the versioned integration context instead, as
// package oauth2 does.
func (c Cache[T]) GetOrLoad(ctx context.Context, key string, load func(context.Context) (T, time.Duration, error)) (T, error) {
	if v, ok, err := c.Get(ctx, key); err != nil || ok {
		return v, err
	}
	v, ttl, err := load(ctx)
	if err != nil {
		var zero T
		return zero, err
	}
	if ttl <= 0 {
		ttl = c.ttl
	}
	return v, c.SetTTL(ctx, key, v, ttl)
}
