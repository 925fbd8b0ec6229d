package service

import (
	"context"
	"fmt"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/internal/store"
	"github.com/connhost/connhost/internal/supervisor"
)

// drainTimeout bounds how long a retired sandbox pool waits for the calls
// that were in flight when its instance switched version.
const drainTimeout = 10 * time.Minute

// longRunCallTimeout is the call timeout of a long-running execution's
// sandbox: the execution is meant to run until stopped.
const longRunCallTimeout = 100 * 365 * 24 * time.Hour

// limitsFor returns the sandbox limits of an instance.
func (c *core) limitsFor(st store.Settings) host.Limits {
	l := c.limits
	if st.MemoryMiB > 0 {
		l.MemoryBytes = uint64(st.MemoryMiB) << 20
	}
	if st.CallTimeoutSeconds > 0 {
		l.CallTimeout = time.Duration(st.CallTimeoutSeconds) * time.Second
	}
	if st.LongRunning {
		// A long-running instance serves its own HTTP requests and runs
		// all the time: its pool stays warm.
		l.PoolIdle = 0
	}
	return l
}

// sealParams encrypts the secret params in place.
func (c *core) sealParams(m *abi.Manifest, instance string, params map[string]any) error {
	for k, v := range params {
		p, _ := m.Param(k)
		if p.Type != abi.ParamSecret {
			continue
		}
		sealed, err := c.box.Seal(v.(string), secretAD(instance, k))
		if err != nil {
			return err
		}
		params[k] = sealed
	}
	return nil
}

// openParams returns an instance's params with secrets decrypted.
func (c *core) openParams(m *abi.Manifest, rec store.Instance) (map[string]any, error) {
	out := make(map[string]any, len(rec.Params))
	for k, v := range rec.Params {
		p, _ := m.Param(k)
		if p.Type == abi.ParamSecret {
			sv, _ := v.(string)
			plain, err := c.box.Open(sv, secretAD(rec.Name, k))
			if err != nil {
				return nil, fmt.Errorf("instance %q param %q: %w", rec.Name, k, err)
			}
			v = plain
		}
		out[k] = v
	}
	return out, nil
}

// secretAD binds a sealed param to its instance and name, so a sealed
// value copied to another param or instance does not open.
func secretAD(instance, param string) string { return "instance/" + instance + "/param/" + param }

// sandbox creates the runner of a stored instance, on the version it runs:
// a sandbox pool here or its engine group. The caller owns it.
func (c *core) sandbox(ctx context.Context, rec store.Instance) (runner, *host.Plugin, error) {
	pv, err := c.resolvePlugin(ctx, rec.Plugin, rec.PinnedVersion)
	if err != nil {
		return nil, nil, err
	}
	p, err := c.loadPlugin(ctx, pv)
	if err != nil {
		return nil, nil, err
	}
	inst, err := c.runnerOf(ctx, rec, p, c.limitsFor(rec.Settings))
	if err != nil {
		return nil, nil, err
	}
	return inst, p, nil
}

// sandboxOf creates the runtime instance of a stored instance on plugin p
// under lim. The caller owns it.
func (c *core) sandboxOf(ctx context.Context, rec store.Instance, p *host.Plugin, lim host.Limits) (*host.Instance, error) {
	params, err := c.openParams(p.Manifest, rec)
	if err != nil {
		return nil, err
	}
	inst, err := c.rt.NewInstance(ctx, p, host.InstanceSpec{
		Info:     abi.InstanceInfo{ID: rec.ID, Name: rec.Name, Brand: rec.Plugin},
		Params:   params,
		Services: hostServices{c},
		Egress:   rec.Settings.Egress,
		Limits:   lim,
	})
	if err != nil {
		return nil, fmt.Errorf("instance %q plugin %s: %w", rec.Name, p.Label(), err)
	}
	return inst, nil
}

// start brings up an enabled instance and, if warm, warms one sandbox, so
// the first command does not pay for instantiation and a broken
// configuration shows at once.
func (c *core) start(ctx context.Context, rec store.Instance, warm bool) error {
	inst, p, err := c.sandbox(ctx, rec)
	if err != nil {
		return err
	}
	if !warm {
		c.log.Debug().Str("instance", rec.Name).Msg("instance starts cold: its first call instantiates a module instance")
	} else if err := inst.Warm(ctx, 1); err != nil {
		_ = inst.Close(ctx)
		return fmt.Errorf("instance %q plugin %s: warm: %w", rec.Name, rec.Plugin, err)
	}
	c.mu.Lock()
	old := c.setLive(&liveInstance{rec: rec, plugin: p, inst: inst})
	c.mu.Unlock()
	if old != nil {
		c.retire(old)
	}
	c.log.Info().Str("instance", rec.Name).Str("plugin", p.Label()).Msg("instance started")
	return c.startLongRunning(ctx, rec, p)
}

// startOrRecord starts an enabled instance, recording a failure as its
// health (the instance stays stored and enabled).
func (c *core) startOrRecord(ctx context.Context, rec store.Instance) error {
	return c.startOrRecordWarm(ctx, rec, true)
}

// startOrRecordWarm is startOrRecord, warming a sandbox only if warm.
func (c *core) startOrRecordWarm(ctx context.Context, rec store.Instance, warm bool) error {
	err := c.start(ctx, rec, warm)
	if err != nil {
		_ = c.st.SetHealth(ctx, rec.ID, "instance did not start: "+err.Error(), true)
	}
	return err
}

// stop drains and removes a running instance, if it runs.
func (c *core) stop(ctx context.Context, id string) {
	c.mu.Lock()
	li := c.unsetLive(id)
	c.mu.Unlock()
	if li == nil {
		return
	}
	c.stopLongRunning(ctx, li.rec)
	// Disabling or deleting ends the instance's work: sleeping calls are
	// woken so it does not wait for them.
	li.inst.Stop()
	if err := li.inst.Close(ctx); err != nil {
		c.log.Warn().Err(err).Str("instance", li.rec.Name).Msg("instance did not drain cleanly")
	}
	c.log.Info().Str("instance", li.rec.Name).Str("plugin", li.plugin.Label()).Msg("instance stopped")
}

// wantsLongRun reports whether an instance runs long-running-execution: its
// plugin declares longRunning and the operator turned the setting on.
func wantsLongRun(m *abi.Manifest, rec store.Instance) bool {
	return m.LongRunning && rec.Settings.LongRunning
}

// startLongRunning starts the supervised execution of a started instance,
// when it wants one.
func (c *core) startLongRunning(ctx context.Context, rec store.Instance, p *host.Plugin) error {
	// An engine group runs its executions itself, under leases.
	if !wantsLongRun(p.Manifest, rec) || rec.Settings.EngineGroup != "" {
		return nil
	}
	info := abi.InstanceInfo{ID: rec.ID, Name: rec.Name, Brand: rec.Plugin}
	if err := c.sup.Start(ctx, info, p.Label(), c.longRunSandbox(rec)); err != nil {
		return fmt.Errorf("instance %q plugin %s: start long-running execution: %w", rec.Name, p.Label(), err)
	}
	return nil
}

// stopLongRunning stops an instance's execution, if any, within the
// supervisor's stop deadline.
func (c *core) stopLongRunning(ctx context.Context, rec store.Instance) {
	if c.sup.Stop(ctx, rec.ID) {
		c.log.Info().Str("instance", rec.Name).Str("plugin", c.pluginLabel(ctx, rec)).Msg("long-running execution stopped")
	}
}

// longRunSandbox returns the factory of the dedicated sandbox of an
// instance's execution: one module instance, no practical call timeout.
func (c *core) longRunSandbox(rec store.Instance) supervisor.Factory {
	return func(ctx context.Context) (*host.Instance, error) {
		pv, err := c.resolvePlugin(ctx, rec.Plugin, rec.PinnedVersion)
		if err != nil {
			return nil, err
		}
		p, err := c.loadPlugin(ctx, pv)
		if err != nil {
			return nil, err
		}
		lim := c.limitsFor(rec.Settings)
		lim.CallTimeout, lim.PoolSize = longRunCallTimeout, 1
		return c.sandboxOf(ctx, rec, p, lim)
	}
}
