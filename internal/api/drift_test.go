package api_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/rs/zerolog"

	"github.com/connhost/connhost/host/api/apitypes"
	"github.com/connhost/connhost/internal/mirror"
	"github.com/connhost/connhost/internal/store"
)

// TestDocumentedResponses covers the points where responses had drifted
// from openapi.json (an outside client validated 164 calls against it):
// each case asserts the fixed behaviour directly, and newEnv's validator
// checks every response against the document besides.
func TestDocumentedResponses(t *testing.T) {
	e := newEnv(t, nil)
	e.s.Service.Mirroring.SetEngine(mirror.New(mirror.Options{Store: e.s.Store, Instances: e.svc.Mirroring, Logger: zerolog.Nop()}))

	// Installing a plugin no instance uses switches none: an empty list,
	// not null.
	r := e.callAs(e.key, http.MethodPost, "/api/v1/plugins", plugin(t, "goecho"), "application/wasm")
	if raw := fields(t, r, http.StatusCreated); string(raw["switched"]) != "[]" {
		t.Fatalf("install: switched %s, want []", raw["switched"])
	}
	e.install("ticketdesk")
	e.must(http.StatusCreated, "POST", "/api/v1/instances", map[string]any{"name": "echo", "plugin": "goecho", "enabled": true})
	e.must(http.StatusCreated, "POST", "/api/v1/instances", map[string]any{"name": "td", "plugin": "ticketdesk", "enabled": true,
		"params": map[string]any{"url": "http://127.0.0.1:1", "api_key": "k"}})
	var mirrored apitypes.Incident
	e.must(http.StatusCreated, "POST", "/api/v1/incidents", map[string]any{"name": "mirrored"}).decode(t, &mirrored)
	if _, err := e.s.Store.UpdateIncident(t.Context(), mirrored.ID, func(inc *store.Incident) error {
		inc.DbotMirrorID, inc.DbotMirrorInstance, inc.DbotMirrorDirection = "R-1", "td", "Both"
		inc.MirrorOut = &store.MirrorOut{Pending: true, Attempts: 2, LastError: "remote down"}
		inc.MirrorPurged = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name         string
		method, path string
		body         any
		status       int
		code         apitypes.ErrorCode // for errors
		absent       []string           // top-level fields that must be left out
		want         map[string]string  // top-level fields and their exact JSON
	}{
		{name: "an open incident has no closed time", method: "POST", path: "/api/v1/incidents", body: map[string]any{"name": "open"},
			status: http.StatusCreated, absent: []string{"closed", "dbotMirrorLastSync"}},
		{name: "health before any report has no time", method: "GET", path: "/api/v1/instances/echo/health",
			status: http.StatusOK, absent: []string{"updated"}},
		{name: "storage fields stay out of incidents", method: "GET", path: "/api/v1/incidents/" + mirrored.ID,
			status: http.StatusOK, absent: []string{"mirrorOut", "mirrorPurged"}, want: map[string]string{"dbotMirrorId": `"R-1"`}},
		{name: "the sync record carries the outbox state", method: "GET", path: "/api/v1/incidents/" + mirrored.ID + "/mirror",
			status: http.StatusOK, want: map[string]string{"purged": "true",
				"outgoing": `{"pending":true,"attempts":2,"lastError":"remote down"}`}},
		{name: "no sync records are an empty list", method: "GET", path: "/api/v1/instances/echo/mirror/records",
			status: http.StatusOK, want: map[string]string{"records": "[]"}},
		{name: "fetch on a plugin without fetch-incidents", method: "POST", path: "/api/v1/instances/echo/fetch",
			status: http.StatusBadRequest, code: apitypes.CodeInvalidRequest},
		{name: "a missing declared argument", method: "POST", path: "/api/v1/instances/td/execute",
			body:   map[string]any{"command": "ticketdesk-get-ticket"},
			status: http.StatusUnprocessableEntity, code: apitypes.CodeInvalidArguments},
		{name: "an undeclared argument", method: "POST", path: "/api/v1/instances/td/execute",
			body:   map[string]any{"command": "ticketdesk-get-ticket", "args": map[string]any{"id": "TD-1", "colour": "red"}},
			status: http.StatusUnprocessableEntity, code: apitypes.CodeInvalidArguments},
		{name: "a command the plugin does not serve", method: "POST", path: "/api/v1/instances/td/execute",
			body: map[string]any{"command": "nope"}, status: http.StatusBadRequest, code: apitypes.CodeInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := fields(t, e.call(tt.method, tt.path, tt.body), tt.status)
			if tt.code != "" {
				if got := string(raw["error"]); got != `"`+string(tt.code)+`"` {
					t.Errorf("error %s, want %q", got, tt.code)
				}
			}
			for _, f := range tt.absent {
				if v, ok := raw[f]; ok {
					t.Errorf("%s is %s, want it left out", f, v)
				}
			}
			for f, want := range tt.want {
				if got := string(raw[f]); got != want {
					t.Errorf("%s is %s, want %s", f, got, want)
				}
			}
		})
	}
}

// fields checks a response's status and returns its top-level fields.
func fields(t *testing.T, r response, status int) map[string]json.RawMessage {
	t.Helper()
	if r.status != status {
		t.Fatalf("want %d, got %s", status, r)
	}
	var m map[string]json.RawMessage
	r.decode(t, &m)
	return m
}
