package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/connhost/connhost/abi"
)

func TestAPIClient(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Api-Key") != "k" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/v1/echo":
			var in map[string]any
			_ = json.NewDecoder(r.Body).Decode(&in)
			in["q"] = r.URL.Query().Get("q")
			in["ct"] = r.Header.Get("Content-Type")
			_ = json.NewEncoder(w).Encode(in)
		case "/v1/busy":
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusTooManyRequests)
		case "/v1/missing":
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":"not found","detail":"no ticket TD-9"}`))
		case "/v1/garbage":
			_, _ = w.Write([]byte(`<html>`))
		}
	}))
	defer srv.Close()
	base, _ := url.Parse(srv.URL + "/v1")
	c := &APIClient{Name: "desk", Base: base, HTTP: nativeDoer(srv.Client()), Header: Header{"X-Api-Key": {"k"}}}
	ctx := context.Background()

	var out map[string]any
	if err := c.Do(ctx, http.MethodPost, "/echo", url.Values{"q": {"a b"}}, map[string]any{"x": 1}, &out); err != nil {
		t.Fatal(err)
	}
	if out["x"] != 1.0 || out["q"] != "a b" || out["ct"] != "application/json" {
		t.Fatalf("echo = %v", out)
	}

	err := c.Do(ctx, http.MethodGet, "/busy", nil, nil, nil)
	if abi.KindOf(err) != abi.KindRateLimited || !strings.Contains(err.Error(), "API rate limit") || !strings.Contains(err.Error(), "retry after 7s") {
		t.Fatalf("429: %v", err)
	}
	err = c.Do(ctx, http.MethodGet, "/missing", nil, nil, nil)
	var se *StatusError
	if !errors.As(err, &se) || HTTPStatus(err) != 404 || se.Detail != "no ticket TD-9" || !strings.Contains(err.Error(), "desk GET /missing: HTTP 404") {
		t.Fatalf("404: %v", err)
	}
	if err := c.Do(ctx, http.MethodGet, "/garbage", nil, nil, &out); err == nil || !strings.Contains(err.Error(), "decode answer") {
		t.Fatalf("bad JSON: %v", err)
	}
	anon := *c
	anon.Header = nil
	err = anon.Do(ctx, http.MethodGet, "/echo", nil, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "check the API key") || strings.Contains(err.Error(), "k\"") {
		t.Fatalf("401: %v", err)
	}
	if HTTPStatus(errors.New("plain")) != 0 {
		t.Fatal("HTTPStatus of a plain error")
	}
}

// nativeDoer sends requests with a net/http client, as the host would.
func nativeDoer(c *http.Client) Doer {
	return DoerFunc(func(ctx context.Context, r abi.HTTPRequest) (abi.HTTPResponse, error) {
		req, err := http.NewRequestWithContext(ctx, r.Method, r.URL, bytes.NewReader(r.Body))
		if err != nil {
			return abi.HTTPResponse{}, err
		}
		req.Header = http.Header(r.Headers)
		resp, err := c.Do(req)
		if err != nil {
			return abi.HTTPResponse{}, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return abi.HTTPResponse{Status: resp.StatusCode, Headers: resp.Header, Body: body}, err
	})
}

// TestSummarizeErrorBody: error bodies of common APIs become one line
// with their messages, never "HTTP 404: " with nothing after it.
func TestSummarizeErrorBody(t *testing.T) {
	long := strings.Repeat("é", 400)
	for _, tc := range []struct{ name, body, want string }{
		{"empty", "", "empty body"},
		{"blank", " \n", "empty body"},
		{"redmine", `{"errors":["Subject cannot be blank","Tracker is not included in the list"]}`, "Subject cannot be blank; Tracker is not included in the list"},
		{"xsoar", `{"id":"x","status":404,"title":"Not Found","detail":"","error":"Could not find incident 12"}`, "Could not find incident 12"},
		{"error object", `{"error":{"code":403,"message":"forbidden by policy"}}`, "forbidden by policy"},
		{"detail", `{"detail":"no ticket TD-9","error":"other"}`, "no ticket TD-9"},
		{"errors objects", `{"errors":[{"message":"a"},{"detail":"b"}]}`, "a; b"},
		{"title only", `{"title":"Bad Request"}`, "Bad Request"},
		{"json without a message", `{"status":500}`, `{"status":500}`},
		{"html", "<html>\n<body>Bad   gateway</body>\n</html>", "<html> <body>Bad gateway</body> </html>"},
		{"cut", long, strings.Repeat("é", 150) + "…"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := SummarizeErrorBody([]byte(tc.body)); got != tc.want {
				t.Fatalf("= %q, want %q", got, tc.want)
			}
		})
	}
}
