// Package service is the connhost server's application layer: it owns the
// store, the plugin runtime and the running connector instances, and is the
// only way the HTTP API and the CLI change state (API → service → store).
package service

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/host/mirror"
	"github.com/connhost/connhost/host/secrets"
	"github.com/connhost/connhost/store"
)

// Errors callers map to responses. They are the store's sentinels, so an
// error from either layer matches with errors.Is.
var (
	ErrNotFound = store.ErrNotFound
	ErrExists   = store.ErrExists
	ErrInvalid  = store.ErrInvalid
	ErrConflict = store.ErrConflict
)

// ErrShuttingDown is returned for work refused because Close has begun.
var ErrShuttingDown = errors.New("server is shutting down")

// Options configure a Service.
type Options struct {
	Store   *store.Store
	Runtime *host.Runtime
	Secrets *secrets.Box
	Logger  zerolog.Logger
	// Limits are the sandbox limits of instances that do not set their own.
	Limits host.Limits
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// LongRunning configures long-running executions, HTTP into plugins
	// and chat delivery.
	LongRunning LongRunningOptions
	// Idle skips starting the enabled instances, for CLI maintenance
	// commands (API keys, plugin install) that run with the server stopped.
	Idle bool
}

// Service is the connhost server's state and operations. Its methods are
// safe for concurrent use.
type Service struct {
	st     *store.Store
	rt     *host.Runtime
	box    *secrets.Box
	log    zerolog.Logger
	limits host.Limits
	now    func() time.Time

	mu      sync.Mutex
	plugins map[string]*host.Plugin // by SHA-256
	mirror  *mirror.Engine
	live    map[string]*liveInstance
	lr      *longRunning

	ready    atomic.Bool
	closing  atomic.Bool
	inflight sync.WaitGroup
}

// liveInstance is an enabled connector instance with its warm sandbox pool.
type liveInstance struct {
	rec    store.Instance
	plugin *host.Plugin
	inst   *host.Instance
}

// New opens the service: it compiles every installed plugin version that an
// instance uses and starts the enabled instances. Errors starting one
// instance are logged and recorded as its health; they do not stop the
// server.
func New(ctx context.Context, opts Options) (*Service, error) {
	if opts.Store == nil || opts.Runtime == nil || opts.Secrets == nil {
		return nil, errors.New("service: store, runtime and secrets are required")
	}
	s := &Service{
		st: opts.Store, rt: opts.Runtime, box: opts.Secrets, log: opts.Logger,
		limits: opts.Limits, now: opts.Now,
		plugins: map[string]*host.Plugin{}, live: map[string]*liveInstance{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.lr = newLongRunning(s, opts.LongRunning)
	insts, err := s.st.ListInstances(ctx)
	if err != nil {
		return nil, err
	}
	for _, rec := range insts {
		if !rec.Enabled || opts.Idle {
			continue
		}
		if err := s.start(ctx, rec); err != nil {
			s.log.Error().Err(err).Str("instance", rec.Name).Str("plugin", rec.Plugin).Msg("instance did not start")
			_ = s.st.SetHealth(ctx, rec.ID, "instance did not start: "+err.Error(), true)
		}
	}
	s.ready.Store(true)
	return s, nil
}

// Ready reports whether the service has loaded its plugins and instances and
// is not shutting down.
func (s *Service) Ready() bool { return s.ready.Load() && !s.closing.Load() }

// Close stops accepting work, waits for in-flight commands (bounded by ctx),
// and drains every instance's sandbox pool. The store and runtime stay open:
// their owner closes them.
func (s *Service) Close(ctx context.Context) error {
	s.closing.Store(true)
	s.lr.close(ctx)
	done := make(chan struct{})
	go func() { s.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn().Msg("shutdown deadline reached with commands still running")
	}
	s.mu.Lock()
	live := s.live
	s.live = map[string]*liveInstance{}
	plugins := s.plugins
	s.plugins = map[string]*host.Plugin{}
	s.mu.Unlock()
	var errs []error
	for _, li := range live {
		errs = append(errs, li.inst.Close(ctx))
	}
	for _, p := range plugins {
		errs = append(errs, p.Close(ctx))
	}
	return errors.Join(errs...)
}

// enter registers an in-flight operation that Close waits for.
func (s *Service) enter() (func(), error) {
	if s.closing.Load() {
		return nil, ErrShuttingDown
	}
	s.inflight.Add(1)
	return s.inflight.Done, nil
}

// PluginInfo describes one installed plugin version.
type PluginInfo struct {
	Name        string        `json:"name"`
	Version     string        `json:"version"`
	SHA256      string        `json:"sha256"`
	InstalledAt time.Time     `json:"installedAt"`
	InstalledBy string        `json:"installedBy,omitempty"`
	Manifest    *abi.Manifest `json:"manifest"`
}

func pluginInfo(pv store.PluginVersion) (PluginInfo, error) {
	var m abi.Manifest
	if err := json.Unmarshal(pv.Manifest, &m); err != nil {
		return PluginInfo{}, fmt.Errorf("plugin %s@%s: stored manifest: %w", pv.Name, pv.Version, store.ErrCorrupt)
	}
	return PluginInfo{Name: pv.Name, Version: pv.Version, SHA256: pv.SHA256,
		InstalledAt: pv.InstalledAt, InstalledBy: pv.InstalledBy, Manifest: &m}, nil
}

// InstallPlugin verifies, compiles and stores a plugin module. Installing
// the same bytes again is a no-op that returns the existing version; other
// bytes under an existing name and version are refused (versions are
// immutable).
func (s *Service) InstallPlugin(ctx context.Context, wasm []byte, by string) (PluginInfo, error) {
	done, err := s.enter()
	if err != nil {
		return PluginInfo{}, err
	}
	defer done()
	p, err := s.rt.Load(ctx, wasm)
	if err != nil {
		return PluginInfo{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	m := p.Manifest
	if old, err := s.st.GetPluginVersion(ctx, m.Name, m.Version); err == nil {
		_ = p.Close(ctx)
		if old.SHA256 != p.SHA256 {
			return PluginInfo{}, fmt.Errorf("%w: plugin %s@%s is installed with other content (sha256 %s); bump the version",
				ErrExists, m.Name, m.Version, old.SHA256)
		}
		return pluginInfo(old)
	} else if !errors.Is(err, store.ErrNotFound) {
		_ = p.Close(ctx)
		return PluginInfo{}, err
	}
	if err := s.st.PutPluginBlob(ctx, p.SHA256, wasm); err != nil {
		_ = p.Close(ctx)
		return PluginInfo{}, err
	}
	raw, _ := json.Marshal(m)
	pv, err := s.st.PutPluginVersion(ctx, store.PluginVersion{
		Name: m.Name, Version: m.Version, SHA256: p.SHA256, Manifest: raw,
		InstalledAt: s.now().UTC(), InstalledBy: by,
	})
	if err != nil {
		_ = p.Close(ctx)
		return PluginInfo{}, err
	}
	s.mu.Lock()
	if _, ok := s.plugins[p.SHA256]; ok {
		_ = p.Close(ctx)
	} else {
		s.plugins[p.SHA256] = p
	}
	s.mu.Unlock()
	s.log.Info().Str("plugin", m.Name).Str("version", m.Version).Str("sha256", p.SHA256).Msg("plugin installed")
	return pluginInfo(pv)
}

// ListPlugins returns the newest installed version of every plugin.
func (s *Service) ListPlugins(ctx context.Context) ([]PluginInfo, error) {
	pvs, err := s.st.ListPlugins(ctx)
	if err != nil {
		return nil, err
	}
	return pluginInfos(pvs)
}

// PluginVersions returns every installed version of a plugin, newest first.
func (s *Service) PluginVersions(ctx context.Context, name string) ([]PluginInfo, error) {
	pvs, err := s.st.ListPluginVersions(ctx, name)
	if err != nil {
		return nil, err
	}
	if len(pvs) == 0 {
		return nil, fmt.Errorf("plugin %q: %w", name, ErrNotFound)
	}
	return pluginInfos(pvs)
}

func pluginInfos(pvs []store.PluginVersion) ([]PluginInfo, error) {
	out := make([]PluginInfo, 0, len(pvs))
	for _, pv := range pvs {
		pi, err := pluginInfo(pv)
		if err != nil {
			return nil, err
		}
		out = append(out, pi)
	}
	return out, nil
}

// DeletePlugin removes a plugin version, or every version when version is
// "". It refuses while an instance uses a version being removed.
func (s *Service) DeletePlugin(ctx context.Context, name, version string) error {
	versions, err := s.PluginVersions(ctx, name)
	if err != nil {
		return err
	}
	insts, err := s.st.ListInstances(ctx)
	if err != nil {
		return err
	}
	for _, v := range versions {
		if version != "" && v.Version != version {
			continue
		}
		for _, in := range insts {
			if in.Plugin == name && (in.PinnedVersion == "" || in.PinnedVersion == v.Version) {
				return fmt.Errorf("%w: plugin %s@%s is used by instance %q", ErrConflict, name, v.Version, in.Name)
			}
		}
	}
	found := false
	for _, v := range versions {
		if version != "" && v.Version != version {
			continue
		}
		found = true
		if err := s.st.DeletePluginVersion(ctx, name, v.Version); err != nil {
			return err
		}
	}
	if !found {
		return fmt.Errorf("plugin %s@%s: %w", name, version, ErrNotFound)
	}
	return nil
}

// resolvePlugin returns the stored version an instance runs: its pinned
// version, or the newest.
func (s *Service) resolvePlugin(ctx context.Context, name, pinned string) (store.PluginVersion, error) {
	if pinned != "" {
		return s.st.GetPluginVersion(ctx, name, pinned)
	}
	pvs, err := s.st.ListPluginVersions(ctx, name)
	if err != nil {
		return store.PluginVersion{}, err
	}
	if len(pvs) == 0 {
		return store.PluginVersion{}, fmt.Errorf("plugin %q is not installed: %w", name, ErrNotFound)
	}
	return pvs[0], nil
}

// loadPlugin returns the compiled plugin of a stored version, compiling it
// from the verified blob on first use.
func (s *Service) loadPlugin(ctx context.Context, pv store.PluginVersion) (*host.Plugin, error) {
	s.mu.Lock()
	p, ok := s.plugins[pv.SHA256]
	s.mu.Unlock()
	if ok {
		return p, nil
	}
	blob, err := s.st.GetPluginBlob(ctx, pv.SHA256)
	if err != nil {
		return nil, err
	}
	p, err = s.rt.Load(ctx, blob)
	if err != nil {
		return nil, fmt.Errorf("plugin %s@%s: %w", pv.Name, pv.Version, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if existing, ok := s.plugins[pv.SHA256]; ok {
		_ = p.Close(ctx)
		return existing, nil
	}
	s.plugins[pv.SHA256] = p
	return p, nil
}

// HashAPIKey returns the stored form of an API key.
func HashAPIKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// apiKeyPrefix starts every API key, so a leaked key is recognisable by
// secret scanners.
const apiKeyPrefix = "chk_"

func newAPIKey() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return apiKeyPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}
