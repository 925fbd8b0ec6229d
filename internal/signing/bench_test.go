package signing

import (
	"encoding/binary"
	"path/filepath"
	"testing"

	"github.com/connhost/connhost/abi"
)

// BenchmarkVerify measures the policy check of a 3 MiB plugin (the size of
// a Go guest): SHA-256, BLAKE2b-512 and two Ed25519 verifications.
func BenchmarkVerify(b *testing.B) {
	k, err := GenerateKey(nil)
	if err != nil {
		b.Fatal(err)
	}
	padded := append(append([]byte(nil), rawModule...), make([]byte, 3<<20)...)
	// The padding goes in a custom section so the module stays well formed.
	wasm, err := abi.EmbedManifest(withCustomSection(padded[:len(rawModule)], "pad", padded[len(rawModule):]),
		&abi.Manifest{Name: "big", Version: "1.0.0", ABIVersion: abi.Version})
	if err != nil {
		b.Fatal(err)
	}
	sig, err := SignPlugin(k, wasm)
	if err != nil {
		b.Fatal(err)
	}
	p := NewPolicy([]PublicKey{k.Public()}, true)
	b.SetBytes(int64(len(wasm)))
	for b.Loop() {
		if _, err := p.Verify(wasm, sig); err != nil {
			b.Fatal(err)
		}
	}
}

func withCustomSection(wasm []byte, name string, payload []byte) []byte {
	sec := append(binary.AppendUvarint(nil, uint64(len(name))), name...)
	sec = append(sec, payload...)
	out := append(append([]byte(nil), wasm...), 0)
	out = binary.AppendUvarint(out, uint64(len(sec)))
	return append(out, sec...)
}

// BenchmarkMinisignDefaultKDF decrypts a key that minisign encrypted at its
// default cost (SensitiveKDF: scrypt with 1 GiB, a second or more per op).
// It is the only place that cost runs: the interoperability proof for
// minisign's own key files, opt-in because of its price. Tests use
// InteractiveKDF.
func BenchmarkMinisignDefaultKDF(b *testing.B) {
	needMinisign(b)
	dir := b.TempDir()
	minisign(b, dir, "pw\npw\n", "-G", "-p", "k.pub", "-s", "k.key")
	pub, err := ParsePublicKey(read(b, filepath.Join(dir, "k.pub")))
	if err != nil {
		b.Fatal(err)
	}
	file := read(b, filepath.Join(dir, "k.key"))
	for b.Loop() {
		priv, err := ParsePrivateKey(file, []byte("pw"))
		if err != nil {
			b.Fatalf("decrypting minisign's key: %v", err)
		}
		if priv.ID != pub.ID || !priv.Public().Key.Equal(pub.Key) {
			b.Fatal("decrypted key does not match the public key")
		}
	}
}
