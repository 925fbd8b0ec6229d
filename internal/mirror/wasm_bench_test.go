package mirror

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/internal/store"
	"github.com/connhost/connhost/internal/testenv/wasmbuild"
)

// wasmInstances serves the engine from a real plugin in the real runtime.
type wasmInstances struct {
	target Target
	inst   *host.Instance
}

func (w *wasmInstances) Targets(context.Context) []Target { return []Target{w.target} }

func (w *wasmInstances) Target(_ context.Context, name string) (Target, bool) {
	return w.target, name == w.target.Instance.Name
}

func (w *wasmInstances) RunFetch(context.Context, string) error { return nil }

func (w *wasmInstances) Call(ctx context.Context, _ string, command string, args any) (json.RawMessage, error) {
	raw, err := json.Marshal(args)
	if err != nil {
		return nil, err
	}
	return w.inst.Execute(ctx, command, raw)
}

// wasmFixture is a fixture whose connector is testdata/instant, a Go SDK
// guest, running in a pool of PoolSize module instances.
func wasmFixture(b *testing.B, n int) (*fixture, *host.MemServices) {
	f := newFixture(b, b.TempDir(), store.Settings{})
	seed(b, f, n)
	ctx := context.Background()
	wasm, err := wasmbuild.Build(ctx, wasmbuild.Source{Path: "internal/mirror/testdata/instant"})
	if err != nil {
		b.Fatal(err)
	}
	rt, err := host.NewRuntime(ctx, host.Config{CacheDir: wasmbuild.CompilationCacheDir(), Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = rt.Close(ctx) })
	p, err := rt.Load(ctx, wasm)
	if err != nil {
		b.Fatal(err)
	}
	svc := host.NewMemServices()
	info := abi.InstanceInfo{ID: f.inst.ID, Name: f.inst.Name, Brand: "instant"}
	inst, err := rt.NewInstance(ctx, p, host.InstanceSpec{Info: info, Services: svc})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = inst.Close(ctx) })
	if err := inst.Warm(ctx, host.DefaultPoolSize); err != nil {
		b.Fatal(err)
	}
	f.engine.ins = &wasmInstances{target: Target{Instance: f.inst, Manifest: p.Manifest}, inst: inst}
	return f, svc
}

// BenchmarkIncomingAllWasm is BenchmarkIncomingAll through a Go guest in the
// sandbox: one cycle over 10,000 mirrored incidents via get-remote-data.
// Target: ≤ 5 s per cycle.
func BenchmarkIncomingAllWasm(b *testing.B) {
	f, _ := wasmFixture(b, 10_000)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		f.clk.Advance(time.Minute)
		rep, err := f.engine.RunIncoming(ctx, "peer")
		if err != nil || rep.Synced != 10_000 || rep.Mode != "all" {
			b.Fatalf("report %+v, %v", rep, err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/cycle")
}

// BenchmarkIncomingModifiedWasm is BenchmarkIncomingModified through a Go
// guest: 100 changed of 100,000, found via get-modified-remote-data. Target:
// ≤ 0.5 s per cycle.
func BenchmarkIncomingModifiedWasm(b *testing.B) {
	f, svc := wasmFixture(b, 100_000)
	ctx := context.Background()
	info := abi.InstanceInfo{ID: f.inst.ID, Name: f.inst.Name}
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		var ids []any
		for j := range 100 {
			ids = append(ids, fmt.Sprintf("r%d", 1+(i*100+j)*997%100_000))
		}
		if _, err := svc.SetIntegrationContext(ctx, info, map[string]any{"modified": ids}, -1); err != nil {
			b.Fatal(err)
		}
		f.clk.Advance(time.Minute)
		b.StartTimer()
		rep, err := f.engine.RunIncoming(ctx, "peer")
		if err != nil || rep.Synced != 100 || rep.Mode != "modified" {
			b.Fatalf("report %+v, %v", rep, err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/cycle")
}
