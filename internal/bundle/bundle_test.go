package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/signing"
	"github.com/connhost/connhost/internal/testenv/wasmbuild"
)

// rawModule is testdata/plugin.wat compiled once by TestMain.
var rawModule []byte

func TestMain(m *testing.M) {
	var err error
	if rawModule, err = wasmbuild.Raw(context.Background(), "internal/bundle/testdata/plugin.wat"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func plugin(t *testing.T, name, version string) []byte {
	t.Helper()
	wasm, err := abi.EmbedManifest(rawModule, &abi.Manifest{Name: name, Version: version, ABIVersion: abi.Version})
	if err != nil {
		t.Fatal(err)
	}
	return wasm
}

func newKey(t *testing.T) signing.PrivateKey {
	t.Helper()
	k, err := signing.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func signed(t *testing.T, k signing.PrivateKey, wasm []byte) Input {
	t.Helper()
	sig, err := signing.SignPlugin(k, wasm)
	if err != nil {
		t.Fatal(err)
	}
	return Input{Wasm: wasm, Signature: sig}
}

func create(t *testing.T, in []Input, key *signing.PrivateKey) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Create(&buf, in, key, time.Now()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type member struct {
	name string
	data []byte
}

func members(t *testing.T, bundle []byte) []member {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(bundle))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var out []member
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, member{hdr.Name, b})
	}
}

func pack(t *testing.T, ms []member) []byte {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, m := range ms {
		if err := tw.WriteHeader(&tar.Header{Name: m.name, Mode: 0o644, Size: int64(len(m.data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(m.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// edit returns bundle with fn applied to its member list.
func edit(t *testing.T, bundle []byte, fn func([]member) []member) []byte {
	t.Helper()
	return pack(t, fn(members(t, bundle)))
}

// modify returns bundle with the named member's bytes changed by fn.
func modify(t *testing.T, bundle []byte, name string, fn func([]byte) []byte) []byte {
	t.Helper()
	return edit(t, bundle, func(ms []member) []member {
		for i := range ms {
			if ms[i].name == name {
				ms[i].data = fn(bytes.Clone(ms[i].data))
				return ms
			}
		}
		t.Fatalf("no member %s", name)
		return nil
	})
}

func TestRoundTrip(t *testing.T) {
	author, bundler := newKey(t), newKey(t)
	a := plugin(t, "alpha", "1.0.0")
	b := plugin(t, "beta", "2.1.0")
	tests := []struct {
		name          string
		in            []Input
		key           *signing.PrivateKey
		requireSigned bool
		indexSigned   bool
		warnings      int
	}{
		{"signed plugins, signed index", []Input{signed(t, author, a), signed(t, author, b)}, &bundler, true, true, 0},
		{"signed plugins, unsigned index", []Input{signed(t, author, a), signed(t, author, b)}, nil, true, false, 1},
		{"unsigned plugin in dev", []Input{signed(t, author, a), {Wasm: b}}, &bundler, false, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			policy := signing.NewPolicy([]signing.PublicKey{author.Public(), bundler.Public()}, tt.requireSigned)
			got, err := Read(bytes.NewReader(create(t, tt.in, tt.key)), policy)
			if err != nil {
				t.Fatal(err)
			}
			if got.IndexSigned != tt.indexSigned || len(got.Warnings) != tt.warnings {
				t.Fatalf("index signed %v, warnings %q", got.IndexSigned, got.Warnings)
			}
			if tt.indexSigned && got.IndexKeyID != bundler.ID {
				t.Fatalf("index key %s, want %s", got.IndexKeyID, bundler.ID)
			}
			if len(got.Plugins) != 2 {
				t.Fatalf("%d plugins", len(got.Plugins))
			}
			for i, want := range [][]byte{a, b} {
				p := got.Plugins[i]
				if !bytes.Equal(p.Wasm, want) || p.Verified.SHA256 != signing.SHA256Hex(want) {
					t.Errorf("plugin %d: bytes changed", i)
				}
				if p.Verified.Signed != (tt.in[i].Signature != nil) {
					t.Errorf("plugin %s: signed = %v", p.Name, p.Verified.Signed)
				}
			}
		})
	}
}

func TestOpenRefuses(t *testing.T) {
	author, stranger := newKey(t), newKey(t)
	a := plugin(t, "alpha", "1.0.0")
	good := create(t, []Input{signed(t, author, a)}, &author)
	unsignedIndex := create(t, []Input{signed(t, author, a)}, nil)
	const wasmName = "plugins/alpha-1.0.0.wasm"
	flip := func(b []byte) []byte { b[len(rawModule)-3] ^= 1; return b }

	tests := []struct {
		name          string
		bundle        []byte
		requireSigned bool
		want          error
		inMsg         string
	}{
		{"tampered plugin", modify(t, good, wasmName, flip), true, ErrCorrupt, "member " + wasmName + " has sha256"},
		{"tampered plugin and index (unsigned index)", func() []byte {
			b := modify(t, unsignedIndex, wasmName, flip)
			return modify(t, b, IndexName, func(idx []byte) []byte {
				return bytes.ReplaceAll(idx, []byte(signing.SHA256Hex(a)), []byte(signing.SHA256Hex(flip(bytes.Clone(a)))))
			})
		}(), true, signing.ErrTamperedPlugin, "tampered"},
		{"tampered index", modify(t, good, IndexName, func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"format"`), []byte(` "format"`), 1)
		}), true, signing.ErrFileSignature, "index signature"},
		{"index signed by unknown key", create(t, []Input{signed(t, author, a)}, &stranger), true, signing.ErrUnknownKey, stranger.ID.String()},
		{"plugin signed by unknown key", create(t, []Input{signed(t, stranger, a)}, &author), true, signing.ErrUnknownKey, "alpha@1.0.0"},
		{"unsigned plugin with require_signed", create(t, []Input{{Wasm: a}}, &author), true, signing.ErrUnsigned, "alpha@1.0.0"},
		{"signature removed", edit(t, unsignedIndex, func(ms []member) []member { return ms[:len(ms)-1] }), true, ErrCorrupt, "is missing"},
		{"extra member", edit(t, good, func(ms []member) []member {
			return append(ms, member{"precompiled/alpha.bin", []byte("native code")})
		}), true, ErrCorrupt, "not in the index: precompiled/alpha.bin"},
		{"index not first", edit(t, good, func(ms []member) []member { ms[0], ms[1] = ms[1], ms[0]; return ms }), true, ErrCorrupt, "first member"},
		{"duplicate member", edit(t, good, func(ms []member) []member { return append(ms, ms[len(ms)-1]) }), true, ErrCorrupt, "twice"},
		{"not a bundle", []byte("PK\x03\x04 a zip"), true, ErrCorrupt, "not gzip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			policy := signing.NewPolicy([]signing.PublicKey{author.Public()}, tt.requireSigned)
			_, err := Read(bytes.NewReader(tt.bundle), policy)
			if !errors.Is(err, tt.want) {
				t.Fatalf("want %v, got %v", tt.want, err)
			}
			if !strings.Contains(err.Error(), tt.inMsg) {
				t.Fatalf("error %q lacks %q", err, tt.inMsg)
			}
		})
	}
}

func TestCreateRefuses(t *testing.T) {
	k := newKey(t)
	a := plugin(t, "alpha", "1.0.0")
	other := signed(t, k, plugin(t, "alpha", "0.9.0"))
	tests := []struct {
		name  string
		in    []Input
		inMsg string
	}{
		{"no plugins", nil, "want 1 to"},
		{"signature of another version", []Input{{Wasm: a, Signature: other.Signature}}, "signature is for alpha@0.9.0"},
		{"same plugin twice", []Input{{Wasm: a}, {Wasm: a}}, "given twice"},
		{"no manifest", []Input{{Wasm: rawModule}}, "no connhost.manifest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Create(io.Discard, tt.in, nil, time.Now())
			if err == nil || !strings.Contains(err.Error(), tt.inMsg) {
				t.Fatalf("want an error containing %q, got %v", tt.inMsg, err)
			}
		})
	}
}

func TestOpenFile(t *testing.T) {
	k := newKey(t)
	path := filepath.Join(t.TempDir(), "b.chb")
	if err := os.WriteFile(path, create(t, []Input{signed(t, k, plugin(t, "alpha", "1.0.0"))}, &k), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := Open(path, signing.NewPolicy([]signing.PublicKey{k.Public()}, true))
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Plugins) != 1 || b.Plugins[0].Name != "alpha" || !b.IndexSigned {
		t.Fatalf("opened %+v", b)
	}
	if _, err := Open(path+".missing", signing.NewPolicy(nil, false)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}
