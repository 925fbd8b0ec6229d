package host

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/connhost/connhost/abi"
)

// TestGateCache: a load from the compilation cache takes the gate's result
// from its cache entry, and that module is still instrumented (a spinning
// guest is stopped at its deadline); a corrupt entry is ignored; and
// different module limits do not reuse the entry, so a limit still refuses
// the module.
func TestGateCache(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	wasm := guest(t, "loop")
	load := func(t *testing.T, cfg Config, log *syncBuffer) (*Plugin, error) {
		t.Helper()
		cfg.CacheDir, cfg.Logger = dir, zerolog.New(log)
		rt, err := NewRuntime(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = rt.Close(ctx) })
		return rt.Load(ctx, wasm)
	}
	spin := func(t *testing.T, p *Plugin) {
		t.Helper()
		inst, err := p.rt.NewInstance(ctx, p, InstanceSpec{Info: abi.InstanceInfo{ID: "id-loop", Name: "loop"},
			Services: NewMemServices(), Limits: Limits{CallTimeout: 300 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		defer inst.Close(ctx)
		_, err = inst.Execute(ctx, "spin", nil)
		wantCallError(t, err, abi.KindTimeout, "deadline exceeded")
	}
	entry := func(t *testing.T) string {
		t.Helper()
		m, _ := filepath.Glob(filepath.Join(dir, "*", "connhost-gate-*"))
		if len(m) != 1 {
			t.Fatalf("gate cache entries %v, want one", m)
		}
		return m[0]
	}
	tests := []struct {
		name          string
		cfg           Config
		corrupt       bool
		wantErr       string
		fromGateCache bool
	}{
		{name: "first load writes the entry"},
		{name: "second load reads it", fromGateCache: true},
		{name: "corrupt entry is ignored", corrupt: true},
		{name: "rewritten entry is read again", fromGateCache: true},
		{name: "other limits: no reuse", cfg: Config{Module: ModuleLimits{Functions: 3}}, wantErr: "functions"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.corrupt {
				path := entry(t)
				b, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				b[len(b)-1] ^= 0xff
				if err := os.WriteFile(path, b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			log := &syncBuffer{}
			p, err := load(t, tc.cfg, log)
			if tc.wantErr != "" {
				if err == nil || abi.KindOf(err) != abi.KindIncompatible {
					t.Fatalf("load with %+v = %v, want incompatible (%s)", tc.cfg.Module, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			entry(t)
			if want := fmt.Sprintf(`"gate_from_cache":%v`, tc.fromGateCache); !strings.Contains(log.String(), want) {
				t.Errorf("load log %s, want %s", log.String(), want)
			}
			spin(t, p)
		})
	}
}
