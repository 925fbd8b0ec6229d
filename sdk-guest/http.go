package sdk

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/abi/jsonwire"
)

// The SDK speaks HTTP in abi.HTTPRequest and abi.HTTPResponse values instead
// of net/http types: net/http (and crypto/tls behind it) would triple the
// size and compile time of every plugin, and the host does the networking
// anyway. Package nethttp adapts both directions for code that wants
// net/http.

// Doer sends an HTTP request and returns the whole response. *Host
// implements it over the http_request host function; wrappers (an OAuth 2
// authorizer) and test fakes implement it too.
type Doer interface {
	HTTP(ctx context.Context, req abi.HTTPRequest) (abi.HTTPResponse, error)
}

// DoerFunc adapts a function to Doer.
type DoerFunc func(ctx context.Context, req abi.HTTPRequest) (abi.HTTPResponse, error)

// HTTP calls f.
func (f DoerFunc) HTTP(ctx context.Context, req abi.HTTPRequest) (abi.HTTPResponse, error) {
	return f(ctx, req)
}

// HTTP sends req (URL absolute) through the host's http_request function.
// The host enforces the egress allow-list (a denied host fails with an error
// matching ErrDenied) and caps the response body. Unless req.TimeoutMS is
// set, ctx's deadline, if any, becomes the host-side timeout. Any status is
// a response, not an error.
func (h *Host) HTTP(ctx context.Context, req abi.HTTPRequest) (abi.HTTPResponse, error) {
	if dl, ok := ctx.Deadline(); ok && req.TimeoutMS == 0 {
		req.TimeoutMS = max(1, time.Until(dl).Milliseconds())
	}
	var r abi.HTTPResponse
	if err := h.rpc(ctx, abi.ImportHTTPRequest, &req, &r); err != nil {
		return abi.HTTPResponse{}, err
	}
	return r, nil
}

// HTTPHandler serves connhost_http requests of long-running HTTP plugins.
// req.Path and req.Query hold the request target (parse the query with
// url.ParseQuery), Header(req.Headers) reads the headers. A nil response
// with a nil error answers 204 No Content; an error fails the request with
// its kind, so answer client mistakes with a 4xx response instead.
type HTTPHandler func(ctx context.Context, h *Host, req *abi.HTTPRequest) (*abi.HTTPResponse, error)

// JSONResponse answers status with v encoded as JSON.
func JSONResponse(status int, v any) (*abi.HTTPResponse, error) {
	b, err := jsonwire.AppendValue(nil, v, true) // as json.Marshal writes it
	if err != nil {
		return nil, fmt.Errorf("encode JSON response: %w", err)
	}
	return &abi.HTTPResponse{
		Status:  status,
		Headers: Header{"Content-Type": {"application/json"}},
		Body:    append(b, '\n'),
	}, nil
}

// TextResponse answers status with a plain-text body.
func TextResponse(status int, text string) *abi.HTTPResponse {
	return &abi.HTTPResponse{
		Status:  status,
		Headers: Header{"Content-Type": {"text/plain; charset=utf-8"}},
		Body:    []byte(text),
	}
}

// BasicAuth returns the credentials of req's Authorization header when it
// uses HTTP Basic authentication.
func BasicAuth(req *abi.HTTPRequest) (user, password string, ok bool) {
	auth := Header(req.Headers).Get("Authorization")
	const prefix = "basic "
	if len(auth) < len(prefix) || !strings.EqualFold(auth[:len(prefix)], prefix) {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(auth[len(prefix):])
	if err != nil {
		return "", "", false
	}
	user, password, ok = strings.Cut(string(raw), ":")
	return user, password, ok
}

// BasicAuthHeader returns the Authorization header value for HTTP Basic
// authentication.
func BasicAuthHeader(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// Header is HTTP headers as abi.HTTPRequest and abi.HTTPResponse carry them
// (convert with Header(req.Headers)). Like net/http's Header, its methods
// use canonical keys ("Content-Type"); Get and Values also find keys stored
// in another case.
type Header map[string][]string

// Get returns the first value of key, or "".
func (h Header) Get(key string) string {
	if v := h.Values(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// Values returns the values of key.
func (h Header) Values(key string) []string {
	if v, ok := h[CanonicalHeaderKey(key)]; ok {
		return v
	}
	for k, v := range h {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return nil
}

// Set replaces the values of key with value.
func (h Header) Set(key, value string) {
	h.Del(key)
	h[CanonicalHeaderKey(key)] = []string{value}
}

// Add appends value to the values of key.
func (h Header) Add(key, value string) {
	k := CanonicalHeaderKey(key)
	h[k] = append(h[k], value)
}

// Del removes key in any case.
func (h Header) Del(key string) {
	for k := range h {
		if strings.EqualFold(k, key) {
			delete(h, k)
		}
	}
}

// Clone returns a copy of h that shares no slices with it; nil stays nil.
func (h Header) Clone() Header {
	if h == nil {
		return nil
	}
	c := make(Header, len(h))
	for k, v := range h {
		c[k] = append([]string(nil), v...)
	}
	return c
}

// CanonicalHeaderKey returns key with the first letter and each letter after
// a hyphen upper case and the others lower case, as net/http does.
func CanonicalHeaderKey(key string) string {
	b := []byte(key)
	upper := true
	for i, c := range b {
		switch {
		case upper && 'a' <= c && c <= 'z':
			b[i] = c - 'a' + 'A'
		case !upper && 'A' <= c && c <= 'Z':
			b[i] = c - 'A' + 'a'
		}
		upper = c == '-'
	}
	return string(b)
}
