package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/internal/mirror"
	"github.com/connhost/connhost/internal/secrets"
	"github.com/connhost/connhost/internal/store"
	"github.com/connhost/connhost/internal/supervisor"
)

// core is the state the concern types share: the store, the runtime, the
// secrets box, default limits, logger and clock, and the registry of
// running instances with the compiled plugins they run. Its methods are
// what more than one concern needs: resolving and compiling plugin
// versions, building sandboxes, starting and stopping instances.
type core struct {
	st     *store.Store
	rt     *host.Runtime
	box    *secrets.Box
	log    zerolog.Logger
	limits host.Limits // of instances that set none
	now    func() time.Time

	// lifecycle serialises what starts, stops or switches instances:
	// installs, rollbacks, pins and instance changes.
	lifecycle sync.Mutex
	// drains counts retired sandboxes still finishing their calls.
	drains sync.WaitGroup
	// sup runs the long-running executions of live instances.
	sup *supervisor.Supervisor
	// engine is the mirroring engine, once attached (Mirroring.SetEngine).
	engine atomic.Pointer[mirror.Engine]
	// remote runs the instances of engine groups; nil when engines are
	// not enabled.
	remote Remote
	// observer is told of every command call (SetCommandObserver).
	observer atomic.Pointer[CommandObserver]

	mu      sync.Mutex
	plugins map[string]*host.Plugin  // compiled, by SHA-256
	loading map[string]*pluginLoad   // being compiled, by SHA-256
	live    map[string]*liveInstance // enabled instances, by id
	names   map[string]string        // ids of live, by name

	// opened is set when New returns; started is closed when the
	// start-up starts of the enabled instances have all finished, and
	// startLeft counts those not finished of startTotal.
	opened     atomic.Bool
	started    chan struct{}
	startLeft  atomic.Int64
	startTotal int
	onStart    func(instance string) (done func())
	closing    atomic.Bool
	// gate orders enter's check of closing and its inflight.Add before
	// drain's inflight.Wait (a WaitGroup must not grow from zero while
	// waited on).
	gate     sync.RWMutex
	inflight sync.WaitGroup
}

// liveInstance is an enabled connector instance with its warm sandbox pool.
// calls counts the callers using it (see hold), so a swap closes the pool
// only once they are done.
type liveInstance struct {
	rec    store.Instance
	plugin *host.Plugin
	inst   runner
	calls  sync.WaitGroup
}

// enter registers an in-flight operation that close waits for.
func (c *core) enter() (func(), error) {
	c.gate.RLock()
	defer c.gate.RUnlock()
	if c.closing.Load() {
		return nil, ErrShuttingDown
	}
	c.inflight.Add(1)
	return c.inflight.Done, nil
}

// refuse makes enter fail from now on.
func (c *core) refuse() {
	c.gate.Lock()
	c.closing.Store(true)
	c.gate.Unlock()
}

// drain waits (bounded by ctx) for in-flight operations and retired pools,
// then closes every live instance and compiled plugin. The caller has
// refused new work and stopped the loops that would start any.
func (c *core) drain(ctx context.Context) error {
	done := make(chan struct{})
	go func() { c.inflight.Wait(); c.drains.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		c.log.Warn().Msg("shutdown deadline reached with commands still running")
	}
	c.mu.Lock()
	live := c.live
	c.live = map[string]*liveInstance{}
	c.names = map[string]string{}
	plugins := c.plugins
	c.plugins = map[string]*host.Plugin{}
	c.mu.Unlock()
	var errs []error
	for _, li := range live {
		errs = append(errs, li.inst.Close(ctx))
	}
	for _, p := range plugins {
		errs = append(errs, p.Close(ctx))
	}
	return errors.Join(errs...)
}

// hold returns the live instance with id and counts its caller until
// release is called, so a version switch closes its pool only after the
// callers that picked it are done. li is nil when the instance is not live.
func (c *core) hold(id string) (li *liveInstance, release func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.holdLocked(id)
}

// holdLocked is hold, called with mu held.
func (c *core) holdLocked(id string) (li *liveInstance, release func()) {
	li = c.live[id]
	if li == nil {
		return nil, func() {}
	}
	li.calls.Add(1)
	return li, li.calls.Done
}

// setLive makes li the live instance of its record and returns the one it
// replaces, if any. Called with mu held.
func (c *core) setLive(li *liveInstance) (old *liveInstance) {
	old = c.live[li.rec.ID]
	c.live[li.rec.ID] = li
	c.names[li.rec.Name] = li.rec.ID
	return old
}

// unsetLive removes the live instance with id and returns it, if any.
// Called with mu held.
func (c *core) unsetLive(id string) *liveInstance {
	li := c.live[id]
	if li == nil {
		return nil
	}
	delete(c.live, id)
	if c.names[li.rec.Name] == id {
		delete(c.names, li.rec.Name)
	}
	return li
}

// holdNamed is hold for the live instance called name, without reading
// the store: on the hot paths (webhooks, commands) the record a live
// instance started with is current, since every change to an instance
// restarts it (Instances.Update).
func (c *core) holdNamed(name string) (li *liveInstance, release func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.holdLocked(c.names[name])
}

// instanceOf returns the record and plugin manifest of the instance with
// id: a live instance's own (see holdNamed), else the stored ones. The
// manifest is nil when the stored plugin version cannot be read.
func (c *core) instanceOf(ctx context.Context, id string) (store.Instance, *abi.Manifest, error) {
	c.mu.Lock()
	li := c.live[id]
	c.mu.Unlock()
	if li != nil {
		return li.rec, li.plugin.Manifest, nil
	}
	rec, err := c.st.GetInstance(ctx, id)
	if err != nil {
		return store.Instance{}, nil, err
	}
	return rec, c.manifestFor(ctx, rec), nil
}

// holdStarted is hold for rec, but an enabled instance not live yet while
// the start-up starts run is waited for (bounded by ctx): it may be among
// them.
func (c *core) holdStarted(ctx context.Context, rec store.Instance) (*liveInstance, func(), error) {
	li, release := c.hold(rec.ID)
	if li != nil || !rec.Enabled {
		return li, release, nil
	}
	select {
	case <-c.started:
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("instance %q: waiting for it to start: %w", rec.Name, ctx.Err())
	}
	li, release = c.hold(rec.ID)
	return li, release, nil
}

// running returns the live instance called name, held until release is
// called (see hold). A disabled instance is ErrConflict.
func (c *core) running(ctx context.Context, name string) (li *liveInstance, release func(), err error) {
	if li, release := c.holdNamed(name); li != nil {
		return li, release, nil
	}
	rec, err := c.st.GetInstanceByName(ctx, name)
	if err != nil {
		return nil, nil, fmt.Errorf("instance %q: %w", name, fromStore(err))
	}
	li, release, err = c.holdStarted(ctx, rec)
	if err != nil {
		return nil, nil, err
	}
	if li == nil {
		return nil, nil, fmt.Errorf("%w: instance %q is disabled", ErrConflict, name)
	}
	return li, release, nil
}

// retire closes a replaced live instance once its callers are done. It is
// not stopped: calls in flight finish normally on the old version.
func (c *core) retire(li *liveInstance) {
	c.drains.Add(1)
	go func() {
		defer c.drains.Done()
		li.calls.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
		defer cancel()
		if err := li.inst.Close(ctx); err != nil {
			c.log.Warn().Err(err).Str("instance", li.rec.Name).Str("plugin", li.plugin.Label()).Msg("retired sandbox pool did not drain cleanly")
		}
	}()
}

// kick tells the mirroring engine, if attached, that a local change may
// have something to send.
func (c *core) kick() {
	if e := c.engine.Load(); e != nil {
		e.Kick()
	}
}

// resolvePlugin returns the stored version an instance runs: its pinned
// version, or the plugin's current version (the newest when none was set
// or the current one was deleted).
func (c *core) resolvePlugin(ctx context.Context, name, pinned string) (store.PluginVersion, error) {
	if pinned != "" {
		return c.st.GetPluginVersion(ctx, name, pinned)
	}
	cur, err := c.st.GetPluginCurrent(ctx, name)
	switch {
	case err == nil:
		pv, err := c.st.GetPluginVersion(ctx, name, cur.Version)
		if !errors.Is(err, store.ErrNotFound) {
			return pv, err
		}
	case !errors.Is(err, store.ErrNotFound):
		return store.PluginVersion{}, err
	}
	pvs, err := c.st.ListPluginVersions(ctx, name)
	if err != nil {
		return store.PluginVersion{}, err
	}
	if len(pvs) == 0 {
		return store.PluginVersion{}, fmt.Errorf("plugin %q is not installed: %w", name, ErrNotFound)
	}
	return pvs[0], nil
}

// pluginLoad is one compilation of a plugin version that concurrent
// starts of its instances wait for, rather than each compiling it.
type pluginLoad struct {
	done chan struct{}
	p    *host.Plugin
	err  error
}

// loadPlugin returns the compiled plugin of a stored version, compiling it
// from the verified blob on first use; the instances of a version share
// one compiled module.
func (c *core) loadPlugin(ctx context.Context, pv store.PluginVersion) (*host.Plugin, error) {
	c.mu.Lock()
	if p, ok := c.plugins[pv.SHA256]; ok {
		c.mu.Unlock()
		return p, nil
	}
	if l, ok := c.loading[pv.SHA256]; ok {
		c.mu.Unlock()
		select {
		case <-l.done:
			return l.p, l.err
		case <-ctx.Done():
			return nil, fmt.Errorf("plugin %s@%s: waiting for its compilation: %w", pv.Name, pv.Version, ctx.Err())
		}
	}
	l := &pluginLoad{done: make(chan struct{})}
	c.loading[pv.SHA256] = l
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.loading, pv.SHA256)
		c.mu.Unlock()
		close(l.done)
	}()
	blob, err := c.st.GetPluginBlob(ctx, pv.SHA256)
	if err != nil {
		l.err = err
		return nil, err
	}
	p, err := c.rt.Load(ctx, blob)
	if err != nil {
		l.err = fmt.Errorf("plugin %s@%s: %w", pv.Name, pv.Version, err)
		return nil, l.err
	}
	l.p = c.keepPlugin(ctx, p)
	return l.p, nil
}

// keepPlugin caches a freshly compiled plugin by hash, or returns the one
// already cached (closing p).
func (c *core) keepPlugin(ctx context.Context, p *host.Plugin) *host.Plugin {
	c.mu.Lock()
	defer c.mu.Unlock()
	if existing, ok := c.plugins[p.SHA256]; ok {
		if existing != p {
			_ = p.Close(ctx)
		}
		return existing
	}
	c.plugins[p.SHA256] = p
	return p
}

// manifestOf decodes a stored version's manifest.
func manifestOf(pv store.PluginVersion) (*abi.Manifest, error) {
	var m abi.Manifest
	if len(pv.Manifest) == 0 {
		return &m, nil
	}
	if err := json.Unmarshal(pv.Manifest, &m); err != nil {
		return nil, fmt.Errorf("plugin %s@%s: stored manifest: %w", pv.Name, pv.Version, store.ErrCorrupt)
	}
	return &m, nil
}
