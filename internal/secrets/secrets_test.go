package secrets

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSealOpen(t *testing.T) {
	key := make([]byte, KeySize)
	for i := range key {
		key[i] = byte(i)
	}
	box, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := box.Seal("hunter2", "inst/api_key")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, "hunter2") || !IsSealed(sealed) {
		t.Fatalf("sealed value leaks or lacks prefix: %q", sealed)
	}
	other, _ := box.Seal("hunter2", "inst/api_key")
	if other == sealed {
		t.Fatal("two seals of one value are equal: nonce reused")
	}
	tampered := []byte(sealed)
	tampered[len(tampered)-2] ^= 1
	otherKey := append([]byte(nil), key...)
	otherKey[0] ^= 1
	box2, _ := New(otherKey)
	tests := []struct {
		name   string
		box    *Box
		sealed string
		ad     string
		want   string
		err    bool
	}{
		{"round trip", box, sealed, "inst/api_key", "hunter2", false},
		{"wrong additional data", box, sealed, "inst/other", "", true},
		{"tampered", box, string(tampered), "inst/api_key", "", true},
		{"wrong key", box2, sealed, "inst/api_key", "", true},
		{"plaintext", box, "hunter2", "inst/api_key", "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.box.Open(tc.sealed, tc.ad)
			if (err != nil) != tc.err || got != tc.want {
				t.Fatalf("Open = %q, %v; want %q, err %v", got, err, tc.want, tc.err)
			}
		})
	}
}

func TestLoadOrCreateKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "secret.key")
	k1, created, err := LoadOrCreateKeyFile(path)
	if err != nil || !created || len(k1) != KeySize {
		t.Fatalf("create: %v created=%v len=%d", err, created, len(k1))
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", st.Mode().Perm())
	}
	k2, created, err := LoadOrCreateKeyFile(path)
	if err != nil || created || string(k1) != string(k2) {
		t.Fatalf("reload: %v created=%v same=%v", err, created, string(k1) == string(k2))
	}
	os.WriteFile(path, []byte("zz"), 0o600)
	if _, _, err := LoadOrCreateKeyFile(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("bad key file: err %v should name the file", err)
	}
}
