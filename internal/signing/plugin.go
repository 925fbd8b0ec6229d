package signing

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/connhost/connhost/abi"
)

// PluginCommentTag starts the trusted comment of a plugin signature.
const PluginCommentTag = "connhost-plugin"

// ErrNotPluginComment is returned for a signature whose trusted comment is
// not a connhost plugin claim (e.g. minisign's default timestamp comment).
var ErrNotPluginComment = errors.New(`trusted comment is not "` + PluginCommentTag +
	` name=NAME version=VERSION sha256=HEX"; sign with: minisign -S -m FILE.wasm -t "` +
	PluginCommentTag + ` name=… version=… sha256=…" (or connhost plugin sign)`)

var hexSHA256 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// PluginClaim is what a plugin signature's trusted comment states about the
// signed file. Binding name and version (not only the hash) into the signed
// comment lets the host refuse an old signed build offered as another
// version with a message that says so.
type PluginClaim struct {
	Name    string
	Version string
	SHA256  string // lower-case hex of the whole .wasm file
}

// String renders the trusted comment:
// "connhost-plugin name=NAME version=VERSION sha256=HEX".
func (c PluginClaim) String() string {
	return PluginCommentTag + " name=" + c.Name + " version=" + c.Version + " sha256=" + c.SHA256
}

// ParsePluginClaim reads a trusted comment. Fields are space-separated
// key=value pairs after the tag, in any order; name, version and sha256 are
// required, other keys are ignored so later versions can add some.
func ParsePluginClaim(comment string) (PluginClaim, error) {
	fields := strings.Fields(comment)
	if len(fields) == 0 || fields[0] != PluginCommentTag {
		return PluginClaim{}, fmt.Errorf("%w (got %q)", ErrNotPluginComment, comment)
	}
	seen := map[string]string{}
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return PluginClaim{}, fmt.Errorf("%w: field %q is not key=value", ErrNotPluginComment, f)
		}
		if _, dup := seen[k]; dup {
			return PluginClaim{}, fmt.Errorf("%w: field %q given twice", ErrNotPluginComment, k)
		}
		seen[k] = v
	}
	c := PluginClaim{Name: seen["name"], Version: seen["version"], SHA256: seen["sha256"]}
	var missing []string
	for _, k := range []string{"name", "version", "sha256"} {
		if seen[k] == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return PluginClaim{}, fmt.Errorf("%w: missing %s", ErrNotPluginComment, strings.Join(missing, ", "))
	}
	if !hexSHA256.MatchString(c.SHA256) {
		return PluginClaim{}, fmt.Errorf("%w: sha256 %q is not 64 lower-case hex digits", ErrNotPluginComment, c.SHA256)
	}
	return c, nil
}

// SHA256Hex returns the lower-case hex SHA-256 of b, the plugin identity the
// host and the trusted comment use.
func SHA256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// ClaimFor reads the manifest embedded in a plugin module and returns the
// claim that signs it.
func ClaimFor(wasm []byte) (PluginClaim, error) {
	m, err := abi.ReadManifest(wasm)
	if err != nil {
		return PluginClaim{}, fmt.Errorf("plugin sha256 %s: %w", SHA256Hex(wasm)[:12], err)
	}
	if err := m.Validate(); err != nil {
		return PluginClaim{}, fmt.Errorf("plugin %s@%s: invalid manifest: %w", m.Name, m.Version, err)
	}
	return PluginClaim{Name: m.Name, Version: m.Version, SHA256: SHA256Hex(wasm)}, nil
}

// SignPlugin signs a plugin module with the claim read from its manifest
// and returns the .minisig file contents.
func SignPlugin(k PrivateKey, wasm []byte) ([]byte, error) {
	c, err := ClaimFor(wasm)
	if err != nil {
		return nil, err
	}
	s, err := Sign(k, wasm, c.String(), "connhost plugin signature from key "+k.ID.String())
	if err != nil {
		return nil, fmt.Errorf("plugin %s@%s: %w", c.Name, c.Version, err)
	}
	return s.Marshal(), nil
}
