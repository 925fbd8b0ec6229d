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
	"github.com/connhost/connhost/store"
)

// drainTimeout bounds how long a retired sandbox pool waits for the calls
// that were in flight when its instance switched version.
const drainTimeout = 10 * time.Minute

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
// caller holds s.lifecycle. In order: the followers' params are checked
// against the new manifest (unless forced); a sandbox pool is built and
// warmed for each enabled follower, and test-module run on it when asked;
// only when all succeed is the current version recorded and are the live
// instances replaced, under s.mu, so each call goes to exactly one version.
// The old pools drain in the background; long-running executions restart
// on the new version. It returns the switched instances' names.
func (s *Service) activate(ctx context.Context, pv store.PluginVersion, p *host.Plugin, a activation) ([]string, error) {
	recs, err := s.st.ListInstances(ctx)
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
		cur, err := s.resolvePlugin(ctx, pv.Name, "")
		if err != nil {
			return nil, err
		}
		old, err := manifestOf(cur)
		if err != nil {
			return nil, err
		}
		for _, t := range targets {
			if err := s.checkUpgrade(old, p.Manifest, t.rec); err != nil {
				return nil, err
			}
		}
	}
	if err := s.prepare(ctx, targets, p, a.verify); err != nil {
		return nil, err
	}
	if _, err := s.st.UpdatePluginCurrent(ctx, pv.Name, func(c *store.PluginCurrent) error {
		a.commit(c)
		return nil
	}); err != nil {
		closeTargets(ctx, targets)
		return nil, err
	}
	switched := s.switchLive(ctx, targets, p)
	s.log.Info().Str("plugin", pv.Name).Str("version", pv.Version).Str("by", a.by).Strs("instances", switched).Msg("plugin version is current")
	return switched, nil
}

// switchTarget is one instance to switch and its new, warm sandbox pool.
type switchTarget struct {
	rec  store.Instance
	inst *host.Instance
}

// prepare builds and warms a pool of p for each enabled target, running
// test-module on it when verify is set. On any failure it closes them all
// and names the instance that failed.
func (s *Service) prepare(ctx context.Context, targets []switchTarget, p *host.Plugin, verify bool) error {
	for i := range targets {
		t := &targets[i]
		if !t.rec.Enabled {
			continue
		}
		inst, err := s.sandboxOf(ctx, t.rec, p)
		if err == nil {
			t.inst = inst
			err = inst.Warm(ctx, 1)
		}
		if err == nil && verify {
			_, err = inst.Execute(ctx, abi.CommandTestModule, json.RawMessage(`{}`))
		}
		if err != nil {
			closeTargets(ctx, targets)
			return fmt.Errorf("%w: instance %q on plugin %s: %w; no instance was switched", ErrConflict, t.rec.Name, p.Label(), err)
		}
	}
	return nil
}

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
func (s *Service) switchLive(ctx context.Context, targets []switchTarget, p *host.Plugin) []string {
	var switched []string
	var retired []*liveInstance
	s.mu.Lock()
	for _, t := range targets {
		if t.inst == nil {
			continue
		}
		old := s.live[t.rec.ID]
		if old == nil {
			_ = t.inst.Close(context.WithoutCancel(ctx))
			continue
		}
		s.live[t.rec.ID] = &liveInstance{rec: t.rec, plugin: p, inst: t.inst}
		retired = append(retired, old)
		switched = append(switched, t.rec.Name)
	}
	s.mu.Unlock()
	for _, old := range retired {
		s.retire(old)
		if wantsLongRun(old.plugin.Manifest, old.rec) {
			s.stopLongRunning(ctx, old.rec)
		}
	}
	for _, t := range targets {
		if t.inst == nil || !wantsLongRun(p.Manifest, t.rec) {
			continue
		}
		if err := s.startLongRunning(ctx, t.rec, p); err != nil {
			s.log.Error().Err(err).Str("instance", t.rec.Name).Str("plugin", p.Label()).Msg("long-running execution did not restart on the new version")
		}
	}
	return switched
}

// retire closes a replaced live instance once its callers are done. It is
// not stopped: calls in flight finish normally on the old version.
func (s *Service) retire(li *liveInstance) {
	s.drains.Add(1)
	go func() {
		defer s.drains.Done()
		li.calls.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
		defer cancel()
		if err := li.inst.Close(ctx); err != nil {
			s.log.Warn().Err(err).Str("instance", li.rec.Name).Str("plugin", li.plugin.Label()).Msg("retired sandbox pool did not drain cleanly")
		}
	}()
}

// hold returns the live instance with id and counts its caller until
// release is called, so a version switch closes its pool only after the
// callers that picked it are done. li is nil when the instance is not live.
func (s *Service) hold(id string) (li *liveInstance, release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	li = s.live[id]
	if li == nil {
		return nil, func() {}
	}
	li.calls.Add(1)
	return li, li.calls.Done
}

// checkUpgrade refuses to move rec from manifest old to manifest next when
// its params would not fit: a param it sets that next no longer declares or
// declares with another type, or params that no longer validate (e.g. a new
// required param). The message names the instance and the param.
func (s *Service) checkUpgrade(old, next *abi.Manifest, rec store.Instance) error {
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
		params, err := s.openParams(old, rec)
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

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// PinInstance pins an instance to an installed version of its plugin, or
// with version "" makes it follow the current version, switching it
// atomically as Install switches followers: params checked (unless
// forced), new pool warmed (and test-module run when asked) before calls
// move to it.
func (s *Service) PinInstance(ctx context.Context, name, version string, o SwitchOptions) (InstanceView, error) {
	done, err := s.enter()
	if err != nil {
		return InstanceView{}, err
	}
	defer done()
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	rec, err := s.st.GetInstanceByName(ctx, name)
	if err != nil {
		return InstanceView{}, fmt.Errorf("instance %q: %w", name, err)
	}
	cur, err := s.resolvePlugin(ctx, rec.Plugin, rec.PinnedVersion)
	if err != nil {
		return InstanceView{}, fmt.Errorf("instance %q: %w", name, err)
	}
	next, err := s.resolvePlugin(ctx, rec.Plugin, version)
	if err != nil {
		return InstanceView{}, fmt.Errorf("instance %q: %w", name, err)
	}
	p, err := s.loadPlugin(ctx, next)
	if err != nil {
		return InstanceView{}, err
	}
	if !o.Force {
		old, err := manifestOf(cur)
		if err != nil {
			return InstanceView{}, err
		}
		if err := s.checkUpgrade(old, p.Manifest, rec); err != nil {
			return InstanceView{}, err
		}
	}
	targets := []switchTarget{{rec: rec}}
	if err := s.prepare(ctx, targets, p, o.VerifyInstances); err != nil {
		return InstanceView{}, err
	}
	updated, err := s.st.UpdateInstance(ctx, rec.ID, func(r *store.Instance) error {
		r.PinnedVersion = version
		return nil
	})
	if err != nil {
		closeTargets(ctx, targets)
		return InstanceView{}, err
	}
	targets[0].rec = updated
	s.switchLive(ctx, targets, p)
	s.log.Info().Str("instance", name).Str("plugin", p.Label()).Str("pinned", version).Str("by", o.By).Msg("instance version changed")
	return s.view(ctx, updated)
}
