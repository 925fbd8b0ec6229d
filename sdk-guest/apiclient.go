package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"

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
	// Detail summarises the answer's body (SummarizeErrorBody): its
	// "detail", "error", "message" or "errors" members when it is JSON,
	// else its text, or "empty body".
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
		return &StatusError{API: c.Name, Method: method, Path: path, Status: resp.Status, Detail: SummarizeErrorBody(resp.Body)}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(resp.Body, out); err != nil {
		return fail("decode answer: %w", err)
	}
	return nil
}

// maxSummary bounds an error body summary: errors end up in logs, entries
// and API answers, and a remote's HTML error page is no use there.
const maxSummary = 300

// SummarizeErrorBody turns the body of a remote API's error answer into
// one short line for an error message. JSON bodies give their message
// members, in the shapes common APIs use: {"detail": …}, XSOAR's
// {"error": …} (a string, or an object with a "message"), {"message": …},
// Redmine's {"errors": ["…", …]} (strings, or objects with a "message" or
// "detail"), and {"title": …}. Other bodies give their text on one line,
// cut at 300 bytes; an empty body gives "empty body".
func SummarizeErrorBody(body []byte) string {
	text := strings.TrimSpace(string(body))
	if text == "" {
		return "empty body"
	}
	var obj map[string]any
	if json.Unmarshal(body, &obj) == nil {
		var parts []string
		for _, k := range []string{"detail", "error", "message", "errors", "title"} {
			parts = append(parts, messages(obj[k])...)
			if len(parts) > 0 {
				return clip(strings.Join(parts, "; "))
			}
		}
	}
	return clip(strings.Join(strings.Fields(text), " "))
}

// messages returns the message texts in one member of an error body.
func messages(v any) []string {
	switch x := v.(type) {
	case string:
		if s := strings.TrimSpace(x); s != "" {
			return []string{s}
		}
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, messages(e)...)
		}
		return out
	case map[string]any:
		for _, k := range []string{"message", "detail", "error"} {
			if m := messages(x[k]); len(m) > 0 {
				return m
			}
		}
	}
	return nil
}

func clip(s string) string {
	if len(s) <= maxSummary {
		return s
	}
	cut := maxSummary
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
