// Package abischema generates the JSON Schemas (draft 2020-12) of the ABI v1
// manifest and wire types from the Go types of package abi, and checks JSON
// documents against them. The generated files live in abi/schema/, beside
// the package they describe; run `go generate ./internal/abischema` after
// changing a type in abi, and schema_test.go fails while they are stale.
// The generator lives in the server's module, not in abi's, because it
// needs invopop/jsonschema and abi depends on nothing but the standard
// library.
package abischema

//go:generate go run ./gen -abi ../../abi -out ../../abi/schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"github.com/invopop/jsonschema"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/doccomments"
)

// BaseID prefixes the $id of every schema; the file name completes it.
const BaseID = "https://github.com/connhost/connhost/abi/schema/"

// Type pairs a schema file with the abi type it describes.
type Type struct {
	File  string // e.g. "manifest.schema.json"
	Value any    // a zero value of the type
}

// Types lists every generated schema: the manifest, the envelope and every
// wire type of abi/wire.go.
var Types = []Type{
	{"manifest.schema.json", abi.Manifest{}},
	{"envelope.schema.json", abi.Envelope{}},
	{"error.schema.json", abi.Error{}},
	{"label.schema.json", abi.Label{}},
	{"incident.schema.json", abi.Incident{}},
	{"entry.schema.json", abi.Entry{}},
	{"server-entry.schema.json", abi.ServerEntry{}},
	{"fetch-incidents-args.schema.json", abi.FetchIncidentsArgs{}},
	{"fetch-incidents-result.schema.json", abi.FetchIncidentsResult{}},
	{"get-remote-data-args.schema.json", abi.GetRemoteDataArgs{}},
	{"get-remote-data-response.schema.json", abi.GetRemoteDataResponse{}},
	{"get-modified-remote-data-args.schema.json", abi.GetModifiedRemoteDataArgs{}},
	{"get-modified-remote-data-response.schema.json", abi.GetModifiedRemoteDataResponse{}},
	{"update-remote-system-args.schema.json", abi.UpdateRemoteSystemArgs{}},
	{"get-mapping-fields-response.schema.json", abi.GetMappingFieldsResponse{}},
	{"command-results.schema.json", abi.CommandResults{}},
	{"instance-info.schema.json", abi.InstanceInfo{}},
	{"configure-request.schema.json", abi.ConfigureRequest{}},
	{"context-get-result.schema.json", abi.ContextGetResult{}},
	{"context-set-request.schema.json", abi.ContextSetRequest{}},
	{"cache-get-request.schema.json", abi.CacheGetRequest{}},
	{"cache-get-result.schema.json", abi.CacheGetResult{}},
	{"cache-set-request.schema.json", abi.CacheSetRequest{}},
	{"cache-delete-request.schema.json", abi.CacheDeleteRequest{}},
	{"run-value.schema.json", abi.RunValue{}},
	{"add-entry-request.schema.json", abi.AddEntryRequest{}},
	{"add-entry-result.schema.json", abi.AddEntryResult{}},
	{"create-incidents-request.schema.json", abi.CreateIncidentsRequest{}},
	{"create-incidents-result.schema.json", abi.CreateIncidentsResult{}},
	{"find-user-request.schema.json", abi.FindUserRequest{}},
	{"user.schema.json", abi.User{}},
	{"entitlement-request.schema.json", abi.EntitlementRequest{}},
	{"module-health.schema.json", abi.ModuleHealth{}},
	{"mirror-investigation-request.schema.json", abi.MirrorInvestigationRequest{}},
	{"direct-message-request.schema.json", abi.DirectMessageRequest{}},
	{"direct-message-result.schema.json", abi.DirectMessageResult{}},
	{"http-request.schema.json", abi.HTTPRequest{}},
	{"http-response.schema.json", abi.HTTPResponse{}},
}

const abiImportPath = "github.com/connhost/connhost/abi"

// Generate renders every schema of Types, keyed by file name. abiDir is the
// source directory of package abi; its doc comments become descriptions.
func Generate(abiDir string) (map[string][]byte, error) {
	comments, err := doccomments.Read(abiDir, abiImportPath)
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	out := make(map[string][]byte, len(Types))
	for _, t := range Types {
		r := &jsonschema.Reflector{
			ExpandedStruct: true,
			Mapper:         mapType,
			CommentMap:     comments,
		}
		s := r.Reflect(t.Value)
		s.ID = jsonschema.ID(BaseID + t.File)
		rt := reflect.TypeOf(t.Value)
		allowNull(s, s, rt, map[reflect.Type]bool{})
		refine(s)
		b, err := json.MarshalIndent(s, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("schema %s: %w", t.File, err)
		}
		out[t.File] = append(b, '\n')
	}
	return out, nil
}

// mapType gives the enumerated abi types their closed value sets.
func mapType(t reflect.Type) *jsonschema.Schema {
	switch t {
	case reflect.TypeFor[abi.ParamType]():
		return &jsonschema.Schema{Type: "string", Enum: []any{
			abi.ParamString, abi.ParamSecret, abi.ParamBool, abi.ParamNumber, abi.ParamSelect, abi.ParamInterval,
		}}
	case reflect.TypeFor[abi.EntryType]():
		return &jsonschema.Schema{Type: "integer", Enum: []any{
			abi.EntryNote, abi.EntryFile, abi.EntryError, abi.EntryImage, abi.EntryInfoFile,
			abi.EntryVideoFile, abi.EntryWarning, abi.EntryStaticVideoFile,
		}}
	case reflect.TypeFor[abi.IncidentStatus]():
		return &jsonschema.Schema{Type: "integer", Enum: []any{
			abi.StatusPending, abi.StatusActive, abi.StatusDone, abi.StatusArchive,
		}}
	case reflect.TypeFor[abi.ErrorKind]():
		// Not an enum: the host accepts unknown kinds from guests and treats
		// them as failed (abi.Normalize).
		one := uint64(1)
		return &jsonschema.Schema{Type: "string", MinLength: &one}
	}
	return nil
}

// allowNull lets struct fields that encoding/json writes as null (nil slices,
// maps and pointers without omitempty) be null in the schema too.
func allowNull(root, s *jsonschema.Schema, t reflect.Type, seen map[reflect.Type]bool) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || seen[t] {
		return
	}
	seen[t] = true
	if s == nil || s.Properties == nil {
		return
	}
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		allowNull(root, root.Definitions[f.Type.Name()], f.Type, seen)
		for e := f.Type; e.Kind() == reflect.Slice || e.Kind() == reflect.Pointer; e = e.Elem() {
			allowNull(root, root.Definitions[e.Elem().Name()], e.Elem(), seen)
		}
		p, ok := s.Properties.Get(name)
		if !ok || strings.Contains(opts, "omitempty") || f.Type == reflect.TypeFor[json.RawMessage]() {
			continue
		}
		switch f.Type.Kind() {
		case reflect.Slice, reflect.Map, reflect.Pointer:
			s.Properties.Set(name, &jsonschema.Schema{
				Description: p.Description,
				AnyOf:       []*jsonschema.Schema{stripDescription(p), {Type: "null"}},
			})
		}
	}
}

func stripDescription(s *jsonschema.Schema) *jsonschema.Schema {
	c := *s
	c.Description = ""
	return &c
}

// refine adds the constraints abi enforces in code (Manifest.Validate) that
// struct tags cannot express.
func refine(s *jsonschema.Schema) {
	defs := map[string]*jsonschema.Schema{}
	for name, d := range s.Definitions {
		defs[name] = d
	}
	set := func(owner *jsonschema.Schema, prop string, edit func(*jsonschema.Schema)) {
		if owner == nil || owner.Properties == nil {
			return
		}
		if p, ok := owner.Properties.Get(prop); ok {
			edit(p)
		}
	}
	self := func(name string) *jsonschema.Schema {
		if d, ok := defs[name]; ok {
			return d
		}
		if strings.HasSuffix(string(s.ID), "/"+kebab(name)+".schema.json") {
			return s
		}
		return nil
	}
	one := uint64(1)
	// maxLength counts characters where abi's caps count bytes, so the
	// schema is as strict for ASCII and looser otherwise.
	maxLen := func(n int) func(*jsonschema.Schema) {
		return func(p *jsonschema.Schema) { u := uint64(n); p.MaxLength = &u }
	}
	maxItems := func(n int) func(*jsonschema.Schema) {
		return func(p *jsonschema.Schema) { u := uint64(n); p.MaxItems = &u }
	}
	options := func(p *jsonschema.Schema) {
		maxItems(abi.MaxOptions)(p)
		maxLen(abi.MaxOptionBytes)(p.Items)
	}
	m := self("Manifest")
	set(m, "name", func(p *jsonschema.Schema) { p.Pattern = `^[a-z0-9][a-z0-9_-]{0,63}$` })
	set(m, "display", maxLen(abi.MaxDisplayBytes))
	set(m, "version", func(p *jsonschema.Schema) {
		// semver.org's pattern for Semantic Versioning 2.0.0.
		p.Pattern = `^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)` +
			`(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?` +
			`(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`
		maxLen(abi.MaxVersionBytes)(p)
	})
	set(m, "description", maxLen(abi.MaxDescriptionBytes))
	set(m, "abi_version", func(p *jsonschema.Schema) { p.Const = abi.Version })
	set(m, "params", maxItems(abi.MaxParams))
	set(m, "commands", maxItems(abi.MaxCommands))
	set(m, "egress", func(p *jsonschema.Schema) {
		// The grammar of abi.ParseEgress, but for the finer points of DNS
		// names and IP addresses, and param:NAME naming a string param.
		const port = `(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?`
		const name = `[a-z0-9_-]+(\.[a-z0-9_-]+)*`
		p.Items = &jsonschema.Schema{Type: "string",
			Pattern: `^(param:.+|(\*\.[a-z0-9_-]+\.` + name + `|` + name + `|\[[0-9a-f:.]+\])` + port + `)$`}
		maxLen(abi.MaxEgressBytes)(p.Items)
		maxItems(abi.MaxEgress)(p)
		p.UniqueItems = true
	})
	prm := self("Param")
	set(prm, "name", func(p *jsonschema.Schema) { p.MinLength = &one; maxLen(abi.MaxParamNameBytes)(p) })
	set(prm, "display", maxLen(abi.MaxDisplayBytes))
	set(prm, "help", maxLen(abi.MaxHelpBytes))
	set(prm, "default", maxLen(abi.MaxDefaultBytes)) // applies to strings only
	set(prm, "options", options)
	cmd := self("Command")
	set(cmd, "name", func(p *jsonschema.Schema) { p.Pattern = `^[a-z0-9][a-z0-9_-]{0,127}$` })
	set(cmd, "description", maxLen(abi.MaxDescriptionBytes))
	set(cmd, "arguments", maxItems(abi.MaxArguments))
	arg := self("Argument")
	set(arg, "name", maxLen(abi.MaxArgumentNameBytes))
	set(arg, "description", maxLen(abi.MaxDescriptionBytes))
	set(arg, "default", maxLen(abi.MaxDefaultBytes))
	set(arg, "options", options)
	if e := self("Error"); e != nil {
		// DecodeEnvelope needs only the kind; guests may omit the message.
		e.Required = []string{"kind"}
	}
	set(self("Incident"), "severity", func(p *jsonschema.Schema) {
		p.Enum = []any{abi.SeverityUnknown, abi.SeverityInfo, abi.SeverityLow, abi.SeverityMedium, abi.SeverityHigh, abi.SeverityCritical}
	})
}

// kebab turns a Go type name into its schema file stem: HTTPRequest →
// http-request.
func kebab(name string) string {
	var b bytes.Buffer
	rs := []rune(name)
	for i, r := range rs {
		upper := r >= 'A' && r <= 'Z'
		if upper && i > 0 && (rs[i-1] < 'A' || rs[i-1] > 'Z' || (i+1 < len(rs) && rs[i+1] >= 'a' && rs[i+1] <= 'z')) {
			b.WriteByte('-')
		}
		if upper {
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}
