package signing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/testenv/wasmbuild"
)

// rawModule is testdata/plugin.wat compiled once by TestMain.
var rawModule []byte

func TestMain(m *testing.M) {
	var err error
	if rawModule, err = wasmbuild.Raw(context.Background(), "internal/signing/testdata/plugin.wat"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// plugin returns the test module carrying a manifest for name@version.
func plugin(t *testing.T, name, version string) []byte {
	t.Helper()
	wasm, err := abi.EmbedManifest(rawModule, &abi.Manifest{Name: name, Version: version, ABIVersion: abi.Version})
	if err != nil {
		t.Fatal(err)
	}
	return wasm
}

func newKey(t *testing.T) PrivateKey {
	t.Helper()
	k, err := GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// signWith signs wasm with an arbitrary trusted comment.
func signWith(t *testing.T, k PrivateKey, wasm []byte, comment string) []byte {
	t.Helper()
	s, err := Sign(k, wasm, comment, "test")
	if err != nil {
		t.Fatal(err)
	}
	return s.Marshal()
}

// replaceLine returns a signature file with line i replaced.
func replaceLine(sig []byte, i int, line string) []byte {
	lines := strings.Split(string(sig), "\n")
	lines[i] = line
	return []byte(strings.Join(lines, "\n"))
}

// flipBase64 alters one decoded byte of a base64 line while keeping it
// valid base64 and of the same length.
func flipBase64(line string, at int) string {
	b := []byte(line)
	if b[at] == 'A' {
		b[at] = 'B'
	} else {
		b[at] = 'A'
	}
	return string(b)
}

func TestPolicyVerify(t *testing.T) {
	trusted, stranger := newKey(t), newKey(t)
	v1 := plugin(t, "ticketdesk", "1.2.0")
	v2 := plugin(t, "ticketdesk", "1.3.0")
	sig1, err := SignPlugin(trusted, v1)
	if err != nil {
		t.Fatal(err)
	}
	tamperedWasm := bytes.Clone(v1)
	tamperedWasm[len(rawModule)-3] ^= 0x01 // a byte of the data segment, before the manifest
	lines := strings.Split(string(sig1), "\n")
	claim1 := PluginClaim{"ticketdesk", "1.2.0", SHA256Hex(v1)}
	claim2 := PluginClaim{"ticketdesk", "1.3.0", SHA256Hex(v2)}

	tests := []struct {
		name          string
		wasm, sig     []byte
		requireSigned bool
		want          error  // nil: admitted
		inMsg         string // the message names the failing check
		signed        bool
	}{
		{"valid", v1, sig1, true, nil, "", true},
		{"valid, require_signed off", v1, sig1, false, nil, "", true},
		{"unsigned, require_signed on", v1, nil, true, ErrUnsigned, "ticketdesk@1.2.0", false},
		{"unsigned, require_signed off", v1, nil, false, nil, "", false},
		{"tampered wasm", tamperedWasm, sig1, true, ErrTamperedPlugin, "tampered", false},
		{"tampered wasm, require_signed off", tamperedWasm, sig1, false, ErrTamperedPlugin, "does not match its signature", false},
		{"tampered trusted comment", v2, replaceLine(sig1, 2, "trusted comment: "+claim2.String()), true, ErrTamperedSignature, "global signature", false},
		{"tampered file signature", v1, replaceLine(sig1, 1, flipBase64(lines[1], 30)), true, ErrTamperedSignature, "altered", false},
		{"tampered global signature", v1, replaceLine(sig1, 3, flipBase64(lines[3], 10)), true, ErrTamperedSignature, "altered", false},
		{"truncated signature", v1, []byte(strings.Join(lines[:2], "\n")), true, ErrTamperedSignature, "lines", false},
		{"garbage signature", v1, []byte("not a signature\nx\ny\nz\n"), true, ErrTamperedSignature, "untrusted comment", false},
		{"unknown key", v1, mustSignPlugin(t, stranger, v1), true, ErrUnknownKey, stranger.ID.String(), false},
		{"unknown key, require_signed off", v1, mustSignPlugin(t, stranger, v1), false, ErrUnknownKey, "not among the trusted keys", false},
		{"old version replayed as new", v2, signWith(t, trusted, v2, claim1.String()), true, ErrClaimMismatch, "signed sha256", false},
		{"version mismatch", v2, signWith(t, trusted, v2, PluginClaim{"ticketdesk", "1.2.0", SHA256Hex(v2)}.String()), true, ErrClaimMismatch, `signed version "1.2.0", manifest version "1.3.0"`, false},
		{"name mismatch", v1, signWith(t, trusted, v1, PluginClaim{"other", "1.2.0", SHA256Hex(v1)}.String()), true, ErrClaimMismatch, `signed name "other"`, false},
		{"minisign default comment", v1, signWith(t, trusted, v1, "timestamp:1700000000\tfile:p.wasm\thashed"), true, ErrNotPluginComment, "minisign -S", false},
		{"claim without sha256", v1, signWith(t, trusted, v1, "connhost-plugin name=ticketdesk version=1.2.0"), true, ErrNotPluginComment, "missing sha256", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPolicy([]PublicKey{trusted.Public()}, tt.requireSigned)
			v, err := p.Verify(tt.wasm, tt.sig)
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Fatalf("want %v, got %v", tt.want, err)
				}
				if !strings.Contains(err.Error(), tt.inMsg) {
					t.Fatalf("error %q lacks %q", err, tt.inMsg)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if v.Signed != tt.signed || v.SHA256 != SHA256Hex(tt.wasm) || v.Manifest.Version != "1.2.0" {
				t.Fatalf("verified = %+v", v)
			}
			if tt.signed && (v.KeyID != trusted.ID || v.Warning != "") {
				t.Fatalf("signed: key %s warning %q", v.KeyID, v.Warning)
			}
			if !tt.signed && !strings.Contains(v.Warning, "unsigned") {
				t.Fatalf("unsigned plugin admitted without a warning: %+v", v)
			}
		})
	}
}

func mustSignPlugin(t *testing.T, k PrivateKey, wasm []byte) []byte {
	t.Helper()
	sig, err := SignPlugin(k, wasm)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func TestLoadPolicy(t *testing.T) {
	a, b := newKey(t), newKey(t)
	path := filepath.Join(t.TempDir(), "a.pub")
	if err := os.WriteFile(path, a.Public().Marshal(), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := LoadPolicy(PolicyConfig{TrustedKeys: []string{path, b.Public().String()}, RequireSigned: true})
	if err != nil {
		t.Fatal(err)
	}
	wasm := plugin(t, "p", "1.0.0")
	for _, k := range []PrivateKey{a, b} {
		if _, err := p.Verify(wasm, mustSignPlugin(t, k, wasm)); err != nil {
			t.Errorf("key %s: %v", k.ID, err)
		}
	}
	if _, err := LoadPolicy(PolicyConfig{TrustedKeys: []string{filepath.Join(t.TempDir(), "missing.pub")}}); err == nil {
		t.Fatal("a missing key file was accepted")
	}
}

// TestKeyNamePatterns: a key given with name patterns signs only plugins
// whose name matches one of them, in file and bare-key form; a key without
// patterns signs any name; malformed patterns are refused at load.
func TestKeyNamePatterns(t *testing.T) {
	acme, core, any := newKey(t), newKey(t), newKey(t)
	dir := t.TempDir()
	acmePub := filepath.Join(dir, "acme=vendor.pub") // "=" in a path still loads
	if err := os.WriteFile(acmePub, acme.Public().Marshal(), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := LoadPolicy(PolicyConfig{TrustedKeys: []string{acmePub + "=acme-*|acme_labs", core.Public().String() + "=core"}, RequireSigned: true})
	if err != nil {
		t.Fatal(err)
	}
	pAny, err := LoadPolicy(PolicyConfig{TrustedKeys: []string{acmePub, any.Public().String()}, RequireSigned: true})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		policy *Policy
		key    PrivateKey
		name   string
		want   error
		detail string
	}{
		{p, acme, "acme-tickets", nil, ""},
		{p, acme, "acme_labs", nil, ""},
		{p, acme, "ticketdesk", ErrNameNotAllowed, `key ID ` + acme.ID.String() + ` may sign only plugins named acme-* or acme_labs, not "ticketdesk"`},
		{p, acme, "acme", ErrNameNotAllowed, `not "acme"`},
		{p, core, "core", nil, ""},
		{p, core, "core-extra", ErrNameNotAllowed, `key ID ` + core.ID.String() + ` may sign only plugins named core`},
		{p, any, "core", ErrUnknownKey, ""},
		// Without patterns a key keeps signing any name.
		{pAny, acme, "ticketdesk", nil, ""},
		{pAny, any, "core", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name+" by "+tt.key.ID.String(), func(t *testing.T) {
			wasm := plugin(t, tt.name, "1.0.0")
			v, err := tt.policy.Verify(wasm, mustSignPlugin(t, tt.key, wasm))
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("want %v, got %v", tt.want, err)
			}
			if err != nil && !strings.Contains(err.Error(), tt.detail) {
				t.Errorf("message %q lacks %q", err, tt.detail)
			}
			if err == nil && (!v.Signed || v.KeyID != tt.key.ID) {
				t.Errorf("verified %+v", v)
			}
		})
	}
	for _, bad := range []string{acmePub + "=acme-[", acmePub + "=", acmePub + "=acme-*||x"} {
		if _, err := LoadPolicy(PolicyConfig{TrustedKeys: []string{bad}}); !errors.Is(err, path.ErrBadPattern) {
			t.Errorf("LoadPolicy(%q): %v, want a bad pattern", bad, err)
		}
	}
	if _, err := NewScopedPolicy([]TrustedKey{{Key: acme.Public(), Names: []string{"["}}}, false); !errors.Is(err, path.ErrBadPattern) {
		t.Errorf("NewScopedPolicy with a bad pattern: %v", err)
	}
	// Listed twice, once without patterns, the key's scope would depend on
	// the order: refused.
	if _, err := LoadPolicy(PolicyConfig{TrustedKeys: []string{acmePub + "=acme-*", acmePub}}); err == nil ||
		!strings.Contains(err.Error(), "listed more than once") {
		t.Errorf("a key listed twice with patterns: %v", err)
	}
}

// TestCheckDowngrade: nothing older than the current version, installed
// or not, and nothing new older than an installed version; the message
// names the offered and current versions.
func TestCheckDowngrade(t *testing.T) {
	tests := []struct {
		version, current string
		installed        []string
		want             error
		detail           string
	}{
		{"1.2.0", "", nil, nil, ""},
		{"1.2.0", "1.2.0", []string{"1.2.0"}, nil, ""},
		{"1.3.0", "1.2.5", []string{"1.2.0", "1.2.5"}, nil, ""},
		{"1.2.0", "1.3.0", []string{"1.1.9", "1.3.0"}, ErrDowngrade, "offered version 1.2.0 is older than the current version 1.3.0"},
		{"1.10.0", "1.9.0", []string{"1.9.0"}, nil, ""},
		{"2.0.0-rc.1", "2.0.0", []string{"2.0.0"}, ErrDowngrade, "current version 2.0.0"},
		{"2.0.0", "2.0.0-rc.1", []string{"2.0.0-rc.1"}, nil, ""},
		// An older build that is still installed does not become current
		// by being sent again.
		{"1.0.0", "2.0.0", []string{"2.0.0", "1.0.0"}, ErrDowngrade, "offered version 1.0.0 is older than the current version 2.0.0"},
		// After a rollback to 1.0.0, the installed 1.5.0 is newer than
		// current: sending it again is an upgrade.
		{"1.5.0", "1.0.0", []string{"2.0.0", "1.5.0", "1.0.0"}, nil, ""},
		// A new build older than an installed one is refused even when it
		// is newer than current.
		{"1.7.0", "1.0.0", []string{"2.0.0", "1.0.0"}, ErrDowngrade, "older than installed version 2.0.0 (current version 1.0.0)"},
		{"1.0.0", "", []string{"1.1.0"}, ErrDowngrade, "current version none"},
	}
	for _, tt := range tests {
		t.Run(tt.version+" over "+tt.current+" of "+strings.Join(tt.installed, ","), func(t *testing.T) {
			err := CheckDowngrade("ticketdesk", tt.version, tt.current, tt.installed)
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("want %v, got %v", tt.want, err)
			}
			if err != nil && (!strings.Contains(err.Error(), tt.detail) || !strings.Contains(err.Error(), "plugin ticketdesk")) {
				t.Errorf("message %q lacks %q", err, tt.detail)
			}
		})
	}
}

func TestCompareVersions(t *testing.T) {
	// Ascending by semver 2.0 precedence (its own example list, plus build metadata).
	order := []string{"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
		"1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.2.0", "1.10.0", "2.0.0"}
	for i, a := range order {
		for j, b := range order {
			got, err := CompareVersions(a, b)
			if err != nil {
				t.Fatal(err)
			}
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got != want {
				t.Errorf("CompareVersions(%s, %s) = %d, want %d", a, b, got, want)
			}
		}
	}
	if c, err := CompareVersions("1.0.0+build.1", "1.0.0"); err != nil || c != 0 {
		t.Errorf("build metadata: %d %v", c, err)
	}
	if _, err := CompareVersions("1.0", "1.0.0"); err == nil {
		t.Error("1.0 accepted as a version")
	}
}

// TestKDFLevels checks the named costs map to the scrypt parameters
// libsodium derives from them (a mismatch would make keys unreadable by
// minisign), and that hostile costs in a key file are refused, all without
// running scrypt.
func TestKDFLevels(t *testing.T) {
	tests := []struct {
		name      string
		kdf       KDFParams
		n, r, par int
		wantErr   bool
	}{
		{"sensitive", SensitiveKDF, 1 << 20, 8, 1, false},
		{"interactive", InteractiveKDF, 1 << 14, 8, 1, false},
		{"ops-bound", KDFParams{OpsLimit: 1 << 20, MemLimit: 1 << 30}, 1 << 15, 8, 1, false},
		{"memory beyond N=2^20", KDFParams{OpsLimit: 1 << 40, MemLimit: 1 << 40}, 0, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, r, par, err := tt.kdf.scryptParams()
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v", err, tt.wantErr)
			}
			if n != tt.n || r != tt.r || par != tt.par {
				t.Errorf("N, r, p = %d, %d, %d; want %d, %d, %d", n, r, par, tt.n, tt.r, tt.par)
			}
		})
	}
}

func TestPrivateKeyFile(t *testing.T) {
	k := newKey(t)
	tests := []struct {
		name     string
		password []byte
		readWith []byte
		want     error
	}{
		{"unencrypted", nil, nil, nil},
		{"encrypted", []byte("s3cret"), []byte("s3cret"), nil},
		{"wrong password", []byte("s3cret"), []byte("guess"), ErrWrongPassword},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file, err := MarshalPrivateKey(k, tt.password, InteractiveKDF)
			if err != nil {
				t.Fatal(err)
			}
			enc, err := PrivateKeyEncrypted(file)
			if err != nil || enc != (tt.password != nil) {
				t.Fatalf("PrivateKeyEncrypted = %v, %v", enc, err)
			}
			got, err := ParsePrivateKey(file, tt.readWith)
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("want %v, got %v", tt.want, err)
			}
			if err == nil && (got.ID != k.ID || !got.Key.Equal(k.Key)) {
				t.Fatal("key changed in the round trip")
			}
		})
	}
}

func TestPublicKeyFile(t *testing.T) {
	k := newKey(t).Public()
	for _, in := range [][]byte{k.Marshal(), []byte(k.String()), bytes.ReplaceAll(k.Marshal(), []byte("\n"), []byte("\r\n"))} {
		got, err := ParsePublicKey(in)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if got.ID != k.ID || !got.Key.Equal(k.Key) {
			t.Fatalf("%q: got another key", in)
		}
	}
	if _, err := ParsePublicKey([]byte("untrusted comment: x\nAAAA\n")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short key: %v", err)
	}
}
