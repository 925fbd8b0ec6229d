package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/host/api/apitypes"
	"github.com/connhost/connhost/internal/api"
	"github.com/connhost/connhost/internal/service"
	"github.com/connhost/connhost/internal/store"
	"github.com/connhost/connhost/internal/supervisor"
	"github.com/connhost/connhost/internal/testenv"
	"github.com/connhost/connhost/internal/testenv/wait"
	"github.com/connhost/connhost/internal/testenv/wasmbuild"
)

// ihServer is a real connhost server over loopback with the webhook,
// chatbot and lrguest plugins installed.
type ihServer struct {
	*testenv.Server
	t   *testing.T
	srv *httptest.Server
}

func newIHServer(t *testing.T, limits host.Limits) *ihServer {
	t.Helper()
	return newIHServerWith(t, limits, nil, newServer)
}

// newIHServerWith is newIHServer with the store options adjusted by st,
// started by start: newServer, which checks every response against
// openapi.json, or testenv.NewServer, which does not.
func newIHServerWith(t *testing.T, limits host.Limits, st func(*store.Options), start func(testing.TB, testenv.ServerOptions) *testenv.Server) *ihServer {
	t.Helper()
	s := &ihServer{t: t, Server: start(t, testenv.ServerOptions{Store: st, Service: func(o *service.Options) {
		o.Limits = limits
		o.LongRunning = service.LongRunningOptions{
			Supervisor:       supervisor.Config{MinBackoff: 30 * time.Millisecond, MaxBackoff: 200 * time.Millisecond},
			HTTPMaxBodyBytes: 64 << 10,
			ChatInterval:     20 * time.Millisecond,
		}
	}})}
	s.srv = s.HTTP
	s.Install(testenv.Plugin(t, "webhook"))
	s.Install(testenv.Plugin(t, "chatbot"))
	s.Install(testenv.Guest(t, wasmbuild.Source{Path: "internal/supervisor/testdata/lrguest"}))
	return s
}

func (s *ihServer) instance(name, plugin string, params map[string]any, settings store.Settings) {
	s.t.Helper()
	s.CreateInstance(name, plugin, params, settings)
}

// do sends a request with exactly the given headers.
func (s *ihServer) do(method, path string, body []byte, header http.Header) (int, []byte) {
	s.t.Helper()
	r := s.Do(method, path, body, header)
	return r.Status, r.Body
}

func (s *ihServer) api(method, path string, body any, out any) int {
	s.t.Helper()
	var raw []byte
	if body != nil {
		raw, _ = json.Marshal(body)
	}
	status, b := s.do(method, path, raw, http.Header{"Authorization": {"Bearer " + s.Key}, "Content-Type": {"application/json"}})
	if out != nil && status < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			s.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	}
	return status
}

func (s *ihServer) incidents(instance string) []store.Incident {
	s.t.Helper()
	var all []store.Incident
	cursor := ""
	for {
		incs, next, err := s.Store.SearchIncidents(context.Background(), store.IncidentQuery{Instance: instance, Limit: 1000, Cursor: cursor})
		if err != nil {
			s.t.Fatal(err)
		}
		all = append(all, incs...)
		if next == "" {
			return all
		}
		cursor = next
	}
}

func basicAuth(user, pass string) http.Header {
	r, _ := http.NewRequest(http.MethodPost, "/", nil)
	r.SetBasicAuth(user, pass)
	return r.Header
}

// withJSON adds Content-Type: application/json to h.
func withJSON(h http.Header) http.Header {
	h.Set("Content-Type", "application/json")
	return h
}

// TestWebhook: POSTs over loopback create incidents; wrong or missing
// credentials are 401, oversized bodies 413 and malformed ones 400, none
// creating anything; an instance not exposed is 404.
func TestWebhook(t *testing.T) {
	s := newIHServer(t, host.Limits{})
	exposed := store.Settings{ExternalHTTP: true, LongRunning: true}
	s.instance("hook", "webhook", map[string]any{"credentials_identifier": "alice", "credentials_password": "s3cret", "incident_type": "Webhook"}, exposed)
	s.instance("hook-header", "webhook", map[string]any{"credentials_identifier": "_header:X-Token", "credentials_password": "tok"}, exposed)
	s.instance("hook-open", "webhook", nil, exposed)
	s.instance("hook-hidden", "webhook", nil, store.Settings{})

	good := `{"name":"disk full","occurred":"2024-05-01T10:00:00Z","raw_json":{"host":"db1"}}`
	big := `{"name":"` + strings.Repeat("x", 70<<10) + `"}`
	for _, tc := range []struct {
		name, instance, path, body string
		header                     http.Header
		status                     int
		created                    bool
	}{
		{"basic auth", "hook", "/", good, basicAuth("alice", "s3cret"), 200, true},
		{"sub path", "hook", "/events?x=1", good, basicAuth("alice", "s3cret"), 200, true},
		{"wrong password", "hook", "/", good, basicAuth("alice", "nope"), 401, false},
		{"wrong user", "hook", "/", good, basicAuth("bob", "s3cret"), 401, false},
		{"no credentials", "hook", "/", good, nil, 401, false},
		{"header token", "hook-header", "/", good, http.Header{"X-Token": {"tok"}}, 200, true},
		{"wrong header token", "hook-header", "/", good, http.Header{"X-Token": {"nope"}}, 401, false},
		{"basic where header wanted", "hook-header", "/", good, basicAuth("_header:X-Token", "tok"), 401, false},
		{"no credentials configured", "hook-open", "/", good, nil, 200, true},
		{"oversized", "hook", "/", big, basicAuth("alice", "s3cret"), 413, false},
		{"malformed", "hook", "/", `{"name":`, withJSON(basicAuth("alice", "s3cret")), 400, false},
		{"not exposed", "hook-hidden", "/", good, nil, 404, false},
		{"unknown instance", "nope", "/", good, nil, 404, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(s.incidents(tc.instance))
			status, body := s.do(http.MethodPost, api.InstanceHTTPPrefix+"/"+tc.instance+tc.path, []byte(tc.body), tc.header)
			if status != tc.status {
				t.Fatalf("status = %d (%s), want %d", status, body, tc.status)
			}
			incs := s.incidents(tc.instance)
			if got := len(incs) - before; got != map[bool]int{true: 1, false: 0}[tc.created] {
				t.Fatalf("incidents created = %d", got)
			}
			if !tc.created {
				return
			}
			inc := incs[len(incs)-1]
			var raw map[string]any
			if err := json.Unmarshal([]byte(inc.RawJSON), &raw); err != nil {
				t.Fatalf("rawJSON %q: %v", inc.RawJSON, err)
			}
			headers, _ := raw["headers"].(map[string]any)
			if inc.Name != "disk full" || raw["host"] != "db1" || headers["Host"] == nil || !inc.Occurred.Equal(time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)) {
				t.Errorf("incident = %+v, rawJSON %v", inc, raw)
			}
			if headers["Authorization"] != nil || headers["X-Token"] != nil {
				t.Errorf("credentials reached the plugin: %v", headers)
			}
		})
	}
}

type lrStatus struct {
	Supervised bool   `json:"supervised"`
	Running    bool   `json:"running"`
	Restarts   int    `json:"restarts"`
	LastError  string `json:"lastError"`
}

// TestLongRunning: a panicking execution is restarted with back-off and its
// health shows the error while other instances serve; disabling stops an
// execution within a second, also one that never checks for the stop.
func TestLongRunning(t *testing.T) {
	s := newIHServer(t, host.Limits{})
	lr := store.Settings{LongRunning: true}
	s.instance("panicky", "lrguest", map[string]any{"mode": "panic3"}, lr)
	s.instance("calm", "lrguest", map[string]any{"mode": "cooperative"}, lr)
	s.instance("deaf", "lrguest", map[string]any{"mode": "ignore"}, lr)
	s.instance("hook", "webhook", nil, store.Settings{ExternalHTTP: true})

	var st lrStatus
	wait.For(t, 20*time.Second, "3 restarts", func() bool {
		if status := s.api(http.MethodGet, "/api/v1/instances/panicky/long-running", nil, &st); status != 200 {
			t.Fatalf("long-running status = %d", status)
		}
		return st.Restarts >= 3
	})
	if !strings.Contains(st.LastError, "third iteration") {
		t.Errorf("last error = %q", st.LastError)
	}
	var health apitypes.ModuleHealth
	s.api(http.MethodGet, "/api/v1/instances/panicky/health", nil, &health)
	if !health.IsError || !strings.Contains(health.Message, "third iteration") || health.Updated.IsZero() {
		t.Errorf("health = %+v, want the panic as an error", health)
	}
	if status, body := s.do(http.MethodPost, "/instance/execute/hook/", []byte(`{}`), nil); status != 200 {
		t.Errorf("other instance: webhook POST = %d %s", status, body)
	}
	var pong json.RawMessage
	if status := s.api(http.MethodPost, "/api/v1/instances/calm/execute", map[string]any{"command": "ping"}, &pong); status != 200 {
		t.Errorf("other instance: ping = %d", status)
	}

	for _, name := range []string{"calm", "deaf"} {
		wait.For(t, 20*time.Second, name+" running", func() bool {
			s.api(http.MethodGet, "/api/v1/instances/"+name+"/long-running", nil, &st)
			return st.Running
		})
		start := time.Now()
		if status := s.api(http.MethodPost, "/api/v1/instances/"+name+"/disable", nil, nil); status != 200 {
			t.Fatalf("disable %s = %d", name, status)
		}
		took := time.Since(start)
		s.api(http.MethodGet, "/api/v1/instances/"+name+"/long-running", nil, &st)
		if st.Supervised || st.Running || took >= time.Second {
			t.Errorf("%s: after disable (%s): %+v, want gone within 1s", name, took, st)
		}
	}
}

// TestChatFlow: a plugin mirrors an incident, an entry tagged for chat is
// delivered to it with send-notification, the plugin answers the
// entitlement question it carried, and the answer appears as an entry.
func TestChatFlow(t *testing.T) {
	s := newIHServer(t, host.Limits{})
	s.instance("bot", "chatbot", map[string]any{"answer": "approved"}, store.Settings{})
	var inc apitypes.Incident
	if status := s.api(http.MethodPost, "/api/v1/incidents", map[string]any{"name": "deploy"}, &inc); status != 201 {
		t.Fatalf("create incident = %d", status)
	}
	exec := func(cmd string, args map[string]any) (json.RawMessage, int) {
		var res apitypes.ExecuteResult
		status := s.api(http.MethodPost, "/api/v1/instances/bot/execute", map[string]any{"command": cmd, "args": args}, &res)
		return res.Result, status
	}
	if _, status := exec("chatbot-mirror", map[string]any{"incident_id": inc.ID, "mirror_type": "chat:both"}); status != 200 {
		t.Fatalf("mirror = %d", status)
	}
	for _, e := range []map[string]any{
		{"contents": "not for chat"},
		{"contents": "Approve the deploy? guid=g-42", "tags": []string{"chat"}},
	} {
		if status := s.api(http.MethodPost, "/api/v1/incidents/"+inc.ID+"/entries", e, nil); status != 201 {
			t.Fatalf("add entry = %d", status)
		}
	}
	var answer apitypes.Entry
	wait.For(t, 20*time.Second, "the answer entry", func() bool {
		var page apitypes.EntryPage
		var raw json.RawMessage
		s.api(http.MethodGet, "/api/v1/incidents/"+inc.ID+"/entries", nil, &raw)
		if json.Unmarshal(raw, &page) != nil || page.Entries == nil {
			_ = json.Unmarshal(raw, &page.Entries)
		}
		for _, e := range page.Entries {
			if slices.Contains(e.Tags, "g-42") {
				answer = e
				return true
			}
		}
		return false
	})
	if answer.Contents != "approved" || !slices.Contains(answer.Tags, "entitlement") || answer.Origin != "plugin:bot" {
		t.Errorf("answer entry = %+v", answer)
	}
	res, _ := exec("chatbot-received", nil)
	var got []map[string]any
	_ = json.Unmarshal(res, &got)
	if len(got) != 1 || got[0]["messageType"] != "mirrorEntry" || got[0]["incident_id"] != inc.ID || !strings.Contains(fmt.Sprint(got[0]["message"]), "guid=g-42") {
		t.Errorf("notifications received = %v, want only the chat-tagged entry", got)
	}
	reply, status := exec("chatbot-dm", map[string]any{"message": "new incident name=Phish", "username": "stranger", "anyone_can_open_incidents": "true"})
	if status != 200 || !strings.Contains(string(reply), "created: Phish") {
		t.Errorf("direct message = %d %s", status, reply)
	}
}

// TestWebhookLoad posts 15,000 webhook requests from 16 clients and reports
// throughput and p99 latency, with store group commit on and off in the
// same run. Run with CONNHOST_LOAD=1; CONNHOST_LOAD_PROFILE=DIR also writes
// a CPU profile of each load phase into DIR:
//
//	CONNHOST_LOAD=1 go test ./internal/api -run TestWebhookLoad -v
func TestWebhookLoad(t *testing.T) {
	if os.Getenv("CONNHOST_LOAD") == "" {
		t.Skip("set CONNHOST_LOAD=1 to run the load test")
	}
	for _, tc := range []struct {
		name        string
		groupCommit bool
	}{{"group commit on", true}, {"group commit off", false}} {
		t.Run(tc.name, func(t *testing.T) {
			webhookLoad(t, func(o *store.Options) { o.NoGroupCommit = !tc.groupCommit })
		})
	}
}

func webhookLoad(t *testing.T, st func(*store.Options)) {
	const total, clients, loadPool = 15000, 16, 16
	// The server the product runs: without the tests' response validator,
	// which records and checks every response against openapi.json.
	s := newIHServerWith(t, host.Limits{PoolSize: loadPool}, st, testenv.NewServer)
	s.instance("hook", "webhook", map[string]any{"credentials_identifier": "alice", "credentials_password": "s3cret"},
		store.Settings{ExternalHTTP: true, LongRunning: true})
	url := s.srv.URL + "/instance/execute/hook/"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	// Warm the pool with rounds of concurrent POSTs, as a server in steady
	// state has it warm: one round's requests need not overlap enough to
	// fill it.
	const warmRounds = 20
	var warm sync.WaitGroup
	for c := range clients {
		warm.Go(func() {
			for i := range warmRounds {
				req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(fmt.Sprintf(`{"name":"warm %d-%d"}`, c, i)))
				req.SetBasicAuth("alice", "s3cret")
				if resp, err := client.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		})
	}
	warm.Wait()
	if dir := os.Getenv("CONNHOST_LOAD_PROFILE"); dir != "" {
		f, err := os.Create(filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+".cpu"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	jobs := make(chan int)
	lat := make([]time.Duration, total)
	var errs sync.Map
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for i := range jobs {
				req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(fmt.Sprintf(`{"name":"load %d"}`, i)))
				req.SetBasicAuth("alice", "s3cret")
				t0 := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
				}
				lat[i] = time.Since(t0)
				if err != nil {
					errs.Store(i, err)
				}
			}
		})
	}
	for i := range total {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	errs.Range(func(k, v any) bool { t.Errorf("request %v: %v", k, v); return false })
	if n := len(s.incidents("hook")); n != total+clients*warmRounds {
		t.Errorf("incidents = %d, want %d", n, total+clients*warmRounds)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	t.Logf("%d POSTs, %d clients: %.0f req/s, p50 %s, p99 %s", total, clients,
		float64(total)/elapsed.Seconds(), lat[total/2], lat[total*99/100])
}

// TestInstanceHTTPConcurrency: an instance with long_running.http_concurrency
// requests in flight refuses the next with 503 and Retry-After at once,
// logged as a warning; once they end (504 at long_running.http_timeout) it
// admits requests again.
func TestInstanceHTTPConcurrency(t *testing.T) {
	s := newServer(t, testenv.ServerOptions{Service: func(o *service.Options) {
		o.LongRunning = service.LongRunningOptions{HTTPConcurrency: 2, HTTPTimeout: 2 * time.Second}
	}})
	s.Install(testenv.Guest(t, wasmbuild.Source{Path: "internal/api/testdata/slowhttp"}))
	s.CreateInstance("slow", "slowhttp", nil, store.Settings{ExternalHTTP: true, LongRunning: true})
	path := api.InstanceHTTPPrefix + "/slow"
	statuses := make(chan int, 2)
	for range 2 {
		go func() { statuses <- s.Do(http.MethodPost, path, nil, nil).Status }()
	}
	wait.For(t, 10*time.Second, "two requests in flight", func() bool {
		var c struct {
			Context map[string]any `json:"context"`
		}
		s.Must(http.StatusOK, http.MethodGet, api.Prefix+"/instances/slow/context", nil).Decode(t, &c)
		return c.Context["waiting"] == float64(2)
	})
	r := s.Do(http.MethodPost, path+"?fast", nil, nil)
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") != "1" {
		t.Errorf("third request = %d (Retry-After %q) %s, want 503 with Retry-After 1", r.Status, r.Header.Get("Retry-After"), r.Body)
	}
	if !strings.Contains(s.Logs.String(), "too many in flight") || !strings.Contains(s.Logs.String(), "long_running.http_concurrency 2") {
		t.Errorf("no warning naming the limit; logs:\n%s", s.Logs)
	}
	for range 2 {
		if st := <-statuses; st != http.StatusGatewayTimeout {
			t.Errorf("waiting request = %d, want 504 at the 2s timeout", st)
		}
	}
	if r := s.Do(http.MethodPost, path+"?fast", nil, nil); r.Status != http.StatusOK {
		t.Errorf("request after the others ended = %s, want 200", r)
	}
}
