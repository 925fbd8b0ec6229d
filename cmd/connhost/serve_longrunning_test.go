package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/connhost/connhost/internal/testenv/wait"
	"github.com/connhost/connhost/internal/testenv/wasmbuild"
)

// TestServeLongRunningBodyLimit: `connhost serve` passes
// long_running.http_max_body_bytes to the webhook route. A 1.5 MiB
// webhook body is refused with 413 by default, logged as a warning naming
// the instance and the limit, and admitted once the option is raised.
func TestServeLongRunningBodyLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the binary twice")
	}
	wasm, err := wasmbuild.Build(context.Background(), wasmbuild.Source{Path: "plugins/webhook"})
	if err != nil {
		t.Fatal(err)
	}
	hook := filepath.Join(t.TempDir(), "webhook.wasm")
	if err := os.WriteFile(hook, wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	// An Alertmanager-like group of many alerts, over 1 MiB.
	alert := `{"status":"firing","labels":{"alertname":"HostDown","instance":"host-0000"},"annotations":{"summary":"` + strings.Repeat("x", 400) + `"}}`
	body := []byte(`{"version":"4","status":"firing","alerts":[` + strings.TrimSuffix(strings.Repeat(alert+",", 3000), ",") + `]}`)
	if len(body) <= 1<<20 {
		t.Fatalf("body is %d bytes, want over 1 MiB", len(body))
	}
	post := func(t *testing.T, url string) int {
		t.Helper()
		resp, err := http.Post(url+"/instance/execute/am", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	for _, tc := range []struct {
		name   string
		env    []string
		status int
	}{
		{"default refuses", nil, http.StatusRequestEntityTooLarge},
		{"raised admits", []string{"CONNHOST_LONG_RUNNING_HTTP_MAX_BODY_BYTES=8388608"}, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			check(t, connhost(t, serveEnv(dir), "plugin", "install", hook), exitOK, []string{"installed webhook@"}, nil)
			p := startServe(t, dir, tc.env...)
			status, out, err := call(p.url, p.key, "POST", "/api/v1/instances", map[string]any{
				"name": "am", "plugin": "webhook", "enabled": true,
				"settings": map[string]any{"longRunning": true, "externalHTTP": true},
			})
			if err != nil || status != http.StatusCreated {
				t.Fatalf("create instance: %d %s %v", status, out, err)
			}
			if got := post(t, p.url); got != tc.status {
				t.Fatalf("POST %d bytes = %d, want %d", len(body), got, tc.status)
			}
			if tc.status != http.StatusRequestEntityTooLarge {
				return
			}
			// The server logs before it answers, but its stderr reaches the
			// test through a pipe: wait for the line rather than race it.
			wait.For(t, 10*time.Second, "a warning naming instance am and the limit", func() bool {
				for _, line := range strings.Split(p.stderr.String(), "\n") {
					if strings.Contains(line, `"level":"warn"`) && strings.Contains(line, `"instance":"am"`) &&
						strings.Contains(line, `"limit_bytes":1048576`) && strings.Contains(line, "long_running.http_max_body_bytes") {
						return true
					}
				}
				return false
			})
		})
	}
}
