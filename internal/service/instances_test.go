package service_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/connhost/connhost/internal/service"
	"github.com/connhost/connhost/internal/store"
)

// TestInstancesCreate: names, plugins, versions, params and settings are
// checked before anything is stored.
func TestInstancesCreate(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.install(probe(t, "1.0.0"))
	e.instance(service.InstanceInput{Name: "taken", Plugin: "probe"})
	for _, tc := range []struct {
		name string
		in   service.InstanceInput
		want error
	}{
		{"bad name", service.InstanceInput{Name: "no spaces", Plugin: "probe"}, service.ErrInvalid},
		{"name too long", service.InstanceInput{Name: strings.Repeat("a", 65), Plugin: "probe"}, service.ErrInvalid},
		{"no plugin", service.InstanceInput{Name: "a"}, service.ErrInvalid},
		{"unknown plugin", service.InstanceInput{Name: "a", Plugin: "nosuch"}, service.ErrNotFound},
		{"unknown version", service.InstanceInput{Name: "a", Plugin: "probe", Version: ptr("9.0.0")}, service.ErrNotFound},
		{"undeclared param", service.InstanceInput{Name: "a", Plugin: "probe", Params: map[string]any{"nosuch": "x"}}, service.ErrInvalid},
		{"param of the wrong type", service.InstanceInput{Name: "a", Plugin: "probe", Params: map[string]any{"url": 5}}, service.ErrInvalid},
		{"bad mirror direction", service.InstanceInput{Name: "a", Plugin: "probe", Settings: &store.Settings{MirrorDirection: "Sideways"}}, service.ErrInvalid},
		{"negative fetch interval", service.InstanceInput{Name: "a", Plugin: "probe", Settings: &store.Settings{FetchIntervalMinutes: -1}}, service.ErrInvalid},
		{"too much memory", service.InstanceInput{Name: "a", Plugin: "probe", Settings: &store.Settings{MemoryMiB: 1 << 20}}, service.ErrInvalid},
		{"call timeout too long", service.InstanceInput{Name: "a", Plugin: "probe", Settings: &store.Settings{CallTimeoutSeconds: 86400}}, service.ErrInvalid},
		{"egress with a path", service.InstanceInput{Name: "a", Plugin: "probe", Settings: &store.Settings{Egress: []string{"example.com/x"}}}, service.ErrInvalid},
		{"egress in upper case", service.InstanceInput{Name: "upper", Plugin: "probe", Settings: &store.Settings{Egress: []string{"API.example.com"}}}, nil},
		{"egress beyond the manifest", service.InstanceInput{Name: "b", Plugin: "probe", Settings: &store.Settings{Egress: []string{"api.example.com", "evil.test"}}}, service.ErrInvalid},
		{"egress on another port than the url param's", service.InstanceInput{Name: "b", Plugin: "probe", Params: map[string]any{"url": "https://x.test"},
			Settings: &store.Settings{Egress: []string{"x.test:8443"}}}, service.ErrInvalid},
		{"engine group without engines", service.InstanceInput{Name: "b", Plugin: "probe", Settings: &store.Settings{EngineGroup: "dmz"}}, service.ErrInvalid},
		{"engine group not one token", service.InstanceInput{Name: "b", Plugin: "probe", Settings: &store.Settings{EngineGroup: "dmz.>"}}, service.ErrInvalid},
		{"taken name", service.InstanceInput{Name: "taken", Plugin: "probe"}, service.ErrExists},
		{"disabled", service.InstanceInput{Name: "off", Plugin: "probe", Params: map[string]any{"url": "https://x.test"}}, nil},
		{"enabled, pinned", service.InstanceInput{Name: "on", Plugin: "probe", Version: ptr("1.0.0"), Enabled: ptr(true),
			Params:   map[string]any{"url": "https://api.test:8443"},
			Settings: &store.Settings{MemoryMiB: 64, Egress: []string{"*.example.com", "api.test"}}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := e.svc.Instances.Create(ctx, tc.in)
			wantErr(t, err, tc.want)
			if err != nil {
				if _, err := e.svc.Instances.Get(ctx, tc.in.Name); tc.in.Name != "taken" && !errors.Is(err, service.ErrNotFound) {
					t.Errorf("a refused instance was stored: %v", err)
				}
				return
			}
			if v.Name != tc.in.Name || v.Plugin != "probe" || v.Version != "1.0.0" || v.Enabled != (tc.in.Enabled != nil) || v.ID == "" {
				t.Errorf("view %+v", v)
			}
		})
	}
	if got := e.run("on", "echo", map[string]any{"msg": "hi"}); got != `{"msg":"hi"}` {
		t.Errorf("the enabled instance answers %s", got)
	}
	vs, err := e.svc.Instances.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range vs {
		names = append(names, v.Name)
	}
	if !slices.Equal(names, []string{"off", "on", "taken", "upper"}) {
		t.Errorf("list %v, want off, on, taken, upper by name", names)
	}
}

// TestInstancesSecrets: a secret param is sealed in the store, never
// shown, reaches the plugin in clear, survives updates that leave it out
// and is removed by null.
func TestInstancesSecrets(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.install(probe(t, "1.0.0"))
	const secret = "s3cret-value"
	v := e.instance(service.InstanceInput{Name: "p", Plugin: "probe", Enabled: ptr(true),
		Params: map[string]any{"url": "https://x.test", "api_key": secret}})
	paramIs := func(want string) string {
		return e.run("p", "param-is", map[string]any{"param": "api_key", "msg": want})
	}
	shown := func(v service.InstanceView) {
		t.Helper()
		if _, ok := v.Params["api_key"]; ok || !slices.Equal(v.SecretsSet, []string{"api_key"}) || v.Params["url"] != "https://x.test" {
			t.Errorf("view shows params %v, secrets set %v", v.Params, v.SecretsSet)
		}
	}
	shown(v)
	rec, err := e.st.GetInstanceByName(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	if sealed, _ := rec.Params["api_key"].(string); sealed == "" || strings.Contains(sealed, secret) {
		t.Errorf("stored api_key %q is not sealed", sealed)
	}
	if got := paramIs(secret); got != "true" {
		t.Errorf("the plugin did not get the secret in clear: %s", got)
	}
	for _, tc := range []struct {
		name   string
		params map[string]any
		want   string // the secret the plugin gets afterwards; "" none
	}{
		{"left out", map[string]any{"url": "https://y.test"}, secret},
		{"replaced", map[string]any{"api_key": "new-secret"}, "new-secret"},
		{"removed", map[string]any{"api_key": nil}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := e.svc.Instances.Update(ctx, "p", service.InstanceInput{Params: tc.params})
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" {
				if len(v.SecretsSet) != 0 {
					t.Errorf("secrets set %v after removal", v.SecretsSet)
				}
				if got := paramIs("new-secret"); got != "false" {
					t.Errorf("the plugin still has the removed secret: %s", got)
				}
				return
			}
			if _, ok := v.Params["api_key"]; ok {
				t.Errorf("view shows the secret: %v", v.Params)
			}
			if got := paramIs(tc.want); got != "true" {
				t.Errorf("the plugin does not have %q: %s", tc.want, got)
			}
		})
	}
	all, err := e.svc.Instances.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range all {
		for _, val := range v.Params {
			if s, _ := val.(string); strings.Contains(s, "secret") {
				t.Errorf("list shows a secret: %v", v.Params)
			}
		}
	}
}

// TestInstancesUpdate: what may change, what may not, and enabling and
// disabling.
func TestInstancesUpdate(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.install(probe(t, "1.0.0"))
	e.install(echo(t, "1.0.0"))
	e.instance(service.InstanceInput{Name: "p", Plugin: "probe", Enabled: ptr(true)})
	for _, tc := range []struct {
		name, instance string
		in             service.InstanceInput
		want           error
	}{
		{"unknown instance", "nosuch", service.InstanceInput{}, service.ErrNotFound},
		{"rename", "p", service.InstanceInput{Name: "q"}, service.ErrInvalid},
		{"other plugin", "p", service.InstanceInput{Plugin: "goecho"}, service.ErrInvalid},
		{"undeclared param", "p", service.InstanceInput{Params: map[string]any{"nosuch": 1}}, service.ErrInvalid},
		{"bad settings", "p", service.InstanceInput{Settings: &store.Settings{MemoryMiB: -1}}, service.ErrInvalid},
		{"unknown pinned version", "p", service.InstanceInput{Version: ptr("2.0.0")}, service.ErrNotFound},
		{"same name and plugin", "p", service.InstanceInput{Name: "p", Plugin: "probe"}, nil},
		{"settings", "p", service.InstanceInput{Settings: &store.Settings{FetchEnabled: true, FetchIntervalMinutes: 5}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.svc.Instances.Update(ctx, tc.instance, tc.in)
			wantErr(t, err, tc.want)
		})
	}
	v, err := e.svc.Instances.Get(ctx, "p")
	if err != nil || !v.Settings.FetchEnabled || v.Settings.FetchIntervalMinutes != 5 || !v.Enabled {
		t.Errorf("after updates: %+v, %v", v, err)
	}
	if v, err := e.svc.Instances.SetEnabled(ctx, "p", false); err != nil || v.Enabled {
		t.Fatalf("disable: %+v, %v", v, err)
	}
	if _, err := e.svc.Commands.Execute(ctx, "p", service.ExecuteRequest{Command: "echo"}); !errors.Is(err, service.ErrConflict) {
		t.Errorf("execute on a disabled instance: %v", err)
	}
	if v, err := e.svc.Instances.SetEnabled(ctx, "p", true); err != nil || !v.Enabled {
		t.Fatalf("enable: %+v, %v", v, err)
	}
	if got := e.run("p", "echo", nil); got != "{}" {
		t.Errorf("re-enabled instance answers %s", got)
	}
	if _, err := e.svc.Instances.SetEnabled(ctx, "nosuch", true); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("enable an unknown instance: %v", err)
	}
}

// TestInstancesDelete: deleting stops the instance and forgets it.
func TestInstancesDelete(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.install(probe(t, "1.0.0"))
	e.instance(service.InstanceInput{Name: "p", Plugin: "probe", Enabled: ptr(true)})
	wantErr(t, e.svc.Instances.Delete(ctx, "nosuch"), service.ErrNotFound)
	wantErr(t, e.svc.Instances.Delete(ctx, "p"), nil)
	for what, err := range map[string]error{
		"get": func() error { _, err := e.svc.Instances.Get(ctx, "p"); return err }(),
		"call": func() error {
			_, err := e.svc.Commands.Execute(ctx, "p", service.ExecuteRequest{Command: "echo"})
			return err
		}(),
		"again": e.svc.Instances.Delete(ctx, "p"),
	} {
		if !errors.Is(err, service.ErrNotFound) {
			t.Errorf("%s after delete: %v", what, err)
		}
	}
	if _, ok := e.svc.Mirroring.Target(ctx, "p"); ok {
		t.Error("the deleted instance is still live")
	}
}

// TestInstancesHealthAndContext: health reads as zero until reported; the
// integration context is versioned.
func TestInstancesHealthAndContext(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.install(probe(t, "1.0.0"))
	e.instance(service.InstanceInput{Name: "p", Plugin: "probe"})
	if h, err := e.svc.Instances.Health(ctx, "p"); err != nil || h != (store.ModuleHealth{}) {
		t.Errorf("health of a new instance: %+v, %v", h, err)
	}
	ver, err := e.svc.Instances.SetContext(ctx, "p", map[string]any{"n": 1.0}, -1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, instance string
		call           func(name string) error
		want           error
	}{
		{"health of an unknown instance", "nosuch", func(n string) error { _, err := e.svc.Instances.Health(ctx, n); return err }, service.ErrNotFound},
		{"context of an unknown instance", "nosuch", func(n string) error { _, _, err := e.svc.Instances.Context(ctx, n); return err }, service.ErrNotFound},
		{"set context of an unknown instance", "nosuch", func(n string) error {
			_, err := e.svc.Instances.SetContext(ctx, n, nil, -1)
			return err
		}, service.ErrNotFound},
		{"stale version", "p", func(n string) error { _, err := e.svc.Instances.SetContext(ctx, n, nil, ver-1); return err }, service.ErrConflict},
		{"current version", "p", func(n string) error {
			_, err := e.svc.Instances.SetContext(ctx, n, map[string]any{"n": 2.0}, ver)
			return err
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) { wantErr(t, tc.call(tc.instance), tc.want) })
	}
	v, got, err := e.svc.Instances.Context(ctx, "p")
	if err != nil || v["n"] != 2.0 || got != ver+1 {
		t.Errorf("context %v version %d (%v), want n=2 at version %d", v, got, err, ver+1)
	}
}
