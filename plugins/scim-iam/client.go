package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/connhost/connhost/abi"
	sdk "github.com/connhost/connhost/sdk-guest"
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

// scimClient talks to one SCIM service with a cached OAuth2 token.
type scimClient struct {
	base string
	http sdk.Doer
}

var _ iam.Client = (*scimClient)(nil)

func newSCIMClient(h *sdk.Host) (*scimClient, error) {
	p := h.Params()
	cfg := &oauth2.Config{
		TokenURL:     p.String(paramTokenURL),
		ClientID:     p.String(paramClientID),
		ClientSecret: p.Secret(paramClientSecret),
		Scopes:       scopes(p.String(paramScope)),
	}
	return &scimClient{base: strings.TrimRight(p.String(paramURL), "/"), http: cfg.Doer(h)}, nil
}

// scimError is a non-2xx answer; its status becomes the IAM errorCode.
type scimError struct {
	status int
	op     string
	detail string
}

func (e *scimError) Error() string {
	if e.detail == "" {
		return fmt.Sprintf("%s: HTTP %d", e.op, e.status)
	}
	return fmt.Sprintf("%s: HTTP %d: %s", e.op, e.status, e.detail)
}

// StatusCode implements iam.StatusCoder.
func (e *scimError) StatusCode() int { return e.status }

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
// string).
func filterQuote(v string) string {
	b, _ := json.Marshal(v) // a string always marshals
	return string(b)
}

// GetUser implements iam.Client: by id with GET /Users/{id}, otherwise
// with a filter on userName or emails.value.
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
	q := url.Values{"filter": {attr + " eq " + filterQuote(value)}, "count": {"2"}}
	var list struct {
		TotalResults int              `json:"totalResults"`
		Resources    []map[string]any `json:"Resources"`
	}
	if err := c.do(ctx, "GET", "/Users?"+q.Encode(), nil, &list); err != nil {
		return nil, err
	}
	switch {
	case len(list.Resources) == 0:
		return nil, nil
	case len(list.Resources) > 1:
		return nil, &scimError{status: 409, op: "GET /Users", detail: fmt.Sprintf("%d users match %s", list.TotalResults, attr)}
	}
	return appUser(list.Resources[0]), nil
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

// UpdateUser implements iam.Client with a PATCH replacing the given
// attributes.
func (c *scimClient) UpdateUser(ctx context.Context, id string, fields map[string]any) (*iam.AppUser, error) {
	return c.patch(ctx, id, map[string]any{"op": "replace", "value": userBody(fields)})
}

// SetActive implements iam.Client: PATCH active (RFC 7643 §4.1.1).
func (c *scimClient) SetActive(ctx context.Context, id string, active bool) (*iam.AppUser, error) {
	return c.patch(ctx, id, map[string]any{"op": "replace", "path": "active", "value": active})
}

func (c *scimClient) patch(ctx context.Context, id string, ops ...map[string]any) (*iam.AppUser, error) {
	body := map[string]any{"schemas": []string{schemaPatchOp}, "Operations": ops}
	var u map[string]any
	path := "/Users/" + url.PathEscape(id)
	if err := c.do(ctx, "PATCH", path, body, &u); err != nil {
		return nil, err
	}
	if u == nil { // 204 No Content: nothing changed
		if err := c.do(ctx, "GET", path, nil, &u); err != nil {
			return nil, err
		}
	}
	return appUser(u), nil
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

// appUser reads a SCIM User resource.
func appUser(u map[string]any) *iam.AppUser {
	a := &iam.AppUser{Active: true, Data: u}
	a.ID, _ = u["id"].(string)
	a.Username, _ = u["userName"].(string)
	if v, ok := u["active"].(bool); ok {
		a.Active = v
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
