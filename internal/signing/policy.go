package signing

import (
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/connhost/connhost/abi"
)

// Policy errors. Every refusal from Verify wraps exactly one of them (and,
// where it adds detail, a lower-level error such as ErrMalformed), so the
// install path can map them and tests can tell which check failed.
var (
	// ErrUnsigned: no signature while require_signed is on.
	ErrUnsigned = errors.New("plugin is unsigned and require_signed is on")
	// ErrUnknownKey: signed by a key that is not trusted.
	ErrUnknownKey = errors.New("signed by an unknown key")
	// ErrTamperedSignature: the signature file does not parse, or its
	// signature or trusted comment was altered.
	ErrTamperedSignature = errors.New("signature file is corrupt or was tampered with")
	// ErrTamperedPlugin: the .wasm was altered after signing.
	ErrTamperedPlugin = errors.New("plugin file was tampered with: it does not match its signature")
	// ErrClaimMismatch: the signed trusted comment names another plugin,
	// version or hash than the file has.
	ErrClaimMismatch = errors.New("signed trusted comment does not match the plugin")
	// ErrNameNotAllowed: the signing key is trusted only for plugin names
	// the plugin's does not match.
	ErrNameNotAllowed = errors.New("signing key is not trusted for this plugin name")
	// ErrDowngrade: an older version than the current or an installed one.
	ErrDowngrade = errors.New("downgrade refused")
)

// Policy is the server's trust policy: the public keys whose signatures it
// accepts, the plugin names each may sign, and whether unsigned plugins are
// refused. It is immutable and safe for concurrent use.
type Policy struct {
	keys          map[KeyID]PublicKey
	names         map[KeyID][]string // path.Match patterns; none means any name
	requireSigned bool
}

// PolicyConfig is the configuration form of a Policy.
type PolicyConfig struct {
	// TrustedKeys are minisign public keys: paths of .pub files, or the bare
	// base64 key (what `minisign -P` takes), each optionally followed by
	// "=" and the plugin names it may sign as path.Match patterns separated
	// by "|" (author.pub=acme-*|acme2-*). A key without patterns may sign
	// any plugin name.
	TrustedKeys []string
	// RequireSigned refuses unsigned plugins; when false they are admitted
	// with a warning (development).
	RequireSigned bool
}

// TrustedKey is a trusted public key and the plugin names it may sign.
type TrustedKey struct {
	Key PublicKey
	// Names are path.Match patterns a plugin's name must match for the key
	// to vouch for it; empty means any name.
	Names []string
}

// NewPolicy returns a policy trusting keys for any plugin name.
func NewPolicy(keys []PublicKey, requireSigned bool) *Policy {
	tks := make([]TrustedKey, 0, len(keys))
	for _, k := range keys {
		tks = append(tks, TrustedKey{Key: k})
	}
	p, _ := NewScopedPolicy(tks, requireSigned) // no patterns, nothing to refuse
	return p
}

// NewScopedPolicy returns a policy trusting each key for the plugin names
// its patterns match. A malformed pattern is an error naming the key.
func NewScopedPolicy(keys []TrustedKey, requireSigned bool) (*Policy, error) {
	p := &Policy{keys: make(map[KeyID]PublicKey, len(keys)), names: map[KeyID][]string{}, requireSigned: requireSigned}
	for _, k := range keys {
		for _, pat := range k.Names {
			if _, err := path.Match(pat, ""); err != nil || pat == "" {
				return nil, fmt.Errorf("key ID %s: plugin name pattern %q (want path.Match patterns separated by |): %w",
					k.Key.ID, pat, path.ErrBadPattern)
			}
		}
		if _, dup := p.keys[k.Key.ID]; dup && (len(k.Names) > 0 || len(p.names[k.Key.ID]) > 0) {
			// Which entry would win is a guess either way; say so.
			return nil, fmt.Errorf("key ID %s is listed more than once with plugin name patterns: list it once", k.Key.ID)
		}
		p.keys[k.Key.ID] = k.Key
		if len(k.Names) > 0 {
			p.names[k.Key.ID] = slices.Clone(k.Names)
		}
	}
	return p, nil
}

// LoadPolicy reads the trusted keys of cfg and their name patterns.
func LoadPolicy(cfg PolicyConfig) (*Policy, error) {
	keys := make([]TrustedKey, 0, len(cfg.TrustedKeys))
	for _, ref := range cfg.TrustedKeys {
		tk, err := loadTrustedKey(ref)
		if err != nil {
			return nil, fmt.Errorf("trusted key %q: %w", ref, err)
		}
		keys = append(keys, tk)
	}
	return NewScopedPolicy(keys, cfg.RequireSigned)
}

// loadTrustedKey reads REF or REF=PATTERN|PATTERN... The whole entry is
// tried as a key first, so a key file whose path holds "=" still loads.
func loadTrustedKey(entry string) (TrustedKey, error) {
	k, err := loadPublicKey(entry)
	if err == nil {
		return TrustedKey{Key: k}, nil
	}
	ref, pats, ok := cutLast(entry, "=")
	if !ok {
		return TrustedKey{}, err
	}
	if k, err = loadPublicKey(ref); err != nil {
		return TrustedKey{}, err
	}
	return TrustedKey{Key: k, Names: strings.Split(pats, "|")}, nil
}

// cutLast is strings.Cut at the last sep.
func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// loadPublicKey takes a bare base64 key when ref parses as one, else reads
// the file ref names.
func loadPublicKey(ref string) (PublicKey, error) {
	if k, err := ParsePublicKey([]byte(ref)); err == nil {
		return k, nil
	}
	b, err := os.ReadFile(ref)
	if err != nil {
		return PublicKey{}, err
	}
	return ParsePublicKey(b)
}

// RequireSigned reports whether unsigned plugins are refused.
func (p *Policy) RequireSigned() bool { return p.requireSigned }

// KeyIDs returns the IDs of the trusted keys, sorted.
func (p *Policy) KeyIDs() []string {
	ids := make([]string, 0, len(p.keys))
	for id := range p.keys {
		ids = append(ids, id.String())
	}
	slices.Sort(ids)
	return ids
}

// Verified is what Verify established about an admitted plugin.
type Verified struct {
	// Manifest is the plugin's embedded manifest (not validated here; the
	// runtime validates it when it loads the plugin). Nil only for an
	// unsigned plugin without a readable manifest.
	Manifest *abi.Manifest
	// SHA256 is the lower-case hex hash of the file.
	SHA256 string
	// Signed is true when a trusted signature covers the file.
	Signed bool
	// KeyID names the key that signed it.
	KeyID KeyID
	// Warning is set when an unsigned plugin is admitted because
	// require_signed is off; the caller logs it.
	Warning string
}

// Label names the plugin in messages: name@version, or its hash prefix.
func (v *Verified) Label() string {
	if v.Manifest != nil {
		return v.Manifest.Name + "@" + v.Manifest.Version
	}
	return "sha256:" + v.SHA256[:12]
}

// Verify applies the policy to a plugin module and its detached .minisig
// signature (nil when the plugin has none). A signature that is present is
// always checked, whatever require_signed says. The checks run in this
// order and the error names the first that fails: the signature parses; its
// key is trusted (ErrUnknownKey); the signature and trusted comment are
// intact (ErrTamperedSignature); the file matches the signature
// (ErrTamperedPlugin); the trusted comment is a plugin claim
// (ErrNotPluginComment) whose hash, name and version are the file's
// (ErrClaimMismatch); the key may sign that name (ErrNameNotAllowed).
func (p *Policy) Verify(wasm, sig []byte) (*Verified, error) {
	v := &Verified{SHA256: SHA256Hex(wasm)}
	v.Manifest, _ = abi.ReadManifest(wasm)
	label := v.Label()
	if sig == nil {
		if p.requireSigned {
			return nil, fmt.Errorf("plugin %s: %w", label, ErrUnsigned)
		}
		v.Warning = fmt.Sprintf("plugin %s is unsigned; admitted because require_signed is off", label)
		return v, nil
	}
	s, err := ParseSignature(sig)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w: %w", label, ErrTamperedSignature, err)
	}
	k, ok := p.keys[s.KeyID]
	if !ok {
		return nil, fmt.Errorf("plugin %s: %w: key ID %s is not among the trusted keys [%s]",
			label, ErrUnknownKey, s.KeyID, strings.Join(p.KeyIDs(), " "))
	}
	switch err := Verify(k, wasm, s); {
	case errors.Is(err, ErrCommentSignature):
		return nil, fmt.Errorf("plugin %s: %w: %w", label, ErrTamperedSignature, err)
	case errors.Is(err, ErrFileSignature):
		return nil, fmt.Errorf("plugin %s: %w (sha256 %s, key ID %s)", label, ErrTamperedPlugin, v.SHA256, s.KeyID)
	case err != nil:
		return nil, fmt.Errorf("plugin %s: %w", label, err)
	}
	c, err := ParsePluginClaim(s.TrustedComment)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", label, err)
	}
	if c.SHA256 != v.SHA256 {
		return nil, fmt.Errorf("plugin %s: %w: signed sha256 %s, file sha256 %s", label, ErrClaimMismatch, c.SHA256, v.SHA256)
	}
	if v.Manifest == nil {
		return nil, fmt.Errorf("plugin %s: %w: the file has no readable manifest", label, ErrClaimMismatch)
	}
	if c.Name != v.Manifest.Name {
		return nil, fmt.Errorf("plugin %s: %w: signed name %q, manifest name %q", label, ErrClaimMismatch, c.Name, v.Manifest.Name)
	}
	if c.Version != v.Manifest.Version {
		return nil, fmt.Errorf("plugin %s: %w: signed version %q, manifest version %q", label, ErrClaimMismatch, c.Version, v.Manifest.Version)
	}
	if pats := p.names[s.KeyID]; len(pats) > 0 && !slices.ContainsFunc(pats, func(pat string) bool {
		ok, _ := path.Match(pat, c.Name)
		return ok
	}) {
		return nil, fmt.Errorf("plugin %s: %w: key ID %s may sign only plugins named %s, not %q",
			label, ErrNameNotAllowed, s.KeyID, strings.Join(pats, " or "), c.Name)
	}
	v.Signed, v.KeyID = true, s.KeyID
	return v, nil
}

// VerifyDetached checks a signature over arbitrary bytes (a bundle index)
// against the trusted keys and returns it so the caller can check its
// trusted comment. Errors wrap ErrUnknownKey, ErrTamperedSignature or, for
// altered bytes, ErrFileSignature.
func (p *Policy) VerifyDetached(msg, sig []byte) (*Signature, error) {
	s, err := ParseSignature(sig)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTamperedSignature, err)
	}
	k, ok := p.keys[s.KeyID]
	if !ok {
		return nil, fmt.Errorf("%w: key ID %s is not among the trusted keys [%s]", ErrUnknownKey, s.KeyID, strings.Join(p.KeyIDs(), " "))
	}
	switch err := Verify(k, msg, s); {
	case errors.Is(err, ErrCommentSignature):
		return nil, fmt.Errorf("%w: %w", ErrTamperedSignature, err)
	case err != nil:
		return nil, err
	}
	return s, nil
}

// CheckDowngrade decides whether installing version of plugin name may make
// it current, given the current version ("" when none) and the installed
// versions. It refuses (ErrDowngrade) a version older than the current one,
// whether or not it is installed: re-sending an old, validly signed build
// with a known flaw must not bring it back. A version not installed yet is
// also refused when any installed version is newer, so an old build cannot
// slip in beside a newer one either. Installing the current version again
// is no downgrade. Making an older installed version current is a separate,
// explicit operation (rollback, set current) that does not go through this
// check. The message names the offered, current and newer versions.
func CheckDowngrade(name, version, current string, installed []string) error {
	refuse := func(newer string) error {
		return fmt.Errorf("plugin %s: %w: offered version %s is older than %s; "+
			"only an explicit rollback or set-current makes an older version current",
			name, ErrDowngrade, version, newer)
	}
	if current != "" {
		c, err := CompareVersions(version, current)
		if err != nil {
			return fmt.Errorf("plugin %s: %w", name, err)
		}
		if c < 0 {
			return refuse("the current version " + current)
		}
		if c == 0 {
			return nil
		}
	}
	if slices.Contains(installed, version) {
		return nil
	}
	for _, have := range installed {
		c, err := CompareVersions(version, have)
		if err != nil {
			return fmt.Errorf("plugin %s: %w", name, err)
		}
		if c < 0 {
			return refuse("installed version " + have + " (current version " + orNone(current) + ")")
		}
	}
	return nil
}

func orNone(v string) string {
	if v == "" {
		return "none"
	}
	return v
}
