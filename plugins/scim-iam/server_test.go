package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connhost/connhost/internal/api"
	"github.com/connhost/connhost/internal/service"
	"github.com/connhost/connhost/internal/store"
	"github.com/connhost/connhost/internal/testenv"
	"github.com/connhost/connhost/internal/testenv/wait"
	"github.com/connhost/connhost/plugins/scim-iam/scimserver"
	"github.com/connhost/connhost/sdk-guest/iam"
	"github.com/connhost/connhost/sdk-guest/oauth2"
)

// server is the real connhost server (store, runtime, service, API) on
// loopback, with the scim-iam plugin installed and one instance "scim".
type server struct {
	*testenv.Server
	t *testing.T
}

func newServer(t *testing.T, scim *scimserver.Server) *server {
	t.Helper()
	return newServerWith(t, params(scim, nil))
}

// newServerWith is newServer with the instance parameters p.
func newServerWith(t *testing.T, p map[string]any) *server {
	t.Helper()
	s := &server{Server: testenv.NewServer(t, testenv.ServerOptions{}), t: t}
	s.must(s.call(http.MethodPost, "/plugins", "application/wasm", testenv.Plugin(t, "scim-iam")), http.StatusCreated)
	s.must(s.json(http.MethodPost, "/instances", map[string]any{
		"name": "scim", "plugin": "scim-iam", "enabled": true, "params": p,
	}), http.StatusCreated)
	return s
}

// call sends an API request with the key and records the response body.
func (s *server) call(method, path, contentType string, body []byte) testenv.Response {
	s.t.Helper()
	return s.CallAs(s.Key, method, api.Prefix+path, body, contentType)
}

func (s *server) json(method, path string, v any) testenv.Response {
	s.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		s.t.Fatal(err)
	}
	return s.call(method, path, "application/json", b)
}

func (s *server) must(r testenv.Response, status int) []byte {
	s.t.Helper()
	if r.Status != status {
		s.t.Fatalf("HTTP %d %s, want %d", r.Status, r.Body, status)
	}
	return r.Body
}

// execute runs a command on instance scim through POST .../execute.
func (s *server) execute(t *testing.T, cmd string, args map[string]string, incident string) iam.Result {
	t.Helper()
	body := map[string]any{"command": cmd, "args": args}
	if incident != "" {
		body["incidentId"] = incident
	}
	r := s.json(http.MethodPost, "/instances/scim/execute", body)
	if r.Status != http.StatusOK {
		t.Fatalf("execute %s: HTTP %d %s", cmd, r.Status, r.Body)
	}
	var res service.ExecuteResult
	if err := json.Unmarshal(r.Body, &res); err != nil {
		t.Fatal(err)
	}
	if incident != "" && res.EntryID == "" {
		t.Errorf("execute %s with incident %s wrote no entry", cmd, incident)
	}
	return decodeResult(t, res.Result)
}

// scanLeaks fails if the client secret or any issued token appears in the
// server's logs or in any API response.
func (s *server) scanLeaks(t *testing.T, scim *scimserver.Server) {
	t.Helper()
	s.must(s.call(http.MethodGet, "/instances/scim", "", nil), http.StatusOK)
	s.must(s.call(http.MethodGet, "/instances/scim/context", "", nil), http.StatusOK)
	logs := s.Logs.String()
	responses := s.Responses()
	tokens := scim.IssuedTokens()
	if len(tokens) == 0 || logs == "" {
		t.Fatal("nothing to scan: no tokens issued or no logs")
	}
	for i, secret := range append([]string{clientSecret}, tokens...) {
		what := "the client secret"
		if i > 0 {
			what = fmt.Sprintf("token %d", i)
		}
		if strings.Contains(logs, secret) {
			t.Errorf("server logs contain %s", what)
		}
		if strings.Contains(responses, secret) {
			t.Errorf("an API response contains %s", what)
		}
	}
}

// tokenValidUntil reads the current token's valid_until from instance
// scim's integration context.
func (s *server) tokenValidUntil(t *testing.T) int64 {
	t.Helper()
	var body struct {
		Context map[string]json.RawMessage `json:"context"`
	}
	var tokens map[string]struct {
		ValidUntil int64 `json:"valid_until"`
	}
	raw := s.must(s.call(http.MethodGet, "/instances/scim/context", "", nil), http.StatusOK)
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(body.Context[oauth2.ContextKey], &tokens); err != nil || tokens[oauth2.DefaultName].ValidUntil == 0 {
		t.Fatalf("no valid_until in the integration context %s: %v", raw, err)
	}
	return tokens[oauth2.DefaultName].ValidUntil
}

// TestLifecycleThroughServer drives the user lifecycle through the HTTP
// API, writing each IAM result to an incident's war room.
func TestLifecycleThroughServer(t *testing.T) {
	scim := newSCIM(t)
	s := newServer(t, scim)
	var inc struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(s.must(s.json(http.MethodPost, "/incidents", map[string]any{"name": "onboard jdoe"}), http.StatusCreated), &inc); err != nil {
		t.Fatal(err)
	}
	var current map[string]any
	runLifecycle(t, scim, func(t *testing.T, overrides map[string]any, cmd string, args map[string]string) iam.Result {
		if fmt.Sprint(overrides) != fmt.Sprint(current) {
			// Switch the instance's parameters; null drops an earlier override.
			p := map[string]any{}
			for k := range current {
				p[k] = nil
			}
			maps.Copy(p, overrides)
			s.must(s.json(http.MethodPatch, "/instances/scim", map[string]any{"params": p}), http.StatusOK)
			current = overrides
		}
		return s.execute(t, cmd, args, inc.ID)
	})
	var page struct {
		Entries []store.Entry `json:"entries"`
	}
	if err := json.Unmarshal(s.must(s.call(http.MethodGet, "/incidents/"+inc.ID+"/entries?limit=100", "", nil), http.StatusOK), &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Entries) != len(lifecycle) {
		t.Fatalf("war room has %d entries, want %d", len(page.Entries), len(lifecycle))
	}
	if n := count(scim.Requests(), "GET /ServiceProviderConfig"); n != 1 {
		t.Errorf("GET /ServiceProviderConfig sent %d times, want once: pooled module instances share the cached answer", n)
	}
	first, _ := page.Entries[0].Contents.(string)
	if page.Entries[0].Format != "markdown" || !strings.HasPrefix(first, "### Create User Results (scim-iam)") || !strings.Contains(first, "jdoe@example.com") {
		t.Errorf("first entry = %q (%s), want the create result as a markdown table", first, page.Entries[0].Format)
	}
	s.scanLeaks(t, scim)
}

// TestTokenCachingThroughServer checks that pooled module instances share
// one token: fetched once while valid, refreshed once when it expires or
// the service rejects it, also when 8 commands hit the expiry at once.
func TestTokenCachingThroughServer(t *testing.T) {
	scim := newSCIM(t)
	scim.AddUser(map[string]any{"userName": "jdoe", "active": true,
		"emails": []any{map[string]any{"value": "jdoe@example.com", "primary": true}}})
	s := newServer(t, scim)
	get := func(t *testing.T) error {
		r := s.execute(t, iam.CommandGetUser, profile(`{"username":"jdoe"}`), "")
		if !r.Success || r.ID == "" {
			return fmt.Errorf("iam-get-user: %+v", r)
		}
		return nil
	}
	concurrently := func(t *testing.T, n int) {
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for range n {
			wg.Go(func() { errs <- get(t) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err) // a conflict or any other failure surfaced to the user
			}
		}
	}
	wantTokens := func(t *testing.T, n int) {
		t.Helper()
		if got := scim.TokenRequests(); got != n {
			t.Fatalf("token requests = %d, want %d", got, n)
		}
	}

	for range 50 {
		if err := get(t); err != nil {
			t.Fatal(err)
		}
	}
	wantTokens(t, 1)

	scim.ExpireTokens()
	if err := get(t); err != nil {
		t.Fatal(err)
	}
	wantTokens(t, 2)

	// A token that the service still accepts but whose valid_until passed:
	// refreshed before use, without a rejected request.
	scim.SetTokenLifetime(oauth2.DefaultSkew + 2*time.Second)
	scim.ExpireTokens()
	if err := get(t); err != nil {
		t.Fatal(err)
	}
	wantTokens(t, 3)
	scim.SetTokenLifetime(scimserver.DefaultTokenLifetime)
	// The guest stops using a token once the wall clock reaches its
	// valid_until (epoch seconds, in the integration context): wait for
	// that, not a guessed time.
	validUntil := s.tokenValidUntil(t)
	wait.For(t, 10*time.Second, "the token's valid_until to pass", func() bool { return time.Now().Unix() >= validUntil })
	rejected := scim.Rejected()
	concurrently(t, 8)
	wantTokens(t, 4)
	if r := scim.Rejected(); r != rejected {
		t.Errorf("%d requests rejected after valid_until passed, want none: refresh before use", r-rejected)
	}

	scim.ExpireTokens()
	concurrently(t, 8)
	wantTokens(t, 5)

	s.scanLeaks(t, scim)
}

// TestStaticAuthThroughServer runs the lifecycle through the server with
// the built plugin against a bearer-only, case-sensitive service without
// PATCH, and one with basic auth; the bearer token and the password are
// write-only: in no API response and no log.
func TestStaticAuthThroughServer(t *testing.T) {
	for _, auth := range []string{scimserver.AuthBearer, scimserver.AuthBasic} {
		t.Run(auth, func(t *testing.T) {
			scim := newFlavour(t, scimserver.Options{Auth: auth, CaseExact: true, NoPatch: true})
			base := authParams(scim, auth, nil)
			s := newServerWith(t, base)
			var current map[string]any
			runLifecycle(t, scim, func(t *testing.T, overrides map[string]any, cmd string, args map[string]string) iam.Result {
				if fmt.Sprint(overrides) != fmt.Sprint(current) {
					p := map[string]any{}
					for k := range current {
						p[k] = nil
					}
					maps.Copy(p, overrides)
					s.must(s.json(http.MethodPatch, "/instances/scim", map[string]any{"params": p}), http.StatusOK)
					current = overrides
				}
				return s.execute(t, cmd, args, "")
			})
			if n := count(scim.Requests(), "PATCH "); n != 0 {
				t.Errorf("%d PATCH requests to a service without PATCH", n)
			}
			s.must(s.call(http.MethodGet, "/instances/scim", "", nil), http.StatusOK)
			s.must(s.call(http.MethodGet, "/instances/scim/context", "", nil), http.StatusOK)
			for _, secret := range []string{bearerToken, clientSecret} {
				if strings.Contains(s.Logs.String(), secret) || strings.Contains(s.Responses(), secret) {
					t.Errorf("a credential appears in the logs or an API response")
				}
			}
		})
	}
}
