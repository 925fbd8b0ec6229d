// Package wasmrun runs a built plugin (.wasm) under wazero against an
// sdktest.Host, so a connector's tests can exercise the real module: the
// exports, the imports and the codec as compiled for wasip1. It implements
// the ABI's calling convention only; sandbox limits, pooling and the egress
// rules of the real host live in package host.
package wasmrun

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/connhost/connhost/abi"
	sdk "github.com/connhost/connhost/sdk-guest"
	"github.com/connhost/connhost/sdk-guest/sdktest"
)

// Runtime compiles modules and instantiates them with the connhost_v1
// imports.
type Runtime struct {
	r wazero.Runtime
}

// NewRuntime returns a Runtime; cacheDir, if not empty, holds wazero's
// compilation cache so that repeated test runs skip compiling.
func NewRuntime(ctx context.Context, cacheDir string) (*Runtime, error) {
	cfg := wazero.NewRuntimeConfig()
	if cacheDir != "" {
		cache, err := wazero.NewCompilationCacheWithDir(cacheDir)
		if err != nil {
			return nil, fmt.Errorf("compilation cache %s: %w", cacheDir, err)
		}
		cfg = cfg.WithCompilationCache(cache)
	}
	r := wazero.NewRuntimeWithConfig(ctx, cfg)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, r); err != nil {
		r.Close(ctx)
		return nil, err
	}
	if err := hostModule(ctx, r); err != nil {
		r.Close(ctx)
		return nil, err
	}
	return &Runtime{r: r}, nil
}

// Close releases the runtime and every module it instantiated.
func (rt *Runtime) Close(ctx context.Context) error { return rt.r.Close(ctx) }

// Plugin is a compiled module with its manifest.
type Plugin struct {
	Manifest *abi.Manifest
	compiled wazero.CompiledModule
}

// Compile reads the manifest of wasm and compiles it.
func (rt *Runtime) Compile(ctx context.Context, wasm []byte) (*Plugin, error) {
	m, err := abi.ReadManifest(wasm)
	if err != nil {
		return nil, err
	}
	c, err := rt.r.CompileModule(ctx, wasm)
	if err != nil {
		return nil, fmt.Errorf("compile plugin %s: %w", m.Name, err)
	}
	return &Plugin{Manifest: m, compiled: c}, nil
}

// NewHost instantiates p and returns an sdktest.Host driving it, with the
// given instance parameters. The instance's brand is the plugin name.
func (rt *Runtime) NewHost(ctx context.Context, p *Plugin, params map[string]any) (*sdktest.Host, error) {
	h, err := sdktest.NewWithGuest(params, func(imp sdk.Imports) (sdktest.Guest, error) {
		g := &guest{imp: imp}
		cfg := wazero.NewModuleConfig().WithName("").WithStartFunctions("_initialize").
			WithSysWalltime().WithSysNanotime().WithRandSource(rand.Reader).
			WithStdout(&g.stdio).WithStderr(&g.stdio)
		mod, err := rt.r.InstantiateModule(g.bind(ctx), p.compiled, cfg)
		if err != nil {
			return nil, fmt.Errorf("instantiate plugin %s: %w", p.Manifest.Name, err)
		}
		g.mod = mod
		return g, nil
	})
	if err != nil {
		return nil, err
	}
	h.Instance.Brand = p.Manifest.Name
	h.PluginVersion = p.Manifest.Version
	return h, nil
}

type guestKey struct{}

// guest is one module instance and its per-call state: the staged buffer and
// the output of the current export call.
type guest struct {
	imp     sdk.Imports
	mod     api.Module
	staged  []byte
	out     []byte
	outputs int
	stdio   bytes.Buffer
}

func (g *guest) bind(ctx context.Context) context.Context {
	return context.WithValue(ctx, guestKey{}, g)
}

// call stages input, runs an export and checks the output protocol.
func (g *guest) call(ctx context.Context, export string, input []byte, params ...uint64) ([]byte, error) {
	fn := g.mod.ExportedFunction(export)
	if fn == nil {
		return nil, fmt.Errorf("missing export %s", export)
	}
	g.staged, g.out, g.outputs = input, nil, 0
	res, err := fn.Call(g.bind(ctx), params...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w (guest output: %q)", export, err, g.stdio.String())
	}
	switch {
	case res[0] != abi.StatusOK:
		return nil, fmt.Errorf("%s returned %d", export, res[0])
	case g.outputs != 1:
		return nil, fmt.Errorf("%s called output %d times", export, g.outputs)
	}
	return g.out, nil
}

func (g *guest) Configure(ctx context.Context, req []byte) ([]byte, error) {
	return g.call(ctx, abi.ExportConfigure, req, uint64(len(req)))
}

func (g *guest) Call(ctx context.Context, cmd string, args []byte) ([]byte, error) {
	in := append([]byte(cmd), args...)
	return g.call(ctx, abi.ExportCall, in, uint64(len(cmd)), uint64(len(args)))
}

func (g *guest) HTTP(ctx context.Context, req []byte) ([]byte, error) {
	return g.call(ctx, abi.ExportHTTP, req, uint64(len(req)))
}

func guestOf(ctx context.Context) *guest { return ctx.Value(guestKey{}).(*guest) }

var errOOB = errors.New("out-of-bounds pointer")

func read(m api.Module, ptr, n uint32) []byte {
	b, ok := m.Memory().Read(ptr, n)
	if !ok {
		panic(errOOB) // traps the guest, as the host does
	}
	return bytes.Clone(b)
}

func hostModule(ctx context.Context, r wazero.Runtime) error {
	b := r.NewHostModuleBuilder(abi.ImportModule)
	b.NewFunctionBuilder().WithFunc(func(ctx context.Context, m api.Module, ptr, n uint32) uint32 {
		g := guestOf(ctx)
		k := min(n, uint32(len(g.staged)))
		if !m.Memory().Write(ptr, g.staged[:k]) {
			panic(errOOB)
		}
		return k
	}).Export(abi.ImportBufferRead)
	b.NewFunctionBuilder().WithFunc(func(ctx context.Context, m api.Module, ptr, n uint32) uint32 {
		g := guestOf(ctx)
		g.out = read(m, ptr, n)
		g.outputs++
		return abi.OutputOK
	}).Export(abi.ImportOutput)
	b.NewFunctionBuilder().WithFunc(func(ctx context.Context, m api.Module, level int32, ptr, n uint32) {
		guestOf(ctx).imp.Log(level, read(m, ptr, n))
	}).Export(abi.ImportLog)
	b.NewFunctionBuilder().WithFunc(func(ctx context.Context, ms int64) int32 {
		return guestOf(ctx).imp.Sleep(ctx, ms)
	}).Export(abi.ImportSleep)
	b.NewFunctionBuilder().WithFunc(func(ctx context.Context) int32 {
		if guestOf(ctx).imp.ShouldStop() {
			return 1
		}
		return 0
	}).Export(abi.ImportShouldStop)
	for _, name := range abi.RPCImports {
		b.NewFunctionBuilder().WithFunc(func(ctx context.Context, m api.Module, ptr, n uint32) uint32 {
			g := guestOf(ctx)
			g.staged = g.imp.RPC(ctx, name, read(m, ptr, n))
			return uint32(len(g.staged))
		}).Export(name)
	}
	_, err := b.Instantiate(ctx)
	return err
}
