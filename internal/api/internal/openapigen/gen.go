package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/invopop/jsonschema"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host/api/apitypes"
	"github.com/connhost/connhost/internal/doccomments"
)

// component is one generated schema of components.schemas.
type component struct {
	name  string
	value any // a zero value of the apitypes type
}

// components are the schemas generated from apitypes, in document order.
// Every exported type of apitypes is one (a test holds the list to the
// package), except ErrorCode, which is inlined as an enum.
var components = []component{
	{"Error", apitypes.Error{}},
	{"Status", apitypes.Status{}},
	{"PluginInfo", apitypes.PluginInfo{}},
	{"PluginList", apitypes.PluginList{}},
	{"PluginDetail", apitypes.PluginDetail{}},
	{"InstallResult", apitypes.InstallResult{}},
	{"SwitchResult", apitypes.SwitchResult{}},
	{"VersionInput", apitypes.VersionInput{}},
	{"Settings", apitypes.Settings{}},
	{"ModuleHealth", apitypes.ModuleHealth{}},
	{"InstanceInput", apitypes.InstanceInput{}},
	{"InstancePatch", apitypes.InstancePatch{}},
	{"Instance", apitypes.Instance{}},
	{"InstanceList", apitypes.InstanceList{}},
	{"ExecuteRequest", apitypes.ExecuteRequest{}},
	{"ExecuteResult", apitypes.ExecuteResult{}},
	{"FetchResult", apitypes.FetchResult{}},
	{"FetchSummary", apitypes.FetchSummary{}},
	{"TestResult", apitypes.TestResult{}},
	{"Context", apitypes.Context{}},
	{"ContextInput", apitypes.ContextInput{}},
	{"LongRunningStatus", apitypes.LongRunningStatus{}},
	{"Label", apitypes.Label{}},
	{"IncidentInput", apitypes.IncidentInput{}},
	{"Incident", apitypes.Incident{}},
	{"IncidentPage", apitypes.IncidentPage{}},
	{"CloseRequest", apitypes.CloseRequest{}},
	{"EntryInput", apitypes.EntryInput{}},
	{"Entry", apitypes.Entry{}},
	{"EntryPage", apitypes.EntryPage{}},
	{"UserInput", apitypes.UserInput{}},
	{"User", apitypes.User{}},
	{"UserList", apitypes.UserList{}},
	{"MirrorStats", apitypes.MirrorStats{}},
	{"CycleReport", apitypes.CycleReport{}},
	{"SyncRecord", apitypes.SyncRecord{}},
	{"MirrorOut", apitypes.MirrorOut{}},
	{"SyncRecordList", apitypes.SyncRecordList{}},
	{"PurgeRequest", apitypes.PurgeRequest{}},
	{"PurgeResult", apitypes.PurgeResult{}},
	{"PushRequest", apitypes.PushRequest{}},
	{"RemoteSchema", apitypes.RemoteSchema{}},
	{"MirrorDebug", apitypes.MirrorDebug{}},
	{"APIKeyInput", apitypes.APIKeyInput{}},
	{"APIKey", apitypes.APIKey{}},
	{"APIKeyList", apitypes.APIKeyList{}},
	{"EngineReady", apitypes.EngineReady{}},
	{"EngineInput", apitypes.EngineInput{}},
	{"EngineEnrollment", apitypes.EngineEnrollment{}},
	{"Engine", apitypes.Engine{}},
	{"EngineList", apitypes.EngineList{}},
	{"APIKeyCreated", apitypes.APIKeyCreated{}},
}

// manifestSchema stands for abi.Manifest: the ABI defines it, with its
// own schema, so the API document does not repeat it.
const manifestSchema = `{"type": "object", "additionalProperties": true,
	"description": "The plugin manifest; its schema is abi/schema/manifest.schema.json."}`

// errorKinds are the ABI error kinds a failed command can carry; the
// server answers unknown kinds as failed.
var errorKinds = []abi.ErrorKind{
	abi.KindNotImplemented, abi.KindRateLimited, abi.KindSkipUpdate, abi.KindBadRequest, abi.KindFailed,
	abi.KindConflict, abi.KindNotFound, abi.KindDenied, abi.KindTimeout, abi.KindCanceled, abi.KindTrap,
	abi.KindMemoryLimit, abi.KindOutputLimit, abi.KindABIViolation, abi.KindIncompatible, abi.KindUnavailable,
	abi.KindInternalError,
}

const (
	apitypesPath = "github.com/connhost/connhost/host/api/apitypes"
	defsPrefix   = "#/$defs/"
	refPrefix    = "#/components/schemas/"
)

// document is openapi.json's top level, in the order it is written. Only
// components.schemas is generated; the rest is kept as written.
type document struct {
	OpenAPI    json.RawMessage `json:"openapi"`
	Info       json.RawMessage `json:"info"`
	Servers    json.RawMessage `json:"servers,omitempty"`
	Security   json.RawMessage `json:"security,omitempty"`
	Tags       json.RawMessage `json:"tags,omitempty"`
	Paths      json.RawMessage `json:"paths"`
	Components struct {
		SecuritySchemes json.RawMessage `json:"securitySchemes,omitempty"`
		Schemas         json.RawMessage `json:"schemas"`
	} `json:"components"`
}

// generate returns doc (openapi.json) with components.schemas generated
// from apitypes, whose sources are in typesDir (for the descriptions).
func generate(doc []byte, typesDir string) ([]byte, error) {
	var d document
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("openapi.json: %w", err)
	}
	schemas, err := generateSchemas(typesDir)
	if err != nil {
		return nil, err
	}
	d.Components.Schemas = schemas
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, fmt.Errorf("openapi.json: %w", err)
	}
	return out.Bytes(), nil
}

// generateSchemas renders components.schemas: every component, in order,
// then Manifest.
func generateSchemas(typesDir string) (json.RawMessage, error) {
	comments, err := doccomments.Read(typesDir, apitypesPath)
	if err != nil {
		return nil, err
	}
	r := &jsonschema.Reflector{Anonymous: true, Mapper: mapType, CommentMap: comments}
	defs := map[string]*jsonschema.Schema{}
	for _, c := range components {
		s := r.Reflect(c.value)
		for name, d := range s.Definitions {
			defs[name] = d
		}
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, c := range components {
		d, ok := defs[c.name]
		if !ok {
			return nil, fmt.Errorf("component %s: no schema reflected (is it named after its type?)", c.name)
		}
		delete(defs, c.name)
		openAPIShape(d)
		j, err := json.Marshal(d)
		if err != nil {
			return nil, fmt.Errorf("component %s: %w", c.name, err)
		}
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%s", c.name, j)
	}
	if len(defs) > 0 {
		return nil, fmt.Errorf("types %v are referenced but not components: add them to the list", slices.Sorted(maps.Keys(defs)))
	}
	fmt.Fprintf(&b, ",%q:%s}", "Manifest", manifestSchema)
	out := bytes.ReplaceAll(b.Bytes(), []byte(`"`+defsPrefix), []byte(`"`+refPrefix))
	if !json.Valid(out) {
		return nil, errors.New("generated schemas are not valid JSON")
	}
	return out, nil
}

// mapType gives the enumerations their closed value sets and makes the
// manifest a reference to its own component.
func mapType(t reflect.Type) *jsonschema.Schema {
	switch t {
	case reflect.TypeFor[apitypes.ErrorCode]():
		return &jsonschema.Schema{Type: "string", Enum: anySlice(apitypes.ErrorCodes)}
	case reflect.TypeFor[abi.ErrorKind]():
		return &jsonschema.Schema{Type: "string", Enum: anySlice(errorKinds)}
	case reflect.TypeFor[abi.EntryType]():
		return &jsonschema.Schema{Type: "integer", Enum: []any{
			abi.EntryNote, abi.EntryFile, abi.EntryError, abi.EntryImage, abi.EntryInfoFile,
			abi.EntryVideoFile, abi.EntryWarning, abi.EntryStaticVideoFile,
		}}
	case reflect.TypeFor[abi.IncidentStatus]():
		return &jsonschema.Schema{Type: "integer", Enum: []any{
			abi.StatusPending, abi.StatusActive, abi.StatusDone, abi.StatusArchive,
		}}
	case reflect.TypeFor[abi.Manifest]():
		return &jsonschema.Schema{Ref: refPrefix + "Manifest"}
	}
	return nil
}

func anySlice[T any](in []T) []any {
	out := make([]any, len(in))
	for i, v := range in {
		out[i] = v
	}
	return out
}

// openAPIShape adjusts a reflected schema to what OpenAPI 3.0 tools read
// as well: an empty schema is {} (not true), a property with a default is
// optional (the server supplies the default), and descriptions are one
// line.
func openAPIShape(s *jsonschema.Schema) {
	if s == nil {
		return
	}
	// Doc comments wrap; a description is one paragraph.
	s.Description = strings.Join(strings.Fields(s.Description), " ")
	if s.Properties != nil {
		for p := s.Properties.Oldest(); p != nil; p = p.Next() {
			if reflect.DeepEqual(p.Value, &jsonschema.Schema{}) {
				// A non-nil Extras keeps the library from writing true.
				p.Value.Extras = map[string]any{}
			}
			if p.Value.Default != nil {
				s.Required = slices.DeleteFunc(s.Required, func(r string) bool { return r == p.Key })
			}
			openAPIShape(p.Value)
		}
	}
	openAPIShape(s.Items)
	if s.AdditionalProperties != nil && s.AdditionalProperties != jsonschema.FalseSchema && s.AdditionalProperties != jsonschema.TrueSchema {
		openAPIShape(s.AdditionalProperties)
	}
}
