package api_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/connhost/connhost/host/api/apitypes"
	"github.com/connhost/connhost/internal/api"
)

// TestBadInput sends one bad request per case and checks the 4xx JSON
// error names the problem and that nothing stored changed.
func TestBadInput(t *testing.T) {
	const maxBody = 64 << 10
	e := newEnv(t, func(o *api.Options) { o.MaxBodyBytes = maxBody; o.MaxPluginBytes = 32 << 20 })
	e.install("ticketdesk")
	good := map[string]any{"url": "http://127.0.0.1:1", "api_key": "k-123"}
	e.must(http.StatusCreated, "POST", "/api/v1/instances", map[string]any{"name": "td", "plugin": "ticketdesk", "params": good})
	var inc apitypes.Incident
	e.must(http.StatusCreated, "POST", "/api/v1/incidents", map[string]any{"name": "existing"}).decode(t, &inc)

	// snapshot is everything the API can list; a rejected request must
	// leave it byte for byte the same.
	snapshot := func() string {
		var b strings.Builder
		for _, p := range []string{"/api/v1/plugins", "/api/v1/instances", "/api/v1/incidents", "/api/v1/users",
			"/api/v1/incidents/" + inc.ID + "/entries", "/api/v1/instances/td/context"} {
			b.Write(e.must(http.StatusOK, "GET", p, nil).body)
		}
		return b.String()
	}
	params := func(kv ...any) map[string]any {
		m := map[string]any{"url": good["url"], "api_key": good["api_key"]}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return m
	}
	tests := []struct {
		name        string
		key         string // "" uses the env key; "-" sends none
		method      string
		path        string
		body        any
		contentType string
		status      int
		short       apitypes.ErrorCode
		detail      []string
	}{
		{name: "unknown plugin", method: "POST", path: "/api/v1/instances",
			body:   map[string]any{"name": "x", "plugin": "nosuch", "params": params()},
			status: 400, short: "invalid request", detail: []string{`"nosuch"`, "not installed"}},
		{name: "param of the wrong type", method: "POST", path: "/api/v1/instances",
			body:   map[string]any{"name": "x", "plugin": "ticketdesk", "params": params("max_fetch", "lots")},
			status: 400, short: "invalid request", detail: []string{`param "max_fetch"`, "want a number", `"lots"`}},
		{name: "missing required param", method: "POST", path: "/api/v1/instances",
			body:   map[string]any{"name": "x", "plugin": "ticketdesk", "params": params("api_key", nil)},
			status: 400, short: "invalid request", detail: []string{`param "api_key": required`}},
		{name: "undeclared param", method: "PATCH", path: "/api/v1/instances/td",
			body:   map[string]any{"params": map[string]any{"colour": "red"}},
			status: 400, short: "invalid request", detail: []string{`param "colour": not declared`}},
		{name: "malformed JSON", method: "POST", path: "/api/v1/incidents", body: `{"name": "x",`,
			status: 400, short: "invalid JSON", detail: []string{"malformed JSON"}},
		{name: "syntax error", method: "POST", path: "/api/v1/incidents", body: `{"name": x}`,
			status: 400, short: "invalid JSON", detail: []string{"malformed JSON at byte 10", "invalid character 'x'"}},
		{name: "unknown JSON field", method: "POST", path: "/api/v1/instances",
			body:   map[string]any{"name": "x", "plugin": "ticketdesk", "params": params(), "colour": "red"},
			status: 400, short: "invalid JSON", detail: []string{`unknown field "colour"`}},
		{name: "field of the wrong JSON type", method: "POST", path: "/api/v1/incidents", body: `{"name": 5}`,
			status: 400, short: "invalid JSON", detail: []string{`field "name"`, "want string", "got number"}},
		{name: "object field of the wrong JSON type", method: "POST", path: "/api/v1/instances",
			body:   map[string]any{"name": "x", "plugin": "ticketdesk", "params": params(), "settings": 5},
			status: 400, short: "invalid JSON", detail: []string{`field "settings"`, "want object", "got number"}},
		{name: "list field of the wrong JSON type", method: "PATCH", path: "/api/v1/incidents/" + inc.ID, body: `{"labels": {}}`,
			status: 400, short: "invalid JSON", detail: []string{`field "labels"`, "want array", "got object"}},
		{name: "enumeration field of the wrong JSON type", method: "POST", path: "/api/v1/incidents/" + inc.ID + "/entries",
			body: `{"contents": "x", "type": "note"}`, status: 400, short: "invalid JSON", detail: []string{`field "type"`, "want integer", "got string"}},
		{name: "trailing data", method: "POST", path: "/api/v1/incidents", body: `{"name": "a"} {"name": "b"}`,
			status: 400, short: "invalid JSON", detail: []string{"unexpected data after the JSON value"}},
		{name: "empty body", method: "POST", path: "/api/v1/users", body: "",
			status: 400, short: "invalid JSON", detail: []string{"empty"}},
		{name: "invalid field value", method: "POST", path: "/api/v1/incidents", body: map[string]any{"name": "x", "severity": 7},
			status: 400, short: "invalid request", detail: []string{"severity 7"}},
		{name: "oversized body", method: "POST", path: "/api/v1/incidents",
			body:   `{"name": "` + strings.Repeat("a", maxBody) + `"}`,
			status: 413, short: "request too large", detail: []string{"65536 bytes"}},
		{name: "oversized plugin", method: "POST", path: "/api/v1/plugins", body: bytes.Repeat([]byte{0}, 33<<20),
			contentType: "application/wasm", status: 413, short: "request too large", detail: []string{"33554432 bytes"}},
		{name: "invalid wasm upload", method: "POST", path: "/api/v1/plugins", body: "not a wasm module",
			contentType: "application/wasm", status: 400, short: "invalid request", detail: []string{"not a wasm module"}},
		{name: "plugin upload as JSON", method: "POST", path: "/api/v1/plugins", body: `{}`,
			status: 415, short: "unsupported media type", detail: []string{`"application/json"`, "application/wasm"}},
		{name: "unknown incident", method: "GET", path: "/api/v1/incidents/nosuch",
			status: 404, short: "not found", detail: []string{`incident "nosuch"`}},
		{name: "entry on an unknown incident", method: "POST", path: "/api/v1/incidents/nosuch/entries", body: map[string]any{"contents": "x"},
			status: 404, short: "not found", detail: []string{`incident "nosuch"`}},
		{name: "unknown instance", method: "POST", path: "/api/v1/instances/nosuch/execute", body: map[string]any{"command": "test-module"},
			status: 404, short: "not found", detail: []string{`instance "nosuch"`}},
		{name: "context without version", method: "PUT", path: "/api/v1/instances/td/context", body: map[string]any{"context": map[string]any{}},
			status: 400, short: "invalid request", detail: []string{"version is required"}},
		{name: "execute without command", method: "POST", path: "/api/v1/instances/td/execute", body: map[string]any{"args": map[string]any{}},
			status: 400, short: "invalid request", detail: []string{"command is required"}},
		{name: "unknown query parameter", method: "GET", path: "/api/v1/incidents?stauts=1",
			status: 400, short: "invalid request", detail: []string{"stauts", "status"}},
		{name: "limit too large", method: "GET", path: "/api/v1/incidents?limit=501",
			status: 400, short: "invalid request", detail: []string{`limit "501"`, "1 to 500"}},
		{name: "bad status filter", method: "GET", path: "/api/v1/incidents?status=open",
			status: 400, short: "invalid request", detail: []string{`status "open"`}},
		{name: "bad modifiedAfter", method: "GET", path: "/api/v1/incidents?modifiedAfter=yesterday",
			status: 400, short: "invalid request", detail: []string{"RFC 3339"}},
		{name: "taken instance name", method: "POST", path: "/api/v1/instances",
			body:   map[string]any{"name": "td", "plugin": "ticketdesk", "params": params()},
			status: 409, short: "already exists", detail: []string{"td"}},
		{name: "missing API key", key: "-", method: "GET", path: "/api/v1/incidents",
			status: 401, short: "unauthorized", detail: []string{"missing API key"}},
		{name: "wrong API key", key: "chk_wrong", method: "POST", path: "/api/v1/incidents", body: map[string]any{"name": "x"},
			status: 401, short: "unauthorized", detail: []string{"invalid or revoked API key"}},
		{name: "unknown route", method: "GET", path: "/api/v1/nosuch",
			status: 404, short: "not found", detail: []string{"no route GET /api/v1/nosuch"}},
		{name: "wrong method", method: "PUT", path: "/api/v1/incidents",
			status: 405, short: "method not allowed", detail: []string{"PUT", "/api/v1/incidents"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := snapshot()
			key := e.key
			switch tt.key {
			case "-":
				key = ""
			case "":
			default:
				key = tt.key
			}
			r := e.callAs(key, tt.method, tt.path, tt.body, tt.contentType)
			if r.status != tt.status {
				t.Fatalf("want %d, got %s", tt.status, r)
			}
			eb := r.errBody(t)
			if eb.Error != tt.short {
				t.Errorf("error %q, want %q", eb.Error, tt.short)
			}
			for _, d := range tt.detail {
				if !strings.Contains(eb.Detail, d) {
					t.Errorf("detail %q lacks %q", eb.Detail, d)
				}
			}
			if after := snapshot(); after != before {
				t.Errorf("stored state changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
	if strings.Contains(e.responses(), "k-123") || strings.Contains(e.logs.String(), "k-123") {
		t.Error("the secret param appears in a response or the log")
	}
}
