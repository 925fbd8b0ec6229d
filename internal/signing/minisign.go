// Package signing reads and writes Ed25519 keys and detached signatures in
// the minisign format (https://jedisct1.github.io/minisign/), so plugin
// authors can sign with the standard minisign tool or with connhost, and
// applies the server's trust policy to a plugin and its signature.
package signing

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/blake2b"
	"golang.org/x/crypto/scrypt"
)

// Algorithm and format identifiers of the minisign format.
var (
	algEd        = [2]byte{'E', 'd'} // key algorithm; legacy signature over the raw message
	algEdHashed  = [2]byte{'E', 'D'} // signature over BLAKE2b-512 of the message
	kdfScrypt    = [2]byte{'S', 'c'}
	kdfNone      = [2]byte{0, 0}
	checksumAlgB = [2]byte{'B', '2'}
)

const (
	keyIDSize         = 8
	untrustedPrefix   = "untrusted comment: "
	trustedPrefix     = "trusted comment: "
	publicKeySize     = 2 + keyIDSize + ed25519.PublicKeySize             // 42
	signatureSize     = 2 + keyIDSize + ed25519.SignatureSize             // 74
	secretKeySize     = 2 + 2 + 2 + 32 + 8 + 8 + secretPayloadSize        // 158
	secretPayloadSize = keyIDSize + ed25519.PrivateKeySize + checksumSize // 104
	checksumSize      = 32
	saltSize          = 32
	// maxCommentSize is minisign's limit on a trusted comment.
	maxCommentSize = 8192
)

// Errors returned by the parsers and Verify. Callers match them with
// errors.Is; messages wrap them with detail.
var (
	// ErrMalformed marks a key or signature file that does not parse.
	ErrMalformed = errors.New("malformed minisign data")
	// ErrWrongPassword is returned for an encrypted secret key whose
	// checksum does not match after decryption.
	ErrWrongPassword = errors.New("wrong password for the secret key (checksum mismatch)")
	// ErrKeyMismatch is returned when a signature was made by another key
	// than the one it is checked with.
	ErrKeyMismatch = errors.New("signature was made by another key")
	// ErrCommentSignature is returned when the global signature over the
	// signature and trusted comment does not verify: one of them was altered.
	ErrCommentSignature = errors.New("the signature or its trusted comment was altered (global signature invalid)")
	// ErrFileSignature is returned when the signature does not match the
	// signed file: the file was altered after signing.
	ErrFileSignature = errors.New("the file does not match its signature (modified after signing)")
)

// KeyID identifies a key pair; signatures name the key that made them.
type KeyID [keyIDSize]byte

// String renders the key ID as minisign prints it: the bytes read as a
// little-endian integer, in upper-case hex.
func (id KeyID) String() string {
	return fmt.Sprintf("%016X", binary.LittleEndian.Uint64(id[:]))
}

// PublicKey is a minisign public key.
type PublicKey struct {
	ID  KeyID
	Key ed25519.PublicKey
}

// PrivateKey is a decrypted minisign secret key.
type PrivateKey struct {
	ID  KeyID
	Key ed25519.PrivateKey
}

// Public returns the public half of k.
func (k PrivateKey) Public() PublicKey {
	return PublicKey{ID: k.ID, Key: k.Key.Public().(ed25519.PublicKey)}
}

// GenerateKey creates a key pair with a random key ID, reading randomness
// from r (crypto/rand when nil).
func GenerateKey(r io.Reader) (PrivateKey, error) {
	if r == nil {
		r = rand.Reader
	}
	var k PrivateKey
	if _, err := io.ReadFull(r, k.ID[:]); err != nil {
		return PrivateKey{}, fmt.Errorf("generating key id: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(r)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("generating key: %w", err)
	}
	k.Key = priv
	return k, nil
}

// readLines splits a minisign file into its lines without line endings,
// accepting \n and \r\n.
func readLines(b []byte) []string {
	text := strings.ReplaceAll(string(b), "\r\n", "\n")
	return strings.Split(strings.TrimRight(text, "\n"), "\n")
}

func decodeLine(line string, size int, what string) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(line))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: bad base64: %v", ErrMalformed, what, err)
	}
	if len(raw) != size {
		return nil, fmt.Errorf("%w: %s: %d bytes, want %d", ErrMalformed, what, len(raw), size)
	}
	return raw, nil
}

// ParsePublicKey reads a public key file (an untrusted comment line and the
// base64 key) or the bare base64 key that `minisign -P` takes.
func ParsePublicKey(b []byte) (PublicKey, error) {
	lines := readLines(b)
	line := lines[0]
	if strings.HasPrefix(line, untrustedPrefix) {
		if len(lines) < 2 {
			return PublicKey{}, fmt.Errorf("%w: public key: no key after the comment line", ErrMalformed)
		}
		line = lines[1]
	}
	raw, err := decodeLine(line, publicKeySize, "public key")
	if err != nil {
		return PublicKey{}, err
	}
	if [2]byte(raw[:2]) != algEd {
		return PublicKey{}, fmt.Errorf("%w: public key: algorithm %q, want \"Ed\"", ErrMalformed, raw[:2])
	}
	var k PublicKey
	copy(k.ID[:], raw[2:10])
	k.Key = ed25519.PublicKey(bytes.Clone(raw[10:]))
	return k, nil
}

// String returns the bare base64 form of the key, as `minisign -P` takes it.
func (k PublicKey) String() string {
	raw := make([]byte, 0, publicKeySize)
	raw = append(raw, algEd[:]...)
	raw = append(raw, k.ID[:]...)
	raw = append(raw, k.Key...)
	return base64.StdEncoding.EncodeToString(raw)
}

// Marshal returns the public key file.
func (k PublicKey) Marshal() []byte {
	return []byte(untrustedPrefix + "minisign public key " + k.ID.String() + "\n" + k.String() + "\n")
}

// KDFParams are the scrypt costs of an encrypted secret key, in libsodium's
// terms (they are stored in the key file, so minisign reads any of them).
type KDFParams struct {
	OpsLimit uint64
	MemLimit uint64
}

// Named scrypt costs, libsodium's levels. SensitiveKDF is minisign's own
// default and MarshalPrivateKey's: N=2^20, r=8, p=1, 1 GiB of memory and a
// second or more per use. InteractiveKDF is N=2^14, r=8, p=1: 16 MiB and tens
// of milliseconds, for a key that is unlocked often (a CI signing job).
var (
	SensitiveKDF   = KDFParams{OpsLimit: 1 << 25, MemLimit: 1 << 30}
	InteractiveKDF = KDFParams{OpsLimit: 1 << 19, MemLimit: 1 << 24}
)

// scryptParams converts libsodium's opslimit and memlimit to scrypt's N, r
// and p exactly as libsodium's pickparams does, so a key encrypted here
// decrypts in minisign and the reverse.
func (p KDFParams) scryptParams() (n, r, par int, err error) {
	ops, mem := p.OpsLimit, p.MemLimit
	if ops < 32768 {
		ops = 32768
	}
	const rr = 8
	var logN uint
	if ops < mem/32 {
		maxN := ops / (rr * 4)
		for logN = 1; logN < 63; logN++ {
			if uint64(1)<<logN > maxN/2 {
				break
			}
		}
		par = 1
	} else {
		maxN := mem / (rr * 128)
		for logN = 1; logN < 63; logN++ {
			if uint64(1)<<logN > maxN/2 {
				break
			}
		}
		maxrp := (ops / 4) / (uint64(1) << logN)
		if maxrp > 0x3fffffff {
			maxrp = 0x3fffffff
		}
		par = int(maxrp / rr)
	}
	// Refuse costs that would exhaust memory: a key file is untrusted input.
	if logN > 20 || par < 1 || par > 64 {
		return 0, 0, 0, fmt.Errorf("%w: secret key: unsupported scrypt cost (N=2^%d, p=%d)", ErrMalformed, logN, par)
	}
	return 1 << logN, rr, par, nil
}

func (p KDFParams) stream(password, salt []byte) ([]byte, error) {
	n, r, par, err := p.scryptParams()
	if err != nil {
		return nil, err
	}
	return scrypt.Key(password, salt, n, r, par, secretPayloadSize)
}

func checksum(id KeyID, key ed25519.PrivateKey) []byte {
	h, _ := blake2b.New256(nil)
	h.Write(algEd[:])
	h.Write(id[:])
	h.Write(key)
	return h.Sum(nil)
}

// MarshalPrivateKey returns the secret key file. A nil password writes it
// unencrypted, as `minisign -G -W` does; otherwise the key is encrypted
// with scrypt at the given cost (the zero KDFParams mean SensitiveKDF).
func MarshalPrivateKey(k PrivateKey, password []byte, kdf KDFParams) ([]byte, error) {
	raw := make([]byte, 0, secretKeySize)
	raw = append(raw, algEd[:]...)
	payload := make([]byte, 0, secretPayloadSize)
	payload = append(payload, k.ID[:]...)
	payload = append(payload, k.Key...)
	comment := "minisign encrypted secret key"
	if password == nil {
		// minisign leaves salt, costs and checksum zero in unencrypted keys.
		raw = append(raw, kdfNone[:]...)
		raw = append(raw, checksumAlgB[:]...)
		raw = append(raw, make([]byte, saltSize+16)...)
		payload = append(payload, make([]byte, checksumSize)...)
		comment = "minisign secret key (unencrypted)"
	} else {
		if kdf == (KDFParams{}) {
			kdf = SensitiveKDF
		}
		salt := make([]byte, saltSize)
		if _, err := rand.Read(salt); err != nil {
			return nil, err
		}
		stream, err := kdf.stream(password, salt)
		if err != nil {
			return nil, err
		}
		payload = append(payload, checksum(k.ID, k.Key)...)
		subtle.XORBytes(payload, payload, stream)
		raw = append(raw, kdfScrypt[:]...)
		raw = append(raw, checksumAlgB[:]...)
		raw = append(raw, salt...)
		raw = binary.LittleEndian.AppendUint64(raw, kdf.OpsLimit)
		raw = binary.LittleEndian.AppendUint64(raw, kdf.MemLimit)
	}
	raw = append(raw, payload...)
	return []byte(untrustedPrefix + comment + "\n" + base64.StdEncoding.EncodeToString(raw) + "\n"), nil
}

// PrivateKeyEncrypted reports whether a secret key file needs a password.
func PrivateKeyEncrypted(b []byte) (bool, error) {
	raw, err := secretKeyBytes(b)
	if err != nil {
		return false, err
	}
	return [2]byte(raw[2:4]) != kdfNone, nil
}

func secretKeyBytes(b []byte) ([]byte, error) {
	lines := readLines(b)
	if len(lines) < 2 || !strings.HasPrefix(lines[0], untrustedPrefix) {
		return nil, fmt.Errorf("%w: secret key: want an untrusted comment line and the key", ErrMalformed)
	}
	raw, err := decodeLine(lines[1], secretKeySize, "secret key")
	if err != nil {
		return nil, err
	}
	if [2]byte(raw[0:2]) != algEd || [2]byte(raw[4:6]) != checksumAlgB {
		return nil, fmt.Errorf("%w: secret key: algorithms %q/%q, want \"Ed\"/\"B2\"", ErrMalformed, raw[0:2], raw[4:6])
	}
	if kdf := [2]byte(raw[2:4]); kdf != kdfNone && kdf != kdfScrypt {
		return nil, fmt.Errorf("%w: secret key: key derivation %q, want \"Sc\" or none", ErrMalformed, raw[2:4])
	}
	return raw, nil
}

// ParsePrivateKey reads a secret key file, decrypting it with password when
// it is encrypted (password is ignored for an unencrypted key).
func ParsePrivateKey(b, password []byte) (PrivateKey, error) {
	raw, err := secretKeyBytes(b)
	if err != nil {
		return PrivateKey{}, err
	}
	salt := raw[6:38]
	kdf := KDFParams{binary.LittleEndian.Uint64(raw[38:46]), binary.LittleEndian.Uint64(raw[46:54])}
	payload := bytes.Clone(raw[54:])
	encrypted := [2]byte(raw[2:4]) == kdfScrypt
	if encrypted {
		stream, err := kdf.stream(password, salt)
		if err != nil {
			return PrivateKey{}, err
		}
		subtle.XORBytes(payload, payload, stream)
	}
	var k PrivateKey
	copy(k.ID[:], payload[:keyIDSize])
	k.Key = ed25519.PrivateKey(payload[keyIDSize : keyIDSize+ed25519.PrivateKeySize])
	if encrypted && subtle.ConstantTimeCompare(checksum(k.ID, k.Key), payload[keyIDSize+ed25519.PrivateKeySize:]) != 1 {
		return PrivateKey{}, ErrWrongPassword
	}
	// The secret key embeds its public key; a mismatch means a corrupt file.
	derived := ed25519.NewKeyFromSeed(k.Key.Seed())
	if !bytes.Equal(derived, k.Key) {
		return PrivateKey{}, fmt.Errorf("%w: secret key: inconsistent key material", ErrMalformed)
	}
	return k, nil
}

// Signature is a parsed minisign signature file.
type Signature struct {
	// UntrustedComment is not covered by any signature.
	UntrustedComment string
	// Hashed is true for "ED" signatures over BLAKE2b-512 of the file,
	// false for legacy "Ed" signatures over the file itself.
	Hashed bool
	// KeyID names the key that made the signature.
	KeyID KeyID
	// Sig signs the file (or its hash).
	Sig [ed25519.SignatureSize]byte
	// TrustedComment is covered by GlobalSig.
	TrustedComment string
	// GlobalSig signs Sig followed by TrustedComment.
	GlobalSig [ed25519.SignatureSize]byte
}

// ParseSignature reads a signature file.
func ParseSignature(b []byte) (*Signature, error) {
	lines := readLines(b)
	if len(lines) < 4 {
		return nil, fmt.Errorf("%w: signature: %d lines, want 4", ErrMalformed, len(lines))
	}
	s := &Signature{}
	var ok bool
	if s.UntrustedComment, ok = strings.CutPrefix(lines[0], untrustedPrefix); !ok {
		return nil, fmt.Errorf("%w: signature: first line is not an untrusted comment", ErrMalformed)
	}
	raw, err := decodeLine(lines[1], signatureSize, "signature")
	if err != nil {
		return nil, err
	}
	switch [2]byte(raw[:2]) {
	case algEdHashed:
		s.Hashed = true
	case algEd:
	default:
		return nil, fmt.Errorf("%w: signature: algorithm %q, want \"ED\" or \"Ed\"", ErrMalformed, raw[:2])
	}
	copy(s.KeyID[:], raw[2:10])
	copy(s.Sig[:], raw[10:])
	if s.TrustedComment, ok = strings.CutPrefix(lines[2], trustedPrefix); !ok {
		return nil, fmt.Errorf("%w: signature: third line is not a trusted comment", ErrMalformed)
	}
	global, err := decodeLine(lines[3], ed25519.SignatureSize, "global signature")
	if err != nil {
		return nil, err
	}
	copy(s.GlobalSig[:], global)
	return s, nil
}

// Marshal returns the signature file.
func (s *Signature) Marshal() []byte {
	alg := algEd
	if s.Hashed {
		alg = algEdHashed
	}
	raw := make([]byte, 0, signatureSize)
	raw = append(raw, alg[:]...)
	raw = append(raw, s.KeyID[:]...)
	raw = append(raw, s.Sig[:]...)
	return []byte(untrustedPrefix + s.UntrustedComment + "\n" +
		base64.StdEncoding.EncodeToString(raw) + "\n" +
		trustedPrefix + s.TrustedComment + "\n" +
		base64.StdEncoding.EncodeToString(s.GlobalSig[:]) + "\n")
}

func blake2b512(msg []byte) []byte {
	h := blake2b.Sum512(msg)
	return h[:]
}

// Sign makes a hashed ("ED") signature of msg, as minisign 0.8 and later do
// by default.
func Sign(k PrivateKey, msg []byte, trustedComment, untrustedComment string) (*Signature, error) {
	if strings.ContainsAny(trustedComment, "\r\n") || strings.ContainsAny(untrustedComment, "\r\n") {
		return nil, errors.New("sign: comments must be one line")
	}
	if len(trustedComment) > maxCommentSize {
		return nil, fmt.Errorf("sign: trusted comment longer than %d bytes", maxCommentSize)
	}
	s := &Signature{UntrustedComment: untrustedComment, Hashed: true, KeyID: k.ID, TrustedComment: trustedComment}
	copy(s.Sig[:], ed25519.Sign(k.Key, blake2b512(msg)))
	copy(s.GlobalSig[:], ed25519.Sign(k.Key, globalMessage(s)))
	return s, nil
}

func globalMessage(s *Signature) []byte {
	return append(bytes.Clone(s.Sig[:]), s.TrustedComment...)
}

// Verify checks s against msg with key k: the key ID, then the global
// signature (so an altered trusted comment or signature is told apart from
// an altered file), then the signature of the file.
func Verify(k PublicKey, msg []byte, s *Signature) error {
	if s.KeyID != k.ID {
		return fmt.Errorf("%w: key ID %s, want %s", ErrKeyMismatch, s.KeyID, k.ID)
	}
	if !ed25519.Verify(k.Key, globalMessage(s), s.GlobalSig[:]) {
		return ErrCommentSignature
	}
	signed := msg
	if s.Hashed {
		signed = blake2b512(msg)
	}
	if !ed25519.Verify(k.Key, signed, s.Sig[:]) {
		return ErrFileSignature
	}
	return nil
}
