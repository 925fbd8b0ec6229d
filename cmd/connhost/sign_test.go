package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/connhost/connhost/internal/signing"
)

// copyFile copies src into dir and returns the new path.
func copyFile(t *testing.T, src, dir string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, filepath.Base(src))
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// keygen makes an unencrypted key pair with the CLI and returns its prefix.
func keygen(t *testing.T, dir, name string) string {
	t.Helper()
	prefix := filepath.Join(dir, name)
	check(t, connhost(t, nil, "plugin", "keygen", "--no-password", "-o", prefix), exitOK, []string{"key ID "}, nil)
	return prefix
}

func TestSignVerify(t *testing.T) {
	dir := t.TempDir()
	key, other := keygen(t, dir, "author"), keygen(t, dir, "other")
	signed := copyFile(t, echoWasm, dir)
	check(t, connhost(t, nil, "plugin", "sign", "--key", key, signed), exitOK, []string{"signed " + signed}, nil)
	sig, err := os.ReadFile(signed + ".minisig")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(sig), "trusted comment: connhost-plugin name=echo version=0.1.0 sha256=") {
		t.Fatalf("signature lacks the plugin claim:\n%s", sig)
	}

	tamperedDir := t.TempDir()
	tampered := copyFile(t, signed, tamperedDir)
	copyFile(t, signed+".minisig", tamperedDir)
	b, _ := os.ReadFile(tampered)
	b[20] ^= 1 // inside the code, before the manifest section
	if err := os.WriteFile(tampered, b, 0o644); err != nil {
		t.Fatal(err)
	}
	unsigned := copyFile(t, echoWasm, t.TempDir())

	tests := []struct {
		name     string
		args     []string
		code     int
		inStdout []string
		inStderr []string
	}{
		{"valid", []string{"--pub", key + ".pub", signed}, exitOK, []string{"verified echo@0.1.0", "signed by key ID"}, nil},
		{"valid among several keys", []string{"--pub", other + ".pub", "--pub", key + ".pub", signed}, exitOK, []string{"verified echo@0.1.0"}, nil},
		{"tampered wasm", []string{"--pub", key + ".pub", tampered}, exitFailed, nil, []string{"plugin file was tampered with"}},
		{"unknown key", []string{"--pub", other + ".pub", signed}, exitFailed, nil, []string{"signed by an unknown key", "not among the trusted keys"}},
		{"unsigned", []string{"--pub", key + ".pub", unsigned}, exitFailed, nil, []string{"unsigned and require_signed is on"}},
		{"tampered signature", []string{"--pub", key + ".pub", "--sig", writeTemp(t, "s.minisig",
			strings.Replace(string(sig), "version=0.1.0", "version=0.2.0", 1)), signed}, exitFailed, nil, []string{"tampered", "global signature"}},
		{"no key", []string{signed}, exitUsage, nil, []string{"want --pub"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, connhost(t, nil, append([]string{"plugin", "verify"}, tt.args...)...), tt.code, tt.inStdout, tt.inStderr)
		})
	}
}

// TestSignInterop: connhost's signature verifies with minisign -V, and a
// plugin signed by minisign -S with the documented trusted comment verifies
// with connhost plugin verify.
func TestSignInterop(t *testing.T) {
	if _, err := exec.LookPath("minisign"); err != nil {
		t.Skip("minisign is not installed")
	}
	dir := t.TempDir()
	key := keygen(t, dir, "k")
	file := copyFile(t, echoWasm, dir)
	check(t, connhost(t, nil, "plugin", "sign", "--key", key, file), exitOK, nil, nil)
	if out, err := exec.Command("minisign", "-V", "-p", key+".pub", "-m", file).CombinedOutput(); err != nil {
		t.Fatalf("minisign -V: %v\n%s", err, out)
	}

	msDir := t.TempDir()
	if out, err := exec.Command("minisign", "-G", "-W", "-p", filepath.Join(msDir, "ms.pub"), "-s", filepath.Join(msDir, "ms.key")).CombinedOutput(); err != nil {
		t.Fatalf("minisign -G: %v\n%s", err, out)
	}
	msFile := copyFile(t, echoWasm, msDir)
	wasm, _ := os.ReadFile(msFile)
	claim := signing.PluginClaim{Name: "echo", Version: "0.1.0", SHA256: signing.SHA256Hex(wasm)}
	if out, err := exec.Command("minisign", "-S", "-s", filepath.Join(msDir, "ms.key"), "-m", msFile, "-t", claim.String()).CombinedOutput(); err != nil {
		t.Fatalf("minisign -S: %v\n%s", err, out)
	}
	check(t, connhost(t, nil, "plugin", "verify", "--pub", filepath.Join(msDir, "ms.pub"), msFile), exitOK, []string{"verified echo@0.1.0"}, nil)
	// A minisign key also signs through connhost.
	check(t, connhost(t, nil, "plugin", "sign", "--key", filepath.Join(msDir, "ms.key"), msFile), exitOK, nil, nil)
	check(t, connhost(t, nil, "plugin", "verify", "--pub", filepath.Join(msDir, "ms.pub"), msFile), exitOK, []string{"verified echo@0.1.0"}, nil)
}

// TestKeygenPassword: an encrypted key, at the interactive scrypt cost so
// the test stays fast (minisign's default cost runs only in
// internal/signing's BenchmarkMinisignDefaultKDF).
func TestKeygenPassword(t *testing.T) {
	dir := t.TempDir()
	pw := writeTemp(t, "pw", "correct horse\n")
	wrong := writeTemp(t, "wrong", "battery staple\n")
	prefix := filepath.Join(dir, "k")
	check(t, connhost(t, nil, "plugin", "keygen", "-o", prefix, "--kdf-cost", "cheap", "--password-file", pw), exitUsage, nil, []string{`--kdf-cost "cheap"`})
	check(t, connhost(t, nil, "plugin", "keygen", "-o", prefix, "--kdf-cost", "interactive", "--password-file", pw), exitOK, nil, nil)
	if fi, err := os.Stat(prefix); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret key file: %v %v", fi, err)
	}
	check(t, connhost(t, nil, "plugin", "keygen", "-o", prefix, "--no-password"), exitUsage, nil, []string{"exists"})
	file := copyFile(t, echoWasm, dir)
	check(t, connhost(t, nil, "plugin", "sign", "--key", prefix, "--password-file", wrong, file), exitUsage, nil, []string{"wrong password"})
	check(t, connhost(t, nil, "plugin", "sign", "--key", prefix, "--password-file", pw, file), exitOK, nil, nil)
	check(t, connhost(t, nil, "plugin", "verify", "--pub", prefix+".pub", file), exitOK, []string{"verified echo@0.1.0"}, nil)
	if _, err := exec.LookPath("minisign"); err == nil {
		// minisign reads the cost from the key file: the cheaper key is still a minisign key.
		cmd := exec.Command("minisign", "-S", "-s", prefix, "-m", file, "-x", file+".ms")
		cmd.Stdin = strings.NewReader("correct horse\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("minisign -S with the interactive-cost key: %v\n%s", err, out)
		}
	}
}
