package service

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/internal/engines"
	"github.com/connhost/connhost/internal/store"
)

// Remote runs the calls of instances assigned to an engine group
// (settings.engine_group); *engines.Hub implements it.
type Remote interface {
	// Publish makes a plugin file available to engines by its SHA-256,
	// with its detached signature (nil when unsigned) for the engines'
	// own trust policies.
	Publish(ctx context.Context, sha string, blob, sig []byte) error
	// Execute runs a command on an engine of group.
	Execute(ctx context.Context, group string, spec engines.Spec, command string, args json.RawMessage) (json.RawMessage, error)
	// HandleHTTP passes a request to the engine running a long-running
	// HTTP instance.
	HandleHTTP(ctx context.Context, group string, spec engines.Spec, req abi.HTTPRequest) (abi.HTTPResponse, error)
}

// runner runs an instance's calls: its local sandbox pool
// (*host.Instance) or, for an instance in an engine group, the group.
type runner interface {
	Execute(ctx context.Context, command string, args json.RawMessage) (json.RawMessage, error)
	HandleHTTP(ctx context.Context, req abi.HTTPRequest) (abi.HTTPResponse, error)
	Warm(ctx context.Context, n int) error
	Stop()
	Close(ctx context.Context) error
}

// checkEngineGroup refuses an engine group when engines are not enabled.
func (c *core) checkEngineGroup(st store.Settings) error {
	if st.EngineGroup != "" && c.remote == nil {
		return fmt.Errorf("%w: settings.engine_group %q: engines are not enabled on this server (engines.enable)", ErrInvalid, st.EngineGroup)
	}
	return nil
}

// runnerOf returns what runs a stored instance's calls on plugin p under
// lim: a sandbox pool here, or its engine group.
func (c *core) runnerOf(ctx context.Context, rec store.Instance, p *host.Plugin, lim host.Limits) (runner, error) {
	if rec.Settings.EngineGroup == "" {
		return c.sandboxOf(ctx, rec, p, lim)
	}
	if err := c.checkEngineGroup(rec.Settings); err != nil {
		return nil, fmt.Errorf("instance %q plugin %s: %w", rec.Name, p.Label(), err)
	}
	spec, err := c.engineSpec(rec, p, lim)
	if err != nil {
		return nil, err
	}
	r := &remoteRunner{c: c, group: rec.Settings.EngineGroup, spec: spec}
	if err := r.publish(ctx, p.Manifest.Name, p.Manifest.Version); err != nil {
		return nil, err
	}
	return r, nil
}

// engineSpec is what an engine needs to run rec on p: secrets in clear,
// which the hub sends only over TLS or loopback.
func (c *core) engineSpec(rec store.Instance, p *host.Plugin, lim host.Limits) (engines.Spec, error) {
	params, err := c.openParams(p.Manifest, rec)
	if err != nil {
		return engines.Spec{}, err
	}
	return engines.Spec{
		Info:   abi.InstanceInfo{ID: rec.ID, Name: rec.Name, Brand: rec.Plugin},
		Plugin: p.Label(), SHA256: p.SHA256, Params: params, Limits: lim, Egress: rec.Settings.Egress,
		LongRunning: wantsLongRun(p.Manifest, rec),
	}.WithHash(), nil
}

// remoteRunner runs an instance's calls on its engine group.
type remoteRunner struct {
	c     *core
	group string
	spec  engines.Spec
}

// Execute implements runner.
func (r *remoteRunner) Execute(ctx context.Context, command string, args json.RawMessage) (json.RawMessage, error) {
	return r.c.remote.Execute(ctx, r.group, r.spec, command, args)
}

// HandleHTTP implements runner.
func (r *remoteRunner) HandleHTTP(ctx context.Context, req abi.HTTPRequest) (abi.HTTPResponse, error) {
	return r.c.remote.HandleHTTP(ctx, r.group, r.spec, req)
}

// Warm implements runner: the engines warm their own pools on first use.
func (r *remoteRunner) Warm(context.Context, int) error { return nil }

// publish makes the plugin file, with the signature it was installed
// with, available to the engines before any call needs it.
func (r *remoteRunner) publish(ctx context.Context, name, version string) error {
	blob, err := r.c.st.GetPluginBlob(ctx, r.spec.SHA256)
	if err != nil {
		return fmt.Errorf("instance %q plugin %s: %w", r.spec.Info.Name, r.spec.Plugin, fromStore(err))
	}
	pv, err := r.c.st.GetPluginVersion(ctx, name, version)
	if err != nil {
		return fmt.Errorf("instance %q plugin %s: %w", r.spec.Info.Name, r.spec.Plugin, fromStore(err))
	}
	if err := r.c.remote.Publish(ctx, r.spec.SHA256, blob, pv.Minisig); err != nil {
		return fmt.Errorf("instance %q plugin %s: %w", r.spec.Info.Name, r.spec.Plugin, err)
	}
	return nil
}

// Stop implements runner: the engines stop what they run when the
// instance leaves their group's list.
func (r *remoteRunner) Stop() {}

// Close implements runner.
func (r *remoteRunner) Close(context.Context) error { return nil }

// HostServices returns the host functions over the store, for engines'
// calls (engines.Backend).
func (s *Service) HostServices() host.Services { return hostServices{s.c} }

// InstanceGroup returns the engine group of an instance by id
// (engines.Backend).
func (s *Service) InstanceGroup(ctx context.Context, id string) (string, error) {
	rec, err := s.c.st.GetInstance(ctx, id)
	if err != nil {
		return "", fmt.Errorf("instance %s: %w", id, fromStore(err))
	}
	return rec.Settings.EngineGroup, nil
}

// LongRunningSpecs returns the enabled long-running instances of an engine
// group (engines.Backend): its engines compete for their leases.
func (s *Service) LongRunningSpecs(_ context.Context, group string) ([]engines.Spec, error) {
	c := s.c
	c.mu.Lock()
	var lives []*liveInstance
	for _, li := range c.live {
		if li.rec.Settings.EngineGroup == group && wantsLongRun(li.plugin.Manifest, li.rec) {
			lives = append(lives, li)
		}
	}
	c.mu.Unlock()
	out := make([]engines.Spec, 0, len(lives))
	for _, li := range lives {
		if r, ok := li.inst.(*remoteRunner); ok {
			out = append(out, r.spec)
		}
	}
	return out, nil
}
