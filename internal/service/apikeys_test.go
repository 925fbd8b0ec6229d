package service_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/connhost/connhost/internal/secrets"
	"github.com/connhost/connhost/internal/service"
	"github.com/connhost/connhost/internal/store"
	"github.com/connhost/connhost/internal/testenv"
)

// TestAPIKeys: a key is shown once, stored as its hash, authenticates
// until revoked, and is never listed.
func TestAPIKeys(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, _, err := e.svc.APIKeys.Create(ctx, "bad name")
	wantErr(t, err, service.ErrInvalid)
	key, v, err := e.svc.APIKeys.Create(ctx, "ci")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(key, "chk_") || v.Name != "ci" || v.Role != service.RoleAdmin || !strings.HasPrefix(key, v.Prefix) || len(v.Prefix) >= len(key) {
		t.Errorf("key %q, view %+v", key, v)
	}
	if stored, err := e.st.APIKeyByHash(ctx, service.HashAPIKey(key)); err != nil || stored.ID != v.ID || strings.Contains(stored.Hash, key) {
		t.Errorf("stored key %+v, %v", stored, err)
	}
	for _, tc := range []struct {
		name, token string
		want        error
	}{
		{"no token", "", service.ErrUnauthorized},
		{"unknown token", "chk_nosuch", service.ErrUnauthorized},
		{"the key", key, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.svc.APIKeys.Authenticate(ctx, tc.token)
			wantErr(t, err, tc.want)
			if err == nil && got.ID != v.ID {
				t.Errorf("authenticated as %+v", got)
			}
		})
	}
	keys, err := e.svc.APIKeys.List(ctx)
	if err != nil || len(keys) != 1 || keys[0].LastUsed.IsZero() {
		t.Fatalf("list %+v, %v", keys, err)
	}
	if b, _ := json.Marshal(keys); strings.Contains(string(b), key) || strings.Contains(string(b), service.HashAPIKey(key)) {
		t.Errorf("the list shows the key or its hash: %s", b)
	}

	// Ensure creates a bootstrap key only when no usable key is left.
	if boot, err := e.svc.APIKeys.Ensure(ctx); err != nil || boot != "" {
		t.Errorf("ensure with a live key: %q, %v", boot, err)
	}
	wantErr(t, e.svc.APIKeys.Revoke(ctx, "nosuch"), service.ErrNotFound)
	wantErr(t, e.svc.APIKeys.Revoke(ctx, v.ID), nil)
	_, err = e.svc.APIKeys.Authenticate(ctx, key)
	wantErr(t, err, service.ErrUnauthorized)
	boot, err := e.svc.APIKeys.Ensure(ctx)
	if err != nil || boot == "" {
		t.Fatalf("ensure with every key revoked: %q, %v", boot, err)
	}
	if got, err := e.svc.APIKeys.Authenticate(ctx, boot); err != nil || got.Name != "bootstrap" {
		t.Errorf("bootstrap key: %+v, %v", got, err)
	}
}

// TestAPIKeyRolesExpiryLastUsed: keys are issued with a role and an
// optional expiry, refused once expired, and record their last use at
// most once a minute.
func TestAPIKeyRolesExpiryLastUsed(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()).UTC() }
	advance := func(d time.Duration) { now.Add(int64(d)) }
	st, err := store.Open(t.Context(), filepath.Join(t.TempDir(), "db"), store.Options{GCInterval: -1, Tune: testenv.SmallTables, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	box, err := secrets.New([]byte(rand.Text() + rand.Text())[:secrets.KeySize])
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(t.Context(), service.Options{Store: st, Runtime: rt, Secrets: box, Logger: zerolog.Nop(), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	ctx := t.Context()
	start := clock()

	issues := []struct {
		name string
		spec service.APIKeySpec
		want error
	}{
		{"unknown role", service.APIKeySpec{Name: "x", Role: "root"}, service.ErrInvalid},
		{"no role", service.APIKeySpec{Name: "x"}, service.ErrInvalid},
		{"expiry now", service.APIKeySpec{Name: "x", Role: service.RoleRead, Expires: start}, service.ErrInvalid},
		{"expiry past", service.APIKeySpec{Name: "x", Role: service.RoleRead, Expires: start.Add(-time.Hour)}, service.ErrInvalid},
		{"read, expiring", service.APIKeySpec{Name: "dash", Role: service.RoleRead, Expires: start.Add(time.Hour)}, nil},
	}
	var key string
	for _, tc := range issues {
		k, v, err := svc.APIKeys.Issue(ctx, tc.spec)
		wantErr(t, err, tc.want)
		if err == nil {
			key = k
			if v.Role != service.RoleRead || !v.Expires.Equal(start.Add(time.Hour)) {
				t.Errorf("%s: view %+v", tc.name, v)
			}
		}
	}

	// LastUsed: written on first use, then not again within a minute.
	steps := []struct {
		advance  time.Duration
		lastUsed time.Duration // since start
	}{
		{0, 0},
		{30 * time.Second, 0},
		{31 * time.Second, 61 * time.Second},
		{59 * time.Second, 61 * time.Second},
	}
	for i, s := range steps {
		advance(s.advance)
		v, err := svc.APIKeys.Authenticate(ctx, key)
		if err != nil || v.Role != service.RoleRead {
			t.Fatalf("step %d: %+v, %v", i, v, err)
		}
		got, _ := st.APIKeyByHash(ctx, service.HashAPIKey(key))
		if !got.LastUsed.Equal(start.Add(s.lastUsed)) {
			t.Errorf("step %d: LastUsed %v, want start+%v", i, got.LastUsed.Sub(start), s.lastUsed)
		}
	}

	// Expiry is checked on every request.
	advance(time.Hour - 120*time.Second) // exactly the expiry
	if _, err := svc.APIKeys.Authenticate(ctx, key); err == nil || !errors.Is(err, service.ErrUnauthorized) || !strings.Contains(err.Error(), "expired at 2026-03-01T13:00:00Z") {
		t.Errorf("expired key: %v", err)
	}

	// Ensure does not count a read key: only an admin key can manage keys.
	boot, err := svc.APIKeys.Ensure(ctx)
	if err != nil || boot == "" {
		t.Errorf("Ensure with only a read key: %q, %v; want a bootstrap admin key", boot, err)
	}
}

func TestRoleAllows(t *testing.T) {
	tests := []struct {
		have, need service.Role
		want       bool
	}{
		{service.RoleRead, service.RoleRead, true},
		{service.RoleRead, service.RoleOperator, false},
		{service.RoleRead, service.RoleAdmin, false},
		{service.RoleOperator, service.RoleRead, true},
		{service.RoleOperator, service.RoleOperator, true},
		{service.RoleOperator, service.RoleAdmin, false},
		{service.RoleAdmin, service.RoleAdmin, true},
		{service.RoleAdmin, service.RoleRead, true},
		{"root", service.RoleRead, false},
		{service.RoleAdmin, "root", false},
		{"", "", false},
	}
	for _, tc := range tests {
		if got := tc.have.Allows(tc.need); got != tc.want {
			t.Errorf("%q.Allows(%q) = %v, want %v", tc.have, tc.need, got, tc.want)
		}
	}
}
