package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/connhost/connhost/internal/version"
)

// PluginVersion is one installed version of a plugin; its module is the
// blob with the SHA256 hash.
type PluginVersion struct {
	Name        string          `json:"name"`
	Version     string          `json:"version"`
	SHA256      string          `json:"sha256"`
	Manifest    json.RawMessage `json:"manifest,omitempty"`
	InstalledAt time.Time       `json:"installedAt"`
	InstalledBy string          `json:"installedBy,omitempty"`
	// Signature is how the file passed the trust policy at install:
	// "signed" (SignedBy is the trusted key's id), "unsigned", or "bundle"
	// (checked with its bundle); "" for versions installed before it was
	// recorded.
	Signature string `json:"signature,omitempty"`
	SignedBy  string `json:"signedBy,omitempty"`
	// Minisig is the detached minisign signature the file was installed
	// with, kept so engines can verify the file with their own trust
	// policy; nil for an unsigned file (and for versions installed before
	// it was kept).
	Minisig []byte `json:"minisig,omitempty"`
}

func blobKey(sha string) []byte { return key(pBlob, sha) }

func pvKey(name, version string) []byte { return key(pPV, name, sep, version) }

func pvBlobKey(sha, name, version string) []byte {
	return key(pIdxPVBlob, sha, "/", name, sep, version)
}

// checkSHA normalises a hex SHA-256 or refuses it.
func checkSHA(sha string) (string, error) {
	sha = strings.ToLower(sha)
	if b, err := hex.DecodeString(sha); err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("plugin blob %q: not a hex SHA-256: %w", sha, ErrInvalid)
	}
	return sha, nil
}

// PutPluginBlob stores a plugin module under its SHA-256 (hex). data must
// hash to sha, else nothing is stored and the error wraps ErrCorrupt.
// Storing the same blob twice is harmless.
func (s *Store) PutPluginBlob(ctx context.Context, sha string, data []byte) error {
	sha, err := checkSHA(sha)
	if err != nil {
		return err
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != sha {
		return fmt.Errorf("plugin blob %s: data hashes to %x: %w", sha, sum, ErrCorrupt)
	}
	err = s.updateSized(ctx, len(data), func(txn *badger.Txn) error { return txn.Set(blobKey(sha), data) })
	if err != nil {
		return fmt.Errorf("plugin blob %s: %w", sha, err)
	}
	return nil
}

// GetPluginBlob returns the module stored under sha, checking its hash: a
// mismatch (disk corruption, tampering) wraps ErrCorrupt.
func (s *Store) GetPluginBlob(ctx context.Context, sha string) ([]byte, error) {
	sha, err := checkSHA(sha)
	if err != nil {
		return nil, err
	}
	var data []byte
	err = s.view(ctx, func(txn *badger.Txn) error {
		item, err := txn.Get(blobKey(sha))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		data, err = item.ValueCopy(nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("plugin blob %s: %w", sha, err)
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != sha {
		return nil, fmt.Errorf("plugin blob %s: stored data hashes to %x: %w", sha, sum, ErrCorrupt)
	}
	return data, nil
}

// PutPluginVersion records an installed version. Its blob must be stored
// first; a version already installed fails with ErrExists (versions are
// immutable: install a new one instead).
func (s *Store) PutPluginVersion(ctx context.Context, pv PluginVersion) (PluginVersion, error) {
	what := "plugin " + pv.Name + " version " + pv.Version
	if pv.Name == "" || pv.Version == "" {
		return PluginVersion{}, fmt.Errorf("%s: empty name or version: %w", what, ErrInvalid)
	}
	for f, v := range map[string]string{"name": pv.Name, "version": pv.Version} {
		if err := checkPart("plugin", f, v); err != nil {
			return PluginVersion{}, err
		}
	}
	sha, err := checkSHA(pv.SHA256)
	if err != nil {
		return PluginVersion{}, fmt.Errorf("%s: %w", what, err)
	}
	pv.SHA256 = sha
	if pv.InstalledAt.IsZero() {
		pv.InstalledAt = s.now().UTC()
	}
	err = s.update(ctx, func(txn *badger.Txn) error {
		if ok, err := exists(txn, blobKey(sha)); err != nil || !ok {
			return errors.Join(err, fmt.Errorf("blob %s: %w", sha, ErrNotFound))
		}
		if ok, err := exists(txn, pvKey(pv.Name, pv.Version)); err != nil || ok {
			return errors.Join(err, ErrExists)
		}
		if err := txn.Set(pvBlobKey(sha, pv.Name, pv.Version), nil); err != nil {
			return err
		}
		return setJSON(txn, pvKey(pv.Name, pv.Version), pv)
	})
	if err != nil {
		return PluginVersion{}, fmt.Errorf("%s: %w", what, err)
	}
	return pv, nil
}

// AddPluginSignature keeps minisig (with the policy's verdict, signature
// and signedBy) on an installed version that has none, as when a version
// installed unsigned, or before signatures were kept, is installed again
// with its .minisig: the file is unchanged, so the version stays
// immutable. A version that has a signature keeps it; the stored version
// is returned either way.
func (s *Store) AddPluginSignature(ctx context.Context, name, version string, minisig []byte, signature, signedBy string) (PluginVersion, error) {
	var pv PluginVersion
	err := s.update(ctx, func(txn *badger.Txn) error {
		if err := getJSON(txn, pvKey(name, version), &pv); err != nil {
			return err
		}
		if pv.Minisig != nil || minisig == nil {
			return nil
		}
		pv.Minisig, pv.Signature, pv.SignedBy = minisig, signature, signedBy
		return setJSON(txn, pvKey(name, version), pv)
	})
	if err != nil {
		return PluginVersion{}, fmt.Errorf("plugin %s version %s: keep signature: %w", name, version, err)
	}
	return pv, nil
}

// GetPluginVersion returns one installed version.
func (s *Store) GetPluginVersion(ctx context.Context, name, version string) (PluginVersion, error) {
	var pv PluginVersion
	err := s.view(ctx, func(txn *badger.Txn) error { return getJSON(txn, pvKey(name, version), &pv) })
	if err != nil {
		return PluginVersion{}, fmt.Errorf("plugin %s version %s: %w", name, version, err)
	}
	return pv, nil
}

// ListPluginVersions returns the installed versions of a plugin, newest
// (by semantic version) first.
func (s *Store) ListPluginVersions(ctx context.Context, name string) ([]PluginVersion, error) {
	var out []PluginVersion
	err := s.view(ctx, func(txn *badger.Txn) error {
		return scanJSON(txn, pPV+name+sep, func() any { out = append(out, PluginVersion{}); return &out[len(out)-1] })
	})
	if err != nil {
		return nil, fmt.Errorf("plugin %s: list versions: %w", name, err)
	}
	slices.SortFunc(out, func(a, b PluginVersion) int { return compareSemver(b.Version, a.Version) })
	return out, nil
}

// ListPlugins returns the newest installed version of every plugin, by
// name.
func (s *Store) ListPlugins(ctx context.Context) ([]PluginVersion, error) {
	var all []PluginVersion
	err := s.view(ctx, func(txn *badger.Txn) error {
		return scanJSON(txn, pPV, func() any { all = append(all, PluginVersion{}); return &all[len(all)-1] })
	})
	if err != nil {
		return nil, fmt.Errorf("list plugins: %w", err)
	}
	// Keys sort by name, so the versions of one plugin are adjacent.
	var out []PluginVersion
	for _, pv := range all {
		n := len(out)
		switch {
		case n == 0 || out[n-1].Name != pv.Name:
			out = append(out, pv)
		case compareSemver(pv.Version, out[n-1].Version) > 0:
			out[n-1] = pv
		}
	}
	return out, nil
}

// DeletePluginVersion removes an installed version, and its blob when no
// other version uses it.
func (s *Store) DeletePluginVersion(ctx context.Context, name, version string) error {
	err := s.update(ctx, func(txn *badger.Txn) error {
		var pv PluginVersion
		if err := getJSON(txn, pvKey(name, version), &pv); err != nil {
			return err
		}
		if err := txn.Delete(pvKey(name, version)); err != nil {
			return err
		}
		if err := txn.Delete(pvBlobKey(pv.SHA256, name, version)); err != nil {
			return err
		}
		// The iterator sees this transaction's delete above, so it finds
		// only the other versions' references.
		it := txn.NewIterator(badger.IteratorOptions{Prefix: key(pIdxPVBlob, pv.SHA256, "/")})
		it.Rewind()
		used := it.Valid()
		it.Close()
		if used {
			return nil
		}
		return txn.Delete(blobKey(pv.SHA256))
	})
	if err != nil {
		return fmt.Errorf("delete plugin %s version %s: %w", name, version, err)
	}
	return nil
}

// compareSemver orders versions by semver precedence, treating anything
// that is not a semantic version as lower than any that is and comparing
// such strings lexically.
func compareSemver(a, b string) int {
	va, vb := version.Valid(a), version.Valid(b)
	switch {
	case !va && !vb:
		return strings.Compare(a, b)
	case !va:
		return -1
	case !vb:
		return 1
	}
	return version.Compare(a, b)
}
