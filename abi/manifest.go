package abi

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
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
	// "*.domain", or "param:NAME" for the host of the URL in string
	// parameter NAME (for connectors whose server address is configured per
	// instance). ParseEgress gives the exact grammar.
	Egress []string `json:"egress,omitempty"`
}

// Manifest caps. A manifest is served on every plugin listing and shown in
// UIs, so a hostile one must not be able to make either heavy; text caps
// count bytes of UTF-8. Validate checks every one; DecodeManifest checks
// MaxManifestBytes before decoding anything.
const (
	// MaxManifestBytes caps the manifest JSON as a whole: the payload of the
	// ManifestSection, or the file `connhost plugin pack` reads.
	MaxManifestBytes = 64 << 10
	// MaxNameBytes caps the plugin name.
	MaxNameBytes = 64
	// MaxVersionBytes caps the version.
	MaxVersionBytes = 64
	// MaxDisplayBytes caps the display name of the plugin and of a param.
	MaxDisplayBytes = 128
	// MaxDescriptionBytes caps the description of the plugin, of a command
	// and of an argument.
	MaxDescriptionBytes = 4 << 10
	// MaxHelpBytes caps the help of a param.
	MaxHelpBytes = 1 << 10
	// MaxParamNameBytes caps the name of a param.
	MaxParamNameBytes = 64
	// MaxCommandNameBytes caps the name of a command.
	MaxCommandNameBytes = 128
	// MaxArgumentNameBytes caps the name of an argument.
	MaxArgumentNameBytes = 64
	// MaxDefaultBytes caps a default value given as a string, of a param or
	// an argument.
	MaxDefaultBytes = 1 << 10
	// MaxOptions caps the options of one param or argument.
	MaxOptions = 256
	// MaxOptionBytes caps one option.
	MaxOptionBytes = 128
	// MaxParams caps the number of params.
	MaxParams = 128
	// MaxCommands caps the number of commands.
	MaxCommands = 256
	// MaxArguments caps the number of arguments of one command.
	MaxArguments = 64
	// MaxEgress caps the number of egress entries.
	MaxEgress = 64
)

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

// checkSemver says why v is not a Semantic Versioning 2.0.0 version, or
// returns nil: MAJOR.MINOR.PATCH, then optionally -PRERELEASE and +BUILD,
// each dot-separated non-empty identifiers of [0-9A-Za-z-], numbers without
// leading zeros except in BUILD.
func checkSemver(v string) error {
	rest, build, hasBuild := strings.Cut(v, "+")
	core, pre, hasPre := strings.Cut(rest, "-")
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return errors.New("want MAJOR.MINOR.PATCH")
	}
	for _, p := range parts {
		if p == "" || strings.Trim(p, "0123456789") != "" || len(p) > 1 && p[0] == '0' {
			return fmt.Errorf("%s: want a number without leading zeros", quote(p))
		}
	}
	if hasPre {
		if err := checkSemverIDs("prerelease", pre, true); err != nil {
			return err
		}
	}
	if hasBuild {
		return checkSemverIDs("build", build, false)
	}
	return nil
}

func checkSemverIDs(what, ids string, numbersCanonical bool) error {
	for id := range strings.SplitSeq(ids, ".") {
		if id == "" {
			return fmt.Errorf("empty %s identifier", what)
		}
		for _, c := range []byte(id) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("%s identifier %s: want [0-9A-Za-z-]", what, quote(id))
			}
		}
		if numbersCanonical && len(id) > 1 && id[0] == '0' && strings.Trim(id, "0123456789") == "" {
			return fmt.Errorf("%s identifier %s: a number with a leading zero", what, quote(id))
		}
	}
	return nil
}

// quote quotes a manifest value for an error message, cut to 64 bytes:
// the value may be a hostile one of any size.
func quote(s string) string {
	if len(s) <= 64 {
		return strconv.Quote(s)
	}
	return strconv.Quote(s[:64]) + "..."
}

// ErrNoManifest is returned by ReadManifest for a module without a
// ManifestSection.
var ErrNoManifest = errors.New("no " + ManifestSection + " custom section")

// maxProblems bounds the problems Validate lists, so that a hostile
// manifest cannot make the error itself large.
const maxProblems = 20

// problems collects what Validate finds, each error prefixed with the path
// of the field.
type problems struct {
	errs []error
	more int
}

func (p *problems) add(format string, args ...any) {
	if len(p.errs) == maxProblems {
		p.more++
		return
	}
	p.errs = append(p.errs, fmt.Errorf(format, args...))
}

// fits reports whether text s at path is within limit bytes, and adds a
// problem if not.
func (p *problems) fits(path, s string, limit int) bool {
	if len(s) <= limit {
		return true
	}
	p.add("%s: %d bytes, limit %d", path, len(s), limit)
	return false
}

// count reports whether the list at path has at most limit entries, and
// adds a problem if not; its entries are not checked then.
func (p *problems) count(path string, n, limit int) bool {
	if n <= limit {
		return true
	}
	p.add("%s: %d entries, limit %d", path, n, limit)
	return false
}

func (p *problems) options(path string, opts []string) {
	if p.count(path, len(opts), MaxOptions) {
		for i, o := range opts {
			p.fits(fmt.Sprintf("%s[%d]", path, i), o, MaxOptionBytes)
		}
	}
}

func (p *problems) err() error {
	if p.more > 0 {
		p.errs = append(p.errs, fmt.Errorf("and %d more problems", p.more))
	}
	return errors.Join(p.errs...)
}

// Validate checks the manifest against the rules of SPEC.md §7 that
// DecodeManifest does not (names, version, caps, egress, ...) and returns
// the problems found, joined, each naming the path of its field: the first
// 20, then how many more.
func (m *Manifest) Validate() error {
	var p problems
	if p.fits("name", m.Name, MaxNameBytes) && !isIdent(m.Name, MaxNameBytes) {
		p.add("name %s: want lower-case letters, digits, '-' or '_', not starting with '-' or '_'", quote(m.Name))
	}
	p.fits("display", m.Display, MaxDisplayBytes)
	if p.fits("version", m.Version, MaxVersionBytes) {
		if err := checkSemver(m.Version); err != nil {
			p.add("version %s: not a semantic version 2.0.0: %w", quote(m.Version), err)
		}
	}
	p.fits("description", m.Description, MaxDescriptionBytes)
	if m.ABIVersion != Version {
		p.add("abi_version %d: this host serves ABI version %d", m.ABIVersion, Version)
	}
	if p.count("params", len(m.Params), MaxParams) {
		m.validateParams(&p)
	}
	if p.count("commands", len(m.Commands), MaxCommands) {
		m.validateCommands(&p)
	}
	if m.LongRunningHTTP && !m.LongRunning {
		p.add("longRunningHTTP needs longRunning")
	}
	if p.count("egress", len(m.Egress), MaxEgress) {
		m.validateEgress(&p)
	}
	return p.err()
}

func (m *Manifest) validateParams(p *problems) {
	seen := map[string]bool{}
	for i, prm := range m.Params {
		at := fmt.Sprintf("params[%d]", i)
		switch {
		case !p.fits(at+".name", prm.Name, MaxParamNameBytes):
		case prm.Name == "":
			p.add("%s.name: empty", at)
		case seen[prm.Name]:
			p.add("%s.name: duplicate %s", at, quote(prm.Name))
		}
		seen[prm.Name] = true
		p.fits(at+".display", prm.Display, MaxDisplayBytes)
		p.fits(at+".help", prm.Help, MaxHelpBytes)
		p.options(at+".options", prm.Options)
		switch prm.Type {
		case ParamString, ParamSecret, ParamBool, ParamNumber, ParamInterval:
		case ParamSelect:
			if len(prm.Options) == 0 {
				p.add("%s.options: type select needs options", at)
			}
		default:
			p.add("%s.type: unknown type %s", at, quote(string(prm.Type)))
		}
		if s, ok := prm.Default.(string); ok && !p.fits(at+".default", s, MaxDefaultBytes) {
			continue
		}
		if prm.Default != nil {
			if _, err := prm.Coerce(prm.Default); err != nil {
				p.add("%s.default: %w", at, err)
			}
		}
	}
}

func (m *Manifest) validateCommands(p *problems) {
	seen := map[string]bool{}
	for i, c := range m.Commands {
		at := fmt.Sprintf("commands[%d]", i)
		switch {
		case !p.fits(at+".name", c.Name, MaxCommandNameBytes):
		case !isIdent(c.Name, MaxCommandNameBytes):
			p.add("%s.name %s: want lower-case letters, digits, '-' or '_', not starting with '-' or '_'", at, quote(c.Name))
		case seen[c.Name]:
			p.add("%s.name: duplicate %s", at, quote(c.Name))
		}
		seen[c.Name] = true
		p.fits(at+".description", c.Description, MaxDescriptionBytes)
		if !p.count(at+".arguments", len(c.Arguments), MaxArguments) {
			continue
		}
		for j, a := range c.Arguments {
			aat := fmt.Sprintf("%s.arguments[%d]", at, j)
			p.fits(aat+".name", a.Name, MaxArgumentNameBytes)
			p.fits(aat+".description", a.Description, MaxDescriptionBytes)
			p.fits(aat+".default", a.Default, MaxDefaultBytes)
			p.options(aat+".options", a.Options)
		}
	}
}

func (m *Manifest) validateEgress(p *problems) {
	seen := map[string]bool{}
	for i, e := range m.Egress {
		at := fmt.Sprintf("egress[%d]", i)
		if seen[e] {
			p.add("%s: duplicate %s", at, quote(e))
			continue
		}
		seen[e] = true
		if name, ok := strings.CutPrefix(e, EgressParamPrefix); ok {
			switch prm, declared := m.Param(name); {
			case !declared:
				p.add("%s %s: no param %s", at, quote(e), quote(name))
			case prm.Type != ParamString:
				p.add("%s %s: param %s is of type %s, want string (a URL)", at, quote(e), quote(name), prm.Type)
			}
			continue
		}
		if _, err := ParseEgress(e); err != nil {
			p.add("%s %s: %w", at, quote(e), err)
		}
	}
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

// CheckArgs applies the rules of SPEC §6 to the arguments given to c: an
// argument c does not declare is refused, a missing or empty one takes its
// default, a missing or empty required one is refused, and a string value
// not among the argument's options is refused. It returns a copy of args
// with the defaults filled in, or one error per problem joined.
func (c Command) CheckArgs(args map[string]any) (map[string]any, error) {
	var errs []error
	out := make(map[string]any, len(args)+len(c.Arguments))
	for k, v := range args {
		out[k] = v
	}
	declared := make([]string, 0, len(c.Arguments))
	for _, a := range c.Arguments {
		declared = append(declared, a.Name)
		v, ok := args[a.Name]
		if !ok || v == nil || v == "" {
			switch {
			case a.Default != "":
				out[a.Name] = a.Default
			case a.Required:
				errs = append(errs, fmt.Errorf("argument %q is required", a.Name))
			}
			continue
		}
		if s, isString := v.(string); isString && len(a.Options) > 0 && !slices.Contains(a.Options, s) {
			errs = append(errs, fmt.Errorf("argument %q: %q is not one of %s", a.Name, s, strings.Join(a.Options, ", ")))
		}
	}
	var unknown []string
	for k := range args {
		if !slices.Contains(declared, k) {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	names := "none"
	if len(declared) > 0 {
		names = strings.Join(declared, ", ")
	}
	for _, k := range unknown {
		errs = append(errs, fmt.Errorf("argument %q is not declared by command %q (declared: %s)", k, c.Name, names))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
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

// ReadManifest finds the one ManifestSection of a wasm binary and decodes it
// with DecodeManifest. A module with two is refused: which one counted
// would depend on the reader. It does not Validate the manifest.
func ReadManifest(wasm []byte) (*Manifest, error) {
	payload, err := manifestPayload(wasm)
	if err != nil {
		return nil, err
	}
	m, err := DecodeManifest(payload)
	if err != nil {
		return nil, fmt.Errorf("manifest section: %w", err)
	}
	return m, nil
}

// DecodeManifest decodes manifest JSON strictly, as SPEC.md §7 requires: at
// most MaxManifestBytes (checked first), valid UTF-8, one JSON object and
// nothing after it, and every key spelled exactly as a json tag of the
// struct it fills, at most once. encoding/json alone matches keys
// case-insensitively and lets the last of two equal keys win, so "NAME"
// could override "name" unseen by a schema validator. It does not Validate
// the manifest.
func DecodeManifest(b []byte) (*Manifest, error) {
	if len(b) > MaxManifestBytes {
		return nil, fmt.Errorf("%d bytes, limit %d", len(b), MaxManifestBytes)
	}
	if !utf8.Valid(b) {
		return nil, errors.New("not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // the walk only looks at keys; leave number ranges to the typed decode
	tok, err := dec.Token()
	if err != nil && err != io.EOF {
		return nil, err
	}
	if tok != json.Delim('{') {
		return nil, errors.New("want a JSON object")
	}
	if err := checkKeys(dec, reflect.TypeFor[Manifest](), ""); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON object")
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// checkKeys checks the members of the object whose '{' dec has just read,
// and of every object within, against the json tags of t, the struct the
// object decodes into. Objects that decode into anything else (a param's
// default) may have any keys, each once.
func checkKeys(dec *json.Decoder, t reflect.Type, path string) error {
	var fields map[string]reflect.Type
	if t.Kind() == reflect.Struct {
		fields = map[string]reflect.Type{}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" {
				name = f.Name
			}
			if f.IsExported() && name != "-" {
				fields[name] = f.Type
			}
		}
	}
	in := "" // where errors happen, before the key
	if path != "" {
		in = path + ": "
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		if seen[key] {
			return fmt.Errorf("%sduplicate key %s", in, quote(key))
		}
		seen[key] = true
		ft, at := reflect.TypeFor[any](), path
		if fields != nil {
			var ok bool
			if ft, ok = fields[key]; !ok {
				for name := range fields {
					if strings.EqualFold(name, key) {
						return fmt.Errorf("%sunknown key %s (keys are case-sensitive: did you mean %q?)", in, quote(key), name)
					}
				}
				return fmt.Errorf("%sunknown key %s", in, quote(key))
			}
			// Only known keys go into paths: others may be anything.
			at = key
			if path != "" {
				at = path + "." + key
			}
		}
		if err := checkValue(dec, ft, at); err != nil {
			return err
		}
	}
	_, err := dec.Token() // '}'
	return err
}

// checkValue reads one value from dec, checking the keys of the objects in
// it as checkKeys does; t is the type it decodes into.
func checkValue(dec *json.Decoder, t reflect.Type, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		return checkKeys(dec, t, path)
	case json.Delim('['):
		if t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := checkValue(dec, t, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		_, err = dec.Token() // ']'
	}
	return err
}

// EmbedManifest validates m and returns wasm with the manifest JSON in a
// ManifestSection custom section, replacing every earlier one.
func EmbedManifest(wasm []byte, m *Manifest) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("invalid manifest: %w", err)
	}
	payload, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	// Every field may be within its cap and the whole still over
	// MaxManifestBytes; the host would refuse the module.
	if len(payload) > MaxManifestBytes {
		return nil, fmt.Errorf("invalid manifest: %d bytes as JSON, limit %d", len(payload), MaxManifestBytes)
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

// manifestPayload returns the payload of the one ManifestSection of wasm.
func manifestPayload(wasm []byte) ([]byte, error) {
	secs, err := sections(wasm)
	if err != nil {
		return nil, err
	}
	var payload []byte
	n := 0
	for _, s := range secs {
		if s.id == 0 && s.name == ManifestSection {
			payload = s.payload
			n++
		}
	}
	switch n {
	case 0:
		return nil, ErrNoManifest
	case 1:
		return payload, nil
	}
	return nil, fmt.Errorf("%d %s custom sections, want exactly one", n, ManifestSection)
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
