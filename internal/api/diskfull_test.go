package api_test

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/connhost/connhost/host/api/apitypes"
	"github.com/connhost/connhost/internal/store"
	"github.com/connhost/connhost/internal/testenv"
	"github.com/connhost/connhost/internal/testenv/smallfs"
)

// TestDiskFull serves the API from a store on a 64 MiB tmpfs filled to
// below the store's reserve: every write answers 507 naming the cause
// (and openapi.json documents it), reads and commands that store nothing
// answer 200, the server keeps running, and once space is freed the same
// writes succeed.
func TestDiskFull(t *testing.T) {
	fs := smallfs.Mount(t, 64<<20)
	srv := newServer(t, testenv.ServerOptions{StoreDir: filepath.Join(fs, "db"),
		Store: func(o *store.Options) { o.Tune = smallfs.TinyTables }})
	if r := srv.CallAs(srv.Key, http.MethodPost, "/api/v1/plugins", plugin(t, "goecho"), "application/wasm"); r.Status != http.StatusCreated {
		t.Fatalf("install: %s", r)
	}
	srv.Must(http.StatusCreated, http.MethodPost, "/api/v1/instances", map[string]any{"name": "echo", "plugin": "goecho", "enabled": true})
	var inc struct {
		ID string `json:"id"`
	}
	srv.Must(http.StatusCreated, http.MethodPost, "/api/v1/incidents", map[string]any{"name": "before"}).Decode(t, &inc)
	newer := versioned(t, "goecho", "1.1.0", nil)

	type write struct {
		method, path string
		body         any
		ok           int
	}
	call := func(w write) testenv.Response {
		ct := ""
		if _, wasm := w.body.([]byte); wasm {
			ct = "application/wasm"
		}
		return srv.CallAs(srv.Key, w.method, w.path, w.body, ct)
	}
	writes := []write{
		{http.MethodPost, "/api/v1/incidents", map[string]any{"name": "while full"}, http.StatusCreated},
		{http.MethodPatch, "/api/v1/incidents/" + inc.ID, map[string]any{"name": "renamed"}, http.StatusOK},
		{http.MethodPost, "/api/v1/incidents/" + inc.ID + "/entries", map[string]any{"contents": "note"}, http.StatusCreated},
		{http.MethodPost, "/api/v1/users", map[string]any{"username": "alice"}, http.StatusCreated},
		{http.MethodPost, "/api/v1/instances", map[string]any{"name": "echo2", "plugin": "goecho"}, http.StatusCreated},
		{http.MethodPut, "/api/v1/instances/echo/context", map[string]any{"context": map[string]any{"k": "v"}, "version": -1}, http.StatusOK},
		{http.MethodPost, "/api/v1/plugins", newer, http.StatusCreated},
	}
	reads := []string{"/api/v1/incidents/" + inc.ID, "/api/v1/incidents", "/api/v1/instances", "/api/v1/plugins", "/api/v1/plugins/goecho"}

	release := smallfs.Fill(t, fs, 4<<20) // TinyTables' reserve is 8 MiB
	for _, w := range writes {
		r := call(w)
		if r.Status != http.StatusInsufficientStorage {
			t.Errorf("%s %s with the disk full: %s, want 507", w.method, w.path, r)
			continue
		}
		var e apitypes.Error
		r.Decode(t, &e)
		if e.Error != apitypes.CodeInsufficientStorage || !strings.Contains(e.Detail, "free on its filesystem") {
			t.Errorf("%s %s: error %+v does not name the cause", w.method, w.path, e)
		}
	}
	for _, path := range reads {
		srv.Must(http.StatusOK, http.MethodGet, path, nil)
	}
	// A command that stores nothing still runs.
	if v, err := versionCall(srv, "echo"); err != nil || v != "1.0.0" {
		t.Errorf("execute with the disk full: %q %v", v, err)
	}
	if r := srv.CallAs("", http.MethodGet, "/healthz", nil, ""); r.Status != http.StatusOK {
		t.Errorf("healthz with the disk full: %s", r)
	}

	release()
	for _, w := range writes {
		if r := call(w); r.Status != w.ok {
			t.Errorf("%s %s after space was freed: %s, want %d", w.method, w.path, r, w.ok)
		}
	}
	var list struct {
		Incidents []struct {
			Name string `json:"name"`
		} `json:"incidents"`
	}
	srv.Must(http.StatusOK, http.MethodGet, "/api/v1/incidents", nil).Decode(t, &list)
	if len(list.Incidents) != 2 {
		t.Errorf("incidents after space was freed: %+v, want the one from before and the one sent again", list.Incidents)
	}
}
