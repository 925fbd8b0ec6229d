package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/internal/store"
)

// activation is one change of a plugin's current version.
type activation struct {
	by            string
	force, verify bool
	// commit edits the plugin's current-version record; it runs only once
	// every new sandbox is warm (and verified).
	commit func(*store.PluginCurrent)
}

// activate makes pv (compiled as p) the current version of its plugin and
// switches every enabled instance that follows the latest to it. The
// caller holds the lifecycle lock. In order: the followers' params are
// checked against the new manifest (unless forced); a sandbox pool is
// built and warmed for each enabled follower, and test-module run on it
// when asked; only when all succeed is the current version recorded and
// are the live instances replaced, under the registry's lock, so each call
// goes to exactly one version. The old pools drain in the background;
// long-running executions restart on the new version. It returns the
// switched instances' names.
func (ps *Plugins) activate(ctx context.Context, pv store.PluginVersion, p *host.Plugin, a activation) ([]string, error) {
	recs, err := ps.c.st.ListInstances(ctx)
	if err != nil {
		return nil, err
	}
	var targets []switchTarget
	for _, rec := range recs {
		if rec.Plugin != pv.Name || rec.PinnedVersion != "" {
			continue
		}
		targets = append(targets, switchTarget{rec: rec})
	}
	sort.Slice(targets, func(i, j int) bool { return targets[i].rec.Name < targets[j].rec.Name })
	if !a.force {
		cur, err := ps.c.resolvePlugin(ctx, pv.Name, "")
		if err != nil {
			return nil, err
		}
		old, err := manifestOf(cur)
		if err != nil {
			return nil, err
		}
		for _, t := range targets {
			if err := ps.checkUpgrade(old, p.Manifest, t.rec); err != nil {
				return nil, err
			}
		}
	}
	if err := ps.prepare(ctx, targets, p, a.verify); err != nil {
		return nil, err
	}
	if _, err := ps.c.st.UpdatePluginCurrent(ctx, pv.Name, func(cur *store.PluginCurrent) error {
		a.commit(cur)
		return nil
	}); err != nil {
		closeTargets(ctx, targets)
		return nil, err
	}
	switched := ps.switchLive(ctx, targets, p)
	ps.c.log.Info().Str("plugin", pv.Name+"@"+pv.Version).Str("by", a.by).Strs("instances", switched).Msg("plugin version is current")
	return switched, nil
}

// switchTarget is one instance to switch and its new, warm sandbox pool.
type switchTarget struct {
	rec  store.Instance
	inst runner
}

// prepare builds and warms a pool of p for each enabled target, running
// test-module on it when verify is set. On any failure it closes them all
// and names the instance that failed.
func (ps *Plugins) prepare(ctx context.Context, targets []switchTarget, p *host.Plugin, verify bool) error {
	for i := range targets {
		t := &targets[i]
		if !t.rec.Enabled {
			continue
		}
		inst, err := ps.c.runnerOf(ctx, t.rec, p, ps.c.limitsFor(t.rec.Settings))
		if err == nil {
			t.inst = inst
			err = inst.Warm(ctx, 1)
		}
		if err == nil && verify {
			start := time.Now()
			_, err = inst.Execute(ctx, abi.CommandTestModule, json.RawMessage(`{}`))
			ps.c.observe(t.rec.Name, abi.CommandTestModule, TriggerAPI, start, err)
		}
		if err != nil {
			closeTargets(ctx, targets)
			return fmt.Errorf("%w: instance %q on plugin %s: %w; no instance was switched", ErrConflict, t.rec.Name, p.Label(), err)
		}
	}
	return nil
}

// closeTargets closes the pools prepare built.
func closeTargets(ctx context.Context, targets []switchTarget) {
	for i := range targets {
		if targets[i].inst != nil {
			_ = targets[i].inst.Close(context.WithoutCancel(ctx))
			targets[i].inst = nil
		}
	}
}

// switchLive replaces the live instances of targets with their new pools.
// A target that is not live (the server is idle, or it was stopped) keeps
// nothing: it starts on the current version when enabled.
func (ps *Plugins) switchLive(ctx context.Context, targets []switchTarget, p *host.Plugin) []string {
	var switched []string
	var retired []*liveInstance
	ps.c.mu.Lock()
	for _, t := range targets {
		if t.inst == nil {
			continue
		}
		old := ps.c.live[t.rec.ID]
		if old == nil {
			_ = t.inst.Close(context.WithoutCancel(ctx))
			continue
		}
		ps.c.setLive(&liveInstance{rec: t.rec, plugin: p, inst: t.inst})
		retired = append(retired, old)
		switched = append(switched, t.rec.Name)
	}
	ps.c.mu.Unlock()
	for _, old := range retired {
		ps.c.retire(old)
		if wantsLongRun(old.plugin.Manifest, old.rec) {
			ps.c.stopLongRunning(ctx, old.rec)
		}
	}
	for _, t := range targets {
		if t.inst == nil || !wantsLongRun(p.Manifest, t.rec) {
			continue
		}
		if err := ps.c.startLongRunning(ctx, t.rec, p); err != nil {
			ps.c.log.Error().Err(err).Str("instance", t.rec.Name).Str("plugin", p.Label()).Msg("long-running execution did not restart on the new version")
		}
	}
	return switched
}

// checkUpgrade refuses to move rec from manifest old to manifest next when
// its params would not fit: a param it sets that next no longer declares or
// declares with another type, or params that no longer validate (e.g. a new
// required param). The message names the instance and the param.
func (ps *Plugins) checkUpgrade(old, next *abi.Manifest, rec store.Instance) error {
	label := next.Name + "@" + next.Version
	var errs []error
	for _, name := range sortedKeys(rec.Params) {
		np, ok := next.Param(name)
		if !ok {
			errs = append(errs, fmt.Errorf("param %q is set but %s no longer declares it", name, label))
			continue
		}
		if op, ok := old.Param(name); ok && op.Type != np.Type {
			errs = append(errs, fmt.Errorf("param %q changes type from %s to %s", name, op.Type, np.Type))
		}
	}
	if len(errs) == 0 {
		params, err := ps.c.openParams(old, rec)
		if err != nil {
			return err
		}
		if _, err := next.ValidateParams(params); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: instance %q cannot move to plugin %s: %w (fix the instance's params, pin it to its version, or force)",
			ErrConflict, rec.Name, label, err)
	}
	return nil
}

// sortedKeys returns m's keys in order, so messages list params stably.
func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Pin pins an instance to an installed version of its plugin, or
// with version "" makes it follow the current version, switching it
// atomically as Install switches followers: params checked (unless
// forced), new pool warmed (and test-module run when asked) before calls
// move to it.
func (ps *Plugins) Pin(ctx context.Context, name, version string, o SwitchOptions) (InstanceView, error) {
	done, err := ps.c.enter()
	if err != nil {
		return InstanceView{}, err
	}
	defer done()
	ps.c.lifecycle.Lock()
	defer ps.c.lifecycle.Unlock()
	rec, err := ps.c.st.GetInstanceByName(ctx, name)
	if err != nil {
		return InstanceView{}, fmt.Errorf("instance %q: %w", name, fromStore(err))
	}
	cur, err := ps.c.resolvePlugin(ctx, rec.Plugin, rec.PinnedVersion)
	if err != nil {
		return InstanceView{}, fmt.Errorf("instance %q: %w", name, fromStore(err))
	}
	next, err := ps.c.resolvePlugin(ctx, rec.Plugin, version)
	if err != nil {
		return InstanceView{}, fmt.Errorf("instance %q: %w", name, fromStore(err))
	}
	p, err := ps.c.loadPlugin(ctx, next)
	if err != nil {
		return InstanceView{}, fromStore(err)
	}
	if !o.Force {
		old, err := manifestOf(cur)
		if err != nil {
			return InstanceView{}, err
		}
		if err := ps.checkUpgrade(old, p.Manifest, rec); err != nil {
			return InstanceView{}, err
		}
	}
	targets := []switchTarget{{rec: rec}}
	if err := ps.prepare(ctx, targets, p, o.VerifyInstances); err != nil {
		return InstanceView{}, err
	}
	updated, err := ps.c.st.UpdateInstance(ctx, rec.ID, func(r *store.Instance) error {
		r.PinnedVersion = version
		return nil
	})
	if err != nil {
		closeTargets(ctx, targets)
		return InstanceView{}, fromStore(err)
	}
	targets[0].rec = updated
	ps.switchLive(ctx, targets, p)
	ps.c.log.Info().Str("instance", name).Str("plugin", p.Label()).Str("pinned", version).Str("by", o.By).Msg("instance version changed")
	return ps.c.view(ctx, updated)
}
