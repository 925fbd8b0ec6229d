package abischema_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/connhost/connhost/abi"
	schema "github.com/connhost/connhost/internal/abischema"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// TestSchemasUpToDate fails when the checked-in schemas differ from what the
// Go types generate, so they cannot drift from the contract.
func TestSchemasUpToDate(t *testing.T) {
	fresh, err := schema.Generate("../../abi")
	if err != nil {
		t.Fatal(err)
	}
	onDisk, err := filepath.Glob("../../abi/schema/*.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range onDisk {
		if _, ok := fresh[filepath.Base(path)]; !ok {
			t.Errorf("%s: no abi type generates it; delete it or add it to schema.Types", path)
		}
	}
	for name, want := range fresh {
		got, err := os.ReadFile(filepath.Join("../../abi/schema", name))
		if err != nil {
			t.Errorf("%s: %v (run go generate ./internal/abischema)", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("schema/%s is stale: run go generate ./internal/abischema", name)
		}
	}
}

func compile(t *testing.T, file string) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(filepath.Join("../../abi/schema", file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(schema.BaseID+file, doc); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	s, err := c.Compile(schema.BaseID + file)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return s
}

func instance(t *testing.T, text string) any {
	t.Helper()
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(text))
	if err != nil {
		t.Fatalf("%s: %v", text, err)
	}
	return v
}

// TestAllSchemasCompile compiles every generated schema as draft 2020-12.
func TestAllSchemasCompile(t *testing.T) {
	for _, ty := range schema.Types {
		compile(t, ty.File)
	}
}

// TestPluginManifestsValidate checks every plugins/*/manifest.json against
// the manifest schema and against Manifest.Validate.
func TestPluginManifestsValidate(t *testing.T) {
	s := compile(t, "manifest.schema.json")
	paths, err := filepath.Glob("../../plugins/*/manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Skip("no plugins/*/manifest.json yet")
	}
	for _, path := range paths {
		t.Run(filepath.Base(filepath.Dir(path)), func(t *testing.T) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Validate(instance(t, string(b))); err != nil {
				t.Errorf("%s: %v", path, err)
			}
			m, err := abi.DecodeManifest(b)
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if err := m.Validate(); err != nil {
				t.Errorf("%s: %v", path, err)
			}
		})
	}
}

// TestManifestSchemaAgreesWithValidate checks that the schema accepts and
// rejects the same manifests as Manifest.Validate for the rules it can
// express.
func TestManifestSchemaAgreesWithValidate(t *testing.T) {
	s := compile(t, "manifest.schema.json")
	tests := []struct {
		name     string
		manifest string
		valid    bool
	}{
		{"minimal", `{"name":"x","version":"1.0.0","abi_version":1}`, true},
		{"full", `{"name":"td","display":"TD","version":"1.2.3-rc.1+b5","abi_version":1,
			"params":[{"name":"url","type":"string","required":true},{"name":"k","type":"select","options":["a"]}],
			"commands":[{"name":"td-get","arguments":[{"name":"id","required":true}]}],
			"isfetch":true,"egress":["param:url","*.example.com","api.example.com:8443"]}`, true},
		{"bad name", `{"name":"Bad Name","version":"1.0.0","abi_version":1}`, false},
		{"bad version", `{"name":"x","version":"1.0","abi_version":1}`, false},
		{"wrong abi", `{"name":"x","version":"1.0.0","abi_version":2}`, false},
		{"unknown field", `{"name":"x","version":"1.0.0","abi_version":1,"extra":true}`, false},
		{"unknown param type", `{"name":"x","version":"1.0.0","abi_version":1,"params":[{"name":"p","type":"file"}]}`, false},
		{"bad command name", `{"name":"x","version":"1.0.0","abi_version":1,"commands":[{"name":"Get It"}]}`, false},
		{"egress url", `{"name":"x","version":"1.0.0","abi_version":1,"egress":["https://a.example/"]}`, false},
		{"key case", `{"name":"x","NAME":"y","version":"1.0.0","abi_version":1}`, false},
		{"empty prerelease identifiers", `{"name":"x","version":"1.0.0-..+..","abi_version":1}`, false},
		{"prerelease leading zero", `{"name":"x","version":"1.0.0-01","abi_version":1}`, false},
		{"egress bare wildcard", `{"name":"x","version":"1.0.0","abi_version":1,"egress":["*"]}`, false},
		{"egress wildcard on a TLD", `{"name":"x","version":"1.0.0","abi_version":1,"egress":["*.com"]}`, false},
		{"egress upper case", `{"name":"x","version":"1.0.0","abi_version":1,"egress":["API.example.com"]}`, false},
		{"egress port 0", `{"name":"x","version":"1.0.0","abi_version":1,"egress":["a.example:0"]}`, false},
		{"egress duplicate", `{"name":"x","version":"1.0.0","abi_version":1,"egress":["a.example","a.example"]}`, false},
		{"egress ipv6", `{"name":"x","version":"1.0.0","abi_version":1,"egress":["[::1]:8443","10.0.0.1"]}`, true},
		{"long display", `{"name":"x","display":"` + strings.Repeat("d", abi.MaxDisplayBytes+1) + `","version":"1.0.0","abi_version":1}`, false},
		{"display at the cap", `{"name":"x","display":"` + strings.Repeat("d", abi.MaxDisplayBytes) + `","version":"1.0.0","abi_version":1}`, true},
		{"long help", `{"name":"x","version":"1.0.0","abi_version":1,"params":[{"name":"p","type":"string","help":"` + strings.Repeat("h", abi.MaxHelpBytes+1) + `"}]}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			schemaErr := s.Validate(instance(t, tt.manifest))
			m, goErr := abi.DecodeManifest([]byte(tt.manifest))
			if goErr == nil {
				goErr = m.Validate()
			}
			if (schemaErr == nil) != tt.valid || (goErr == nil) != tt.valid {
				t.Fatalf("want valid=%v; schema: %v; Go: %v", tt.valid, schemaErr, goErr)
			}
		})
	}
}

// TestWireValuesValidate checks that values encoded by the Go types validate
// against their schemas, including nil slices and maps encoded as null.
func TestWireValuesValidate(t *testing.T) {
	tests := []struct {
		file  string
		value any
	}{
		{"fetch-incidents-result.schema.json", abi.FetchIncidentsResult{}},
		{"fetch-incidents-result.schema.json", abi.FetchIncidentsResult{
			Incidents: []abi.Incident{{Name: "n", Severity: abi.SeverityInfo, Labels: []abi.Label{{Type: "a", Value: "b"}}}},
			LastRun:   map[string]any{"t": "x"},
		}},
		{"get-remote-data-response.schema.json", abi.GetRemoteDataResponse{Entries: []abi.Entry{abi.CloseEntry("r", "n")}}},
		{"update-remote-system-args.schema.json", abi.UpdateRemoteSystemArgs{Entries: []abi.ServerEntry{{ID: "1", Type: abi.EntryNote}}}},
		{"envelope.schema.json", abi.Envelope{Error: abi.Errorf(abi.KindFailed, "boom")}},
		{"http-request.schema.json", abi.HTTPRequest{Method: "GET", URL: "https://x", Body: []byte("hi")}},
		{"configure-request.schema.json", abi.ConfigureRequest{ABIVersion: 1}},
		{"get-mapping-fields-response.schema.json", abi.GetMappingFieldsResponse{"t": {"f": "d"}}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := json.Marshal(tt.value)
			if err != nil {
				t.Fatal(err)
			}
			if err := compile(t, tt.file).Validate(instance(t, string(b))); err != nil {
				t.Fatalf("%s: %v", b, err)
			}
		})
	}
}
