package main

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/connhost/connhost/host/api/apitypes"
)

const (
	docPath  = "../../openapi.json"
	typesDir = "../../../../host/api/apitypes"
)

// TestOpenAPIUpToDate fails while openapi.json's component schemas differ
// from what the apitypes types generate.
func TestOpenAPIUpToDate(t *testing.T) {
	doc, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	got, err := generate(doc, typesDir)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, doc) {
		t.Fatal("internal/api/openapi.json is stale: run go generate ./internal/api")
	}
}

// TestComponentsCoverAPITypes holds the component list to package
// apitypes: every exported type is a component, and every ErrorCode
// constant is in ErrorCodes (the enum of Error.error).
func TestComponentsCoverAPITypes(t *testing.T) {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, typesDir, func(fi os.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, 0)
	if err != nil {
		t.Fatal(err)
	}
	var types, codes []string
	for _, f := range pkgs["apitypes"].Files {
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok {
				continue
			}
			for _, spec := range g.Specs {
				switch s := spec.(type) {
				case *ast.TypeSpec:
					if s.Name.IsExported() && s.Name.Name != "ErrorCode" {
						types = append(types, s.Name.Name)
					}
				case *ast.ValueSpec:
					if id, ok := s.Type.(*ast.Ident); ok && id.Name == "ErrorCode" {
						for _, n := range s.Values {
							codes = append(codes, strings.Trim(n.(*ast.BasicLit).Value, `"`))
						}
					}
				}
			}
		}
	}
	var listed []string
	for _, c := range components {
		listed = append(listed, c.name)
	}
	slices.Sort(types)
	slices.Sort(listed)
	if !slices.Equal(types, listed) {
		t.Errorf("apitypes declares %v\nthe component list has %v", types, listed)
	}
	var enum []string
	for _, c := range apitypes.ErrorCodes {
		enum = append(enum, string(c))
	}
	slices.Sort(codes)
	slices.Sort(enum)
	if !slices.Equal(codes, enum) || len(codes) == 0 {
		t.Errorf("ErrorCode constants %v\nErrorCodes %v", codes, enum)
	}
}

// TestOlderToolsCanRead keeps the document within what OpenAPI 3.0 tools
// read (oapi-codegen before v2.8.2 could not read a type array): no JSON
// Schema 2020-12 keywords, no boolean schemas, and every JSON body a
// reference to a component, so that all of them are generated.
func TestOlderToolsCanRead(t *testing.T) {
	raw, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for name, sc := range doc["components"].(map[string]any)["schemas"].(map[string]any) {
		checkSchema(t, "components/schemas/"+name, sc)
	}
	for path, ops := range doc["paths"].(map[string]any) {
		for method, op := range ops.(map[string]any) {
			var bodies []any
			o := op.(map[string]any)
			for _, p := range asSlice(o["parameters"]) {
				checkSchema(t, method+" "+path+" parameter", p.(map[string]any)["schema"])
			}
			if rb, ok := o["requestBody"].(map[string]any); ok {
				bodies = append(bodies, rb)
			}
			for _, r := range o["responses"].(map[string]any) {
				bodies = append(bodies, r)
			}
			for _, b := range bodies {
				content, _ := b.(map[string]any)["content"].(map[string]any)
				for ct, mt := range content {
					checkSchema(t, method+" "+path+" "+ct, mt.(map[string]any)["schema"])
				}
				mt, ok := content["application/json"].(map[string]any)
				if !ok || path == "/api/v1/openapi.json" {
					continue
				}
				if ref, _ := mt["schema"].(map[string]any)["$ref"].(string); !strings.HasPrefix(ref, refPrefix) {
					t.Errorf("%s %s: a JSON body's schema is written inline, not a generated component", method, path)
				}
			}
		}
	}
}

// notOpenAPI30 are JSON Schema keywords that OpenAPI 3.0 does not have.
var notOpenAPI30 = []string{"const", "$defs", "$schema", "$id", "patternProperties", "prefixItems", "unevaluatedProperties",
	"examples", "dependentRequired", "dependentSchemas", "if", "then", "else", "contentEncoding", "contentMediaType"}

// checkSchema reports what in schema s an OpenAPI 3.0 tool cannot read.
func checkSchema(t *testing.T, path string, s any) {
	t.Helper()
	m, ok := s.(map[string]any)
	if !ok {
		t.Errorf("%s: schema %v is not an object", path, s)
		return
	}
	for k, v := range m {
		p := path + "/" + k
		switch {
		case slices.Contains(notOpenAPI30, k):
			t.Errorf("%s: %s is not OpenAPI 3.0", p, k)
		case k == "type":
			if _, ok := v.(string); !ok {
				t.Errorf("%s: type %v is not one string", p, v)
			}
		case k == "properties":
			for name, ps := range v.(map[string]any) {
				checkSchema(t, p+"/"+name, ps)
			}
		case k == "items" || k == "not":
			checkSchema(t, p, v)
		case k == "additionalProperties":
			if _, isBool := v.(bool); !isBool {
				checkSchema(t, p, v)
			}
		case k == "allOf" || k == "anyOf" || k == "oneOf":
			for _, e := range asSlice(v) {
				checkSchema(t, p, e)
			}
		}
	}
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}
