package abi

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ManifestSection is the name of the wasm custom section that holds the
// plugin manifest as UTF-8 JSON.
const ManifestSection = "connhost.manifest"

// EgressParamPrefix marks a manifest egress entry that names a parameter
// holding a URL: "param:url" allows the host of that URL.
const EgressParamPrefix = "param:"

// ParamType is the type of a configuration parameter.
type ParamType string

// Parameter types.
const (
	ParamString   ParamType = "string"
	ParamSecret   ParamType = "secret"
	ParamBool     ParamType = "bool"
	ParamNumber   ParamType = "number"
	ParamSelect   ParamType = "select"
	ParamInterval ParamType = "interval" // minutes, as XSOAR's incidentFetchInterval
)

// Param declares one instance configuration parameter.
type Param struct {
	Name     string    `json:"name"`
	Display  string    `json:"display,omitempty"`
	Type     ParamType `json:"type"`
	Required bool      `json:"required,omitempty"`
	Default  any       `json:"default,omitempty"`
	Options  []string  `json:"options,omitempty"` // select only
	Help     string    `json:"help,omitempty"`
}

// Argument declares one command argument.
type Argument struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Required    bool     `json:"required,omitempty"`
	Default     string   `json:"default,omitempty"`
	Options     []string `json:"options,omitempty"`
}

// Command declares a command the plugin implements beyond the reserved ones
// that its flags imply.
type Command struct {
	Name        string     `json:"name"`
	Description string     `json:"description,omitempty"`
	Arguments   []Argument `json:"arguments,omitempty"`
}

// Manifest describes a plugin. It travels inside the .wasm file in the
// ManifestSection custom section.
type Manifest struct {
	Name            string    `json:"name"`
	Display         string    `json:"display,omitempty"`
	Version         string    `json:"version"`
	Description     string    `json:"description,omitempty"`
	ABIVersion      int       `json:"abi_version"`
	Params          []Param   `json:"params,omitempty"`
	Commands        []Command `json:"commands,omitempty"`
	IsFetch         bool      `json:"isfetch,omitempty"`
	IsMappable      bool      `json:"ismappable,omitempty"`
	IsRemoteSyncIn  bool      `json:"isremotesyncin,omitempty"`
	IsRemoteSyncOut bool      `json:"isremotesyncout,omitempty"`
	LongRunning     bool      `json:"longRunning,omitempty"`
	LongRunningHTTP bool      `json:"longRunningHTTP,omitempty"`
	// Egress lists the hosts the plugin needs to reach: "host", "host:port",
	// "*.domain", or "param:NAME" for the host of the URL in parameter NAME
	// (for connectors whose server address is configured per instance).
	Egress []string `json:"egress,omitempty"`
}

// The checks below are written out rather than as regular expressions:
// this package is linked into every guest, and package regexp would add
// half a megabyte to each.

// isIdent reports whether s matches ^[a-z0-9][a-z0-9_-]{0,max-1}$: plugin
// and command names.
func isIdent(s string, max int) bool {
	if s == "" || len(s) > max || s[0] == '_' || s[0] == '-' {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// isSemver reports whether v is MAJOR.MINOR.PATCH (no leading zeros) with
// an optional -prerelease and +build of [0-9A-Za-z.-].
func isSemver(v string) bool {
	core, build, hasBuild := strings.Cut(v, "+")
	core, pre, hasPre := strings.Cut(core, "-")
	if (hasBuild && !isSemverTag(build)) || (hasPre && !isSemverTag(pre)) {
		return false
	}
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if p == "" || (len(p) > 1 && p[0] == '0') || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}

func isSemverTag(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// ErrNoManifest is returned by ReadManifest for a module without a
// ManifestSection.
var ErrNoManifest = errors.New("no " + ManifestSection + " custom section")

// Validate checks the manifest and returns every problem found, joined.
func (m *Manifest) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !isIdent(m.Name, 64) {
		bad("name %q: want lower-case letters, digits, '-' or '_', at most 64", m.Name)
	}
	if !isSemver(m.Version) {
		bad("version %q: not a semantic version (MAJOR.MINOR.PATCH)", m.Version)
	}
	if m.ABIVersion != Version {
		bad("abi_version %d: this host serves ABI version %d", m.ABIVersion, Version)
	}
	seen := map[string]bool{}
	for i, p := range m.Params {
		switch {
		case p.Name == "":
			bad("params[%d]: empty name", i)
		case seen[p.Name]:
			bad("params[%d]: duplicate name %q", i, p.Name)
		}
		seen[p.Name] = true
		switch p.Type {
		case ParamString, ParamSecret, ParamBool, ParamNumber, ParamInterval:
		case ParamSelect:
			if len(p.Options) == 0 {
				bad("param %q: type select needs options", p.Name)
			}
		default:
			bad("param %q: unknown type %q", p.Name, p.Type)
		}
		if p.Default != nil {
			if _, err := p.Coerce(p.Default); err != nil {
				bad("param %q: default: %v", p.Name, err)
			}
		}
	}
	cmds := map[string]bool{}
	for i, c := range m.Commands {
		switch {
		case !isIdent(c.Name, 128):
			bad("commands[%d]: name %q: want lower-case letters, digits, '-' or '_'", i, c.Name)
		case cmds[c.Name]:
			bad("commands[%d]: duplicate name %q", i, c.Name)
		}
		cmds[c.Name] = true
	}
	if m.LongRunningHTTP && !m.LongRunning {
		bad("longRunningHTTP needs longRunning")
	}
	for _, h := range m.Egress {
		if name, ok := strings.CutPrefix(h, EgressParamPrefix); ok {
			if _, declared := m.Param(name); !declared {
				bad("egress %q: no param %q", h, name)
			}
			continue
		}
		if h == "" || strings.ContainsAny(h, "/ ") {
			bad("egress %q: want a host name, host:port, *.domain or param:NAME", h)
		}
	}
	return errors.Join(errs...)
}

// Param returns the declared parameter called name.
func (m *Manifest) Param(name string) (Param, bool) {
	for _, p := range m.Params {
		if p.Name == name {
			return p, true
		}
	}
	return Param{}, false
}

// Command returns the declared command called name.
func (m *Manifest) Command(name string) (Command, bool) {
	for _, c := range m.Commands {
		if c.Name == name {
			return c, true
		}
	}
	return Command{}, false
}

// Supports reports whether the plugin serves command name: a declared
// command, test-module, or a reserved command its flags imply.
func (m *Manifest) Supports(name string) bool {
	switch name {
	case CommandTestModule:
		return true
	case CommandFetchIncidents:
		return m.IsFetch
	case CommandGetRemoteData, CommandGetModifiedRemoteData:
		return m.IsRemoteSyncIn
	case CommandUpdateRemoteSystem:
		return m.IsRemoteSyncOut
	case CommandGetMappingFields:
		return m.IsMappable
	case CommandLongRunningExecution:
		return m.LongRunning
	}
	_, ok := m.Command(name)
	return ok
}

// Coerce converts a parameter value given as JSON value or string (from a
// command line or form) to the parameter's type, or says why it cannot.
func (p Param) Coerce(v any) (any, error) {
	switch p.Type {
	case ParamString, ParamSecret:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("want a string, got %T", v)
		}
		return s, nil
	case ParamBool:
		switch x := v.(type) {
		case bool:
			return x, nil
		case string:
			b, err := strconv.ParseBool(x)
			if err != nil {
				return nil, fmt.Errorf("want true or false, got %q", x)
			}
			return b, nil
		}
		return nil, fmt.Errorf("want a bool, got %T", v)
	case ParamNumber, ParamInterval:
		var f float64
		switch x := v.(type) {
		case float64:
			f = x
		case int:
			f = float64(x)
		case json.Number:
			n, err := x.Float64()
			if err != nil {
				return nil, fmt.Errorf("want a number, got %q", x.String())
			}
			f = n
		case string:
			n, err := strconv.ParseFloat(x, 64)
			if err != nil {
				return nil, fmt.Errorf("want a number, got %q", x)
			}
			f = n
		default:
			return nil, fmt.Errorf("want a number, got %T", v)
		}
		if p.Type == ParamInterval && f <= 0 {
			return nil, fmt.Errorf("want a positive interval in minutes, got %v", f)
		}
		return f, nil
	case ParamSelect:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("want one of %v, got %T", p.Options, v)
		}
		for _, o := range p.Options {
			if o == s {
				return s, nil
			}
		}
		return nil, fmt.Errorf("want one of %v, got %q", p.Options, s)
	}
	return nil, fmt.Errorf("unknown type %q", p.Type)
}

// ValidateParams checks instance parameter values against the manifest:
// unknown names, types, select options and required parameters. It returns
// the values coerced to their types with defaults filled in.
func (m *Manifest) ValidateParams(values map[string]any) (map[string]any, error) {
	var errs []error
	out := make(map[string]any, len(m.Params))
	for name := range values {
		if _, ok := m.Param(name); !ok {
			errs = append(errs, fmt.Errorf("param %q: not declared by plugin %s", name, m.Name))
		}
	}
	for _, p := range m.Params {
		v, ok := values[p.Name]
		if !ok || v == nil || v == "" {
			if p.Default != nil {
				v, ok = p.Default, true
			} else if p.Required {
				errs = append(errs, fmt.Errorf("param %q: required", p.Name))
				continue
			} else {
				continue
			}
		}
		c, err := p.Coerce(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("param %q: %w", p.Name, err))
			continue
		}
		out[p.Name] = c
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

const wasmMagic = "\x00asm\x01\x00\x00\x00"

// ReadManifest finds the ManifestSection in a wasm binary and decodes it. It
// does not validate the manifest.
func ReadManifest(wasm []byte) (*Manifest, error) {
	payload, err := customSection(wasm, ManifestSection)
	if err != nil {
		return nil, err
	}
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("manifest section: %w", err)
	}
	return &m, nil
}

// EmbedManifest returns wasm with the manifest JSON in a ManifestSection
// custom section, replacing any earlier one.
func EmbedManifest(wasm []byte, m *Manifest) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("invalid manifest: %w", err)
	}
	payload, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	stripped, err := withoutSection(wasm, ManifestSection)
	if err != nil {
		return nil, err
	}
	var sec []byte
	sec = binary.AppendUvarint(sec, uint64(len(ManifestSection)))
	sec = append(sec, ManifestSection...)
	sec = append(sec, payload...)
	out := append(stripped, 0) // custom section id
	out = binary.AppendUvarint(out, uint64(len(sec)))
	return append(out, sec...), nil
}

type section struct {
	id         byte
	start, end int // whole section, header included
	name       string
	payload    []byte // custom sections: after the name
}

func sections(wasm []byte) ([]section, error) {
	if len(wasm) < 8 || string(wasm[:8]) != wasmMagic {
		return nil, errors.New("not a wasm module (bad magic or version)")
	}
	var out []section
	for off := 8; off < len(wasm); {
		start := off
		id := wasm[off]
		off++
		size, n := binary.Uvarint(wasm[off:])
		if n <= 0 || size > uint64(len(wasm)-off-n) {
			return nil, fmt.Errorf("malformed wasm: section at offset %d has a bad size", start)
		}
		off += n
		body := wasm[off : off+int(size)]
		off += int(size)
		s := section{id: id, start: start, end: off}
		if id == 0 {
			l, m := binary.Uvarint(body)
			if m <= 0 || l > uint64(len(body)-m) {
				return nil, fmt.Errorf("malformed wasm: custom section at offset %d has a bad name", start)
			}
			s.name = string(body[m : m+int(l)])
			s.payload = body[m+int(l):]
		}
		out = append(out, s)
	}
	return out, nil
}

func customSection(wasm []byte, name string) ([]byte, error) {
	secs, err := sections(wasm)
	if err != nil {
		return nil, err
	}
	for _, s := range secs {
		if s.id == 0 && s.name == name {
			return s.payload, nil
		}
	}
	return nil, ErrNoManifest
}

func withoutSection(wasm []byte, name string) ([]byte, error) {
	secs, err := sections(wasm)
	if err != nil {
		return nil, err
	}
	out := append([]byte(nil), wasm[:8]...)
	for _, s := range secs {
		if s.id == 0 && s.name == name {
			continue
		}
		out = append(out, wasm[s.start:s.end]...)
	}
	return out, nil
}
