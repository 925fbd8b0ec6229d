package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

func TestAPIKeys(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	s := newStore(t, Options{Now: clk.Now})
	ci, err := s.CreateAPIKey(ctx, APIKey{Name: "ci", Hash: "hash-ci", Prefix: "chk_ab", Role: "read", Revoked: true, LastUsed: clk.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if ci.Revoked || !ci.LastUsed.IsZero() || ci.ID == "" {
		t.Errorf("a new key must start unrevoked and unused: %+v", ci)
	}
	creates := []struct {
		name    string
		in      APIKey
		wantErr error
	}{
		{"hash taken", APIKey{Name: "other", Hash: "hash-ci", Role: "read"}, ErrExists},
		{"empty hash", APIKey{Name: "nohash", Role: "read"}, ErrInvalid},
		{"empty role", APIKey{Name: "norole", Hash: "hash-norole"}, ErrInvalid},
		{"second key", APIKey{Name: "ops", Hash: "hash-ops", Role: "operator", Expires: clk.Now().Add(time.Hour)}, nil},
	}
	for _, tc := range creates {
		if _, err := s.CreateAPIKey(ctx, tc.in); !errors.Is(err, tc.wantErr) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.wantErr)
		}
	}
	if got, err := s.APIKeyByHash(ctx, "hash-ci"); err != nil || got.ID != ci.ID || got.Role != "read" {
		t.Errorf("APIKeyByHash = %+v, %v", got, err)
	}
	if _, err := s.APIKeyByHash(ctx, "guess"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown hash: %v", err)
	}

	touches := []struct {
		advance time.Duration
		want    time.Duration // LastUsed relative to the start
	}{
		{0, 0},
		{30 * time.Second, 0},                // within a minute: not rewritten
		{31 * time.Second, 61 * time.Second}, // past a minute: rewritten
		{10 * time.Second, 61 * time.Second},
	}
	start := clk.Now()
	for i, tc := range touches {
		clk.Advance(tc.advance)
		if err := s.TouchAPIKey(ctx, ci.ID); err != nil {
			t.Fatal(err)
		}
		got, _ := s.APIKeyByHash(ctx, "hash-ci")
		if !got.LastUsed.Equal(start.Add(tc.want)) {
			t.Errorf("touch %d: LastUsed = %v, want start+%v", i, got.LastUsed, tc.want)
		}
	}

	if err := s.RevokeAPIKey(ctx, ci.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeAPIKey(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("revoke missing: %v", err)
	}
	if got, err := s.APIKeyByHash(ctx, "hash-ci"); err != nil || !got.Revoked {
		t.Errorf("revoked key = %+v, %v", got, err)
	}
	list, err := s.ListAPIKeys(ctx)
	if err != nil || len(list) != 2 || list[0].ID != ci.ID || !list[0].Revoked || list[1].Revoked ||
		list[1].Role != "operator" || !list[1].Expires.Equal(start.Add(time.Hour)) {
		t.Errorf("ListAPIKeys = %+v, %v", list, err)
	}
	checkIndexes(t, s)
}

// TestMigrateKeyRoles opens a store written by a schema-1 binary, whose keys
// had no role, and finds them admin keys: they could do everything before.
func TestMigrateKeyRoles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	old := openAt(t, dir, Options{SchemaVersion: 1, Migrations: []Migration{}})
	// Records exactly as schema 1 wrote them: no role field.
	records := map[string]string{
		"k1": `{"id":"k1","name":"ci","hash":"hash-ci","prefix":"chk_ab","created":"2026-01-02T03:04:05Z"}`,
		"k2": `{"id":"k2","name":"old-revoked","hash":"hash-rev","created":"2026-01-02T03:04:05Z","lastUsed":"2026-02-01T00:00:00Z","revoked":true}`,
	}
	err := old.db.Update(func(txn *badger.Txn) error {
		for id, rec := range records {
			var k APIKey
			if err := json.Unmarshal([]byte(rec), &k); err != nil {
				return err
			}
			if err := txn.Set(apiKeyKey(id), []byte(rec)); err != nil {
				return err
			}
			if err := txn.Set(apiKeyHashKey(k.Hash), []byte(id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	for round := range 2 { // the second Open finds nothing left to do
		s := openAt(t, dir, Options{})
		if v := keysUnder(t, s, string(keySchema))[string(keySchema)]; v != fmt.Sprint(SchemaVersion) {
			t.Errorf("round %d: schema version %s, want %d", round, v, SchemaVersion)
		}
		tests := []struct {
			hash, name string
			revoked    bool
		}{
			{"hash-ci", "ci", false},
			{"hash-rev", "old-revoked", true},
		}
		for _, tc := range tests {
			k, err := s.APIKeyByHash(ctx, tc.hash)
			if err != nil {
				t.Fatalf("round %d: %s: %v", round, tc.name, err)
			}
			if k.Role != "admin" || k.Name != tc.name || k.Revoked != tc.revoked || k.Created.IsZero() {
				t.Errorf("round %d: migrated key %+v, want %s an admin key (revoked %v) with its fields kept", round, k, tc.name, tc.revoked)
			}
		}
		checkIndexes(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestMigrateKeyRolesKeepsRoles: a key that already has a role (a crash
// after part of the migration) keeps it.
func TestMigrateKeyRolesKeepsRoles(t *testing.T) {
	s := newStore(t, Options{})
	k, err := s.CreateAPIKey(t.Context(), APIKey{Name: "ro", Hash: "hash-ro", Role: "read"})
	if err != nil {
		t.Fatal(err)
	}
	if err := migrateKeyRoles(t.Context(), s.db); err != nil {
		t.Fatal(err)
	}
	if got, err := s.APIKeyByHash(t.Context(), "hash-ro"); err != nil || got.Role != "read" || got.ID != k.ID {
		t.Errorf("after migrating again: %+v, %v; want the read key unchanged", got, err)
	}
}
