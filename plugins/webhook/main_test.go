package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/connhost/connhost/sdk-guest/sdktest"
)

// TestWebhook runs the handler natively behind an httptest server.
func TestWebhook(t *testing.T) {
	h := sdktest.New(Connector(), map[string]any{"incident_type": "Webhook"})
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, tc := range []struct {
		name, method, body string
		status             int
		wantName, wantType string
	}{
		{"full body", http.MethodPost, `{"name":"disk full","type":"Ops","occurred":"2024-05-01T10:00:00Z","raw_json":{"host":"db1"}}`, 200, "disk full", "Ops"},
		{"empty body", http.MethodPost, ``, 200, DefaultName, "Webhook"},
		{"not json", http.MethodPost, `{nope`, 400, "", ""},
		{"not an object", http.MethodPost, `[1,2]`, 400, "", ""},
		{"trailing data", http.MethodPost, `{} {}`, 400, "", ""},
		{"bad occurred", http.MethodPost, `{"occurred":"yesterday"}`, 400, "", ""},
		{"GET", http.MethodGet, ``, 405, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(h.Incidents())
			req, _ := http.NewRequest(tc.method, srv.URL+"/", strings.NewReader(tc.body))
			req.Header.Set("X-Source", "test")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tc.status)
			}
			incs := h.Incidents()
			if tc.status != 200 {
				if len(incs) != before {
					t.Errorf("incidents = %d, want %d: a rejected request created one", len(incs), before)
				}
				return
			}
			inc := incs[len(incs)-1]
			if inc.Name != tc.wantName || inc.Type != tc.wantType {
				t.Errorf("incident = %q/%q, want %q/%q", inc.Name, inc.Type, tc.wantName, tc.wantType)
			}
			var raw map[string]any
			if err := json.Unmarshal([]byte(inc.RawJSON), &raw); err != nil {
				t.Fatalf("rawJSON %q: %v", inc.RawJSON, err)
			}
			if hd, _ := raw["headers"].(map[string]any); hd["X-Source"] != "test" {
				t.Errorf("rawJSON headers = %v, want X-Source kept", raw["headers"])
			}
		})
	}
}

// TestLongRunningWaitsForStop: the execution returns only when stopped.
func TestLongRunningWaitsForStop(t *testing.T) {
	h := sdktest.New(Connector(), nil)
	done := make(chan error, 1)
	go func() { done <- h.LongRunningExecution(context.Background()) }()
	h.Stop()
	if err := <-done; err != nil {
		t.Fatalf("long-running-execution = %v", err)
	}
}
