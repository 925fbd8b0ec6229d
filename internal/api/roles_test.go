package api_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/connhost/connhost/host/api/apitypes"
	"github.com/connhost/connhost/internal/api"
	"github.com/connhost/connhost/internal/mirror"
	"github.com/connhost/connhost/internal/service"
	"github.com/connhost/connhost/internal/testenv"
)

// TestRouteAccessCoversRoutes: every registered route has exactly one
// access rule, every rule is a registered route, and openapi.json states
// the same role for each operation (x-connhost-role) or none for the open
// ones. A route added without a rule fails here.
func TestRouteAccessCoversRoutes(t *testing.T) {
	e := newEnv(t, func(o *api.Options) { o.MetricsAuth = true })
	used := map[string]bool{}
	for _, r := range e.srv.Routes() {
		key, _, _, ok := api.RuleFor(r.Method, r.Path)
		if !ok {
			t.Errorf("route %s %s has no rule in routeAccess (internal/api/roles.go)", r.Method, r.Path)
			continue
		}
		used[key] = true
	}
	if len(used) != api.RuleCount() {
		t.Errorf("routeAccess has %d rules, %d of them match a registered route: remove the stale ones", api.RuleCount(), len(used))
	}

	var doc struct {
		Paths map[string]map[string]struct {
			Role     string            `json:"x-connhost-role"`
			Security []json.RawMessage `json:"security"`
			Resp     map[string]any    `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	param := regexp.MustCompile(`\{([^}]+)\}`)
	for path, ops := range doc.Paths {
		echoPath := param.ReplaceAllString(path, ":$1")
		echoPath = strings.Replace(echoPath, InstancePathParam, "*", 1)
		for method, op := range ops {
			_, open, role, ok := api.RuleFor(strings.ToUpper(method), echoPath)
			if !ok {
				t.Errorf("%s %s is documented but has no rule", method, path)
				continue
			}
			if open {
				if op.Role != "" || op.Security == nil || len(op.Security) != 0 {
					t.Errorf("%s %s is open: want security [] and no x-connhost-role, have %q", method, path, op.Role)
				}
				continue
			}
			if op.Role != string(role) {
				t.Errorf("%s %s: openapi.json says role %q, routeAccess %q", method, path, op.Role, role)
			}
			for _, status := range []string{"401", "403", "429"} {
				if _, ok := op.Resp[status]; !ok {
					t.Errorf("%s %s: no %s response documented", method, path, status)
				}
			}
		}
	}
}

// InstancePathParam is how the trailing wildcard of the instance HTTP
// routes reads after {path} becomes :path.
const InstancePathParam = ":path"

// TestRolesOnEveryRoute sends every authenticated route a request with a
// key of each role: a role below the route's gets 403 naming the role
// needed, and a role at or above it gets past authorization (any status
// but 401 and 403). Dummy names make the admitted requests 4xx.
func TestRolesOnEveryRoute(t *testing.T) {
	e := newEnv(t, func(o *api.Options) { o.MetricsAuth = true })
	e.s.Service.Mirroring.SetEngine(mirror.New(mirror.Options{Store: e.s.Store, Instances: e.svc.Mirroring, Logger: zerolog.Nop()}))
	keys := map[service.Role]string{}
	for _, role := range service.Roles {
		var created apitypes.APIKeyCreated
		e.must(http.StatusCreated, "POST", "/api/v1/apikeys", map[string]any{"name": "k-" + string(role), "role": role}).decode(t, &created)
		keys[role] = created.Key
	}
	param := regexp.MustCompile(`:[a-z]+`)
	checked := 0
	for _, r := range e.srv.Routes() {
		_, open, need, ok := api.RuleFor(r.Method, r.Path)
		if !ok || open {
			continue
		}
		path := param.ReplaceAllString(r.Path, "nosuch")
		for _, role := range service.Roles {
			t.Run(r.Method+" "+r.Path+" as "+string(role), func(t *testing.T) {
				res := e.callAs(keys[role], r.Method, path, nil, "")
				if !role.Allows(need) {
					if res.status != http.StatusForbidden {
						t.Fatalf("want 403, got %s", res)
					}
					b := res.errBody(t)
					if b.Error != apitypes.CodeForbidden || !strings.Contains(b.Detail, "role "+string(need)) || !strings.Contains(b.Detail, "has role "+string(role)) {
						t.Errorf("403 body %+v: want error forbidden naming role %s and the key's role %s", b, need, role)
					}
					return
				}
				if res.status == http.StatusForbidden || res.status == http.StatusUnauthorized {
					t.Errorf("role %s is enough for %s, got %s", role, need, res)
				}
			})
			checked++
		}
	}
	if checked < 3*40 {
		t.Errorf("checked %d route×role pairs; the route list looks short", checked)
	}
	// A read key cannot make itself an admin key.
	r := e.callAs(keys[service.RoleRead], "POST", "/api/v1/apikeys", map[string]any{"name": "escalate", "role": "admin"}, "")
	if r.status != http.StatusForbidden {
		t.Errorf("read key creating an admin key: %s", r)
	}
}

// TestRouteWithoutRuleRefused: a registered route the table does not
// cover is refused, not served unguarded.
func TestRouteWithoutRuleRefused(t *testing.T) {
	s := testenv.NewServer(t, testenv.ServerOptions{}) // 500 is not documented: no validator
	s.API.DropRule(http.MethodGet, api.Prefix+"/plugins")
	for _, key := range []string{"", s.Key} {
		if r := s.CallAs(key, "GET", "/api/v1/plugins", nil, ""); r.Status != http.StatusInternalServerError || !strings.Contains(string(r.Body), "no access rule") {
			t.Errorf("key %q: a route without a rule answered %d %s", key, r.Status, r.Body)
		}
	}
}

// TestAPIKeysOverHTTP: an admin manages keys while the server runs: the
// key is shown once, never listed, refused from the request after its
// revocation, and refused once expired; 401s say why.
func TestAPIKeysOverHTTP(t *testing.T) {
	clk := &clock{}
	clk.Set(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	s := newServer(t, testenv.ServerOptions{Now: clk.Now})
	e := &env{t: t, s: s, svc: s.Service, srv: s.API, http: s.HTTP, key: s.Key, logs: s.Logs}

	bad := []struct {
		name string
		body any
		want string
	}{
		{"unknown role", map[string]any{"name": "x", "role": "root"}, `role "root"`},
		{"no role", map[string]any{"name": "x"}, `role ""`},
		{"bad name", map[string]any{"name": "a b", "role": "read"}, `key name "a b"`},
		{"past expiry", map[string]any{"name": "x", "role": "read", "expires": clk.Now().Add(-time.Minute)}, "not in the future"},
		{"unknown field", map[string]any{"name": "x", "role": "read", "secret": "mine"}, "secret"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			r := e.call("POST", "/api/v1/apikeys", tc.body)
			if r.status != http.StatusBadRequest || !strings.Contains(r.errBody(t).Detail, tc.want) {
				t.Errorf("want 400 naming %q, got %s", tc.want, r)
			}
		})
	}

	expires := clk.Now().Add(time.Hour)
	var created apitypes.APIKeyCreated
	e.must(http.StatusCreated, "POST", "/api/v1/apikeys", map[string]any{"name": "dash", "role": "read", "expires": expires}).decode(t, &created)
	if !strings.HasPrefix(created.Key, created.APIKey.Prefix) || created.APIKey.Role != "read" || !created.APIKey.Expires.Equal(expires) {
		t.Fatalf("created %+v", created)
	}
	e.mustAs(created.Key, http.StatusOK, "GET", "/api/v1/incidents")
	list := e.must(http.StatusOK, "GET", "/api/v1/apikeys", nil)
	if strings.Contains(string(list.body), created.Key) || strings.Contains(string(list.body), service.HashAPIKey(created.Key)) {
		t.Fatalf("the list shows a key or its hash: %s", list.body)
	}
	var keys apitypes.APIKeyList
	list.decode(t, &keys)
	i := slices.IndexFunc(keys.Keys, func(k apitypes.APIKey) bool { return k.ID == created.APIKey.ID })
	if len(keys.Keys) != 2 || i < 0 || keys.Keys[i].LastUsed.IsZero() || keys.Keys[i].Role != "read" {
		t.Fatalf("list %+v: want the bootstrap key and dash, dash used", keys)
	}

	// Expiry: refused once the clock passes it, saying so.
	clk.Advance(time.Hour)
	r := e.callAs(created.Key, "GET", "/api/v1/incidents", nil, "")
	if r.status != http.StatusUnauthorized || !strings.Contains(r.errBody(t).Detail, "expired") {
		t.Errorf("expired key: %s", r)
	}

	// Revocation applies to the very next request.
	e.must(http.StatusCreated, "POST", "/api/v1/apikeys", map[string]any{"name": "ops", "role": "operator"}).decode(t, &created)
	if r := e.callAs(created.Key, "POST", "/api/v1/incidents", map[string]any{"name": "by ops"}, ""); r.status != http.StatusCreated {
		t.Fatalf("operator creating an incident: %s", r)
	}
	e.must(http.StatusNoContent, "DELETE", "/api/v1/apikeys/"+created.APIKey.ID, nil)
	r = e.callAs(created.Key, "GET", "/api/v1/incidents", nil, "")
	if r.status != http.StatusUnauthorized || !strings.Contains(r.errBody(t).Detail, "revoked") {
		t.Errorf("revoked key: %s", r)
	}
	e.must(http.StatusNotFound, "DELETE", "/api/v1/apikeys/nosuch", nil)
	for _, tc := range []struct{ name, key, want string }{
		{"no key", "", "missing API key"},
		{"unknown key", "chk_guess", "unknown API key"},
	} {
		r := e.callAs(tc.key, "GET", "/api/v1/incidents", nil, "")
		if r.status != http.StatusUnauthorized || !strings.Contains(r.errBody(t).Detail, tc.want) {
			t.Errorf("%s: want 401 naming %q, got %s", tc.name, tc.want, r)
		}
	}
}

// TestRateLimitPerKey: past its burst a key gets 429 with Retry-After and
// a JSON error; another key is unaffected; the bucket refills.
func TestRateLimitPerKey(t *testing.T) {
	e := newEnv(t, func(o *api.Options) { o.RateLimit, o.RateBurst = 4, 3 })
	var other apitypes.APIKeyCreated
	e.must(http.StatusCreated, "POST", "/api/v1/apikeys", map[string]any{"name": "other", "role": "read"}).decode(t, &other)
	// The create used one of the bootstrap key's three tokens.
	e.must(http.StatusOK, "GET", "/api/v1/plugins", nil)
	e.must(http.StatusOK, "GET", "/api/v1/plugins", nil)
	r := e.s.CallAs(e.key, "GET", "/api/v1/plugins", nil, "")
	if r.Status != http.StatusTooManyRequests {
		t.Fatalf("fourth request in a burst of 3: %d %s", r.Status, r.Body)
	}
	secs, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if err != nil || secs < 1 {
		t.Errorf("Retry-After %q: want whole seconds ≥ 1", r.Header.Get("Retry-After"))
	}
	var body apitypes.Error
	r.Decode(t, &body)
	if body.Error != apitypes.CodeRateLimited || !strings.Contains(body.Detail, `"test"`) || !strings.Contains(body.Detail, "4 requests/s") {
		t.Errorf("429 body %+v", body)
	}
	// Rate-limited requests cost nothing on open routes, and the other
	// key has its own bucket.
	e.must(http.StatusOK, "GET", "/healthz", nil)
	e.mustAs(other.Key, http.StatusOK, "GET", "/api/v1/plugins")
	// At 4/s a token is back within 250 ms.
	time.Sleep(300 * time.Millisecond)
	e.must(http.StatusOK, "GET", "/api/v1/plugins", nil)
}

// mustAs calls as key and asserts the status.
func (e *env) mustAs(key string, status int, method, path string) response {
	e.t.Helper()
	r := e.callAs(key, method, path, nil, "")
	if r.status != status {
		e.t.Fatalf("%s %s: want %d, got %s", method, path, status, r)
	}
	return r
}

// clock is a settable clock for the store and the service.
type clock struct{ ns atomic.Int64 }

func (c *clock) Set(t time.Time)         { c.ns.Store(t.UnixNano()) }
func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// TestRoleFor: the console asks RoleFor for the role of the API route each
// of its actions stands for; open routes, the console's own and unknown
// ones have none.
func TestRoleFor(t *testing.T) {
	for _, tt := range []struct {
		method, path string
		role         service.Role
		ok           bool
	}{
		{"POST", "/api/v1/plugins", service.RoleAdmin, true},
		{"POST", "/api/v1/instances/:name/test", service.RoleOperator, true},
		{"GET", "/api/v1/incidents", service.RoleRead, true},
		{"GET", "/livez", "", false},
		{"POST", "/plugins", "", false},
		{"GET", "/api/v1/nosuch", "", false},
	} {
		if role, ok := api.RoleFor(tt.method, tt.path); role != tt.role || ok != tt.ok {
			t.Errorf("RoleFor(%s %s) = %q, %v; want %q, %v", tt.method, tt.path, role, ok, tt.role, tt.ok)
		}
	}
}
