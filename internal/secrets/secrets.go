// Package secrets encrypts instance parameters of type secret at rest with
// AES-256-GCM. The key lives outside the store (a key file or an environment
// variable), so a copied data directory does not give away credentials.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the length of a key in bytes.
const KeySize = 32

// prefix marks an encrypted value so a plaintext value is never mistaken for
// ciphertext (and vice versa) when reading stored params.
const prefix = "enc:v1:"

// ErrDecrypt is returned for a value that is not ours or was tampered with,
// or a wrong key.
var ErrDecrypt = errors.New("secret cannot be decrypted (wrong key or tampered value)")

// Box seals and opens secret values.
type Box struct {
	aead cipher.AEAD
}

// New returns a Box for a 32-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secret key: want %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Box{aead: aead}, nil
}

// ParseKey decodes a hex-encoded key.
func ParseKey(s string) ([]byte, error) {
	k, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(k) != KeySize {
		return nil, fmt.Errorf("secret key: want %d hex characters", 2*KeySize)
	}
	return k, nil
}

// LoadOrCreateKeyFile reads a hex key from path, or creates the file with a
// new random key (mode 0600) when it does not exist. created reports the
// latter so the caller can warn that the key must be backed up.
func LoadOrCreateKeyFile(path string) (key []byte, created bool, err error) {
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := ParseKey(string(b))
		if err != nil {
			return nil, false, fmt.Errorf("%s: %w", path, err)
		}
		return k, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, false, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, err
	}
	if _, err := f.WriteString(hex.EncodeToString(k) + "\n"); err != nil {
		f.Close()
		return nil, false, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, false, err
	}
	return k, true, f.Close()
}

// Seal encrypts plaintext; additional binds the ciphertext to its context
// (instance and param name) so a value cannot be moved to another param.
func (b *Box) Seal(plaintext, additional string) (string, error) {
	nonce := make([]byte, b.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	ct := b.aead.Seal(nonce, nonce, []byte(plaintext), []byte(additional))
	return prefix + base64.RawStdEncoding.EncodeToString(ct), nil
}

// Open decrypts a value produced by Seal with the same additional data.
func (b *Box) Open(sealed, additional string) (string, error) {
	enc, ok := strings.CutPrefix(sealed, prefix)
	if !ok {
		return "", ErrDecrypt
	}
	ct, err := base64.RawStdEncoding.DecodeString(enc)
	if err != nil || len(ct) < b.aead.NonceSize() {
		return "", ErrDecrypt
	}
	n := b.aead.NonceSize()
	pt, err := b.aead.Open(nil, ct[:n], ct[n:], []byte(additional))
	if err != nil {
		return "", ErrDecrypt
	}
	return string(pt), nil
}

// IsSealed reports whether s looks like a value produced by Seal.
func IsSealed(s string) bool { return strings.HasPrefix(s, prefix) }
