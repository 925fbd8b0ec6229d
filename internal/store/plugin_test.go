package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	badger "github.com/dgraph-io/badger/v4"
)

func shaOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func TestPluginBlobs(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, Options{})
	mod := []byte("\x00asm\x01\x00\x00\x00 module bytes")
	sha := shaOf(mod)
	tests := []struct {
		name    string
		sha     string
		data    []byte
		wantErr error
	}{
		{"good", sha, mod, nil},
		{"again is harmless", sha, mod, nil},
		{"upper-case hash", strings.ToUpper(shaOf([]byte("x"))), []byte("x"), nil},
		{"hash mismatch", sha, []byte("other"), ErrCorrupt},
		{"not a hash", "abc", mod, ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.PutPluginBlob(ctx, tc.sha, tc.data); !errors.Is(err, tc.wantErr) {
				t.Fatalf("PutPluginBlob: %v, want %v", err, tc.wantErr)
			}
		})
	}
	if got, err := s.GetPluginBlob(ctx, sha); err != nil || string(got) != string(mod) {
		t.Fatalf("GetPluginBlob = %q, %v", got, err)
	}
	if _, err := s.GetPluginBlob(ctx, shaOf([]byte("never"))); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing blob: %v", err)
	}
	// Flip a byte on disk, as bit rot or tampering would.
	bad := append([]byte{}, mod...)
	bad[len(bad)-1] ^= 1
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(blobKey(sha), bad) }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetPluginBlob(ctx, sha); !errors.Is(err, ErrCorrupt) {
		t.Errorf("corrupted blob: %v, want ErrCorrupt", err)
	}
}

func TestPluginVersions(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, Options{})
	shared, other := []byte("module v1"), []byte("module v2")
	for _, b := range [][]byte{shared, other} {
		if err := s.PutPluginBlob(ctx, shaOf(b), b); err != nil {
			t.Fatal(err)
		}
	}
	puts := []struct {
		pv      PluginVersion
		wantErr error
	}{
		{PluginVersion{Name: "jira", Version: "1.10.0", SHA256: shaOf(other), Manifest: []byte(`{"name":"jira"}`), InstalledBy: "ann"}, nil},
		{PluginVersion{Name: "jira", Version: "1.9.0", SHA256: shaOf(shared)}, nil},
		{PluginVersion{Name: "jira", Version: "1.10.0-rc.1", SHA256: shaOf(shared)}, nil},
		{PluginVersion{Name: "slack", Version: "0.1.0", SHA256: shaOf(shared)}, nil},
		{PluginVersion{Name: "jira", Version: "1.9.0", SHA256: shaOf(shared)}, ErrExists},
		{PluginVersion{Name: "jira", Version: "2.0.0", SHA256: shaOf([]byte("absent"))}, ErrNotFound},
		{PluginVersion{Name: "jira", Version: "", SHA256: shaOf(shared)}, ErrInvalid},
	}
	for _, tc := range puts {
		if _, err := s.PutPluginVersion(ctx, tc.pv); !errors.Is(err, tc.wantErr) {
			t.Errorf("PutPluginVersion(%s %s): %v, want %v", tc.pv.Name, tc.pv.Version, err, tc.wantErr)
		}
	}
	vs, err := s.ListPluginVersions(ctx, "jira")
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(vs, func(p PluginVersion) string { return p.Version }); len(got) != 3 || got[0] != "1.10.0" || got[1] != "1.10.0-rc.1" || got[2] != "1.9.0" {
		t.Errorf("ListPluginVersions = %v, want newest first", got)
	}
	latest, err := s.ListPlugins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(latest, func(p PluginVersion) string { return p.Name + "@" + p.Version }); len(got) != 2 || got[0] != "jira@1.10.0" || got[1] != "slack@0.1.0" {
		t.Errorf("ListPlugins = %v", got)
	}
	if pv, err := s.GetPluginVersion(ctx, "jira", "1.10.0"); err != nil || pv.InstalledBy != "ann" || string(pv.Manifest) != `{"name":"jira"}` || pv.InstalledAt.IsZero() {
		t.Errorf("GetPluginVersion = %+v, %v", pv, err)
	}
	checkIndexes(t, s)

	// The shared blob is used by three versions; it goes with the last one.
	steps := []struct {
		name, version string
		blobGone      bool
	}{
		{"jira", "1.9.0", false},
		{"jira", "1.10.0-rc.1", false},
		{"slack", "0.1.0", true},
	}
	for _, st := range steps {
		if err := s.DeletePluginVersion(ctx, st.name, st.version); err != nil {
			t.Fatal(err)
		}
		_, err := s.GetPluginBlob(ctx, shaOf(shared))
		if gone := errors.Is(err, ErrNotFound); gone != st.blobGone {
			t.Errorf("after deleting %s %s: blob gone = %v (%v), want %v", st.name, st.version, gone, err, st.blobGone)
		}
		checkIndexes(t, s)
	}
	if err := s.DeletePluginVersion(ctx, "slack", "0.1.0"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	if _, err := s.GetPluginBlob(ctx, shaOf(other)); err != nil {
		t.Errorf("unrelated blob: %v", err)
	}
}

func TestCompareSemver(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"1.0.0", "1.0.0", 0},
		{"1.10.0", "1.9.0", 1},
		{"1.0.0-rc.1", "1.0.0", -1},
		{"1.0.0-alpha", "1.0.0-alpha.1", -1},
		{"1.0.0-alpha.1", "1.0.0-alpha.beta", -1},
		{"1.0.0-beta.11", "1.0.0-beta.2", 1},
		{"1.0.0+build", "1.0.0", 0},
		{"junk", "0.0.1", -1},
	}
	for _, tc := range tests {
		if got := compareSemver(tc.a, tc.b); got != tc.want {
			t.Errorf("compareSemver(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := compareSemver(tc.b, tc.a); got != -tc.want {
			t.Errorf("compareSemver(%q, %q) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}

// TestPluginVersionMinisigSurvivesReopen: the detached signature kept with
// a version is read back after the store is closed and reopened, and a
// record written without one (as older connhost did) reads as unsigned.
func TestPluginVersionMinisigSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openAt(t, dir, Options{})
	mod := []byte("\x00asm\x01\x00\x00\x00 signed module")
	sig := []byte("untrusted comment: x\nRWQ...\ntrusted comment: y\nZZZ\n")
	tests := []struct {
		name, version string
		minisig       []byte
	}{
		{"signed", "1.0.0", sig},
		{"unsigned", "1.0.1", nil},
	}
	if err := s.PutPluginBlob(ctx, shaOf(mod), mod); err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		if _, err := s.PutPluginVersion(ctx, PluginVersion{Name: "p", Version: tc.version, SHA256: shaOf(mod), Manifest: []byte(`{}`), Minisig: tc.minisig}); err != nil {
			t.Fatal(err)
		}
	}
	// A record as an older connhost wrote it: no minisig field at all.
	if err := s.db.Update(func(txn *badger.Txn) error {
		return txn.Set(pvKey("p", "0.9.0"), []byte(`{"name":"p","version":"0.9.0","sha256":"`+shaOf(mod)+`","signature":"signed"}`))
	}); err != nil {
		t.Fatal(err)
	}
	tests = append(tests, struct {
		name, version string
		minisig       []byte
	}{"older record", "0.9.0", nil})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, dir, Options{})
	t.Cleanup(func() { _ = s.Close() })
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pv, err := s.GetPluginVersion(ctx, "p", tc.version)
			if err != nil {
				t.Fatal(err)
			}
			if string(pv.Minisig) != string(tc.minisig) || (tc.minisig == nil) != (pv.Minisig == nil) {
				t.Fatalf("minisig after reopen = %q, want %q", pv.Minisig, tc.minisig)
			}
		})
	}
}

// TestAddPluginSignature: a version without a signature gains one (with
// its verdict); one that has a signature keeps it; an unknown version is
// ErrNotFound.
func TestAddPluginSignature(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, Options{})
	mod := []byte("\x00asm\x01\x00\x00\x00 module")
	if err := s.PutPluginBlob(ctx, shaOf(mod), mod); err != nil {
		t.Fatal(err)
	}
	for v, sig := range map[string][]byte{"1.0.0": nil, "2.0.0": []byte("first")} {
		if _, err := s.PutPluginVersion(ctx, PluginVersion{Name: "p", Version: v, SHA256: shaOf(mod), Signature: "unsigned", Minisig: sig}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name, version string
		add           []byte
		want          string
		wantStatus    string
		wantErr       error
	}{
		{"added to an unsigned version", "1.0.0", []byte("sig"), "sig", "signed", nil},
		{"a kept signature stays", "2.0.0", []byte("second"), "first", "unsigned", nil},
		{"unknown version", "3.0.0", []byte("sig"), "", "", ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pv, err := s.AddPluginSignature(ctx, "p", tc.version, tc.add, "signed", "KEY")
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("AddPluginSignature: %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			got, err := s.GetPluginVersion(ctx, "p", tc.version)
			if err != nil || string(got.Minisig) != tc.want || got.Signature != tc.wantStatus || string(pv.Minisig) != tc.want {
				t.Fatalf("stored %q %q (returned %q), %v; want %q %q", got.Minisig, got.Signature, pv.Minisig, err, tc.want, tc.wantStatus)
			}
		})
	}
}
