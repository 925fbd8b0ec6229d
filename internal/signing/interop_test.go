package signing

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// minisign runs Debian's minisign in dir with stdin, failing the test on a
// non-zero exit.
func minisign(t testing.TB, dir, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command("minisign", args...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("minisign %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func needMinisign(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("minisign"); err != nil {
		t.Skip("minisign is not installed")
	}
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func read(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSignedByMinisign: a key pair made by minisign -G -W, a plugin signed
// by minisign -S with the plugin claim as trusted comment, verified here;
// the same file signed with minisign's default comment is refused as such.
func TestSignedByMinisign(t *testing.T) {
	needMinisign(t)
	dir := t.TempDir()
	minisign(t, dir, "", "-G", "-W", "-p", "k.pub", "-s", "k.key")
	wasm := plugin(t, "ticketdesk", "1.2.0")
	write(t, filepath.Join(dir, "p.wasm"), wasm)
	claim := PluginClaim{"ticketdesk", "1.2.0", SHA256Hex(wasm)}
	minisign(t, dir, "", "-S", "-s", "k.key", "-m", "p.wasm", "-t", claim.String())

	pub, err := ParsePublicKey(read(t, filepath.Join(dir, "k.pub")))
	if err != nil {
		t.Fatal(err)
	}
	if id := strings.TrimLeft(pub.ID.String(), "0"); !strings.Contains(string(read(t, filepath.Join(dir, "k.pub"))), id) {
		t.Errorf("key ID %s is not the one minisign prints", pub.ID)
	}
	priv, err := ParsePrivateKey(read(t, filepath.Join(dir, "k.key")), nil)
	if err != nil {
		t.Fatalf("minisign's unencrypted secret key: %v", err)
	}
	if priv.Public().ID != pub.ID || !priv.Public().Key.Equal(pub.Key) {
		t.Fatal("secret and public key files disagree")
	}
	p := NewPolicy([]PublicKey{pub}, true)
	v, err := p.Verify(wasm, read(t, filepath.Join(dir, "p.wasm.minisig")))
	if err != nil {
		t.Fatalf("minisign-signed plugin refused: %v", err)
	}
	if !v.Signed || v.KeyID != pub.ID {
		t.Fatalf("verified = %+v", v)
	}

	minisign(t, dir, "", "-S", "-s", "k.key", "-m", "p.wasm", "-x", "default.minisig")
	if _, err := p.Verify(wasm, read(t, filepath.Join(dir, "default.minisig"))); !errors.Is(err, ErrNotPluginComment) {
		t.Fatalf("default trusted comment: want ErrNotPluginComment, got %v", err)
	}
}

// TestVerifiedByMinisign: keys and signatures made here are accepted by
// minisign: our signature verifies with minisign -V, and minisign signs
// with our secret key file, unencrypted and password-protected.
func TestVerifiedByMinisign(t *testing.T) {
	needMinisign(t)
	dir := t.TempDir()
	k := newKey(t)
	write(t, filepath.Join(dir, "k.pub"), k.Public().Marshal())
	wasm := plugin(t, "ticketdesk", "1.2.0")
	write(t, filepath.Join(dir, "p.wasm"), wasm)
	write(t, filepath.Join(dir, "p.wasm.minisig"), mustSignPlugin(t, k, wasm))

	out := minisign(t, dir, "", "-V", "-p", "k.pub", "-m", "p.wasm")
	want := "Trusted comment: " + PluginClaim{"ticketdesk", "1.2.0", SHA256Hex(wasm)}.String()
	if !strings.Contains(out, want) {
		t.Fatalf("minisign -V output lacks %q:\n%s", want, out)
	}
	// minisign -V must also catch tampering in our format.
	tampered := append([]byte(nil), wasm...)
	tampered[len(rawModule)-3] ^= 1
	write(t, filepath.Join(dir, "p.wasm"), tampered)
	if b, err := exec.Command("minisign", "-V", "-p", filepath.Join(dir, "k.pub"), "-m", filepath.Join(dir, "p.wasm")).CombinedOutput(); err == nil {
		t.Fatalf("minisign -V accepted a tampered file:\n%s", b)
	}
	write(t, filepath.Join(dir, "p.wasm"), wasm)

	tests := []struct {
		name     string
		password []byte
		stdin    string
	}{
		{"unencrypted", nil, ""},
		{"encrypted", []byte("pw"), "pw\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keyFile, err := MarshalPrivateKey(k, tt.password, InteractiveKDF)
			if err != nil {
				t.Fatal(err)
			}
			write(t, filepath.Join(dir, tt.name+".key"), keyFile)
			sig := tt.name + ".minisig"
			minisign(t, dir, tt.stdin, "-S", "-s", tt.name+".key", "-m", "p.wasm", "-x", sig,
				"-t", PluginClaim{"ticketdesk", "1.2.0", SHA256Hex(wasm)}.String())
			if _, err := NewPolicy([]PublicKey{k.Public()}, true).Verify(wasm, read(t, filepath.Join(dir, sig))); err != nil {
				t.Fatalf("signed by minisign with our key file: %v", err)
			}
		})
	}
}
