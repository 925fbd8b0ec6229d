package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host/internal/gate"
)

// Runtime loads plugins and runs their connector instances.
type Runtime struct {
	cfg Config
	// unchecked compiles plugins without the gate's instrumentation, so
	// nothing stops a spinning guest; only the benchmarks that measure the
	// instrumentation's cost set it.
	unchecked bool
	transport *http.Transport
	dialer    *net.Dialer
	// hostFuncs are the signatures of the functions a plugin may import,
	// by module and name.
	hostFuncs map[string]map[string]funcSig
	// compiling holds a slot per compilation in progress.
	compiling chan struct{}

	mu      sync.Mutex
	plugins map[*Plugin]struct{}
	closed  bool
}

// NewRuntime returns a Runtime. With cfg.CacheDir set, compiled plugins are
// cached on disk below it.
func NewRuntime(ctx context.Context, cfg Config) (*Runtime, error) {
	return newRuntime(ctx, cfg, false)
}

func newRuntime(ctx context.Context, cfg Config, unchecked bool) (*Runtime, error) {
	if cfg.CacheDir != "" {
		if err := os.MkdirAll(cfg.CacheDir, 0o700); err != nil {
			return nil, fmt.Errorf("compilation cache %s: %w", cfg.CacheDir, err)
		}
	}
	cfg.Limits = cfg.Limits.withDefaults()
	cfg.Module.MemoryBytes = cfg.Limits.MemoryBytes
	if cfg.StackBytes == 0 {
		cfg.StackBytes = DefaultStackBytes
	}
	if cfg.CompileTimeout <= 0 {
		cfg.CompileTimeout = DefaultCompileTimeout
	}
	hostFuncs, err := hostFunctions(ctx)
	if err != nil {
		return nil, err
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	// No proxy from the environment: the egress allow-list names the hosts
	// actually dialled. Each Instance clones the transport with a dialer
	// that checks addresses against its allow-list.
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &Runtime{
		cfg: cfg, unchecked: unchecked, transport: tr, dialer: dialer, hostFuncs: hostFuncs,
		compiling: make(chan struct{}, CompileConcurrency), plugins: map[*Plugin]struct{}{},
	}, nil
}

// hostFunctions returns the signatures of the host functions plugins may
// import, read from the host modules instantiated in a scratch runtime.
func hostFunctions(ctx context.Context) (map[string]map[string]funcSig, error) {
	wr := wazero.NewRuntime(ctx)
	defer wr.Close(ctx)
	if err := instantiateHostModules(ctx, wr, 0); err != nil {
		return nil, err
	}
	out := map[string]map[string]funcSig{}
	for _, mod := range []string{wasi_snapshot_preview1.ModuleName, abi.ImportModule} {
		out[mod] = map[string]funcSig{}
		for name, d := range wr.Module(mod).ExportedFunctionDefinitions() {
			out[mod][name] = sigOf(d)
		}
	}
	return out, nil
}

// instantiateHostModules instantiates WASI, connhost_v1 and the guard's
// check function in wr.
func instantiateHostModules(ctx context.Context, wr wazero.Runtime, stackBytes uint32) error {
	if err := instantiateWASI(ctx, wr); err != nil {
		return fmt.Errorf("instantiate WASI: %w", err)
	}
	if err := instantiateHostModule(ctx, wr); err != nil {
		return fmt.Errorf("instantiate %s: %w", abi.ImportModule, err)
	}
	if err := instantiateGuard(ctx, wr, stackBytes); err != nil {
		return fmt.Errorf("instantiate %s: %w", guardModule, err)
	}
	return nil
}

// Close closes every plugin loaded by r, and with them their module
// instances.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closed = true
	ps := make([]*Plugin, 0, len(r.plugins))
	for p := range r.plugins {
		ps = append(ps, p)
	}
	r.mu.Unlock()
	var errs []error
	for _, p := range ps {
		errs = append(errs, p.Close(ctx))
	}
	return errors.Join(errs...)
}

// Plugin is a loaded, validated and compiled plugin. Connector instances of
// it are created with Runtime.NewInstance.
type Plugin struct {
	Manifest *abi.Manifest
	SHA256   string // hex SHA-256 of the whole .wasm file
	Size     int    // bytes

	rt       *Runtime
	wr       wazero.Runtime
	compiled wazero.CompiledModule
	hasInit  bool
	hasHTTP  bool
	minPages uint32
	spare    spareSlot

	closeOnce sync.Once
	closeErr  error
}

// Label returns "name@version".
func (p *Plugin) Label() string { return p.Manifest.Name + "@" + p.Manifest.Version }

// Close releases the compiled module and every module instance of p.
func (p *Plugin) Close(ctx context.Context) error {
	p.closeOnce.Do(func() {
		p.dropSpare()
		p.rt.mu.Lock()
		delete(p.rt.plugins, p)
		p.rt.mu.Unlock()
		if err := p.wr.Close(ctx); err != nil {
			p.closeErr = fmt.Errorf("plugin %q: close: %w", p.Label(), err)
		}
	})
	return p.closeErr
}

// CheckModule runs the load-time gate on a plugin file without compiling
// it: the module's declarations and code against lim, and its imports
// against ABI v1. `connhost plugin pack` and `inspect` use it; Load runs the
// same gate. Errors are *abi.Error of kind incompatible.
func CheckModule(ctx context.Context, wasm []byte, lim ModuleLimits) error {
	hostFuncs, err := hostFunctions(ctx)
	if err != nil {
		return abi.Errorf(abi.KindInternalError, "%v", err)
	}
	if lim.MemoryBytes == 0 {
		lim.MemoryBytes = DefaultMemoryBytes
	}
	_, err = parseModule(wasm, lim, hostFuncs)
	return err
}

// parseModule is the load-time gate: gate.Parse with the imports checked
// against the host's functions.
func parseModule(wasm []byte, lim ModuleLimits, hostFuncs map[string]map[string]funcSig) (*gate.Module, error) {
	mod, err := gate.Parse(wasm, lim, func(imp gate.Import, params, results []byte) error {
		defs, ok := hostFuncs[imp.Module]
		if !ok {
			return fmt.Errorf("import %q.%q: unknown module %q (want %s or %s)", imp.Module, imp.Name, imp.Module, abi.ImportModule, wasi_snapshot_preview1.ModuleName)
		}
		want, ok := defs[imp.Name]
		if !ok {
			return fmt.Errorf("import %q.%q: no such function in %s", imp.Module, imp.Name, imp.Module)
		}
		if got := sigFromBytes(params, results); !got.equal(want) {
			return fmt.Errorf("import %q.%q has signature %s, want %s", imp.Module, imp.Name, got, want)
		}
		return nil
	})
	if err != nil {
		return nil, abi.Errorf(abi.KindIncompatible, "%v", err)
	}
	return mod, nil
}

// Load hashes, reads and validates a plugin file and compiles it (through
// the compilation cache). Errors are *abi.Error: bad_request for a file
// that is not a wasm module with a valid manifest, incompatible for a module
// beyond the module limits or that does not implement ABI v1 (exports,
// imports or version), timeout for a guest that does not finish loading
// within the call timeout.
//
// Each plugin gets its own wazero runtime, with the host modules
// instantiated once in it, and its own cache subdirectory named by its
// SHA-256: the cache is keyed by content, not trusted, so a cache entry that
// fails to load is removed and the module compiled afresh.
func (r *Runtime) Load(ctx context.Context, wasm []byte) (*Plugin, error) {
	sum := sha256.Sum256(wasm)
	sha := hex.EncodeToString(sum[:])
	m, err := abi.ReadManifest(wasm)
	if err != nil {
		return nil, abi.Errorf(abi.KindBadRequest, "plugin sha256 %s: %v", sha[:12], err)
	}
	label := m.Name + "@" + m.Version
	if m.ABIVersion != abi.Version {
		return nil, abi.Errorf(abi.KindIncompatible, "plugin %q: manifest abi_version %d, this host serves %d", label, m.ABIVersion, abi.Version)
	}
	if err := m.Validate(); err != nil {
		return nil, abi.Errorf(abi.KindBadRequest, "plugin %q: invalid manifest: %v", label, err)
	}
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return nil, abi.Errorf(abi.KindUnavailable, "plugin %q: runtime closed", label)
	}
	gatePath := r.gateCachePath(sha)
	ge, gateCached, err := r.gateModule(wasm, gatePath)
	if err != nil {
		return nil, abi.Errorf(abi.KindIncompatible, "plugin %q: %s", label, err.(*abi.Error).Message)
	}
	code := ge.code
	p := &Plugin{Manifest: m, SHA256: sha, Size: len(wasm), rt: r, minPages: ge.minPages}
	start := time.Now()
	log := r.cfg.Logger.With().Str("plugin", label).Str("sha256", sha).Logger()
	cached := r.cfg.CacheDir != "" && dirHasEntries(filepath.Join(r.cfg.CacheDir, sha))
	if !cached {
		// A cold compile of a Go guest takes seconds: say so before it starts.
		log.Info().Int("bytes", len(wasm)).Msg("compiling plugin")
	}
	if err := p.compile(ctx, code); err != nil {
		return nil, err
	}
	if err := p.check(); err != nil {
		_ = p.wr.Close(ctx)
		return nil, err
	}
	if err := p.probe(ctx); err != nil {
		_ = p.wr.Close(ctx)
		return nil, err
	}
	if !gateCached {
		// Only a module that compiled, passed the checks and probed is
		// cached as such.
		writeGateCache(gatePath, ge)
	}
	r.mu.Lock()
	r.plugins[p] = struct{}{}
	r.mu.Unlock()
	log.Info().Bool("from_cache", cached).Bool("gate_from_cache", gateCached).Dur("took_ms", time.Since(start)).Msg("plugin loaded")
	return p, nil
}

// compile compiles wasm in a fresh wazero runtime. A failure with a
// non-empty cache directory is retried once with the directory emptied.
func (p *Plugin) compile(ctx context.Context, wasm []byte) error {
	dir := ""
	if p.rt.cfg.CacheDir != "" {
		dir = filepath.Join(p.rt.cfg.CacheDir, p.SHA256)
	}
	err := p.compileIn(ctx, dir, wasm)
	if err != nil && abi.KindOf(err) != abi.KindTimeout && dir != "" && dirHasEntries(dir) {
		p.rt.cfg.Logger.Warn().Str("plugin", p.Label()).Str("sha256", p.SHA256).Err(err).
			Msg("discarding compilation cache entry")
		if rmErr := os.RemoveAll(dir); rmErr != nil {
			return abi.Errorf(abi.KindInternalError, "plugin %q: remove cache entry: %v", p.Label(), rmErr)
		}
		err = p.compileIn(ctx, dir, wasm)
	}
	return err
}

func dirHasEntries(dir string) bool {
	ents, err := os.ReadDir(dir)
	return err == nil && len(ents) > 0
}

func (p *Plugin) compileIn(ctx context.Context, dir string, wasm []byte) error {
	rc := wazero.NewRuntimeConfigCompiler().WithCoreFeatures(api.CoreFeaturesV2)
	if dir != "" {
		cc, err := wazero.NewCompilationCacheWithDir(dir)
		if err != nil {
			return abi.Errorf(abi.KindInternalError, "plugin %q: compilation cache: %v", p.Label(), err)
		}
		rc = rc.WithCompilationCache(cc)
	}
	wr := wazero.NewRuntimeWithConfig(ctx, rc)
	if err := instantiateHostModules(ctx, wr, p.rt.cfg.StackBytes); err != nil {
		_ = wr.Close(ctx)
		return abi.Errorf(abi.KindInternalError, "plugin %q: %v", p.Label(), err)
	}
	cm, owned, err := p.rt.compileModule(ctx, wr, wasm)
	if err != nil {
		if owned {
			_ = wr.Close(ctx)
		}
		if errors.Is(err, errCompileTimeout) {
			return abi.Errorf(abi.KindTimeout, "plugin %q: %v", p.Label(), err)
		}
		return abi.Errorf(abi.KindBadRequest, "plugin %q: compile: %v", p.Label(), err)
	}
	p.wr, p.compiled = wr, cm
	return nil
}

var errCompileTimeout = errors.New("compilation exceeded its time budget")

// compileWorkers is how many goroutines compile one plugin's functions.
const compileWorkers = 2

// compileModule compiles wasm in wr within the runtime's compile slots and
// time budget. A compilation past its budget is abandoned: it stops at the
// next function it would compile, still holding its slot until then, and
// closes wr; owned is then false.
func (r *Runtime) compileModule(ctx context.Context, wr wazero.Runtime, wasm []byte) (cm wazero.CompiledModule, owned bool, err error) {
	timer := time.NewTimer(r.cfg.CompileTimeout)
	defer timer.Stop()
	select {
	case r.compiling <- struct{}{}:
	case <-ctx.Done():
		return nil, true, ctx.Err()
	case <-timer.C:
		return nil, true, fmt.Errorf("%w (%s) waiting for a compile slot", errCompileTimeout, r.cfg.CompileTimeout)
	}
	type result struct {
		cm  wazero.CompiledModule
		err error
	}
	done := make(chan result, 1)
	var claimed atomic.Bool // the first to claim the outcome owns wr
	// wazero checks the context between functions only when it compiles
	// with more than one worker.
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		defer func() { <-r.compiling }()
		defer cancel()
		cm, err := wr.CompileModule(experimental.WithCompilationWorkers(cctx, compileWorkers), wasm)
		if !claimed.CompareAndSwap(false, true) {
			_ = wr.Close(context.Background())
			return
		}
		done <- result{cm, err}
	}()
	var stop error
	select {
	case res := <-done:
		return res.cm, true, res.err
	case <-timer.C:
		stop = fmt.Errorf("%w (%s, compile_timeout)", errCompileTimeout, r.cfg.CompileTimeout)
	case <-ctx.Done():
		stop = ctx.Err()
	}
	if claimed.CompareAndSwap(false, true) {
		cancel()
		return nil, false, stop
	}
	res := <-done
	return res.cm, true, res.err
}

var (
	sigVoid   = funcSig{}
	sigI32    = funcSig{results: []api.ValueType{api.ValueTypeI32}}
	sigI32I32 = funcSig{params: []api.ValueType{api.ValueTypeI32}, results: []api.ValueType{api.ValueTypeI32}}
	sigCall   = funcSig{params: []api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, results: []api.ValueType{api.ValueTypeI32}}
)

type funcSig struct{ params, results []api.ValueType }

func (s funcSig) String() string { return sigString(s.params) + " -> " + sigString(s.results) }

func sigString(ts []api.ValueType) string {
	out := "("
	for i, t := range ts {
		if i > 0 {
			out += ", "
		}
		out += api.ValueTypeName(t)
	}
	return out + ")"
}

func sigOf(d api.FunctionDefinition) funcSig {
	return funcSig{params: d.ParamTypes(), results: d.ResultTypes()}
}

// sigFromBytes reads value types in their binary encoding, which is also
// the value of api.ValueType.
func sigFromBytes(params, results []byte) funcSig {
	return funcSig{params: slices.Clone(params), results: slices.Clone(results)}
}

func (s funcSig) equal(o funcSig) bool {
	return slices.Equal(s.params, o.params) && slices.Equal(s.results, o.results)
}

// check verifies the module's exports against ABI v1 (the gate has checked
// its imports).
func (p *Plugin) check() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if _, ok := p.compiled.ExportedMemories()[abi.ExportMemory]; !ok {
		bad("missing export %q (memory)", abi.ExportMemory)
	}
	exports := p.compiled.ExportedFunctions()
	want := []struct {
		name     string
		sig      funcSig
		required bool
	}{
		{abi.ExportInitialize, sigVoid, false},
		{abi.ExportABIVersion, sigI32, true},
		{abi.ExportConfigure, sigI32I32, true},
		{abi.ExportCall, sigCall, true},
		{abi.ExportHTTP, sigI32I32, p.Manifest.LongRunningHTTP},
	}
	for _, w := range want {
		d, ok := exports[w.name]
		switch {
		case !ok && w.required:
			bad("missing export %q %s", w.name, w.sig)
		case ok && !sigOf(d).equal(w.sig):
			bad("export %q has signature %s, want %s", w.name, sigOf(d), w.sig)
		}
	}
	_, p.hasInit = exports[abi.ExportInitialize]
	_, p.hasHTTP = exports[abi.ExportHTTP]

	if err := errors.Join(errs...); err != nil {
		return abi.Errorf(abi.KindIncompatible, "plugin %q: %v", p.Label(), err)
	}
	return nil
}

// probe instantiates the module once to check connhost_abi_version, under
// the runtime's limits.
func (p *Plugin) probe(ctx context.Context) error {
	lim := p.rt.cfg.Limits
	ctx, cancel := context.WithTimeout(ctx, lim.CallTimeout)
	defer cancel()
	cs := &callState{lim: lim, command: "load", log: p.rt.cfg.Logger.With().Str("plugin", p.Label()).Logger()}
	mi, aerr := p.instantiate(ctx, cs)
	if aerr != nil {
		return abi.Errorf(aerr.Kind, "plugin %q: %s", p.Label(), aerr.Message)
	}
	mi.staged = nil
	p.keepSpare(mi, lim.MemoryBytes)
	return nil
}
