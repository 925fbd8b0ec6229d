package service_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/connhost/connhost/internal/service"
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
	if !strings.HasPrefix(key, "chk_") || v.Name != "ci" || !strings.HasPrefix(key, v.Prefix) || len(v.Prefix) >= len(key) {
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
