package main

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/connhost/connhost/plugins/scim-iam/scimserver"
	"github.com/connhost/connhost/sdk-guest/iam"
	"github.com/connhost/connhost/sdk-guest/sdktest"
)

const bearerToken = "static-scim-bearer-token-0123456789"

// flavour is a SCIM service as met in the field: its auth, whether it
// compares userName exactly, whether it has PATCH.
type flavour struct {
	name string
	opts scimserver.Options
}

var flavours = []flavour{
	{"oauth2, PATCH", scimserver.Options{Auth: scimserver.AuthOAuth2}},
	{"bearer only, case-sensitive, no PATCH", scimserver.Options{Auth: scimserver.AuthBearer, CaseExact: true, NoPatch: true}},
	{"basic, case-sensitive, PATCH", scimserver.Options{Auth: scimserver.AuthBasic, CaseExact: true}},
	{"basic, no PATCH", scimserver.Options{Auth: scimserver.AuthBasic, NoPatch: true}},
}

func newFlavour(t testing.TB, o scimserver.Options) *scimserver.Server {
	t.Helper()
	o.ClientID, o.ClientSecret, o.BearerToken = clientID, clientSecret, bearerToken
	srv, err := scimserver.NewWithOptions(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// authParams are the instance parameters that authenticate to srv the way
// it wants, with overrides applied.
func authParams(srv *scimserver.Server, auth string, overrides map[string]any) map[string]any {
	p := map[string]any{paramURL: srv.SCIMURL()}
	switch auth {
	case scimserver.AuthOAuth2:
		maps.Copy(p, map[string]any{paramAuthType: authOAuth2, paramTokenURL: srv.TokenURL(), paramClientID: clientID, paramClientSecret: clientSecret})
	case scimserver.AuthBearer:
		maps.Copy(p, map[string]any{paramAuthType: authBearer, paramBearerToken: bearerToken})
	case scimserver.AuthBasic:
		maps.Copy(p, map[string]any{paramAuthType: authBasic, paramBasicUsername: clientID, paramBasicPassword: clientSecret})
	}
	maps.Copy(p, overrides)
	return p
}

// count counts the recorded requests with the given prefix.
func count(reqs []string, prefix string) int {
	n := 0
	for _, r := range reqs {
		if strings.HasPrefix(r, prefix) {
			n++
		}
	}
	return n
}

// TestLifecycleFlavours runs the user lifecycle against each flavour of
// service: every auth mode, path-scoped PATCH where the service has PATCH,
// PUT of the merged resource where it has not.
func TestLifecycleFlavours(t *testing.T) {
	for _, f := range flavours {
		t.Run(f.name, func(t *testing.T) {
			srv := newFlavour(t, f.opts)
			h := map[string]*sdktest.Host{}
			runLifecycle(t, srv, func(t *testing.T, overrides map[string]any, cmd string, args map[string]string) iam.Result {
				key := fmt.Sprint(overrides)
				if h[key] == nil {
					h[key] = sdktest.New(connector, authParams(srv, f.opts.Auth, overrides))
				}
				raw, err := h[key].Command(context.Background(), cmd, args)
				if err != nil {
					t.Fatalf("%s: %v", cmd, err)
				}
				return decodeResult(t, raw)
			})
			reqs := srv.Requests()
			patches, puts := count(reqs, "PATCH "), count(reqs, "PUT ")
			if f.opts.NoPatch && (patches != 0 || puts == 0) {
				t.Errorf("service without PATCH got %d PATCH and %d PUT requests, want PUT only", patches, puts)
			}
			if !f.opts.NoPatch && (patches == 0 || puts != 0) {
				t.Errorf("service with PATCH got %d PATCH and %d PUT requests, want PATCH only", patches, puts)
			}
			if srv.Rejected() != 0 {
				t.Errorf("%d requests rejected: the auth mode did not authenticate", srv.Rejected())
			}
		})
	}
}

// TestAuthFailures: wrong credentials of every mode come back as an IAM
// result with errorCode 401 (for OAuth2, the token endpoint's refusal), and
// test-module fails naming the problem without the secret.
func TestAuthFailures(t *testing.T) {
	for _, tc := range []struct {
		auth  string
		wrong map[string]any
	}{
		{scimserver.AuthOAuth2, map[string]any{paramClientSecret: "wrong-secret"}},
		{scimserver.AuthBearer, map[string]any{paramBearerToken: "wrong-token"}},
		{scimserver.AuthBasic, map[string]any{paramBasicPassword: "wrong-password"}},
	} {
		t.Run(tc.auth, func(t *testing.T) {
			srv := newFlavour(t, scimserver.Options{Auth: tc.auth})
			if err := sdktest.New(connector, authParams(srv, tc.auth, nil)).TestModule(context.Background()); err != nil {
				t.Errorf("test-module with good credentials: %v", err)
			}
			h := sdktest.New(connector, authParams(srv, tc.auth, tc.wrong))
			err := h.TestModule(context.Background())
			if err == nil || !strings.Contains(err.Error(), "authentication failed") {
				t.Errorf("test-module with wrong credentials = %v, want an authentication failure", err)
			}
			raw, err := h.Command(context.Background(), iam.CommandGetUser, profile(`{"username":"jdoe"}`))
			if err != nil {
				t.Fatal(err)
			}
			r := decodeResult(t, raw)
			if r.Success || r.ErrorCode != float64(401) || !strings.Contains(r.ErrorMessage, "authentication failed") {
				t.Errorf("result = %+v, want errorCode 401 and an authentication failure", r)
			}
			for _, secret := range []string{clientSecret, bearerToken, "wrong-secret", "wrong-token", "wrong-password"} {
				if strings.Contains(r.ErrorMessage, secret) {
					t.Errorf("error message leaks a credential: %q", r.ErrorMessage)
				}
			}
		})
	}
}

// TestConfigureAuthParams: each auth mode needs its own credentials.
func TestConfigureAuthParams(t *testing.T) {
	srv := newFlavour(t, scimserver.Options{Auth: scimserver.AuthBearer})
	for _, tc := range []struct {
		name   string
		params map[string]any
		ok     bool
	}{
		{"bearer", authParams(srv, scimserver.AuthBearer, nil), true},
		{"bearer without token", authParams(srv, scimserver.AuthBearer, map[string]any{paramBearerToken: ""}), false},
		{"basic", authParams(srv, scimserver.AuthBasic, nil), true},
		{"basic without password", authParams(srv, scimserver.AuthBasic, map[string]any{paramBasicPassword: ""}), false},
		{"oauth2 without token_url", authParams(srv, scimserver.AuthOAuth2, map[string]any{paramTokenURL: ""}), false},
		{"unknown auth_type", authParams(srv, scimserver.AuthBearer, map[string]any{paramAuthType: "kerberos"}), false},
		{"no auth_type is oauth2", map[string]any{paramURL: srv.SCIMURL(), paramTokenURL: srv.URL() + "/t", paramClientID: "c", paramClientSecret: "s"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := sdktest.New(connector, tc.params).Configure(context.Background())
			if (err == nil) != tc.ok {
				t.Errorf("configure = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestLookups: lookups that failed against real services. The service is
// bearer-only, case-sensitive and without PATCH.
func TestLookups(t *testing.T) {
	srv := newFlavour(t, scimserver.Options{Auth: scimserver.AuthBearer, CaseExact: true, NoPatch: true})
	srv.AddUser(map[string]any{"userName": "jdoe", "active": true,
		"emails": []any{map[string]any{"value": "jdoe@example.com", "primary": true}}})
	srv.AddUser(map[string]any{"userName": `o"brien\ops`, "active": true})
	srv.AddUser(map[string]any{"userName": "r&d<ops>", "active": true})
	noActive := srv.AddUser(map[string]any{"userName": "legacy"})
	run := func(t *testing.T, overrides map[string]any, cmd, p string) iam.Result {
		t.Helper()
		raw, err := sdktest.New(connector, authParams(srv, scimserver.AuthBearer, overrides)).Command(context.Background(), cmd, profile(p))
		if err != nil {
			t.Fatal(err)
		}
		return decodeResult(t, raw)
	}
	for _, tc := range []struct {
		name, profile, wantUser string
	}{
		{"upper-case username", `{"username":"JDoe"}`, "jdoe"},
		{"upper-case email", `{"email":"JDoe@Example.COM"}`, "jdoe"},
		{"quote and backslash", `{"username":"o\"brien\\ops"}`, `o"brien\ops`},
		{"characters JSON would escape", `{"username":"r&d<ops>"}`, "r&d<ops>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, nil, iam.CommandGetUser, tc.profile)
			if !r.Success || r.Username != tc.wantUser {
				t.Errorf("get %s = %+v, want user %q", tc.profile, r, tc.wantUser)
			}
		})
	}
	t.Run("no case-insensitive match of another user", func(t *testing.T) {
		if r := run(t, nil, iam.CommandGetUser, `{"username":"JDOE2"}`); r.ErrorCode != float64(404) {
			t.Errorf("get JDOE2 = %+v, want 404", r)
		}
	})
	t.Run("record without active is not reported active", func(t *testing.T) {
		r := run(t, nil, iam.CommandGetUser, `{"username":"legacy"}`)
		if !r.Success || r.ID != noActive || r.Active != nil {
			t.Errorf("get legacy = %+v (active %v), want found with active null", r, r.Active)
		}
	})
	t.Run("stale id falls back to the username", func(t *testing.T) {
		r := run(t, nil, iam.CommandCreateUser, `{"id":"9999","username":"jdoe","email":"jdoe@example.com","title":"Lead"}`)
		if !r.Success || r.Action != "update" {
			t.Errorf("create with a stale id = %+v, want an update of jdoe", r)
		}
		if n := srv.UserCount(); n != 4 {
			t.Errorf("%d users, want 4: a duplicate was created", n)
		}
	})
	t.Run("update-with-create looks up once", func(t *testing.T) {
		before := srv.Requests()
		r := run(t, map[string]any{iam.ParamCreateIfNotExists: true}, iam.CommandUpdateUser, `{"username":"newbie","email":"newbie@example.com"}`)
		if !r.Success || r.Action != "create" {
			t.Fatalf("update-with-create = %+v", r)
		}
		after := srv.Requests()[len(before):]
		if n := count(after, "GET /Users?"); n != 1 {
			t.Errorf("lookups = %d (%v), want 1", n, after)
		}
	})
}

// TestUpdateReplacesEmails: two updates with a new address leave one
// primary email, with PATCH and with PUT.
func TestUpdateReplacesEmails(t *testing.T) {
	for _, f := range flavours {
		t.Run(f.name, func(t *testing.T) {
			srv := newFlavour(t, f.opts)
			h := sdktest.New(connector, authParams(srv, f.opts.Auth, nil))
			for i, p := range []string{
				`{"username":"jdoe","email":"jdoe@example.com","givenname":"John","surname":"Doe"}`,
				`{"username":"jdoe","email":"john.doe@example.com"}`,
				`{"username":"jdoe","email":"jd@example.com","givenname":"Johnny"}`,
			} {
				cmd := iam.CommandUpdateUser
				if i == 0 {
					cmd = iam.CommandCreateUser
				}
				raw, err := h.Command(context.Background(), cmd, profile(p))
				if err != nil {
					t.Fatal(err)
				}
				if r := decodeResult(t, raw); !r.Success {
					t.Fatalf("%s: %+v", cmd, r)
				}
			}
			_, u, ok := srv.UserByName("jdoe")
			emails, _ := u["emails"].([]any)
			if !ok || len(emails) != 1 {
				t.Fatalf("emails = %v, want exactly one", u["emails"])
			}
			if err := userIs("jdoe", map[string]any{"emails.0.value": "jd@example.com", "emails.0.primary": true,
				"name.givenName": "Johnny", "name.familyName": "Doe"})(srv); err != nil {
				t.Error(err)
			}
		})
	}
}
