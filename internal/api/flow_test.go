package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/connhost/connhost/host/api/apitypes"
	"github.com/connhost/connhost/internal/api"
	"github.com/connhost/connhost/plugins/ticketdesk/tdserver"
)

// TestFlow drives the whole API against the ticketdesk plugin and a
// TicketDesk server on loopback, then scans every response and log line
// for the instance's secret.
func TestFlow(t *testing.T) {
	const secret = "td-secret-7c1e9a"
	td := tdserver.New(secret)
	td.CreateTicket(tdserver.Ticket{Title: "Phishing report", Severity: 3})
	td.CreateTicket(tdserver.Ticket{Title: "Malware alert", Severity: 4})
	tds := httptest.NewServer(td)
	defer tds.Close()
	e := newEnv(t, nil)

	var user apitypes.User
	e.must(http.StatusCreated, "POST", "/api/v1/users", map[string]any{"username": "alice", "email": "alice@example.com"}).decode(t, &user)
	var got apitypes.User
	e.must(http.StatusOK, "GET", "/api/v1/users/alice", nil).decode(t, &got)
	if got.ID != user.ID {
		t.Fatalf("user by name %+v, want id %s", got, user.ID)
	}

	e.install("ticketdesk")
	// The same bytes again are a no-op answered 200.
	if r := e.callAs(e.key, "POST", "/api/v1/plugins", plugin(t, "ticketdesk"), "application/octet-stream"); r.status != http.StatusOK {
		t.Fatalf("reinstall: %s", r)
	}
	var pd apitypes.PluginDetail
	e.must(http.StatusOK, "GET", "/api/v1/plugins/ticketdesk", nil).decode(t, &pd)
	if len(pd.Versions) != 1 || pd.Versions[0].Manifest.Name != "ticketdesk" || pd.Versions[0].InstalledBy != "apikey:test" {
		t.Fatalf("plugin detail %+v", pd)
	}

	var inst apitypes.Instance
	e.must(http.StatusCreated, "POST", "/api/v1/instances", map[string]any{
		"name": "td", "plugin": "ticketdesk", "params": map[string]any{"url": tds.URL, "api_key": secret},
	}).decode(t, &inst)
	if inst.Enabled || len(inst.SecretsSet) != 1 || inst.SecretsSet[0] != "api_key" || inst.Params["url"] != tds.URL {
		t.Fatalf("created instance %+v", inst)
	}
	// A disabled instance is tested in a temporary sandbox but runs nothing.
	e.must(http.StatusOK, "POST", "/api/v1/instances/td/test", nil)
	if r := e.must(http.StatusConflict, "POST", "/api/v1/instances/td/execute", map[string]any{"command": "ticketdesk-get-ticket", "args": map[string]any{"id": "TD-1"}}); !strings.Contains(r.errBody(t).Detail, "disabled") {
		t.Fatalf("execute on a disabled instance: %s", r)
	}
	e.must(http.StatusOK, "POST", "/api/v1/instances/td/enable", nil).decode(t, &inst)
	if !inst.Enabled {
		t.Fatal("enable did not enable")
	}
	var ok map[string]bool
	e.must(http.StatusOK, "POST", "/api/v1/instances/td/test", nil).decode(t, &ok)
	if !ok["ok"] {
		t.Fatalf("test: %v", ok)
	}

	// A custom command without an incident returns its result only.
	var res apitypes.ExecuteResult
	e.must(http.StatusOK, "POST", "/api/v1/instances/td/execute", map[string]any{
		"command": "ticketdesk-get-ticket", "args": map[string]any{"id": "TD-2"},
	}).decode(t, &res)
	if !strings.Contains(string(res.Result), "Malware alert") || res.EntryID != "" {
		t.Fatalf("execute result %+v", res)
	}

	// Fetch creates both tickets as incidents; a second fetch finds nothing new.
	var fetched apitypes.FetchResult
	e.must(http.StatusOK, "POST", "/api/v1/instances/td/fetch", nil).decode(t, &fetched)
	if len(fetched.Result.Created) != 2 {
		t.Fatalf("first fetch %+v", fetched)
	}
	e.must(http.StatusOK, "POST", "/api/v1/instances/td/fetch", nil).decode(t, &fetched)
	if len(fetched.Result.Created) != 0 {
		t.Fatalf("second fetch created %v", fetched.Result.Created)
	}
	var page apitypes.IncidentPage
	e.must(http.StatusOK, "GET", "/api/v1/incidents?instance=td", nil).decode(t, &page)
	if len(page.Incidents) != 2 {
		t.Fatalf("fetched incidents %+v", page)
	}

	// Incidents through the API: create, update, close, reopen.
	var inc apitypes.Incident
	e.must(http.StatusCreated, "POST", "/api/v1/incidents", map[string]any{"name": "Suspicious login", "severity": 2, "type": "Access"}).decode(t, &inc)
	e.must(http.StatusOK, "PATCH", "/api/v1/incidents/"+inc.ID, map[string]any{"owner": "alice", "severity": 3}).decode(t, &inc)
	if inc.Owner != "alice" || inc.Severity != 3 || inc.Version != 2 {
		t.Fatalf("updated incident %+v", inc)
	}
	e.must(http.StatusOK, "POST", "/api/v1/incidents/"+inc.ID+"/close", map[string]any{"closeReason": "Resolved", "closeNotes": "reset password"}).decode(t, &inc)
	if inc.Status != 2 || inc.CloseReason != "Resolved" || inc.Closed.IsZero() {
		t.Fatalf("closed incident %+v", inc)
	}
	e.must(http.StatusConflict, "POST", "/api/v1/incidents/"+inc.ID+"/close", nil)
	e.must(http.StatusOK, "GET", "/api/v1/incidents?status=done&q=suspicious", nil).decode(t, &page)
	if len(page.Incidents) != 1 || page.Incidents[0].ID != inc.ID {
		t.Fatalf("search closed: %+v", page)
	}
	e.must(http.StatusOK, "POST", "/api/v1/incidents/"+inc.ID+"/reopen", nil).decode(t, &inc)
	if inc.Status != 1 {
		t.Fatalf("reopened incident %+v", inc)
	}

	// Entries: one by hand, one from a command run for the incident.
	e.must(http.StatusCreated, "POST", "/api/v1/incidents/"+inc.ID+"/entries", map[string]any{
		"contents": "Called the user.", "tags": []string{"comment"}, "user": "alice",
	})
	e.must(http.StatusOK, "POST", "/api/v1/instances/td/execute", map[string]any{
		"command": "ticketdesk-get-ticket", "args": map[string]any{"id": "TD-1"}, "incidentId": inc.ID,
	}).decode(t, &res)
	if res.EntryID == "" {
		t.Fatalf("execute with incidentId wrote no entry: %+v", res)
	}
	var entries apitypes.EntryPage
	e.must(http.StatusOK, "GET", "/api/v1/incidents/"+inc.ID+"/entries", nil).decode(t, &entries)
	if len(entries.Entries) != 2 || entries.Entries[0].Contents != "Called the user." || entries.Entries[1].ID != res.EntryID ||
		!strings.Contains(entries.Entries[1].Contents.(string), "Phishing report") {
		t.Fatalf("entries %+v", entries)
	}
	// A failed command run for an incident records its error entry too.
	r := e.call("POST", "/api/v1/instances/td/execute", map[string]any{
		"command": "ticketdesk-get-ticket", "args": map[string]any{"id": "TD-99"}, "incidentId": inc.ID,
	})
	if eb := r.errBody(t); r.status != http.StatusBadGateway || eb.Kind != "failed" || eb.EntryID == "" || !strings.Contains(eb.Detail, "TD-99") {
		t.Fatalf("failing command: %s", r)
	}

	// Integration context: versioned writes, a stale version is 409.
	var c struct {
		Context map[string]any `json:"context"`
		Version int64          `json:"version"`
	}
	e.must(http.StatusOK, "GET", "/api/v1/instances/td/context", nil).decode(t, &c)
	v0 := c.Version
	e.must(http.StatusOK, "PUT", "/api/v1/instances/td/context", map[string]any{"context": map[string]any{"token": "x"}, "version": v0}).decode(t, &c)
	if c.Version != v0+1 {
		t.Fatalf("context version %d after writing %d", c.Version, v0)
	}
	if r := e.call("PUT", "/api/v1/instances/td/context", map[string]any{"context": map[string]any{"token": "y"}, "version": v0}); r.status != http.StatusConflict {
		t.Fatalf("stale context write: %s", r)
	}
	e.must(http.StatusOK, "GET", "/api/v1/instances/td/context", nil).decode(t, &c)
	if c.Context["token"] != "x" || c.Version != v0+1 {
		t.Fatalf("context after the conflict %+v", c)
	}

	// Updating other params keeps the secret; the health endpoint answers.
	e.must(http.StatusOK, "PATCH", "/api/v1/instances/td", map[string]any{"params": map[string]any{"max_fetch": 10}}).decode(t, &inst)
	e.must(http.StatusOK, "POST", "/api/v1/instances/td/test", nil)
	e.must(http.StatusOK, "GET", "/api/v1/instances/td/health", nil)
	e.must(http.StatusOK, "GET", "/api/v1/instances", nil)

	e.must(http.StatusNoContent, "DELETE", "/api/v1/incidents/"+inc.ID, nil)
	e.must(http.StatusNotFound, "GET", "/api/v1/incidents/"+inc.ID, nil)
	e.must(http.StatusConflict, "DELETE", "/api/v1/plugins/ticketdesk", nil)
	e.must(http.StatusNoContent, "DELETE", "/api/v1/instances/td", nil)
	e.must(http.StatusNoContent, "DELETE", "/api/v1/plugins/ticketdesk?version=1.0.0", nil)

	for what, text := range map[string]string{"a response body": e.responses(), "the log": e.logs.String()} {
		if strings.Contains(text, secret) {
			t.Errorf("the secret appears in %s", what)
		}
	}
	if !strings.Contains(e.logs.String(), `"route":"/api/v1/instances/:name/execute"`) || strings.Contains(e.logs.String(), e.key) {
		t.Errorf("request log lacks routes or carries the API key:\n%s", e.logs.String())
	}
}

// TestPaging walks incidents and entries page by page with cursors.
func TestPaging(t *testing.T) {
	e := newEnv(t, nil)
	var ids []string
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		var inc apitypes.Incident
		e.must(http.StatusCreated, "POST", "/api/v1/incidents", map[string]any{"name": n}).decode(t, &inc)
		ids = append(ids, inc.ID)
		e.must(http.StatusCreated, "POST", "/api/v1/incidents/"+ids[0]+"/entries", map[string]any{"contents": "note " + n})
	}
	for _, tt := range []struct{ path, field string }{
		{"/api/v1/incidents?limit=2", "incidents"},
		{"/api/v1/incidents/" + ids[0] + "/entries?limit=2", "entries"},
	} {
		t.Run(tt.field, func(t *testing.T) {
			var seen []string
			path := tt.path
			for range 10 {
				var page map[string]json.RawMessage
				e.must(http.StatusOK, "GET", path, nil).decode(t, &page)
				var items []struct {
					ID string `json:"id"`
				}
				if err := json.Unmarshal(page[tt.field], &items); err != nil || len(items) > 2 {
					t.Fatalf("page %s: %v", page[tt.field], err)
				}
				for _, it := range items {
					seen = append(seen, it.ID)
				}
				var next string
				_ = json.Unmarshal(page["next"], &next)
				if next == "" {
					break
				}
				path = tt.path + "&cursor=" + next
			}
			if len(seen) != 5 {
				t.Fatalf("paged through %d items, want 5: %v", len(seen), seen)
			}
		})
	}
}

// TestHealthAndMetrics covers the open endpoints, drain, the metrics
// content and both metrics access modes.
func TestHealthAndMetrics(t *testing.T) {
	open := newEnv(t, nil)
	open.install("goecho")
	open.must(http.StatusCreated, "POST", "/api/v1/instances", map[string]any{"name": "echo", "plugin": "goecho", "enabled": true})
	open.must(http.StatusOK, "POST", "/api/v1/instances/echo/execute", map[string]any{"command": "echo"})
	open.must(http.StatusBadRequest, "POST", "/api/v1/instances/echo/execute", map[string]any{"command": "nope"})
	for _, p := range []string{"/livez", "/readyz", "/healthz", "/api/v1/openapi.json", "/metrics"} {
		if r := open.callAs("", "GET", p, nil, ""); r.status != http.StatusOK {
			t.Errorf("GET %s without a key: %s", p, r)
		}
	}
	m := string(open.callAs("", "GET", "/metrics", nil, "").body)
	for _, want := range []string{
		`connhost_command_executions_total{command="echo",instance="echo",outcome="ok",trigger="api"} 1`,
		// A command the plugin does not serve is not a label value.
		`connhost_command_executions_total{command="unknown",instance="unknown",outcome="rejected",trigger="api"} 1`,
		`connhost_http_requests_total{method="POST",route="/api/v1/instances/:name/execute",status="200"} 1`,
		`connhost_http_request_duration_seconds_count{method="POST",route="/api/v1/plugins",status="201"} 1`,
		"go_goroutines",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	open.srv.Drain()
	for _, p := range []string{"/readyz", "/healthz"} {
		if r := open.callAs("", "GET", p, nil, ""); r.status != http.StatusServiceUnavailable || r.errBody(t).Error != "not ready" {
			t.Errorf("GET %s while draining: %s", p, r)
		}
	}
	if r := open.callAs("", "GET", "/livez", nil, ""); r.status != http.StatusOK {
		t.Errorf("livez while draining: %s", r)
	}

	key, v, err := open.svc.APIKeys.Create(t.Context(), "temp")
	if err != nil {
		t.Fatal(err)
	}
	if r := open.callAs(key, "GET", "/api/v1/users", nil, ""); r.status != http.StatusOK {
		t.Fatalf("new key: %s", r)
	}
	if err := open.svc.APIKeys.Revoke(t.Context(), v.ID); err != nil {
		t.Fatal(err)
	}
	if r := open.callAs(key, "GET", "/api/v1/users", nil, ""); r.status != http.StatusUnauthorized {
		t.Fatalf("revoked key: %s", r)
	}

	closed := newEnv(t, func(o *api.Options) { o.MetricsAuth = true })
	if r := closed.callAs("", "GET", "/metrics", nil, ""); r.status != http.StatusUnauthorized {
		t.Errorf("metrics without a key under MetricsAuth: %s", r)
	}
	if r := closed.callAs(closed.key, "GET", "/metrics", nil, ""); r.status != http.StatusOK {
		t.Errorf("metrics with a key under MetricsAuth: %s", r)
	}
}
