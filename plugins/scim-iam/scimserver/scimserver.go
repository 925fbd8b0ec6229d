// Package scimserver is a SCIM 2.0 service (RFC 7643/7644 Users) on
// loopback for tests, built on github.com/elimity-com/scim with an
// in-memory resource handler. By default it sits behind an OAuth 2.0
// client-credentials token endpoint that issues short-lived bearer tokens;
// it counts token requests and rejected requests and can expire every token
// on demand, so tests can check a connector's token caching. Options make
// it behave like other services met in the field: a static bearer token or
// HTTP basic auth instead of OAuth2, userName and emails compared
// case-sensitively, and no PATCH.
//
// Routes: POST /oauth2/token, and the SCIM API under /scim/v2 (Users,
// Schemas, ResourceTypes, ServiceProviderConfig).
package scimserver

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/elimity-com/scim"
	scimerrors "github.com/elimity-com/scim/errors"
	"github.com/elimity-com/scim/filter"
	"github.com/elimity-com/scim/optional"
	"github.com/elimity-com/scim/schema"
)

// DefaultTokenLifetime is the expires_in of issued tokens unless changed.
const DefaultTokenLifetime = time.Hour

// Authentication modes of Options.Auth.
const (
	AuthOAuth2 = "oauth2" // client credentials at /oauth2/token, then bearer tokens
	AuthBearer = "bearer" // one static bearer token
	AuthBasic  = "basic"  // HTTP basic auth with the client id and secret
)

// Options configure a Server. The zero value (with credentials) is the
// default service: OAuth2, case-insensitive userName, PATCH supported.
type Options struct {
	// Auth is AuthOAuth2 (default), AuthBearer or AuthBasic.
	Auth string
	// ClientID and ClientSecret are the OAuth2 client, or the basic auth
	// username and password.
	ClientID, ClientSecret string
	// BearerToken is the token AuthBearer accepts.
	BearerToken string
	// CaseExact makes userName and emails.value compare case-sensitively
	// (declared caseExact in /Schemas), as some services do.
	CaseExact bool
	// NoPatch declares patch.supported false in /ServiceProviderConfig and
	// refuses PATCH with 501.
	NoPatch bool
}

// Server is a running SCIM service with its token endpoint.
type Server struct {
	srv          *httptest.Server
	opts         Options
	clientID     string
	clientSecret string

	mu            sync.Mutex
	users         map[string]scim.ResourceAttributes
	nextID        int
	tokens        map[string]time.Time // token → server-side expiry
	issued        []string
	tokenRequests int
	rejected      int
	lifetime      time.Duration
	requests      []string // "METHOD path?query" of every authenticated SCIM request
}

// New starts a default server that accepts the given client credentials.
func New(clientID, clientSecret string) (*Server, error) {
	return NewWithOptions(Options{ClientID: clientID, ClientSecret: clientSecret})
}

// NewWithOptions starts a server configured by o.
func NewWithOptions(o Options) (*Server, error) {
	if o.Auth == "" {
		o.Auth = AuthOAuth2
	}
	s := &Server{
		opts: o, clientID: o.ClientID, clientSecret: o.ClientSecret,
		users: map[string]scim.ResourceAttributes{}, tokens: map[string]time.Time{},
		lifetime: DefaultTokenLifetime,
	}
	scheme := map[string]scim.AuthenticationScheme{
		AuthOAuth2: {Type: scim.AuthenticationTypeOauth2, Name: "OAuth 2.0", Description: "Client-credentials token from /oauth2/token", Primary: true},
		AuthBearer: {Type: scim.AuthenticationTypeOauthBearerToken, Name: "Bearer token", Description: "A static bearer token", Primary: true},
		AuthBasic:  {Type: scim.AuthenticationTypeHTTPBasic, Name: "HTTP Basic", Description: "Username and password", Primary: true},
	}[o.Auth]
	if scheme.Type == "" {
		return nil, fmt.Errorf("scim server: unknown auth %q", o.Auth)
	}
	userSchema := schema.CoreUserSchema()
	if o.CaseExact {
		userSchema = caseExactUsers(userSchema)
	}
	api, err := scim.NewServer(&scim.ServerArgs{
		ServiceProviderConfig: &scim.ServiceProviderConfig{
			SupportFiltering: true, SupportPatch: !o.NoPatch, MaxResults: 200,
			AuthenticationSchemes: []scim.AuthenticationScheme{scheme},
		},
		ResourceTypes: []scim.ResourceType{{
			ID: optional.NewString("User"), Name: "User", Endpoint: "/Users",
			Description: optional.NewString("User Account"),
			Schema:      userSchema, Handler: users{s},
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("scim server: %w", err)
	}
	mux := http.NewServeMux()
	if o.Auth == AuthOAuth2 {
		mux.HandleFunc("POST /oauth2/token", s.token)
	}
	mux.Handle("/scim/", s.authenticate(s.refusePatch(http.StripPrefix("/scim", api))))
	s.srv = httptest.NewServer(mux)
	return s, nil
}

// caseExactUsers returns the core User schema with userName and
// emails.value declared caseExact, so the library's filters compare them
// case-sensitively.
func caseExactUsers(s schema.Schema) schema.Schema {
	out := s
	out.Attributes = slices.Clone(s.Attributes)
	for i, a := range out.Attributes {
		switch a.Name() {
		case "userName":
			out.Attributes[i] = schema.SimpleCoreAttribute(schema.SimpleStringParams(schema.StringParams{
				Name: "userName", CaseExact: true, Required: true, Uniqueness: schema.AttributeUniquenessServer(),
				Description: optional.NewString("Unique identifier for the User, compared case-sensitively by this service."),
			}))
		case "emails":
			out.Attributes[i] = schema.ComplexCoreAttribute(schema.ComplexParams{
				Name: "emails", MultiValued: true,
				Description: optional.NewString("Email addresses for the user, compared case-sensitively by this service."),
				SubAttributes: []schema.SimpleParams{
					schema.SimpleStringParams(schema.StringParams{Name: "value", CaseExact: true}),
					schema.SimpleStringParams(schema.StringParams{Name: "display"}),
					schema.SimpleStringParams(schema.StringParams{Name: "type", CanonicalValues: []string{"work", "home", "other"}}),
					schema.SimpleBooleanParams(schema.BooleanParams{Name: "primary"}),
				},
			})
		}
	}
	return out
}

// refusePatch answers PATCH with 501 when the server has no PATCH.
func (s *Server) refusePatch(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opts.NoPatch && r.Method == http.MethodPatch {
			w.Header().Set("Content-Type", "application/scim+json")
			w.WriteHeader(http.StatusNotImplemented)
			fmt.Fprint(w, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"501","detail":"PATCH is not supported"}`)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// URL is the server's base URL.
func (s *Server) URL() string { return s.srv.URL }

// SCIMURL is the SCIM base URL, ending in /scim/v2.
func (s *Server) SCIMURL() string { return s.srv.URL + "/scim/v2" }

// TokenURL is the OAuth 2.0 token endpoint.
func (s *Server) TokenURL() string { return s.srv.URL + "/oauth2/token" }

// SetTokenLifetime sets the expires_in of tokens issued from now on.
func (s *Server) SetTokenLifetime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lifetime = d
}

// ExpireTokens makes every token issued so far invalid.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// TokenRequests counts successful token requests.
func (s *Server) TokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenRequests
}

// Rejected counts SCIM requests refused with 401.
func (s *Server) Rejected() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rejected
}

// Requests returns "METHOD path?query" of every authenticated SCIM
// request so far, path below /scim/v2.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// IssuedTokens returns every access token issued, for tests that scan
// output for leaks.
func (s *Server) IssuedTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.issued)
}

// AddUser stores a user directly and returns its id.
func (s *Server) AddUser(attrs map[string]any) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.add(attrs)
}

func (s *Server) add(attrs map[string]any) string {
	s.nextID++
	id := fmt.Sprintf("%04d", s.nextID)
	s.users[id] = maps.Clone(attrs)
	return id
}

// User returns a copy of a user's attributes by id.
func (s *Server) User(id string) (map[string]any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[id]
	return maps.Clone(u), ok
}

// UserByName returns the id and attributes of the user with userName name
// (case-insensitive, as the attribute's caseExact is false).
func (s *Server) UserByName(name string) (string, map[string]any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, u := range s.users {
		if n, _ := u["userName"].(string); strings.EqualFold(n, name) {
			return id, maps.Clone(u), true
		}
	}
	return "", nil, false
}

// UserCount is the number of users.
func (s *Server) UserCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.users)
}

// token is the client-credentials token endpoint (RFC 6749 §4.4).
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != s.clientID || secret != s.clientSecret {
		oauthError(w, http.StatusUnauthorized, "invalid_client")
		return
	}
	if g := r.PostForm.Get("grant_type"); g != "client_credentials" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail on supported platforms
	tok := hex.EncodeToString(b[:])
	s.mu.Lock()
	s.tokens[tok] = time.Now().Add(s.lifetime)
	s.issued = append(s.issued, tok)
	s.tokenRequests++
	lifetime := s.lifetime
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":%d}`, tok, int(lifetime.Seconds()))
}

func oauthError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":%q}`, code)
}

// authenticate admits requests with a live OAuth2 token, the static
// bearer token or the basic auth credentials, by Options.Auth.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, bearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		user, pass, basic := r.BasicAuth()
		s.mu.Lock()
		var live bool
		challenge := `Bearer error="invalid_token"`
		switch s.opts.Auth {
		case AuthOAuth2:
			exp, known := s.tokens[tok]
			live = bearer && known && time.Now().Before(exp)
		case AuthBearer:
			live = bearer && tok == s.opts.BearerToken
		case AuthBasic:
			live = basic && user == s.clientID && pass == s.clientSecret
			challenge = `Basic realm="scim"`
		}
		if !live {
			s.rejected++
		} else {
			s.requests = append(s.requests, r.Method+" "+strings.TrimPrefix(r.URL.RequestURI(), "/scim/v2"))
		}
		s.mu.Unlock()
		if !live {
			w.Header().Set("WWW-Authenticate", challenge)
			w.Header().Set("Content-Type", "application/scim+json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"status":"401","detail":"invalid or expired token"}`)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// users is the in-memory scim.ResourceHandler for /Users.
type users struct{ s *Server }

func (u users) resource(id string, attrs scim.ResourceAttributes) scim.Resource {
	r := scim.Resource{ID: id, Attributes: maps.Clone(attrs)}
	if ext, ok := attrs["externalId"].(string); ok {
		r.ExternalID = optional.NewString(ext)
	}
	return r
}

// taken reports whether another user than id has userName name.
func (u users) taken(name any, id string) bool {
	n, _ := name.(string)
	for other, a := range u.s.users {
		if o, _ := a["userName"].(string); other != id && (o == n || (!u.s.opts.CaseExact && strings.EqualFold(o, n))) {
			return true
		}
	}
	return false
}

// Create implements scim.ResourceHandler; a taken userName is a 409.
func (u users) Create(_ *http.Request, attrs scim.ResourceAttributes) (scim.Resource, error) {
	u.s.mu.Lock()
	defer u.s.mu.Unlock()
	if u.taken(attrs["userName"], "") {
		return scim.Resource{}, scimerrors.ScimErrorUniqueness
	}
	if _, ok := attrs["active"]; !ok {
		attrs["active"] = true
	}
	id := u.s.add(attrs)
	return u.resource(id, u.s.users[id]), nil
}

// Get implements scim.ResourceHandler.
func (u users) Get(_ *http.Request, id string) (scim.Resource, error) {
	u.s.mu.Lock()
	defer u.s.mu.Unlock()
	a, ok := u.s.users[id]
	if !ok {
		return scim.Resource{}, scimerrors.ScimErrorResourceNotFound(id)
	}
	return u.resource(id, a), nil
}

// GetAll implements scim.ResourceHandler, filtering with the library's
// filter validator (userName eq, emails.value eq, ...).
func (u users) GetAll(_ *http.Request, p scim.ListRequestParams) (scim.Page, error) {
	u.s.mu.Lock()
	defer u.s.mu.Unlock()
	var all []scim.Resource
	for _, id := range slices.Sorted(maps.Keys(u.s.users)) {
		a := u.s.users[id]
		if p.FilterValidator != nil {
			withID := maps.Clone(a)
			withID["id"] = id
			if !passes(p.FilterValidator, withID) {
				continue
			}
		}
		all = append(all, u.resource(id, a))
	}
	page := scim.Page{TotalResults: len(all), Resources: []scim.Resource{}}
	start := max(p.StartIndex, 1) - 1
	if start < len(all) {
		page.Resources = all[start:min(len(all), start+max(p.Count, 0))]
	}
	return page, nil
}

// passes applies a filter to a resource. The library evaluates a
// sub-attribute of a multi-valued attribute ("emails.value eq ...") only
// when the attribute is given as an object of value lists, and panics on
// the list of objects that resources hold; so the filter also runs on that
// transposed form, and a panic counts as no match.
func passes(v *filter.Validator, res map[string]any) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	if v.PassesFilter(res) == nil {
		return true
	}
	return v.PassesFilter(transpose(res)) == nil
}

// transpose turns each list of objects in res into an object of lists:
// [{value: a}, {value: b}] becomes {value: [a, b]}.
func transpose(res map[string]any) map[string]any {
	out := maps.Clone(res)
	for k, val := range res {
		list, ok := val.([]any)
		if !ok {
			continue
		}
		cols := map[string]any{}
		for _, item := range list {
			m, _ := item.(map[string]any)
			for sub, x := range m {
				col, _ := cols[sub].([]any)
				cols[sub] = append(col, x)
			}
		}
		out[k] = cols
	}
	return out
}

// Replace implements scim.ResourceHandler.
func (u users) Replace(_ *http.Request, id string, attrs scim.ResourceAttributes) (scim.Resource, error) {
	u.s.mu.Lock()
	defer u.s.mu.Unlock()
	if _, ok := u.s.users[id]; !ok {
		return scim.Resource{}, scimerrors.ScimErrorResourceNotFound(id)
	}
	if u.taken(attrs["userName"], id) {
		return scim.Resource{}, scimerrors.ScimErrorUniqueness
	}
	u.s.users[id] = maps.Clone(attrs)
	return u.resource(id, attrs), nil
}

// Delete implements scim.ResourceHandler.
func (u users) Delete(_ *http.Request, id string) error {
	u.s.mu.Lock()
	defer u.s.mu.Unlock()
	if _, ok := u.s.users[id]; !ok {
		return scimerrors.ScimErrorResourceNotFound(id)
	}
	delete(u.s.users, id)
	return nil
}

// Patch implements scim.ResourceHandler for operations without a path
// (value is an object of attributes) and with a simple attribute path
// ("active", "name.givenName"). Value-filtered paths are refused.
func (u users) Patch(_ *http.Request, id string, ops []scim.PatchOperation) (scim.Resource, error) {
	u.s.mu.Lock()
	defer u.s.mu.Unlock()
	cur, ok := u.s.users[id]
	if !ok {
		return scim.Resource{}, scimerrors.ScimErrorResourceNotFound(id)
	}
	next := maps.Clone(cur)
	for _, op := range ops {
		if err := apply(next, op); err != nil {
			return scim.Resource{}, err
		}
	}
	if u.taken(next["userName"], id) {
		return scim.Resource{}, scimerrors.ScimErrorUniqueness
	}
	u.s.users[id] = next
	return u.resource(id, next), nil
}

func apply(attrs scim.ResourceAttributes, op scim.PatchOperation) error {
	kind := strings.ToLower(op.Op)
	if op.Path == nil {
		vals, ok := op.Value.(map[string]any)
		if !ok || kind == "remove" {
			return scimerrors.ScimErrorInvalidValue
		}
		maps.Copy(attrs, vals)
		return nil
	}
	if op.Path.ValueExpression != nil || op.Path.SubAttribute != nil {
		return scimerrors.ScimErrorBadRequest("value-filtered patch paths are not supported by this test server")
	}
	name, sub := op.Path.AttributePath.AttributeName, op.Path.AttributePath.SubAttribute
	if sub == nil {
		if kind == "remove" {
			delete(attrs, name)
		} else {
			attrs[name] = op.Value
		}
		return nil
	}
	parent, _ := attrs[name].(map[string]any)
	parent = maps.Clone(parent)
	if parent == nil {
		parent = map[string]any{}
	}
	if kind == "remove" {
		delete(parent, *sub)
	} else {
		parent[*sub] = op.Value
	}
	attrs[name] = parent
	return nil
}
