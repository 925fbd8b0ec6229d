package api_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/connhost/connhost/internal/api"
)

// TestOpenAPIMatchesRoutes keeps openapi.json and the registered routes
// equal, and checks the document's required fields and references.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string `json:"openapi"`
		Info    struct {
			Title   string `json:"title"`
			Version string `json:"version"`
		} `json:"info"`
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			SecuritySchemes map[string]struct {
				Type   string `json:"type"`
				Scheme string `json:"scheme"`
			} `json:"securitySchemes"`
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatalf("openapi.json is not valid JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") || doc.Info.Title == "" || doc.Info.Version == "" || len(doc.Paths) == 0 {
		t.Fatalf("openapi.json lacks required fields: openapi %q, info %+v, %d paths", doc.OpenAPI, doc.Info, len(doc.Paths))
	}
	if b := doc.Components.SecuritySchemes["bearer"]; b.Type != "http" || b.Scheme != "bearer" {
		t.Fatalf("bearer security scheme %+v", b)
	}

	param := regexp.MustCompile(`\{([^}]+)\}`)
	var documented []string
	for path, ops := range doc.Paths {
		for method, raw := range ops {
			var op struct {
				OperationID string                     `json:"operationId"`
				Responses   map[string]json.RawMessage `json:"responses"`
			}
			if err := json.Unmarshal(raw, &op); err != nil || op.OperationID == "" || len(op.Responses) == 0 {
				t.Errorf("%s %s: operation without operationId or responses (%v)", method, path, err)
			}
			documented = append(documented, strings.ToUpper(method)+" "+param.ReplaceAllString(path, ":$1"))
		}
	}
	// OpenAPI names eight methods; echo's Any routes also register methods
	// it cannot express (CONNECT, PROPFIND, REPORT), and its trailing
	// wildcard is documented as {path}.
	openAPIMethods := []string{"GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE"}
	var registered []string
	for _, r := range newEnv(t, nil).srv.Routes() {
		if !slices.Contains(openAPIMethods, r.Method) || api.IsConsoleRoute(r.Method, r.Path) {
			continue
		}
		registered = append(registered, r.Method+" "+strings.Replace(r.Path, "/*", "/:path", 1))
	}
	slices.Sort(documented)
	slices.Sort(registered)
	for _, r := range registered {
		if !slices.Contains(documented, r) {
			t.Errorf("route %s is not in openapi.json", r)
		}
	}
	for _, d := range documented {
		if !slices.Contains(registered, d) {
			t.Errorf("openapi.json documents %s, which is not registered", d)
		}
	}

	for _, ref := range regexp.MustCompile(`"\$ref":\s*"#/components/schemas/([^"]+)"`).FindAllStringSubmatch(string(api.OpenAPI), -1) {
		if _, ok := doc.Components.Schemas[ref[1]]; !ok {
			t.Errorf("$ref to missing schema %q", ref[1])
		}
	}

	e := newEnv(t, nil)
	if r := e.callAs("", http.MethodGet, "/api/v1/openapi.json", nil, ""); r.status != http.StatusOK || string(r.body) != string(api.OpenAPI) {
		t.Fatalf("GET /api/v1/openapi.json: %d", r.status)
	}
}
