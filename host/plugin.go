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
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/connhost/connhost/abi"
)

// Runtime loads plugins and runs their connector instances.
type Runtime struct {
	cfg Config
	// closeOnDone is WithCloseOnContextDone; always true outside the
	// benchmark that measures its cost.
	closeOnDone bool
	transport   *http.Transport

	mu      sync.Mutex
	plugins map[*Plugin]struct{}
	closed  bool
}

// NewRuntime returns a Runtime. With cfg.CacheDir set, compiled plugins are
// cached on disk below it.
func NewRuntime(ctx context.Context, cfg Config) (*Runtime, error) {
	return newRuntime(ctx, cfg, true)
}

func newRuntime(_ context.Context, cfg Config, closeOnDone bool) (*Runtime, error) {
	if cfg.CacheDir != "" {
		if err := os.MkdirAll(cfg.CacheDir, 0o700); err != nil {
			return nil, fmt.Errorf("compilation cache %s: %w", cfg.CacheDir, err)
		}
	}
	// No proxy from the environment: the egress allow-list names the hosts
	// actually dialled.
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &Runtime{cfg: cfg, closeOnDone: closeOnDone, transport: tr, plugins: map[*Plugin]struct{}{}}, nil
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
	r.transport.CloseIdleConnections()
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

	closeOnce sync.Once
	closeErr  error
}

// Label returns "name@version".
func (p *Plugin) Label() string { return p.Manifest.Name + "@" + p.Manifest.Version }

// Close releases the compiled module and every module instance of p.
func (p *Plugin) Close(ctx context.Context) error {
	p.closeOnce.Do(func() {
		p.rt.mu.Lock()
		delete(p.rt.plugins, p)
		p.rt.mu.Unlock()
		if err := p.wr.Close(ctx); err != nil {
			p.closeErr = fmt.Errorf("plugin %q: close: %w", p.Label(), err)
		}
	})
	return p.closeErr
}

// Load hashes, reads and validates a plugin file and compiles it (through
// the compilation cache). Errors are *abi.Error: bad_request for a file
// that is not a wasm module with a valid manifest, incompatible for a module
// that does not implement ABI v1 (exports, imports or version).
//
// Each plugin gets its own wazero runtime, with connhost_v1 and WASI
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
	p := &Plugin{Manifest: m, SHA256: sha, Size: len(wasm), rt: r}
	start := time.Now()
	log := r.cfg.Logger.With().Str("plugin", label).Str("sha256", sha).Logger()
	cached := r.cfg.CacheDir != "" && dirHasEntries(filepath.Join(r.cfg.CacheDir, sha))
	if !cached {
		// A cold compile of a Go guest takes seconds: say so before it starts.
		log.Info().Int("bytes", len(wasm)).Msg("compiling plugin")
	}
	if err := p.compile(ctx, wasm); err != nil {
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
	r.mu.Lock()
	r.plugins[p] = struct{}{}
	r.mu.Unlock()
	log.Info().Bool("from_cache", cached).Dur("took", time.Since(start)).Msg("plugin loaded")
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
	if err != nil && dir != "" && dirHasEntries(dir) {
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
	rc := wazero.NewRuntimeConfigCompiler().
		WithCoreFeatures(api.CoreFeaturesV2).
		WithCloseOnContextDone(p.rt.closeOnDone)
	if dir != "" {
		cc, err := wazero.NewCompilationCacheWithDir(dir)
		if err != nil {
			return abi.Errorf(abi.KindInternalError, "plugin %q: compilation cache: %v", p.Label(), err)
		}
		rc = rc.WithCompilationCache(cc)
	}
	wr := wazero.NewRuntimeWithConfig(ctx, rc)
	if err := instantiateWASI(ctx, wr); err != nil {
		_ = wr.Close(ctx)
		return abi.Errorf(abi.KindInternalError, "plugin %q: instantiate WASI: %v", p.Label(), err)
	}
	if err := instantiateHostModule(ctx, wr); err != nil {
		_ = wr.Close(ctx)
		return abi.Errorf(abi.KindInternalError, "plugin %q: instantiate %s: %v", p.Label(), abi.ImportModule, err)
	}
	cm, err := wr.CompileModule(ctx, wasm)
	if err != nil {
		_ = wr.Close(ctx)
		return abi.Errorf(abi.KindBadRequest, "plugin %q: compile: %v", p.Label(), err)
	}
	p.wr, p.compiled = wr, cm
	return nil
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

func (s funcSig) equal(o funcSig) bool {
	return slices.Equal(s.params, o.params) && slices.Equal(s.results, o.results)
}

// check verifies the module's exports and imports against ABI v1.
func (p *Plugin) check() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if _, ok := p.compiled.ExportedMemories()[abi.ExportMemory]; !ok {
		bad("missing export %q (memory)", abi.ExportMemory)
	} else {
		p.minPages = p.compiled.ExportedMemories()[abi.ExportMemory].Min()
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

	hostDefs := map[string]map[string]api.FunctionDefinition{}
	for _, name := range []string{wasi_snapshot_preview1.ModuleName, abi.ImportModule} {
		hostDefs[name] = p.wr.Module(name).ExportedFunctionDefinitions()
	}
	for _, d := range p.compiled.ImportedFunctions() {
		mod, name, _ := d.Import()
		defs, ok := hostDefs[mod]
		if !ok {
			bad("import %q.%q: unknown module %q (want %s or %s)", mod, name, mod, abi.ImportModule, wasi_snapshot_preview1.ModuleName)
			continue
		}
		hd, ok := defs[name]
		if !ok {
			bad("import %q.%q: no such function in %s", mod, name, mod)
			continue
		}
		if got, want := sigOf(d), sigOf(hd); !got.equal(want) {
			bad("import %q.%q has signature %s, want %s", mod, name, got, want)
		}
	}
	for _, d := range p.compiled.ImportedMemories() {
		mod, name, _ := d.Import()
		bad("import %q.%q: memory imports are not allowed (the guest exports its memory)", mod, name)
	}
	if err := errors.Join(errs...); err != nil {
		return abi.Errorf(abi.KindIncompatible, "plugin %q: %v", p.Label(), err)
	}
	return nil
}

// probe instantiates the module once to check connhost_abi_version.
func (p *Plugin) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, DefaultCallTimeout)
	defer cancel()
	lim := Limits{}.withDefaults()
	cs := &callState{lim: lim, command: "load", log: p.rt.cfg.Logger.With().Str("plugin", p.Label()).Logger()}
	mi, aerr := p.instantiate(ctx, cs)
	if aerr != nil {
		return abi.Errorf(aerr.Kind, "plugin %q: %s", p.Label(), aerr.Message)
	}
	_ = mi.mod.Close(ctx)
	return nil
}
