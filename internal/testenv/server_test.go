package testenv_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/api"
	"github.com/connhost/connhost/internal/service"
	"github.com/connhost/connhost/internal/store"
	"github.com/connhost/connhost/internal/testenv"
)

// TestServer drives a server end to end: plugins built by Plugin and
// PluginWithManifest install, an instance runs the Go guest through the
// authenticated API, and requests without the key are refused.
func TestServer(t *testing.T) {
	s := testenv.NewServer(t, testenv.ServerOptions{
		API: func(o *api.Options) { o.MetricsAuth = true },
	})
	if pi := s.Install(testenv.Plugin(t, "goecho")); pi.Name != "goecho" || pi.Version != "1.0.0" {
		t.Fatalf("installed %s@%s", pi.Name, pi.Version)
	}
	newer := testenv.PluginWithManifest(t, "watecho", func(m *abi.Manifest) { m.Version = "1.1.0" })
	var pi service.PluginInfo
	s.CallAs(s.Key, http.MethodPost, api.Prefix+"/plugins", newer, "application/wasm").Decode(t, &pi)
	if pi.Name != "watecho" || pi.Version != "1.1.0" {
		t.Fatalf("installed %s@%s, want watecho@1.1.0", pi.Name, pi.Version)
	}
	s.CreateInstance("echo", "goecho", nil, store.Settings{})

	tests := []struct {
		name   string
		key    string
		body   any
		status int
		want   string // in the body
	}{
		{"test-module", s.Key, map[string]any{"command": "test-module"}, http.StatusOK, `"ok"`},
		{"undeclared argument", s.Key, map[string]any{"command": "echo", "args": map[string]string{"a": "1"}}, http.StatusUnprocessableEntity, `argument \"a\"`},
		{"no key", "", map[string]any{"command": "echo"}, http.StatusUnauthorized, ""},
		{"wrong key", "chk_wrong", map[string]any{"command": "echo"}, http.StatusUnauthorized, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := s.CallAs(tc.key, http.MethodPost, api.Prefix+"/instances/echo/execute", tc.body, "")
			if r.Status != tc.status || !strings.Contains(string(r.Body), tc.want) {
				t.Fatalf("got %s, want %d with %q", r, tc.status, tc.want)
			}
		})
	}
	var res service.ExecuteResult
	s.Must(http.StatusOK, http.MethodPost, api.Prefix+"/instances/echo/execute", `{"command":"echo"}`).Decode(t, &res)
	if string(res.Result) != `{}` {
		t.Errorf("result %s", res.Result)
	}
	if !strings.Contains(s.Responses(), `argument \"a\"`) {
		t.Errorf("responses not recorded: %s", s.Responses())
	}
	if logs := s.Logs.String(); !strings.Contains(logs, "echo: configured") || strings.Contains(logs, s.Key) {
		t.Errorf("log lacks the plugin's line or carries the API key:\n%s", logs)
	}
	if r := s.Do(http.MethodGet, "/metrics", nil, nil); r.Status != http.StatusUnauthorized {
		t.Errorf("metrics without the key: %s", r)
	}
}
