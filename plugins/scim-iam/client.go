package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/connhost/connhost/abi"
	sdk "github.com/connhost/connhost/sdk-guest"
	"github.com/connhost/connhost/sdk-guest/cache"
	"github.com/connhost/connhost/sdk-guest/iam"
	"github.com/connhost/connhost/sdk-guest/oauth2"
)

// SCIM URNs (RFC 7643 §8.7, RFC 7644 §3.5.2).
const (
	schemaUser    = "urn:ietf:params:scim:schemas:core:2.0:User"
	schemaPatchOp = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	mediaType     = "application/scim+json"
	maxBody       = 4 << 20
)

// How long the service's /ServiceProviderConfig is trusted, and how long a
// service without one is assumed to support PATCH before asking again.
const (
	configTTL        = time.Hour
	missingConfigTTL = 5 * time.Minute
)

// scimClient talks to one SCIM service with the instance's credentials.
type scimClient struct {
	h    *sdk.Host
	base string
	http sdk.Doer
}

var _ iam.Client = (*scimClient)(nil)

func newSCIMClient(h *sdk.Host) (*scimClient, error) {
	p := h.Params()
	c := &scimClient{h: h, base: strings.TrimRight(p.String(paramURL), "/")}
	switch authType(p) {
	case authOAuth2:
		cfg := &oauth2.Config{
			TokenURL:     p.String(paramTokenURL),
			ClientID:     p.String(paramClientID),
			ClientSecret: p.Secret(paramClientSecret),
			Scopes:       scopes(p.String(paramScope)),
		}
		c.http = cfg.Doer(h)
	case authBearer:
		c.http = staticAuth{h: h, value: "Bearer " + p.Secret(paramBearerToken)}
	case authBasic:
		c.http = staticAuth{h: h, value: sdk.BasicAuthHeader(p.String(paramBasicUsername), p.Secret(paramBasicPassword))}
	default:
		return nil, sdk.BadRequest("parameter %s: %q is not one of %s, %s, %s", paramAuthType, p.String(paramAuthType), authOAuth2, authBearer, authBasic)
	}
	return c, nil
}

// staticAuth sends every request with one Authorization header value (a
// static bearer token or basic credentials).
type staticAuth struct {
	h     *sdk.Host
	value string
}

// HTTP implements sdk.Doer, adding the header to a copy of the caller's.
func (a staticAuth) HTTP(ctx context.Context, req abi.HTTPRequest) (abi.HTTPResponse, error) {
	hd := sdk.Header(req.Headers).Clone()
	if hd == nil {
		hd = sdk.Header{}
	}
	hd.Set("Authorization", a.value)
	req.Headers = hd
	return a.h.HTTP(ctx, req)
}

// scimError is a non-2xx answer, or a token endpoint's refusal (status
// 401); its status becomes the IAM errorCode.
type scimError struct {
	status int
	op     string
	detail string
	err    error // the underlying error, if any
}

func (e *scimError) Error() string {
	if e.detail == "" {
		return fmt.Sprintf("%s: HTTP %d", e.op, e.status)
	}
	return fmt.Sprintf("%s: HTTP %d: %s", e.op, e.status, e.detail)
}

// StatusCode implements iam.StatusCoder.
func (e *scimError) StatusCode() int { return e.status }

func (e *scimError) Unwrap() error { return e.err }

// do sends a SCIM request and decodes a JSON answer into out (may be nil).
func (c *scimClient) do(ctx context.Context, method, path string, body, out any) error {
	op := method + " " + path
	req := abi.HTTPRequest{Method: method, URL: c.base + path, Headers: sdk.Header{"Accept": {mediaType}}}
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("%s: encode: %w", op, err)
		}
		req.Body = b
		req.Headers["Content-Type"] = []string{mediaType}
	}
	resp, err := c.http.HTTP(ctx, req)
	if errors.Is(err, oauth2.ErrTokenRefused) {
		// The credentials are wrong, not the SCIM request: say so with the
		// status a SCIM service gives for bad credentials.
		return &scimError{status: 401, op: op, detail: "authentication failed: " + err.Error(), err: err}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if len(resp.Body) > maxBody {
		return fmt.Errorf("%s: response larger than %d bytes", op, maxBody)
	}
	data := resp.Body
	if resp.Status < 200 || resp.Status > 299 {
		var e struct {
			Detail   string `json:"detail"`
			ScimType string `json:"scimType"`
		}
		_ = json.Unmarshal(data, &e) // a non-SCIM error body leaves detail empty
		detail := strings.TrimSpace(e.ScimType + " " + e.Detail)
		if resp.Status == 401 || resp.Status == 403 {
			detail = strings.TrimSpace("authentication failed: " + detail)
		}
		return &scimError{status: resp.Status, op: op, detail: detail}
	}
	if out == nil || len(data) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s: decode response: %w", op, err)
	}
	return nil
}

func (c *scimClient) ping(ctx context.Context) error {
	return c.do(ctx, "GET", "/Users?count=1", nil, nil)
}

// filterQuote quotes a filter comparison value (RFC 7644 §3.4.2.2: a JSON
// string), escaping only what JSON requires: backslash, quote and control
// characters. encoding/json would also turn <, > and & into \u escapes,
// which some services compare literally.
func filterQuote(v string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range v {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// GetUser implements iam.Client: by id with GET /Users/{id}, otherwise
// with a filter on userName or emails.value. Two fallbacks for services
// that stray from RFC 7643/7644, each taken only when the exact filter
// matches nobody: a value with upper-case letters is tried lower-cased
// (some services compare userName case-sensitively although it is not
// caseExact), and a value with a quote or backslash is looked up by its
// prefix before the first of them with "sw" (some filter parsers keep the
// escapes in the compared value). Only users whose value equals the one
// asked for case-insensitively are taken. Listing every user and
// comparing here would work everywhere but cost a directory scan per
// lookup.
func (c *scimClient) GetUser(ctx context.Context, attr, value string) (*iam.AppUser, error) {
	if attr == "id" {
		var u map[string]any
		err := c.do(ctx, "GET", "/Users/"+url.PathEscape(value), nil, &u)
		if e, ok := err.(*scimError); ok && e.status == 404 {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return appUser(u), nil
	}
	if attr == "emails" {
		attr = "emails.value"
	}
	users, err := c.find(ctx, attr, "eq", value, value, 2)
	if err == nil && len(users) == 0 && strings.ToLower(value) != value {
		users, err = c.find(ctx, attr, "eq", strings.ToLower(value), value, 2)
	}
	if i := strings.IndexAny(value, `"\`); err == nil && len(users) == 0 && i > 0 {
		users, err = c.find(ctx, attr, "sw", value[:i], value, maxPrefixMatches)
	}
	if err != nil {
		return nil, err
	}
	switch {
	case len(users) == 0:
		return nil, nil
	case len(users) > 1:
		return nil, &scimError{status: 409, op: "GET /Users", detail: fmt.Sprintf("%d users match %s", len(users), attr)}
	}
	return appUser(users[0]), nil
}

// maxPrefixMatches bounds the users a prefix lookup reads.
const maxPrefixMatches = 100

// find lists up to count users matching "attr op operand", keeping those
// whose value equals want case-insensitively (a service may match loosely).
func (c *scimClient) find(ctx context.Context, attr, op, operand, want string, count int) ([]map[string]any, error) {
	q := url.Values{"filter": {attr + " " + op + " " + filterQuote(operand)}, "count": {fmt.Sprint(count)}}
	var list struct {
		Resources []map[string]any `json:"Resources"`
	}
	if err := c.do(ctx, "GET", "/Users?"+q.Encode(), nil, &list); err != nil {
		return nil, err
	}
	var out []map[string]any
	for _, u := range list.Resources {
		if hasValue(u, attr, want) {
			out = append(out, u)
		}
	}
	return out, nil
}

// hasValue reports whether a user's userName, or one of its emails for
// emails.value, equals value case-insensitively.
func hasValue(u map[string]any, attr, value string) bool {
	if attr == "userName" {
		n, _ := u["userName"].(string)
		return strings.EqualFold(n, value)
	}
	emails, _ := u["emails"].([]any)
	for _, e := range emails {
		m, _ := e.(map[string]any)
		if v, _ := m["value"].(string); strings.EqualFold(v, value) {
			return true
		}
	}
	return false
}

// CreateUser implements iam.Client with POST /Users.
func (c *scimClient) CreateUser(ctx context.Context, fields map[string]any) (*iam.AppUser, error) {
	body := userBody(fields)
	body["schemas"] = []string{schemaUser}
	var u map[string]any
	if err := c.do(ctx, "POST", "/Users", body, &u); err != nil {
		return nil, err
	}
	return appUser(u), nil
}

// serviceConfig is what the connector reads from /ServiceProviderConfig.
type serviceConfig struct {
	Patch bool `json:"patch"`
}

// config returns the service's configuration, read once per hour per
// service URL and shared by every module instance through the integration
// cache. A service without /ServiceProviderConfig (RFC 7644 makes it
// mandatory) is assumed to support PATCH, as this connector did before it
// asked.
func (c *scimClient) config(ctx context.Context) (serviceConfig, error) {
	sum := sha256.Sum256([]byte(c.base))
	store := cache.New[serviceConfig](c.h, "scim-iam/spc/", configTTL)
	return store.GetOrLoad(ctx, hex.EncodeToString(sum[:]), func(ctx context.Context) (serviceConfig, time.Duration, error) {
		var raw struct {
			Patch struct {
				Supported bool `json:"supported"`
			} `json:"patch"`
		}
		err := c.do(ctx, "GET", "/ServiceProviderConfig", nil, &raw)
		var se *scimError
		if errors.As(err, &se) && se.status != 401 && se.status != 403 {
			c.h.Warnf("scim-iam: %v; assuming PATCH is supported", err)
			return serviceConfig{Patch: true}, missingConfigTTL, nil
		}
		if err != nil {
			return serviceConfig{}, 0, err
		}
		return serviceConfig{Patch: raw.Patch.Supported}, 0, nil
	})
}

// UpdateUser implements iam.Client: a PATCH with one path-scoped replace
// per attribute (sub-attribute for complex ones such as name, so the
// others are kept; the whole list for multi-valued ones such as emails, so
// it is replaced, not appended to) when the service supports PATCH,
// otherwise a PUT of the current resource with the attributes merged in.
func (c *scimClient) UpdateUser(ctx context.Context, id string, fields map[string]any) (*iam.AppUser, error) {
	body := userBody(fields)
	cfg, err := c.config(ctx)
	if err != nil {
		return nil, err
	}
	if !cfg.Patch {
		return c.put(ctx, id, func(cur map[string]any) { merge(cur, body) })
	}
	var ops []map[string]any
	for _, k := range slices.Sorted(maps.Keys(body)) {
		if sub, ok := body[k].(map[string]any); ok {
			for _, sk := range slices.Sorted(maps.Keys(sub)) {
				ops = append(ops, map[string]any{"op": "replace", "path": k + "." + sk, "value": sub[sk]})
			}
			continue
		}
		ops = append(ops, map[string]any{"op": "replace", "path": k, "value": body[k]})
	}
	if len(ops) == 0 {
		var u map[string]any
		if err := c.do(ctx, "GET", "/Users/"+url.PathEscape(id), nil, &u); err != nil {
			return nil, err
		}
		return appUser(u), nil
	}
	return c.patch(ctx, id, ops...)
}

// SetActive implements iam.Client: PATCH active (RFC 7643 §4.1.1), or PUT
// without PATCH.
func (c *scimClient) SetActive(ctx context.Context, id string, active bool) (*iam.AppUser, error) {
	cfg, err := c.config(ctx)
	if err != nil {
		return nil, err
	}
	if !cfg.Patch {
		return c.put(ctx, id, func(cur map[string]any) { cur["active"] = active })
	}
	return c.patch(ctx, id, map[string]any{"op": "replace", "path": "active", "value": active})
}

// patch sends PATCH operations to user id and returns the user after them.
func (c *scimClient) patch(ctx context.Context, id string, ops ...map[string]any) (*iam.AppUser, error) {
	body := map[string]any{"schemas": []string{schemaPatchOp}, "Operations": ops}
	var u map[string]any
	path := "/Users/" + url.PathEscape(id)
	if err := c.do(ctx, "PATCH", path, body, &u); err != nil {
		return nil, err
	}
	if u == nil { // 204 No Content: the service did not return the resource
		if err := c.do(ctx, "GET", path, nil, &u); err != nil {
			return nil, err
		}
	}
	return appUser(u), nil
}

// put replaces user id with its current resource changed by edit.
func (c *scimClient) put(ctx context.Context, id string, edit func(map[string]any)) (*iam.AppUser, error) {
	path := "/Users/" + url.PathEscape(id)
	var cur map[string]any
	if err := c.do(ctx, "GET", path, nil, &cur); err != nil {
		return nil, err
	}
	delete(cur, "meta") // read-only (RFC 7643 §3.1)
	edit(cur)
	var u map[string]any
	if err := c.do(ctx, "PUT", path, cur, &u); err != nil {
		return nil, err
	}
	if u == nil {
		return appUser(cur), nil
	}
	return appUser(u), nil
}

// merge writes src into dst: sub-attributes of complex attributes one by
// one, anything else (multi-valued attributes included) replaced whole.
func merge(dst, src map[string]any) {
	for k, v := range src {
		sub, ok := v.(map[string]any)
		cur, isMap := dst[k].(map[string]any)
		if ok && isMap {
			merged := maps.Clone(cur)
			maps.Copy(merged, sub)
			dst[k] = merged
			continue
		}
		dst[k] = v
	}
}

// AppFields implements iam.Client from the service's User schema
// (GET /Schemas/{urn}), sub-attributes as "parent.child".
func (c *scimClient) AppFields(ctx context.Context) (map[string]string, error) {
	var s struct {
		Attributes []attribute `json:"attributes"`
	}
	if err := c.do(ctx, "GET", "/Schemas/"+schemaUser, nil, &s); err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, a := range s.Attributes {
		out[a.Name] = a.Description
		for _, sub := range a.SubAttributes {
			out[a.Name+"."+sub.Name] = sub.Description
		}
	}
	return out, nil
}

type attribute struct {
	Name          string      `json:"name"`
	Description   string      `json:"description"`
	SubAttributes []attribute `json:"subAttributes"`
}

// userBody drops attributes the service owns and shapes emails as SCIM
// wants them: a list whose first entry is the primary work address.
func userBody(fields map[string]any) map[string]any {
	out := make(map[string]any, len(fields)+1)
	for k, v := range fields {
		switch k {
		case "id", "meta", "schemas":
			continue
		}
		out[k] = v
	}
	switch e := out["emails"].(type) {
	case string:
		out["emails"] = []any{map[string]any{"value": e, "type": "work", "primary": true}}
	case []any:
		for i, item := range e {
			m, ok := item.(map[string]any)
			if !ok {
				continue
			}
			if _, ok := m["type"]; !ok {
				m["type"] = "work"
			}
			if _, ok := m["primary"]; !ok && i == 0 {
				m["primary"] = true
			}
		}
	}
	return out
}

// appUser reads a SCIM User resource. A resource without a boolean
// "active" leaves it unknown: RFC 7643 gives the attribute no default, and
// reporting such a user active could hide a disabled account.
func appUser(u map[string]any) *iam.AppUser {
	a := &iam.AppUser{ActiveUnknown: true, Data: u}
	a.ID, _ = u["id"].(string)
	a.Username, _ = u["userName"].(string)
	if v, ok := u["active"].(bool); ok {
		a.Active, a.ActiveUnknown = v, false
	}
	emails, _ := u["emails"].([]any)
	for _, e := range emails {
		m, _ := e.(map[string]any)
		v, _ := m["value"].(string)
		if a.Email == "" || m["primary"] == true {
			a.Email = v
		}
	}
	delete(u, "meta")
	return a
}
