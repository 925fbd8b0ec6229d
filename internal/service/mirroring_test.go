package service_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/mirror"
	"github.com/connhost/connhost/internal/service"
)

// mirroringEnv has probe instances "p" (enabled) and "off" (disabled).
func mirroringEnv(t *testing.T) *env {
	e := newEnv(t)
	e.install(probe(t, "1.0.0"))
	e.instance(service.InstanceInput{Name: "p", Plugin: "probe", Enabled: ptr(true)})
	e.instance(service.InstanceInput{Name: "off", Plugin: "probe"})
	return e
}

// TestMirroringInstances: the engine's view is the enabled instances, and
// its calls go to their warm pools.
func TestMirroringInstances(t *testing.T) {
	e := mirroringEnv(t)
	ctx := context.Background()
	var names []string
	for _, tg := range e.svc.Mirroring.Targets(ctx) {
		names = append(names, tg.Instance.Name)
		if tg.Manifest.Name != "probe" {
			t.Errorf("target %s has manifest %s", tg.Instance.Name, tg.Manifest.Name)
		}
	}
	if !slices.Equal(names, []string{"p"}) {
		t.Errorf("targets %v, want the enabled instance only", names)
	}
	if _, ok := e.svc.Mirroring.Target(ctx, "off"); ok {
		t.Error("a disabled instance is a target")
	}
	if tg, ok := e.svc.Mirroring.Target(ctx, "p"); !ok || tg.Instance.Plugin != "probe" {
		t.Errorf("target p: %+v, %v", tg, ok)
	}
	for _, tc := range []struct {
		instance string
		want     error
	}{{"p", nil}, {"off", service.ErrConflict}, {"nosuch", service.ErrNotFound}} {
		t.Run("call "+tc.instance, func(t *testing.T) {
			raw, err := e.svc.Mirroring.Call(ctx, tc.instance, "echo", map[string]any{"msg": "hi"})
			wantErr(t, err, tc.want)
			if err == nil && strings.TrimSpace(string(raw)) != `{"msg":"hi"}` {
				t.Errorf("result %s", raw)
			}
		})
		t.Run("fetch "+tc.instance, func(t *testing.T) {
			wantErr(t, e.svc.Mirroring.RunFetch(ctx, tc.instance), tc.want)
		})
	}
	if incs, _, err := e.svc.Incidents.Search(ctx, service.IncidentQuery{Instance: "p"}); err != nil || len(incs) != 1 {
		t.Errorf("the scheduler's fetch stored %d incidents (%v), want 1", len(incs), err)
	}
	if _, err := e.svc.Mirroring.RemoteSchema(ctx, "p"); abi.KindOf(err) != abi.KindNotImplemented {
		t.Errorf("remote schema of a plugin without get-mapping-fields: %v", err)
	}
}

// TestMirroringOperations: without an engine every operation is
// ErrConflict; with one, unknown names and incidents are ErrNotFound,
// instances that do not mirror in ErrConflict.
func TestMirroringOperations(t *testing.T) {
	e := mirroringEnv(t)
	ctx := context.Background()
	local := e.incident("local").ID
	ms := e.svc.Mirroring
	ops := []struct {
		name string
		call func() error
		want error // with an engine attached
	}{
		{"stats", func() error { _, err := ms.Stats(ctx, "p"); return err }, nil},
		{"stats of an unknown instance", func() error { _, err := ms.Stats(ctx, "nosuch"); return err }, service.ErrNotFound},
		{"records", func() error { _, err := ms.SyncRecords(ctx, "p", 0); return err }, nil},
		{"records of an unknown instance", func() error { _, err := ms.SyncRecords(ctx, "nosuch", 10); return err }, service.ErrNotFound},
		{"record of an unknown incident", func() error { _, err := ms.SyncRecord(ctx, "nosuch"); return err }, service.ErrNotFound},
		{"record of an incident not mirrored", func() error { _, err := ms.SyncRecord(ctx, local); return err }, service.ErrNotFound},
		{"purge", func() error { _, err := ms.PurgeClosed(ctx, "p", 30); return err }, nil},
		{"purge a negative age", func() error { _, err := ms.PurgeClosed(ctx, "p", -1); return err }, service.ErrInvalid},
		{"purge an unknown instance", func() error { _, err := ms.PurgeClosed(ctx, "nosuch", 1); return err }, service.ErrNotFound},
		{"debug an unknown incident", func() error { _, err := ms.Debug(ctx, "nosuch"); return err }, service.ErrNotFound},
		{"push to an instance that does not mirror in", func() error { return ms.Push(ctx, "p", "R1") }, service.ErrConflict},
		{"cycle of an instance that does not mirror in", func() error { _, err := ms.RunCycle(ctx, "p"); return err }, service.ErrConflict},
	}
	for _, tc := range ops {
		t.Run("no engine: "+tc.name, func(t *testing.T) {
			err := tc.call()
			if !errors.Is(err, service.ErrConflict) || !strings.Contains(err.Error(), "mirroring is not running") {
				t.Errorf("error %v, want mirroring is not running", err)
			}
		})
	}
	ms.SetEngine(mirror.New(mirror.Options{Store: e.st, Instances: ms, Logger: zerolog.Nop()}))
	for _, tc := range ops {
		t.Run(tc.name, func(t *testing.T) { wantErr(t, tc.call(), tc.want) })
	}
}
