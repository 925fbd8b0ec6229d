package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/sdk-guest/sdktest"
)

// TestWebhook runs the handler natively behind an httptest server.
func TestWebhook(t *testing.T) {
	h := sdktest.New(Connector(), map[string]any{"incident_type": "Webhook"})
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, tc := range []struct {
		name, method, contentType, body string
		status                          int
		wantName, wantType              string
		wantRaw                         map[string]any // rawJSON without headers; nil: not checked
	}{
		{"full body", http.MethodPost, "", `{"name":"disk full","type":"Ops","occurred":"2024-05-01T10:00:00Z","raw_json":{"host":"db1"}}`, 200, "disk full", "Ops",
			map[string]any{"host": "db1"}},
		{"body without raw_json is the rawJSON", http.MethodPost, "", `{"name":"disk full","host":"db1","n":12345678901234567890}`, 200, "disk full", "Webhook",
			map[string]any{"name": "disk full", "host": "db1", "n": 12345678901234567890.0}},
		{"empty body", http.MethodPost, "", ``, 200, DefaultName, "Webhook", map[string]any{}},
		{"text body kept", http.MethodPost, "text/plain", `disk full on db1`, 200, DefaultName, "Webhook", map[string]any{"body": "disk full on db1"}},
		{"JSON array kept", http.MethodPost, "", `[1,2]`, 200, DefaultName, "Webhook", map[string]any{"body": []any{1.0, 2.0}}},
		{"not json said to be json", http.MethodPost, "application/json; charset=utf-8", `{nope`, 400, "", "", nil},
		{"trailing data said to be json", http.MethodPost, "application/json", `{} {}`, 400, "", "", nil},
		{"raw_json not an object", http.MethodPost, "", `{"raw_json":[1]}`, 400, "", "", nil},
		{"bad occurred", http.MethodPost, "", `{"occurred":"yesterday"}`, 400, "", "", nil},
		{"GET", http.MethodGet, "", ``, 405, "", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(h.Incidents())
			req, _ := http.NewRequest(tc.method, srv.URL+"/", strings.NewReader(tc.body))
			req.Header.Set("X-Source", "test")
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
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
			delete(raw, "headers")
			if tc.wantRaw != nil && !reflect.DeepEqual(raw, tc.wantRaw) {
				t.Errorf("rawJSON = %v, want %v", raw, tc.wantRaw)
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

// TestNameTemplate: the template names the incident; a missing field, an
// empty result or a non-object body fall back to the body's name or the
// default; an overlong result is cut.
func TestNameTemplate(t *testing.T) {
	for _, tc := range []struct {
		name, template, body, want string
	}{
		{"fields", "{{.commonLabels.alertname}} ({{.status}})", `{"status":"firing","commonLabels":{"alertname":"HostDown"}}`, "HostDown (firing)"},
		{"missing field falls back to name", "{{.commonLabels.alertname}}", `{"name":"from body"}`, "from body"},
		{"missing field falls back to default", "{{.commonLabels.alertname}}", `{"status":"firing"}`, DefaultName},
		{"empty result", "{{.x}}", `{"x":"  "}`, DefaultName},
		{"text body", "{{.x}}", `plain text`, DefaultName},
		{"overlong", `{{.a}}{{ .b }}`, `{"a":"` + strings.Repeat("a", 400) + `","b":"` + strings.Repeat("b", 400) + `"}`, strings.Repeat("a", 400) + strings.Repeat("b", maxNameBytes-400)},
		{"non-string values as JSON", "{{.n}} {{.ok}} {{.labels}}", `{"n":3,"ok":true,"labels":{"a":"b"}}`, `3 true {"a":"b"}`},
		{"literal only", "Alert", `{}`, "Alert"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := sdktest.New(Connector(), map[string]any{ParamNameTemplate: tc.template})
			srv := httptest.NewServer(h)
			defer srv.Close()
			resp, err := http.Post(srv.URL+"/", "", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			incs := h.Incidents()
			if resp.StatusCode != 200 || len(incs) != 1 {
				t.Fatalf("status %d, %d incidents", resp.StatusCode, len(incs))
			}
			if incs[0].Name != tc.want {
				t.Errorf("name = %q, want %q", incs[0].Name, tc.want)
			}
		})
	}
}

// TestConfigureRejectsBadParams: a template that does not parse or a bad
// window is refused when the instance starts.
func TestConfigureRejectsBadParams(t *testing.T) {
	for _, p := range []map[string]any{
		{ParamNameTemplate: "{{.x"},
		{ParamNameTemplate: "{{x}}"},
		{ParamNameTemplate: "{{.a..b}}"},
		{ParamNameTemplate: "{{range .xs}}{{end}}"},
		{ParamDedupWindow: "soon"},
		{ParamDedupWindow: "10ms"},
	} {
		if err := sdktest.New(Connector(), p).Configure(context.Background()); abi.KindOf(err) != abi.KindBadRequest {
			t.Errorf("configure %v = %v, want bad_request", p, err)
		}
	}
	if err := sdktest.New(Connector(), map[string]any{ParamNameTemplate: "{{.a.b}}", ParamDedupFields: "a,b.c", ParamDedupWindow: "4h"}).Configure(context.Background()); err != nil {
		t.Errorf("configure with good params: %v", err)
	}
}

// BenchmarkServe is one webhook request natively, through the SDK and
// sdktest: the guest-side share of the ingest load test
// (internal/api TestWebhookLoad), without wasm.
func BenchmarkServe(b *testing.B) {
	h := sdktest.New(Connector(), map[string]any{"incident_type": "Webhook"})
	for i := 0; b.Loop(); i++ {
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"name":"load `+strconv.Itoa(i)+`"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "Go-http-client/1.1")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}
