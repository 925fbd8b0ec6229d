package service_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/mirror"
	"github.com/connhost/connhost/internal/service"
	"github.com/connhost/connhost/internal/store"
	"github.com/connhost/connhost/internal/testenv/wasmbuild"
)

// mirrorer is plugins/goecho declaring mirroring and XSOAR's conventional
// params.
func mirrorer(t testing.TB) []byte {
	t.Helper()
	return guest(t, "goecho mirrorer", wasmbuild.Source{Path: "plugins/goecho", Edit: func(m *abi.Manifest) {
		m.Name, m.Version = "mirrorer", "1.0.0"
		m.IsFetch, m.IsRemoteSyncIn, m.IsRemoteSyncOut = true, true, true
		m.Params = []abi.Param{
			{Name: mirror.ParamIsFetch, Type: abi.ParamBool},
			{Name: mirror.ParamFetchInterval, Type: abi.ParamInterval, Default: 1.0},
			{Name: mirror.ParamMirrorDirection, Type: abi.ParamSelect, Default: "None", Options: []string{"None", "Incoming", "Outgoing", "Incoming And Outgoing"}},
			{Name: mirror.ParamCloseIncident, Type: abi.ParamBool},
			{Name: mirror.ParamCommentTag, Type: abi.ParamString},
		}
	}})
}

// TestConventionalParamsAndSettings: where the plugin declares a
// conventional param, a setting for the same thing must agree with it
// (and is then dropped) or the request is ErrInvalid naming both.
func TestConventionalParamsAndSettings(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.install(mirrorer(t))
	e.install(echo(t, "1.0.0"))
	tests := []struct {
		name     string
		plugin   string
		params   map[string]any
		settings store.Settings
		want     error
		msg      []string // in the error
		stored   store.Settings
	}{
		{name: "params only", plugin: "mirrorer", params: map[string]any{"mirror_direction": "Incoming And Outgoing"}},
		{name: "a setting that agrees is dropped", plugin: "mirrorer", params: map[string]any{"mirror_direction": "Incoming"},
			settings: store.Settings{MirrorDirection: abi.MirrorIn, CloseIncident: false, MemoryMiB: 64}, stored: store.Settings{MemoryMiB: 64}},
		{name: "a conflicting direction", plugin: "mirrorer", params: map[string]any{"mirror_direction": "Incoming"},
			settings: store.Settings{MirrorDirection: abi.MirrorBoth}, want: service.ErrInvalid,
			msg: []string{`settings.mirror_direction "Both" conflicts with param mirror_direction "Incoming"`, "mirrorer@1.0.0"}},
		{name: "a setting against the param's default", plugin: "mirrorer",
			settings: store.Settings{FetchEnabled: true, CommentTag: "c"}, want: service.ErrInvalid,
			msg: []string{"settings.isFetch true conflicts with param isFetch (unset)", `settings.comment_tag "c" conflicts with param comment_tag (unset)`}},
		{name: "settings where the plugin declares no param", plugin: "goecho",
			settings: store.Settings{MirrorDirection: abi.MirrorBoth, FetchEnabled: true}, stored: store.Settings{MirrorDirection: abi.MirrorBoth, FetchEnabled: true}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := fmt.Sprintf("i%d", i)
			v, err := e.svc.Instances.Create(ctx, service.InstanceInput{Name: name, Plugin: tc.plugin, Params: tc.params, Settings: &tc.settings})
			wantErr(t, err, tc.want)
			for _, m := range tc.msg {
				if err == nil || !strings.Contains(err.Error(), m) {
					t.Errorf("error %v lacks %q", err, m)
				}
			}
			if err != nil {
				return
			}
			if fmt.Sprint(v.Settings) != fmt.Sprint(tc.stored) {
				t.Errorf("stored settings %+v, want %+v", v.Settings, tc.stored)
			}
			// The same through an update.
			_, err = e.svc.Instances.Update(ctx, name, service.InstanceInput{Settings: &store.Settings{MirrorDirection: abi.MirrorOut, CloseIncident: true}})
			if tc.plugin == "mirrorer" && !errors.Is(err, service.ErrInvalid) {
				t.Errorf("update with conflicting settings: %v", err)
			}
		})
	}
}

// TestSettingsMigrateIntoParams: an instance stored with settings from
// before the params model keeps mirroring after a restart, its settings
// moved into the params its plugin declares.
func TestSettingsMigrateIntoParams(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.install(mirrorer(t))
	_, err := e.st.CreateInstance(ctx, store.Instance{Name: "old", Plugin: "mirrorer", Enabled: true,
		Params:   map[string]any{"mirror_direction": "None", "isFetch": false},
		Settings: store.Settings{MirrorDirection: abi.MirrorBoth, FetchEnabled: true, CommentTag: "comment", MemoryMiB: 64}})
	if err != nil {
		t.Fatal(err)
	}
	e.restart()
	v, err := e.svc.Instances.Get(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	if v.Params["mirror_direction"] != "Incoming And Outgoing" || v.Params["isFetch"] != true || v.Params["comment_tag"] != "comment" {
		t.Fatalf("params after migration %v", v.Params)
	}
	if fmt.Sprint(v.Settings) != fmt.Sprint(store.Settings{MemoryMiB: 64}) {
		t.Fatalf("settings after migration %+v, want only memoryMiB", v.Settings)
	}
	tg, ok := e.svc.Mirroring.Target(ctx, "old")
	if c := mirror.ConfigOf(tg.Instance, tg.Manifest); !ok || c.Direction != abi.MirrorBoth || !c.Fetch || c.CommentTag != "comment" {
		t.Fatalf("config after migration %+v", c)
	}
	// A PATCH of one param of an instance not yet migrated keeps that
	// param and moves the others.
	_, err = e.st.UpdateInstance(ctx, v.ID, func(r *store.Instance) error {
		r.Settings.CloseIncident = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	v, err = e.svc.Instances.Update(ctx, "old", service.InstanceInput{Params: map[string]any{"mirror_direction": "Incoming"}})
	if err != nil || v.Params["mirror_direction"] != "Incoming" || v.Params["close_incident"] != true || v.Settings.CloseIncident {
		t.Fatalf("update of a legacy instance: %+v, %v", v, err)
	}
}

// TestRunCycleNamesTheParam: mirror/run on an instance that does not
// mirror in is ErrConflict naming what to set.
func TestRunCycleNamesTheParam(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.install(mirrorer(t))
	e.install(echo(t, "1.0.0"))
	e.instance(service.InstanceInput{Name: "m", Plugin: "mirrorer", Enabled: ptr(true)})
	e.instance(service.InstanceInput{Name: "g", Plugin: "goecho", Enabled: ptr(true)})
	ms := e.svc.Mirroring
	ms.SetEngine(mirror.New(mirror.Options{Store: e.st, Instances: ms, Logger: zerolog.Nop()}))
	for _, tc := range []struct{ instance, msg string }{
		{"m", `param mirror_direction is "None": set it to "Incoming" or "Incoming And Outgoing"`},
		{"g", "plugin goecho@1.0.0 does not declare isremotesyncin"},
	} {
		_, err := ms.RunCycle(ctx, tc.instance)
		if !errors.Is(err, service.ErrConflict) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("run %s: %v, want ErrConflict with %q", tc.instance, err, tc.msg)
		}
	}
}
