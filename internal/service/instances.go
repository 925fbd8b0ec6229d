package service

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/internal/engines"
	"github.com/connhost/connhost/internal/store"
)

// Instances configures connector instances: their params (secrets
// sealed, never shown), settings and enabled state, and reads their health
// and integration context. Enabling starts an instance's warm sandbox pool;
// disabling or deleting drains it.
type Instances struct{ c *core }

// InstanceInput creates or updates an instance. On update, nil fields keep
// their value, Params are merged into the stored ones (a secret param left
// out keeps its value), and a param set to null is removed.
type InstanceInput struct {
	Name     string          `json:"name"`
	Plugin   string          `json:"plugin"`
	Version  *string         `json:"version,omitempty"` // pinned version; "" follows the latest
	Enabled  *bool           `json:"enabled,omitempty"`
	Params   map[string]any  `json:"params,omitempty"`
	Settings *store.Settings `json:"settings,omitempty"`
}

// InstanceView is an instance as the API shows it. Secret params are never
// included; SecretsSet names the ones that have a value.
type InstanceView struct {
	ID            string             `json:"id"`
	Name          string             `json:"name"`
	Plugin        string             `json:"plugin"`
	Version       string             `json:"version"`
	PinnedVersion string             `json:"pinnedVersion,omitempty"`
	Enabled       bool               `json:"enabled"`
	Params        map[string]any     `json:"params"`
	SecretsSet    []string           `json:"secretsSet,omitempty"`
	Settings      store.Settings     `json:"settings"`
	Health        store.ModuleHealth `json:"health"`
	Created       time.Time          `json:"created"`
	Modified      time.Time          `json:"modified"`
}

var (
	instanceNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
)

// Limits on operator settings.
const (
	maxMemoryMiB          = 4096
	maxCallTimeoutSeconds = 3600
)

func validateSettings(st store.Settings) error {
	var errs []error
	switch st.MirrorDirection {
	case "", abi.MirrorNone, abi.MirrorIn, abi.MirrorOut, abi.MirrorBoth:
	default:
		errs = append(errs, fmt.Errorf("settings.mirror_direction %q: want None, In, Out or Both", st.MirrorDirection))
	}
	if st.FetchIntervalMinutes < 0 {
		errs = append(errs, fmt.Errorf("settings.incidentFetchInterval %d: want minutes ≥ 0", st.FetchIntervalMinutes))
	}
	if st.MemoryMiB < 0 || st.MemoryMiB > maxMemoryMiB {
		errs = append(errs, fmt.Errorf("settings.memoryMiB %d: want 0 (default) to %d", st.MemoryMiB, maxMemoryMiB))
	}
	if st.CallTimeoutSeconds < 0 || st.CallTimeoutSeconds > maxCallTimeoutSeconds {
		errs = append(errs, fmt.Errorf("settings.callTimeoutSeconds %d: want 0 (default) to %d", st.CallTimeoutSeconds, maxCallTimeoutSeconds))
	}
	if st.EngineGroup != "" {
		if err := engines.ValidName("settings.engine_group", st.EngineGroup); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// checkEgress refuses settings.egress entries that do not parse, or that
// the manifest's egress (with the URL params resolved) does not allow: the
// operator can only narrow a plugin's allow-list. Only a save is refused
// so; a stored entry the manifest of a later version no longer allows
// just allows nothing (host.NarrowEgress).
func checkEgress(m *abi.Manifest, instance string, params map[string]any, st store.Settings) error {
	if _, err := host.NarrowEgress(m, params, st.Egress); err != nil {
		return fmt.Errorf("%w: instance %q of plugin %s: settings.%w", ErrInvalid, instance, m.Name, err)
	}
	return nil
}

// Create validates and stores a new instance, and starts it when enabled.
// A plugin or version that is not installed is ErrNotFound, a taken name
// ErrExists, bad params or settings ErrInvalid.
func (is *Instances) Create(ctx context.Context, in InstanceInput) (InstanceView, error) {
	c := is.c
	c.lifecycle.Lock()
	defer c.lifecycle.Unlock()
	if !instanceNameRe.MatchString(in.Name) {
		return InstanceView{}, fmt.Errorf("%w: instance name %q: want letters, digits, '.', '_' or '-', at most 64", ErrInvalid, in.Name)
	}
	if in.Plugin == "" {
		return InstanceView{}, fmt.Errorf("%w: instance %q: plugin is required", ErrInvalid, in.Name)
	}
	pinned := ""
	if in.Version != nil {
		pinned = *in.Version
	}
	pv, err := c.resolvePlugin(ctx, in.Plugin, pinned)
	if err != nil {
		return InstanceView{}, fmt.Errorf("instance %q: %w", in.Name, fromStore(err))
	}
	m, err := manifestOf(pv)
	if err != nil {
		return InstanceView{}, err
	}
	params, err := m.ValidateParams(in.Params)
	if err != nil {
		return InstanceView{}, fmt.Errorf("%w: instance %q of plugin %s: %w", ErrInvalid, in.Name, m.Name, err)
	}
	var settings store.Settings
	if in.Settings != nil {
		settings = *in.Settings
	}
	if err := errors.Join(validateSettings(settings), is.c.checkEngineGroup(settings)); err != nil {
		return InstanceView{}, fmt.Errorf("instance %q: %w", in.Name, err)
	}
	if err := checkSettings(m, in.Name, params, &settings); err != nil {
		return InstanceView{}, err
	}
	if err := checkEgress(m, in.Name, params, settings); err != nil {
		return InstanceView{}, err
	}
	if err := c.sealParams(m, in.Name, params); err != nil {
		return InstanceView{}, err
	}
	rec, err := c.st.CreateInstance(ctx, store.Instance{
		Name: in.Name, Plugin: in.Plugin, PinnedVersion: pinned,
		Enabled: in.Enabled != nil && *in.Enabled, Params: params, Settings: settings,
	})
	if err != nil {
		return InstanceView{}, fromStore(err)
	}
	c.log.Info().Str("instance", rec.Name).Str("plugin", m.Name+"@"+m.Version).Msg("instance created")
	if rec.Enabled {
		if err := c.startOrRecord(ctx, rec); err != nil {
			return InstanceView{}, fromStore(err)
		}
	}
	return c.view(ctx, rec)
}

// Update changes an instance's pinned version, params, settings or enabled
// state, restarting its sandboxes when it runs. Neither its name nor its
// plugin can change (ErrInvalid).
func (is *Instances) Update(ctx context.Context, name string, in InstanceInput) (InstanceView, error) {
	c := is.c
	c.lifecycle.Lock()
	defer c.lifecycle.Unlock()
	old, err := c.st.GetInstanceByName(ctx, name)
	if err != nil {
		return InstanceView{}, fmt.Errorf("instance %q: %w", name, fromStore(err))
	}
	if in.Name != "" && in.Name != name {
		return InstanceView{}, fmt.Errorf("%w: instance %q: renaming is not supported", ErrInvalid, name)
	}
	if in.Plugin != "" && in.Plugin != old.Plugin {
		return InstanceView{}, fmt.Errorf("%w: instance %q: the plugin of an instance cannot change", ErrInvalid, name)
	}
	pinned := old.PinnedVersion
	if in.Version != nil {
		pinned = *in.Version
	}
	pv, err := c.resolvePlugin(ctx, old.Plugin, pinned)
	if err != nil {
		return InstanceView{}, fmt.Errorf("instance %q: %w", name, fromStore(err))
	}
	m, err := manifestOf(pv)
	if err != nil {
		return InstanceView{}, err
	}
	merged, err := c.openParams(m, old)
	if err != nil {
		return InstanceView{}, err
	}
	for k, v := range in.Params {
		if v == nil {
			delete(merged, k)
		} else {
			merged[k] = v
		}
	}
	settings := old.Settings
	if in.Settings != nil {
		settings = *in.Settings
	} else {
		// Settings kept from before the conventional params took over
		// move into them, unless this update sets the param.
		migrateSettings(m, merged, &settings, in.Params)
	}
	params, err := m.ValidateParams(merged)
	if err != nil {
		return InstanceView{}, fmt.Errorf("%w: instance %q of plugin %s: %w", ErrInvalid, name, m.Name, err)
	}
	if err := errors.Join(validateSettings(settings), is.c.checkEngineGroup(settings)); err != nil {
		return InstanceView{}, fmt.Errorf("instance %q: %w", name, err)
	}
	if err := checkSettings(m, name, params, &settings); err != nil {
		return InstanceView{}, err
	}
	if in.Settings != nil || in.Params != nil {
		if err := checkEgress(m, name, params, settings); err != nil {
			return InstanceView{}, err
		}
	}
	if err := c.sealParams(m, name, params); err != nil {
		return InstanceView{}, err
	}
	rec, err := c.st.UpdateInstance(ctx, old.ID, func(r *store.Instance) error {
		r.PinnedVersion, r.Params, r.Settings = pinned, params, settings
		if in.Enabled != nil {
			r.Enabled = *in.Enabled
		}
		return nil
	})
	if err != nil {
		return InstanceView{}, fromStore(err)
	}
	c.stop(ctx, rec.ID)
	if rec.Enabled {
		if err := c.startOrRecord(ctx, rec); err != nil {
			return InstanceView{}, fromStore(err)
		}
	}
	c.log.Info().Str("instance", rec.Name).Str("plugin", m.Name+"@"+m.Version).Bool("enabled", rec.Enabled).Msg("instance updated")
	return c.view(ctx, rec)
}

// SetEnabled enables (warming its sandbox pool) or disables (draining it)
// an instance.
func (is *Instances) SetEnabled(ctx context.Context, name string, enabled bool) (InstanceView, error) {
	return is.Update(ctx, name, InstanceInput{Enabled: &enabled})
}

// Delete stops an instance and removes it with its context, cache, last
// runs, health and chat mirrors.
func (is *Instances) Delete(ctx context.Context, name string) error {
	c := is.c
	c.lifecycle.Lock()
	defer c.lifecycle.Unlock()
	rec, err := c.st.GetInstanceByName(ctx, name)
	if err != nil {
		return fmt.Errorf("instance %q: %w", name, fromStore(err))
	}
	label := c.pluginLabel(ctx, rec)
	c.stop(ctx, rec.ID)
	if err := c.st.DeleteInstance(ctx, rec.ID); err != nil {
		return fromStore(err)
	}
	if err := c.st.DeleteChatMirrors(ctx, rec.ID); err != nil {
		c.log.Warn().Err(err).Str("instance", rec.Name).Msg("chat mirrors of deleted instance not removed")
	}
	c.log.Info().Str("instance", rec.Name).Str("plugin", label).Msg("instance deleted")
	return nil
}

// Get returns one instance.
func (is *Instances) Get(ctx context.Context, name string) (InstanceView, error) {
	rec, err := is.c.st.GetInstanceByName(ctx, name)
	if err != nil {
		return InstanceView{}, fmt.Errorf("instance %q: %w", name, fromStore(err))
	}
	return is.c.view(ctx, rec)
}

// List returns every instance, by name.
func (is *Instances) List(ctx context.Context) ([]InstanceView, error) {
	recs, err := is.c.st.ListInstances(ctx)
	if err != nil {
		return nil, fromStore(err)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Name < recs[j].Name })
	out := make([]InstanceView, 0, len(recs))
	for _, r := range recs {
		v, err := is.c.view(ctx, r)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// view shows a stored instance: the version it runs, its params without
// secrets and its health.
func (c *core) view(ctx context.Context, rec store.Instance) (InstanceView, error) {
	v := InstanceView{
		ID: rec.ID, Name: rec.Name, Plugin: rec.Plugin, PinnedVersion: rec.PinnedVersion,
		Enabled: rec.Enabled, Params: map[string]any{}, Settings: rec.Settings,
		Created: rec.Created, Modified: rec.Modified,
	}
	pv, err := c.resolvePlugin(ctx, rec.Plugin, rec.PinnedVersion)
	if err == nil {
		v.Version = pv.Version
	}
	m, _ := manifestOf(pv)
	for k, val := range rec.Params {
		if p, ok := m.Param(k); ok && p.Type == abi.ParamSecret {
			v.SecretsSet = append(v.SecretsSet, k)
			continue
		}
		v.Params[k] = val
	}
	slices.Sort(v.SecretsSet)
	h, err := c.st.Health(ctx, rec.ID)
	if err != nil {
		return InstanceView{}, fromStore(err)
	}
	v.Health = h
	return v, nil
}

// Health returns the instance's module health; none recorded is the zero
// health.
func (is *Instances) Health(ctx context.Context, name string) (store.ModuleHealth, error) {
	rec, err := is.c.st.GetInstanceByName(ctx, name)
	if err != nil {
		return store.ModuleHealth{}, fmt.Errorf("instance %q: %w", name, fromStore(err))
	}
	h, err := is.c.st.Health(ctx, rec.ID)
	return h, fromStore(err)
}

// Context returns an instance's integration context and its version.
func (is *Instances) Context(ctx context.Context, name string) (map[string]any, int64, error) {
	rec, err := is.c.st.GetInstanceByName(ctx, name)
	if err != nil {
		return nil, 0, fmt.Errorf("instance %q: %w", name, fromStore(err))
	}
	v, ver, err := is.c.st.GetContext(ctx, rec.ID)
	return v, ver, fromStore(err)
}

// SetContext replaces an instance's integration context; version -1
// writes unconditionally, otherwise a stale version is ErrConflict.
func (is *Instances) SetContext(ctx context.Context, name string, value map[string]any, version int64) (int64, error) {
	rec, err := is.c.st.GetInstanceByName(ctx, name)
	if err != nil {
		return 0, fmt.Errorf("instance %q: %w", name, fromStore(err))
	}
	if value == nil {
		value = map[string]any{}
	}
	v, err := is.c.st.SetContext(ctx, rec.ID, value, version)
	return v, fromStore(err)
}
