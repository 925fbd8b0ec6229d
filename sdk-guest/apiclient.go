package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"

	"github.com/connhost/connhost/abi"
)

// APIClient calls a JSON REST API through the host's http_request, as
// XSOAR's BaseClient._http_request does for Python connectors: request paths
// are appended to Base, Header is sent with every request, a 2xx JSON answer
// is decoded, and the statuses connectors must treat alike are mapped: 429
// becomes rate_limited with XSOAR's "API rate limit" wording, 401 a failure
// telling the operator to check the API key, any other non-2xx a
// *StatusError. Errors name the API, method and path, never the headers.
type APIClient struct {
	// Name names the API in errors, e.g. "ticketdesk".
	Name string
	// Base is the API's base URL; a request's path is appended to its path.
	Base *url.URL
	// Header is sent with every request (credentials, typically).
	Header Header
	// HTTP sends the requests: the Host, or a wrapper of it such as an
	// OAuth 2 authorizer.
	HTTP Doer
}

// StatusError is a non-2xx answer other than 401 and 429.
type StatusError struct {
	API, Method, Path string
	Status            int
	// Detail is the answer's "detail", "error" or "message" member, if it
	// is JSON with one.
	Detail string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("%s %s %s: HTTP %d: %s", e.API, e.Method, e.Path, e.Status, e.Detail)
}

// HTTPStatus returns the status of a *StatusError in err's chain, or 0.
func HTTPStatus(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Status
	}
	return 0
}

// Do sends method path?query with body as JSON (when not nil) and decodes a
// 2xx answer into out (when not nil).
func (c *APIClient) Do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%s %s %s: "+format, append([]any{c.Name, method, path}, args...)...)
	}
	u := *c.Base
	u.Path += path
	u.RawQuery = query.Encode()
	hd := c.Header.Clone()
	if hd == nil {
		hd = Header{}
	}
	hd.Set("Accept", "application/json")
	req := abi.HTTPRequest{Method: method, URL: u.String(), Headers: hd}
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fail("%w", err)
		}
		req.Body = b
		hd.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTP.HTTP(ctx, req)
	if err != nil {
		return fail("%w", err)
	}
	switch {
	case resp.Status == 429:
		return RateLimited(fmt.Sprintf("%s API rate limit exceeded on %s %s (retry after %ss)", c.Name, method, path, Header(resp.Headers).Get("Retry-After")))
	case resp.Status == 401:
		return fail("authorization failed: check the API key (HTTP 401)")
	case resp.Status/100 != 2:
		var e struct{ Detail, Error, Message string }
		_ = json.Unmarshal(resp.Body, &e) // best effort: the status says enough
		detail := e.Detail
		for _, d := range []string{e.Error, e.Message} {
			if detail == "" {
				detail = d
			}
		}
		return &StatusError{API: c.Name, Method: method, Path: path, Status: resp.Status, Detail: detail}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(resp.Body, out); err != nil {
		return fail("decode answer: %w", err)
	}
	return nil
}
