// Package bundle packs plugins and their signatures into one file for
// air-gapped installs, and opens such a file, verifying every member against
// a signed index and every plugin against the trust policy, without any
// network access.
//
// A bundle is a gzip-compressed tar archive whose first member is
// index.json, optionally followed by index.json.minisig (a minisign
// signature of index.json), then each plugin's .wasm and, if it has one, its
// .minisig. It carries no precompiled code: see docs/signing.md.
package bundle

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/connhost/connhost/internal/signing"
)

// Format identifies the bundle layout in the index.
const Format = "connhost-bundle/1"

// Member names of the index and its signature.
const (
	IndexName          = "index.json"
	IndexSignatureName = "index.json.minisig"
)

// IndexCommentTag starts the trusted comment of an index signature:
// "connhost-bundle sha256=HEX" where HEX is the hash of index.json.
const IndexCommentTag = "connhost-bundle"

// Size limits: a bundle is untrusted input until verified, so reading it
// must not exhaust memory.
const (
	MaxPlugins      = 256
	MaxMemberBytes  = 256 << 20
	MaxBundleBytes  = 2 << 30
	maxIndexBytes   = 1 << 20
	maxSigFileBytes = 16 << 10
)

// ErrCorrupt marks a bundle whose structure or member hashes do not match
// its index.
var ErrCorrupt = errors.New("corrupt bundle")

// Index lists a bundle's plugins with the hash of every member.
type Index struct {
	Format  string    `json:"format"`
	Created time.Time `json:"created"`
	Plugins []Entry   `json:"plugins"`
}

// Entry describes one plugin in the index.
type Entry struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// File is the member holding the .wasm; SHA256 its hash.
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
	// Signature is the member holding the .minisig, "" when unsigned;
	// SignatureSHA256 its hash.
	Signature       string `json:"signature,omitempty"`
	SignatureSHA256 string `json:"signature_sha256,omitempty"`
}

// Input is one plugin to pack.
type Input struct {
	Wasm []byte
	// Signature is the plugin's .minisig, nil when unsigned.
	Signature []byte
}

// Create writes a bundle of plugins to w. When key is not nil the index is
// signed with it. Each signature's trusted comment is checked against its
// plugin (a wrong .minisig next to a .wasm is caught here rather than on the
// air-gapped side); the signatures themselves are verified on install, with
// the installing server's trusted keys.
func Create(w io.Writer, plugins []Input, key *signing.PrivateKey, now time.Time) error {
	if len(plugins) == 0 || len(plugins) > MaxPlugins {
		return fmt.Errorf("bundle: want 1 to %d plugins, got %d", MaxPlugins, len(plugins))
	}
	idx := Index{Format: Format, Created: now.UTC().Truncate(time.Second)}
	members := map[string][]byte{}
	for _, in := range plugins {
		c, err := signing.ClaimFor(in.Wasm)
		if err != nil {
			return fmt.Errorf("bundle: %w", err)
		}
		label := c.Name + "@" + c.Version
		e := Entry{Name: c.Name, Version: c.Version, File: "plugins/" + c.Name + "-" + c.Version + ".wasm", SHA256: c.SHA256}
		if _, dup := members[e.File]; dup {
			return fmt.Errorf("bundle: plugin %s given twice", label)
		}
		members[e.File] = in.Wasm
		if in.Signature != nil {
			if err := checkClaim(in.Signature, c); err != nil {
				return fmt.Errorf("bundle: plugin %s: %w", label, err)
			}
			e.Signature = e.File + ".minisig"
			e.SignatureSHA256 = signing.SHA256Hex(in.Signature)
			members[e.Signature] = in.Signature
		}
		idx.Plugins = append(idx.Plugins, e)
	}
	slices.SortFunc(idx.Plugins, func(a, b Entry) int { return strings.Compare(a.File, b.File) })
	index, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return err
	}
	gz := gzip.NewWriter(w)
	tw := tar.NewWriter(gz)
	write := func(name string, b []byte) error {
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: idx.Created, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("bundle: %s: %w", name, err)
		}
		_, err := tw.Write(b)
		return err
	}
	if err := write(IndexName, index); err != nil {
		return err
	}
	if key != nil {
		comment := IndexCommentTag + " sha256=" + signing.SHA256Hex(index)
		s, err := signing.Sign(*key, index, comment, "connhost bundle index signature from key "+key.ID.String())
		if err != nil {
			return fmt.Errorf("bundle: signing the index: %w", err)
		}
		if err := write(IndexSignatureName, s.Marshal()); err != nil {
			return err
		}
	}
	for _, e := range idx.Plugins {
		if err := write(e.File, members[e.File]); err != nil {
			return err
		}
		if e.Signature != "" {
			if err := write(e.Signature, members[e.Signature]); err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

// checkClaim checks that a signature file parses and its trusted comment
// names the plugin it is packed with.
func checkClaim(sig []byte, want signing.PluginClaim) error {
	s, err := signing.ParseSignature(sig)
	if err != nil {
		return err
	}
	got, err := signing.ParsePluginClaim(s.TrustedComment)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%w: signature is for %s@%s sha256 %s", signing.ErrClaimMismatch, got.Name, got.Version, got.SHA256)
	}
	return nil
}

// Plugin is a verified plugin from a bundle.
type Plugin struct {
	Entry
	// Wasm is the plugin's module and SignatureBytes its .minisig (nil
	// when unsigned); both are set only inside Bundle.Each.
	Wasm           []byte
	SignatureBytes []byte
	// Verified is the trust policy's verdict (Warning set for an unsigned
	// plugin admitted because require_signed is off).
	Verified *signing.Verified
}

// Bundle is an opened, verified bundle. It keeps no plugin bytes: Each
// reads them again, one plugin at a time, so reading a bundle takes memory
// for its largest member, not for all of them.
type Bundle struct {
	Index Index
	// IndexSigned is true when a trusted key signed the index; IndexKeyID
	// names it.
	IndexSigned bool
	IndexKeyID  signing.KeyID
	Plugins     []Plugin
	// Warnings are for the operator's log (unsigned plugins, unsigned index).
	Warnings []string

	open   func() (io.ReadCloser, error) // the bundle from its start
	policy *signing.Policy
	// indexSHA256 is the hash of the index Open verified; Each refuses a
	// bundle whose index has changed since.
	indexSHA256 string
	indexRaw    []byte // while reading
}

// Open reads and verifies the bundle at path with policy: the index
// signature when there is one (it must be by a trusted key), every member's
// hash against the index, no member outside the index (refused from its
// header, before it is decompressed), and every plugin with policy.Verify.
// Bundle.Each then hands the plugins' bytes over for
// service.Plugins.InstallVerified; the downgrade check needs the installed
// versions and is the installer's (signing.CheckDowngrade).
func Open(path string, policy *signing.Policy) (*Bundle, error) {
	b, err := read(func() (io.ReadCloser, error) { return os.Open(path) }, policy)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", path, err)
	}
	return b, nil
}

// Read is Open on a stream, which Each reads again from its start.
func Read(r io.ReadSeeker, policy *signing.Policy) (*Bundle, error) {
	return read(func() (io.ReadCloser, error) {
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		return io.NopCloser(r), nil
	}, policy)
}

func read(open func() (io.ReadCloser, error), policy *signing.Policy) (*Bundle, error) {
	b := &Bundle{open: open, policy: policy}
	err := b.walk(func(p Plugin) error {
		v, err := policy.Verify(p.Wasm, p.SignatureBytes)
		if err != nil {
			return err
		}
		if m := v.Manifest; m == nil || m.Name != p.Name || m.Version != p.Version {
			return fmt.Errorf("%w: plugin %s@%s: the index entry does not match the module's manifest", ErrCorrupt, p.Name, p.Version)
		}
		if v.Warning != "" {
			b.Warnings = append(b.Warnings, v.Warning)
		}
		p.Wasm, p.SignatureBytes, p.Verified = nil, nil, v
		b.Plugins = append(b.Plugins, p)
		return nil
	})
	if err != nil {
		return nil, err
	}
	b.indexSHA256 = signing.SHA256Hex(b.indexRaw)
	b.indexRaw = nil
	return b, nil
}

// Each reads the bundle again and calls fn with each plugin, its bytes set,
// in index order; it stops at fn's first error. Every member is checked
// against the index's hashes again, so the bytes are those Open verified
// even if the file changed since.
func (b *Bundle) Each(fn func(Plugin) error) error {
	verified := map[string]*signing.Verified{}
	for _, p := range b.Plugins {
		verified[p.File] = p.Verified
	}
	again := &Bundle{open: b.open, policy: b.policy, indexSHA256: b.indexSHA256}
	return again.walk(func(p Plugin) error {
		p.Verified = verified[p.File]
		return fn(p)
	})
}

// walk reads the archive, checks the index (and its signature), and calls
// fn with each plugin's entry and bytes once they are read and match the
// index's hashes. A member the index does not name, or names twice, is
// refused from its header, before any of it is decompressed; at most one
// plugin's bytes are held at a time.
func (b *Bundle) walk(fn func(Plugin) error) error {
	rc, err := b.open()
	if err != nil {
		return err
	}
	defer rc.Close()
	gz, err := gzip.NewReader(io.LimitReader(rc, MaxBundleBytes))
	if err != nil {
		return fmt.Errorf("%w: not gzip: %v", ErrCorrupt, err)
	}
	tr := tar.NewReader(gz)
	next := func(n int) (*tar.Header, error) {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, err
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil, fmt.Errorf("%w: member %q is not a regular file", ErrCorrupt, hdr.Name)
		}
		if n == 0 && hdr.Name != IndexName {
			return nil, fmt.Errorf("%w: first member is %q, want %s", ErrCorrupt, hdr.Name, IndexName)
		}
		return hdr, nil
	}
	readMember := func(hdr *tar.Header, limit int64) ([]byte, error) {
		if hdr.Size > limit {
			return nil, fmt.Errorf("%w: member %q: %d bytes, limit %d", ErrCorrupt, hdr.Name, hdr.Size, limit)
		}
		data := make([]byte, hdr.Size)
		if _, err := io.ReadFull(tr, data); err != nil {
			return nil, fmt.Errorf("%w: member %q: %v", ErrCorrupt, hdr.Name, err)
		}
		return data, nil
	}

	hdr, err := next(0)
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: empty archive", ErrCorrupt)
	}
	if err != nil {
		return err
	}
	index, err := readMember(hdr, maxIndexBytes)
	if err != nil {
		return err
	}
	if b.indexSHA256 != "" && signing.SHA256Hex(index) != b.indexSHA256 {
		return fmt.Errorf("%w: %s changed since the bundle was verified", ErrCorrupt, IndexName)
	}
	b.indexRaw = index
	if err := decodeIndex(index, &b.Index); err != nil {
		return err
	}
	// want maps each member the index names to its entry.
	want := map[string]*Entry{}
	for i := range b.Index.Plugins {
		e := &b.Index.Plugins[i]
		for _, name := range []string{e.File, e.Signature} {
			if name == "" {
				continue
			}
			if _, dup := want[name]; dup || name == IndexName || name == IndexSignatureName {
				return fmt.Errorf("%w: %s names member %q twice", ErrCorrupt, IndexName, name)
			}
			want[name] = e
		}
	}

	var pending *Plugin // a plugin read, waiting for its signature
	indexChecked := false
	seen := map[string]bool{}
	for n := 1; ; n++ {
		hdr, err := next(n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if n == 1 && hdr.Name == IndexSignatureName {
			sig, err := readMember(hdr, maxSigFileBytes)
			if err != nil {
				return err
			}
			s, err := b.policy.VerifyDetached(index, sig)
			if err != nil {
				return fmt.Errorf("index signature: %w", err)
			}
			if want := IndexCommentTag + " sha256=" + signing.SHA256Hex(index); s.TrustedComment != want {
				return fmt.Errorf("index signature: %w: trusted comment %q, want %q", signing.ErrClaimMismatch, s.TrustedComment, want)
			}
			b.IndexSigned, b.IndexKeyID = true, s.KeyID
			continue
		}
		if !indexChecked {
			indexChecked = true
			if !b.IndexSigned {
				b.Warnings = append(b.Warnings, "bundle index is unsigned: only the plugins' own signatures vouch for them")
			}
		}
		e, ok := want[hdr.Name]
		switch {
		case seen[hdr.Name] || hdr.Name == IndexName || hdr.Name == IndexSignatureName:
			return fmt.Errorf("%w: member %q appears twice", ErrCorrupt, hdr.Name)
		case !ok:
			return fmt.Errorf("%w: member %q is not in the index", ErrCorrupt, hdr.Name)
		}
		seen[hdr.Name] = true
		label := e.Name + "@" + e.Version
		if hdr.Name == e.File {
			if pending != nil {
				return fmt.Errorf("%w: plugin %s: member %s is missing (want it right after %s)", ErrCorrupt, pending.Name+"@"+pending.Version, pending.Signature, pending.File)
			}
			data, err := readMember(hdr, MaxMemberBytes)
			if err != nil {
				return err
			}
			if got := signing.SHA256Hex(data); got != e.SHA256 {
				return fmt.Errorf("%w: plugin %s: member %s has sha256 %s, the index says %s", ErrCorrupt, label, e.File, got, e.SHA256)
			}
			p := Plugin{Entry: *e, Wasm: data}
			if e.Signature != "" {
				pending = &p
				continue
			}
			if err := fn(p); err != nil {
				return err
			}
			continue
		}
		if pending == nil || pending.File != e.File {
			return fmt.Errorf("%w: plugin %s: member %s comes before its module %s", ErrCorrupt, label, e.Signature, e.File)
		}
		sig, err := readMember(hdr, maxSigFileBytes)
		if err != nil {
			return err
		}
		if got := signing.SHA256Hex(sig); got != e.SignatureSHA256 {
			return fmt.Errorf("%w: plugin %s: member %s has sha256 %s, the index says %s", ErrCorrupt, label, e.Signature, got, e.SignatureSHA256)
		}
		p := *pending
		pending, p.SignatureBytes = nil, sig
		if err := fn(p); err != nil {
			return err
		}
	}
	for _, e := range b.Index.Plugins {
		for _, name := range []string{e.File, e.Signature} {
			if name != "" && !seen[name] {
				return fmt.Errorf("%w: plugin %s@%s: member %s is missing", ErrCorrupt, e.Name, e.Version, name)
			}
		}
	}
	if !indexChecked && !b.IndexSigned {
		b.Warnings = append(b.Warnings, "bundle index is unsigned: only the plugins' own signatures vouch for them")
	}
	return nil
}

func decodeIndex(raw []byte, idx *Index) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(idx); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, IndexName, err)
	}
	if idx.Format != Format {
		return fmt.Errorf("%w: %s: format %q, this connhost reads %q", ErrCorrupt, IndexName, idx.Format, Format)
	}
	if len(idx.Plugins) == 0 || len(idx.Plugins) > MaxPlugins {
		return fmt.Errorf("%w: %s: %d plugins, want 1 to %d", ErrCorrupt, IndexName, len(idx.Plugins), MaxPlugins)
	}
	return nil
}
