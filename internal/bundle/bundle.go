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
	Wasm []byte
	// SignatureBytes is the plugin's .minisig, nil when unsigned.
	SignatureBytes []byte
	// Verified is the trust policy's verdict (Warning set for an unsigned
	// plugin admitted because require_signed is off).
	Verified *signing.Verified
}

// Bundle is an opened, verified bundle.
type Bundle struct {
	Index Index
	// IndexSigned is true when a trusted key signed the index; IndexKeyID
	// names it.
	IndexSigned bool
	IndexKeyID  signing.KeyID
	Plugins     []Plugin
	// Warnings are for the operator's log (unsigned plugins, unsigned index).
	Warnings []string
}

// Open reads and verifies the bundle at path with policy: the index
// signature when there is one (it must be by a trusted key), every member's
// hash against the index, no member outside the index, and every plugin
// with policy.Verify. It returns the plugin bytes ready for
// service.Plugins.InstallVerified; the downgrade check needs the installed versions
// and is the installer's (signing.CheckDowngrade).
func Open(path string, policy *signing.Policy) (*Bundle, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	defer f.Close()
	b, err := Read(f, policy)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", path, err)
	}
	return b, nil
}

// Read is Open on a stream.
func Read(r io.Reader, policy *signing.Policy) (*Bundle, error) {
	index, members, err := readMembers(io.LimitReader(r, MaxBundleBytes))
	if err != nil {
		return nil, err
	}
	b := &Bundle{}
	if err := decodeIndex(index, &b.Index); err != nil {
		return nil, err
	}
	if sig, ok := members[IndexSignatureName]; ok {
		delete(members, IndexSignatureName)
		s, err := policy.VerifyDetached(index, sig)
		if err != nil {
			return nil, fmt.Errorf("index signature: %w", err)
		}
		if want := IndexCommentTag + " sha256=" + signing.SHA256Hex(index); s.TrustedComment != want {
			return nil, fmt.Errorf("index signature: %w: trusted comment %q, want %q", signing.ErrClaimMismatch, s.TrustedComment, want)
		}
		b.IndexSigned, b.IndexKeyID = true, s.KeyID
	} else {
		b.Warnings = append(b.Warnings, "bundle index is unsigned: only the plugins' own signatures vouch for them")
	}
	for _, e := range b.Index.Plugins {
		p, err := openEntry(e, members, policy)
		if err != nil {
			return nil, err
		}
		if p.Verified.Warning != "" {
			b.Warnings = append(b.Warnings, p.Verified.Warning)
		}
		b.Plugins = append(b.Plugins, p)
	}
	if len(members) > 0 {
		extra := make([]string, 0, len(members))
		for name := range members {
			extra = append(extra, name)
		}
		slices.Sort(extra)
		return nil, fmt.Errorf("%w: members not in the index: %s", ErrCorrupt, strings.Join(extra, ", "))
	}
	return b, nil
}

// openEntry takes an entry's members out of members, checks their hashes
// and applies the policy.
func openEntry(e Entry, members map[string][]byte, policy *signing.Policy) (Plugin, error) {
	label := e.Name + "@" + e.Version
	take := func(name, sha string) ([]byte, error) {
		data, ok := members[name]
		if !ok {
			return nil, fmt.Errorf("%w: plugin %s: member %s is missing", ErrCorrupt, label, name)
		}
		delete(members, name)
		if got := signing.SHA256Hex(data); got != sha {
			return nil, fmt.Errorf("%w: plugin %s: member %s has sha256 %s, the index says %s", ErrCorrupt, label, name, got, sha)
		}
		return data, nil
	}
	p := Plugin{Entry: e}
	var err error
	if p.Wasm, err = take(e.File, e.SHA256); err != nil {
		return Plugin{}, err
	}
	if e.Signature != "" {
		if p.SignatureBytes, err = take(e.Signature, e.SignatureSHA256); err != nil {
			return Plugin{}, err
		}
	}
	if p.Verified, err = policy.Verify(p.Wasm, p.SignatureBytes); err != nil {
		return Plugin{}, err
	}
	if m := p.Verified.Manifest; m == nil || m.Name != e.Name || m.Version != e.Version {
		return Plugin{}, fmt.Errorf("%w: plugin %s: the index entry does not match the module's manifest", ErrCorrupt, label)
	}
	return p, nil
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

// readMembers reads the archive: index.json first, then regular files with
// unique names, each within its size limit.
func readMembers(r io.Reader) ([]byte, map[string][]byte, error) {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: not gzip: %v", ErrCorrupt, err)
	}
	tr := tar.NewReader(gz)
	var index []byte
	members := map[string][]byte{}
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			return nil, nil, fmt.Errorf("%w: member %q is not a regular file", ErrCorrupt, hdr.Name)
		}
		if n == 0 && hdr.Name != IndexName {
			return nil, nil, fmt.Errorf("%w: first member is %q, want %s", ErrCorrupt, hdr.Name, IndexName)
		}
		if n > 2*MaxPlugins+1 {
			return nil, nil, fmt.Errorf("%w: more than %d members", ErrCorrupt, 2*MaxPlugins+2)
		}
		limit := int64(MaxMemberBytes)
		switch {
		case n == 0:
			limit = maxIndexBytes
		case strings.HasSuffix(hdr.Name, ".minisig"):
			limit = maxSigFileBytes
		}
		if hdr.Size > limit {
			return nil, nil, fmt.Errorf("%w: member %q: %d bytes, limit %d", ErrCorrupt, hdr.Name, hdr.Size, limit)
		}
		data, err := io.ReadAll(io.LimitReader(tr, hdr.Size))
		if err != nil {
			return nil, nil, fmt.Errorf("%w: member %q: %v", ErrCorrupt, hdr.Name, err)
		}
		if n == 0 {
			index = data
			continue
		}
		if _, dup := members[hdr.Name]; dup || hdr.Name == IndexName {
			return nil, nil, fmt.Errorf("%w: member %q appears twice", ErrCorrupt, hdr.Name)
		}
		members[hdr.Name] = data
	}
	if index == nil {
		return nil, nil, fmt.Errorf("%w: empty archive", ErrCorrupt)
	}
	return index, members, nil
}
