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
	"runtime"
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
			i := 0
			err = got.Each(func(p Plugin) error {
				want := [][]byte{a, b}[i]
				if p.Name != got.Plugins[i].Name || !bytes.Equal(p.Wasm, want) || p.Verified.SHA256 != signing.SHA256Hex(want) {
					t.Errorf("plugin %d: bytes changed", i)
				}
				if p.Verified.Signed != (tt.in[i].Signature != nil) || !bytes.Equal(p.SignatureBytes, tt.in[i].Signature) {
					t.Errorf("plugin %s: signed = %v", p.Name, p.Verified.Signed)
				}
				i++
				return nil
			})
			if err != nil || i != 2 {
				t.Fatalf("Each: %d plugins, %v", i, err)
			}
			if got.Plugins[0].Wasm != nil {
				t.Errorf("the opened bundle keeps plugin bytes")
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
		}), true, ErrCorrupt, `member "precompiled/alpha.bin" is not in the index`},
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

// customSection returns a wasm custom section named name holding n zero
// bytes: it makes a valid module as large as a test needs.
func customSection(name string, n int) []byte {
	uleb := func(v int) []byte {
		var b []byte
		for {
			c := byte(v & 0x7f)
			v >>= 7
			if v != 0 {
				c |= 0x80
			}
			b = append(b, c)
			if v == 0 {
				return b
			}
		}
	}
	body := append(append(uleb(len(name)), name...), make([]byte, n)...)
	return append(append([]byte{0}, uleb(len(body))...), body...)
}

// heapNow returns the live heap after a collection.
func heapNow() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestBoundedMemory: a bundle takes memory for its largest member, not for
// all of them. Members the index does not name are refused from their
// headers, before they are decompressed: 128 MiB of zeros behind 0.1 MB of
// gzip allocate next to nothing. Six 8 MiB plugins are verified and
// handed over one at a time.
func TestBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and reads bundles of hundreds of MiB")
	}
	a := plugin(t, "alpha", "1.0.0")
	good := create(t, []Input{{Wasm: a}}, nil)
	const bombMember = 32 << 20
	bomb := edit(t, good, func(ms []member) []member {
		for i := range 4 {
			ms = append(ms, member{fmt.Sprintf("plugins/bomb-%d.wasm", i), make([]byte, bombMember)})
		}
		return ms
	})
	t.Logf("bomb: %d bytes of gzip, %d MiB of members outside the index", len(bomb), 4*bombMember>>20)
	policy := signing.NewPolicy(nil, false)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Read(bytes.NewReader(bomb), policy)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), `member "plugins/bomb-0.wasm" is not in the index`) {
		t.Fatalf("bomb: %v", err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("refusing the bomb allocated %d MiB", alloc>>20)
	}

	const size, n = 8 << 20, 6
	var in []Input
	for i := range n {
		in = append(in, Input{Wasm: append(plugin(t, fmt.Sprintf("big%d", i), "1.0.0"), customSection("padding", size)...)})
	}
	big := create(t, in, nil)
	in = nil
	base := heapNow()
	b, err := Read(bytes.NewReader(big), policy)
	if err != nil {
		t.Fatal(err)
	}
	if held := int64(heapNow()) - int64(base); held > size/2 {
		t.Errorf("the opened bundle holds %d MiB", held>>20)
	}
	var peak int64
	count := 0
	if err := b.Each(func(p Plugin) error {
		count++
		peak = max(peak, int64(heapNow())-int64(base))
		runtime.KeepAlive(p.Wasm)
		return nil
	}); err != nil || count != n {
		t.Fatalf("Each: %d plugins, %v", count, err)
	}
	t.Logf("%d plugins of %d MiB: at most %d MiB live while handing them over", n, size>>20, peak>>20)
	if peak > 2*size {
		t.Errorf("%d MiB live while handing over plugins of %d MiB", peak>>20, size>>20)
	}
}

// TestEachRechecks: Each refuses a bundle file replaced since Open.
func TestEachRechecks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "b.chb")
	if err := os.WriteFile(path, create(t, []Input{{Wasm: plugin(t, "alpha", "1.0.0")}}, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := Open(path, signing.NewPolicy(nil, false))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, create(t, []Input{{Wasm: plugin(t, "alpha", "1.0.1")}}, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	err = b.Each(func(Plugin) error { t.Fatal("a plugin of the replaced file was handed over"); return nil })
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "changed since the bundle was verified") {
		t.Fatalf("Each on a replaced file: %v", err)
	}
}
