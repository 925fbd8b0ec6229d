package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"strings"
	"testing"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/plugins/scim-iam/scimserver"
	"github.com/connhost/connhost/sdk-guest/iam"
	"github.com/connhost/connhost/sdk-guest/sdktest"
)

const (
	clientID     = "connhost"
	clientSecret = "scim-client-secret-0123456789"
)

func newSCIM(t testing.TB) *scimserver.Server {
	t.Helper()
	srv, err := scimserver.New(clientID, clientSecret)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// params are instance parameters for srv with overrides applied.
func params(srv *scimserver.Server, overrides map[string]any) map[string]any {
	p := map[string]any{
		paramURL: srv.SCIMURL(), paramTokenURL: srv.TokenURL(),
		paramClientID: clientID, paramClientSecret: clientSecret,
	}
	maps.Copy(p, overrides)
	return p
}

// runner runs an IAM command with instance parameter overrides and returns
// its IAM result.
type runner func(t *testing.T, overrides map[string]any, cmd string, args map[string]string) iam.Result

const (
	jdoe  = `{"email":"jdoe@example.com","username":"jdoe","givenname":"John","surname":"Doe"}`
	ghost = `{"email":"ghost@example.com","username":"ghost","givenname":"Casper"}`
)

// step is one command of the user lifecycle and the SCIM state it leaves.
type step struct {
	name      string
	overrides map[string]any
	cmd       string
	args      map[string]string
	want      iam.Result // Action, Success, Skipped, Reason, ErrorCode are compared
	check     func(srv *scimserver.Server) error
}

// userIs checks attributes of the SCIM user called name.
func userIs(name string, want map[string]any) func(*scimserver.Server) error {
	return func(srv *scimserver.Server) error {
		_, u, ok := srv.UserByName(name)
		if !ok {
			return fmt.Errorf("SCIM has no user %s", name)
		}
		for path, v := range want {
			if got, _ := iam.Lookup(u, path); fmt.Sprint(got) != fmt.Sprint(v) {
				return fmt.Errorf("SCIM user %s: %s = %v, want %v (user %v)", name, path, got, v, u)
			}
		}
		return nil
	}
}

func noUser(name string) func(*scimserver.Server) error {
	return func(srv *scimserver.Server) error {
		if _, _, ok := srv.UserByName(name); ok {
			return fmt.Errorf("SCIM has user %s", name)
		}
		return nil
	}
}

func both(fs ...func(*scimserver.Server) error) func(*scimserver.Server) error {
	return func(srv *scimserver.Server) error {
		for _, f := range fs {
			if err := f(srv); err != nil {
				return err
			}
		}
		return nil
	}
}

func profile(p string) map[string]string { return map[string]string{iam.ArgUserProfile: p} }

var lifecycle = []step{
	{name: "create", cmd: iam.CommandCreateUser, args: profile(jdoe),
		want: iam.Result{Action: "create", Success: true},
		check: userIs("jdoe", map[string]any{"active": true, "name.givenName": "John", "name.familyName": "Doe",
			"emails.0.value": "jdoe@example.com", "emails.0.primary": true})},
	{name: "get", cmd: iam.CommandGetUser, args: profile(`{"email":"jdoe@example.com"}`),
		want: iam.Result{Action: "get", Success: true}},
	{name: "update", cmd: iam.CommandUpdateUser, args: profile(`{"email":"jdoe@example.com","username":"jdoe","givenname":"Johnny"}`),
		want:  iam.Result{Action: "update", Success: true},
		check: userIs("jdoe", map[string]any{"name.givenName": "Johnny", "name.familyName": "Doe", "active": true})},
	{name: "disable", cmd: iam.CommandDisableUser, args: profile(jdoe),
		want: iam.Result{Action: "disable", Success: true}, check: userIs("jdoe", map[string]any{"active": false})},
	{name: "enable", cmd: iam.CommandEnableUser, args: profile(jdoe),
		want: iam.Result{Action: "enable", Success: true}, check: userIs("jdoe", map[string]any{"active": true})},
	{name: "create when it exists updates", cmd: iam.CommandCreateUser,
		args:  profile(`{"email":"jdoe@example.com","username":"jdoe","title":"Analyst"}`),
		want:  iam.Result{Action: "update", Success: true},
		check: userIs("jdoe", map[string]any{"title": "Analyst", "name.givenName": "Johnny"})},
	{name: "update missing is skipped", cmd: iam.CommandUpdateUser, args: profile(ghost),
		want: iam.Result{Action: "update", Success: true, Skipped: true, Reason: "User does not exist"}, check: noUser("ghost")},
	{name: "update missing creates with create_if_not_exists", overrides: map[string]any{iam.ParamCreateIfNotExists: true},
		cmd: iam.CommandUpdateUser, args: profile(ghost),
		want: iam.Result{Action: "create", Success: true}, check: userIs("ghost", map[string]any{"name.givenName": "Casper", "active": true})},
	{name: "disabled command is skipped", overrides: map[string]any{iam.ParamDisableEnabled: false},
		cmd: iam.CommandDisableUser, args: profile(jdoe),
		want:  iam.Result{Action: "disable", Success: true, Skipped: true, Reason: "Command is disabled."},
		check: userIs("jdoe", map[string]any{"active": true})},
	{name: "get missing reports 404", cmd: iam.CommandGetUser, args: profile(`{"username":"nobody"}`),
		want: iam.Result{Action: "get", ErrorCode: float64(404)}, check: both(noUser("nobody"), userIs("ghost", nil))},
}

// runLifecycle runs every step through run and checks the result and the
// SCIM service's state.
func runLifecycle(t *testing.T, srv *scimserver.Server, run runner) {
	for _, s := range lifecycle {
		t.Run(s.name, func(t *testing.T) {
			r := run(t, s.overrides, s.cmd, s.args)
			if r.Action != s.want.Action || r.Success != s.want.Success || r.Skipped != s.want.Skipped ||
				r.Reason != s.want.Reason || r.ErrorCode != s.want.ErrorCode {
				t.Errorf("result = %+v\nwant %+v", r, s.want)
			}
			if s.check != nil {
				if err := s.check(srv); err != nil {
					t.Error(err)
				}
			}
		})
	}
	if n := srv.UserCount(); n != 2 {
		t.Errorf("SCIM has %d users after the lifecycle, want 2 (jdoe, ghost)", n)
	}
}

// decodeResult reads the IAM result out of a command's CommandResults.
func decodeResult(t *testing.T, raw json.RawMessage) iam.Result {
	t.Helper()
	var cr struct {
		ReadableOutput string     `json:"readable_output"`
		OutputsPrefix  string     `json:"outputs_prefix"`
		Outputs        iam.Result `json:"outputs"`
	}
	if err := json.Unmarshal(raw, &cr); err != nil {
		t.Fatalf("result %s: %v", raw, err)
	}
	if cr.OutputsPrefix != iam.OutputsPrefix || cr.ReadableOutput == "" {
		t.Errorf("result %s: want outputs under %s and a readable output", raw, iam.OutputsPrefix)
	}
	return cr.Outputs
}

func TestLifecycleNative(t *testing.T) {
	srv := newSCIM(t)
	hosts := map[string]*sdktest.Host{}
	runLifecycle(t, srv, func(t *testing.T, overrides map[string]any, cmd string, args map[string]string) iam.Result {
		key := fmt.Sprint(overrides)
		h := hosts[key]
		if h == nil {
			h = sdktest.New(connector, params(srv, overrides))
			hosts[key] = h
		}
		raw, err := h.Command(context.Background(), cmd, args)
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		return decodeResult(t, raw)
	})
	// Three instances (three parameter sets), each with its own context; the
	// one with disable_user_enabled=false skips without calling SCIM.
	if n := srv.TokenRequests(); n != 2 {
		t.Errorf("token requests = %d, want 2: one per instance that reached SCIM", n)
	}
}

func TestGetMappingFieldsIsSCIMUserSchema(t *testing.T) {
	srv := newSCIM(t)
	h := sdktest.New(connector, params(srv, nil))
	got, err := h.GetMappingFields(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	fields := got[iam.MappingTypeName]
	for _, f := range []string{"userName", "name.givenName", "emails.value", "active", "title"} {
		if _, ok := fields[f]; !ok {
			t.Errorf("get-mapping-fields lacks %s: %v", f, fields)
		}
	}
}

func TestConfigureRejectsBadParams(t *testing.T) {
	srv := newSCIM(t)
	tests := []map[string]any{
		{paramURL: "not a url"},
		{paramTokenURL: "ftp://x"},
		{paramClientSecret: ""},
		{iam.ParamMapperOut: `["x"]`},
	}
	for _, o := range tests {
		h := sdktest.New(connector, params(srv, o))
		if err := h.Configure(context.Background()); abi.KindOf(err) != abi.KindBadRequest {
			t.Errorf("configure with %v: err = %v, want bad_request", o, err)
		}
	}
}

func TestTestModuleChecksCredentials(t *testing.T) {
	srv := newSCIM(t)
	if err := sdktest.New(connector, params(srv, nil)).TestModule(context.Background()); err != nil {
		t.Errorf("test-module: %v", err)
	}
	err := sdktest.New(connector, params(srv, map[string]any{paramClientSecret: "wrong"})).TestModule(context.Background())
	if err == nil {
		t.Fatal("test-module with a wrong secret succeeded")
	}
	if s := err.Error(); !strings.Contains(s, "invalid_client") || strings.Contains(s, clientSecret) {
		t.Errorf("test-module error = %q, want invalid_client and no secret", s)
	}
}

// TestManifestDeclaresKit keeps manifest.json in step with the IAM kit.
func TestManifestDeclaresKit(t *testing.T) {
	b, err := os.ReadFile("manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	var m abi.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, p := range iam.ManifestParams() {
		if _, ok := m.Param(p.Name); !ok {
			t.Errorf("manifest lacks param %s", p.Name)
		}
	}
	for _, c := range iam.ManifestCommands() {
		if _, ok := m.Command(c.Name); !ok {
			t.Errorf("manifest lacks command %s", c.Name)
		}
	}
	if !m.Supports(abi.CommandGetMappingFields) {
		t.Error("manifest does not support get-mapping-fields")
	}
}
