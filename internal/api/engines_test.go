package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/connhost/connhost/host/api/apitypes"
	"github.com/connhost/connhost/internal/api"
	"github.com/connhost/connhost/internal/engines"
)

// TestEnginesAPI: without engines the list says so and enrolling is a
// conflict; with the embedded NATS server an engine is enrolled once, its
// seed answered once, bad names refused, and the engines show in the list
// and in /readyz.
func TestEnginesAPI(t *testing.T) {
	off := newEnv(t, nil)
	var list apitypes.EngineList
	off.must(http.StatusOK, "GET", "/api/v1/engines", nil).decode(t, &list)
	if list.Enabled || list.Engines == nil || len(list.Engines) != 0 {
		t.Fatalf("engines off: %+v", list)
	}
	if r := off.call("POST", "/api/v1/engines", map[string]any{"name": "e1", "group": "dmz"}); r.status != http.StatusConflict ||
		!strings.Contains(r.errBody(t).Detail, "engines.enable") {
		t.Fatalf("enroll with engines off: %s", r)
	}

	hub, err := engines.StartHub(t.Context(), engines.HubOptions{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hub.Close)
	e := newEnv(t, func(o *api.Options) { o.Engines = hub })
	for _, tc := range []struct {
		name   string
		body   map[string]any
		status int
		code   apitypes.ErrorCode
	}{
		{"enrolled", map[string]any{"name": "e1", "group": "dmz"}, http.StatusCreated, ""},
		{"name taken", map[string]any{"name": "e1", "group": "ot"}, http.StatusConflict, apitypes.CodeAlreadyExists},
		{"group not one token", map[string]any{"name": "e2", "group": "dmz.*"}, http.StatusBadRequest, apitypes.CodeInvalidRequest},
		{"no group", map[string]any{"name": "e2"}, http.StatusBadRequest, apitypes.CodeInvalidRequest},
		{"unknown field", map[string]any{"name": "e2", "group": "dmz", "seed": "SU..."}, http.StatusBadRequest, apitypes.CodeInvalidJSON},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.call("POST", "/api/v1/engines", tc.body)
			if r.status != tc.status {
				t.Fatalf("got %s, want %d", r, tc.status)
			}
			if tc.code != "" {
				if b := r.errBody(t); b.Error != tc.code {
					t.Fatalf("error %+v, want %s", b, tc.code)
				}
				return
			}
			var en apitypes.EngineEnrollment
			r.decode(t, &en)
			if en.Name != "e1" || en.Group != "dmz" || !strings.HasPrefix(en.Seed, "SU") || !strings.HasPrefix(en.PublicKey, "U") || en.URL != hub.ClientURL() {
				t.Fatalf("enrollment %+v", en)
			}
			if strings.Contains(e.logs.String(), en.Seed) {
				t.Fatal("the seed was logged")
			}
		})
	}
	e.must(http.StatusOK, "GET", "/api/v1/engines", nil).decode(t, &list)
	if !list.Enabled || len(list.Engines) != 1 || list.Engines[0].Name != "e1" || list.Engines[0].Connected || list.Engines[0].Instances == nil {
		t.Fatalf("list %+v", list)
	}
	var ready apitypes.Status
	e.must(http.StatusOK, "GET", "/readyz", nil).decode(t, &ready)
	if len(ready.Engines) != 1 || ready.Engines[0] != (apitypes.EngineReady{Name: "e1", Group: "dmz"}) {
		t.Fatalf("readyz %+v", ready)
	}
	e.must(http.StatusNoContent, "DELETE", "/api/v1/engines/e1", nil)
	if r := e.call("DELETE", "/api/v1/engines/e1", nil); r.status != http.StatusNotFound {
		t.Fatalf("remove twice: %s", r)
	}
	e.must(http.StatusOK, "GET", "/api/v1/engines", nil).decode(t, &list)
	if len(list.Engines) != 0 {
		t.Fatalf("list after removal %+v", list)
	}
	if r := off.call("DELETE", "/api/v1/engines/e1", nil); r.status != http.StatusNotFound {
		t.Fatalf("remove with engines off: %s", r)
	}
}
