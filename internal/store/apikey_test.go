package store

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestAPIKeys(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	s := newStore(t, Options{Now: clk.Now})
	ci, err := s.CreateAPIKey(ctx, APIKey{Name: "ci", Hash: "hash-ci", Prefix: "chk_ab", Revoked: true, LastUsed: clk.Now()})
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
		{"hash taken", APIKey{Name: "other", Hash: "hash-ci"}, ErrExists},
		{"empty hash", APIKey{Name: "nohash"}, ErrInvalid},
		{"second key", APIKey{Name: "ops", Hash: "hash-ops"}, nil},
	}
	for _, tc := range creates {
		if _, err := s.CreateAPIKey(ctx, tc.in); !errors.Is(err, tc.wantErr) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.wantErr)
		}
	}
	if got, err := s.APIKeyByHash(ctx, "hash-ci"); err != nil || got.ID != ci.ID {
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
	if err != nil || len(list) != 2 || list[0].ID != ci.ID || !list[0].Revoked || list[1].Revoked {
		t.Errorf("ListAPIKeys = %+v, %v", list, err)
	}
	checkIndexes(t, s)
}
