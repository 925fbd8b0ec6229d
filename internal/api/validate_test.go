package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/connhost/connhost/internal/api"
	"github.com/connhost/connhost/internal/testenv"
)

// newServer is testenv.NewServer with every response validated against
// openapi.json: the internal/api tests start their servers through it (or
// newEnv), so each request they make checks the document too. Benchmarks
// measure the server alone.
func newServer(t testing.TB, opts testenv.ServerOptions) *testenv.Server {
	t.Helper()
	if _, bench := t.(*testing.B); bench {
		return testenv.NewServer(t, opts)
	}
	v := newValidator(t, t.Errorf)
	inner := opts.Wrap
	opts.Wrap = func(h http.Handler) http.Handler {
		if inner != nil {
			h = inner(h)
		}
		return v.wrap(h)
	}
	return testenv.NewServer(t, opts)
}

// validator checks responses against openapi.json with kin-openapi, twice:
// as the OpenAPI 3.1 document it is, and read as OpenAPI 3.0, as older
// tools (oapi-codegen before v2.8.2 among them) read it, where null is
// valid only for nullable schemas. A response fails on a status its
// operation does not document, a body that does not match (an extra
// property included: the schemas are closed), or a Content-Type the
// operation does not declare.
type validator struct {
	docs    []*openapi3.T
	routers []routers.Router
	report  func(format string, args ...any)
}

var (
	docsOnce sync.Once
	docs     []*openapi3.T
	docsErr  error
)

// loadDocs parses openapi.json as 3.1 and as 3.0, once per test binary.
func loadDocs() ([]*openapi3.T, error) {
	docsOnce.Do(func() {
		for _, version := range []string{"", "3.0.3"} {
			doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI)
			if err != nil {
				docsErr = fmt.Errorf("loading openapi.json: %w", err)
				return
			}
			if version != "" {
				doc.OpenAPI = version
			}
			if err := doc.Validate(context.Background()); err != nil {
				docsErr = fmt.Errorf("openapi.json as OpenAPI %s: %w", doc.OpenAPI, err)
				return
			}
			docs = append(docs, doc)
		}
	})
	return docs, docsErr
}

func newValidator(t testing.TB, report func(format string, args ...any)) *validator {
	t.Helper()
	ds, err := loadDocs()
	if err != nil {
		t.Fatal(err)
	}
	v := &validator{docs: ds, report: report}
	for _, d := range ds {
		r, err := legacy.NewRouter(d)
		if err != nil {
			t.Fatalf("router of openapi.json %s: %v", d.OpenAPI, err)
		}
		v.routers = append(v.routers, r)
	}
	return v
}

// wrap serves h and validates each of its responses.
func (v *validator) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		for k, vs := range rec.Header() {
			w.Header()[k] = vs
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		v.check(r, rec.Code, rec.Header(), rec.Body.Bytes())
	})
}

// check validates one response to r.
func (v *validator) check(r *http.Request, status int, header http.Header, body []byte) {
	for i, router := range v.routers {
		if err := validateResponse(v.docs[i], router, r, status, header, body); err != nil {
			v.report("%s %s → %d %s: not as openapi.json (read as OpenAPI %s) says: %v", r.Method, r.URL.RequestURI(), status, body,
				v.docs[i].OpenAPI, err)
		}
	}
}

// instanceHTTPPrefix starts requests into plugins; what follows the
// instance name is one {path} parameter, slashes included.
const instanceHTTPPrefix = api.InstanceHTTPPrefix + "/"

func validateResponse(doc *openapi3.T, router routers.Router, r *http.Request, status int, header http.Header, body []byte) error {
	route, params, err := findRoute(router, r)
	// The router answers fresh *RouteErrors, not its sentinels.
	if re := (*routers.RouteError)(nil); errors.As(err, &re) {
		// No operation: the server must say so with an error body.
		if status != http.StatusNotFound && status != http.StatusMethodNotAllowed {
			return fmt.Errorf("no operation for the request (%v), yet status %d", err, status)
		}
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			return fmt.Errorf("error body: %w", err)
		}
		opts := []openapi3.SchemaValidationOption{openapi3.MultiErrors(), openapi3.VisitAsResponse()}
		if doc.IsOpenAPI31OrLater() {
			opts = append(opts, openapi3.EnableJSONSchema2020())
		}
		return doc.Components.Schemas["Error"].Value.VisitJSON(v, opts...)
	}
	if err != nil {
		return err
	}
	in := &openapi3filter.RequestValidationInput{Request: r, PathParams: params, Route: route}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: status, Header: header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	out.SetBodyBytes(body)
	return openapi3filter.ValidateResponse(context.Background(), out)
}

// findRoute finds r's operation, folding the rest of an instance HTTP path
// into its one {path} segment.
func findRoute(router routers.Router, r *http.Request) (*routers.Route, map[string]string, error) {
	if rest, ok := strings.CutPrefix(r.URL.Path, instanceHTTPPrefix); ok {
		if name, sub, ok := strings.Cut(rest, "/"); ok && strings.Contains(sub, "/") {
			r = r.Clone(r.Context())
			r.URL.Path = instanceHTTPPrefix + name + "/" + url.PathEscape(sub)
			r.URL.RawPath = ""
		}
	}
	return router.FindRoute(r)
}

// TestValidatorCatchesDrift feeds the validator responses that break the
// document, so a validator that checks nothing cannot pass for one that
// does.
func TestValidatorCatchesDrift(t *testing.T) {
	tests := []struct {
		name, method, path string
		status             int
		body               string
		ok                 bool
	}{
		{"documented", "GET", "/api/v1/users/alice", 200, `{"id":"u1","username":"alice","created":"2025-01-02T03:04:05Z"}`, true},
		{"extra property", "GET", "/api/v1/incidents/i1", 200,
			`{"id":"i1","name":"x","severity":0,"status":1,"created":"2025-01-02T03:04:05Z","modified":"2025-01-02T03:04:05Z","version":1,"mirrorPurged":true}`, false},
		{"null list", "GET", "/api/v1/instances/td/mirror/records", 200, `{"records":null}`, false},
		{"undocumented status", "POST", "/api/v1/users", 418, `{"error":"invalid request","detail":"x"}`, false},
		{"unknown error code", "GET", "/api/v1/users/alice", 404, `{"error":"gone","detail":"x"}`, false},
		{"missing required field", "GET", "/api/v1/users/alice", 200, `{"id":"u1","created":"2025-01-02T03:04:05Z"}`, false},
		{"zero time is still a time", "GET", "/api/v1/users/alice", 200, `{"id":"u1","username":"alice","created":"yesterday"}`, false},
		{"unrouted 404 with an error body", "GET", "/api/v1/nosuch", 404, `{"error":"not found","detail":"no route"}`, true},
		{"unrouted 200", "GET", "/api/v1/nosuch", 200, `{}`, false},
		{"unrouted 405 with an error body", "PUT", "/api/v1/incidents", 405, `{"error":"method not allowed","detail":"x"}`, true},
		{"unrouted 405 with another body", "PUT", "/api/v1/incidents", 405, `{"status":"ok"}`, false},
		{"deep instance HTTP path", "POST", "/instance/execute/td/a/b/c", 401, `{"error":"unauthorized","detail":"x"}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			v := newValidator(t, func(format string, args ...any) { got = append(got, fmt.Sprintf(format, args...)) })
			var body io.Reader
			if tt.method != http.MethodGet {
				body = strings.NewReader(`{}`)
			}
			req := httptest.NewRequest(tt.method, tt.path, body)
			h := http.Header{"Content-Type": {"application/json"}}
			v.check(req, tt.status, h, []byte(tt.body))
			if tt.ok && len(got) > 0 {
				t.Fatalf("valid response refused: %v", got)
			}
			if !tt.ok && len(got) == 0 {
				t.Fatal("invalid response accepted")
			}
		})
	}
}
