package service

import (
	"context"
	"errors"
	"fmt"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/mirror"
	"github.com/connhost/connhost/internal/store"
)

// checkSettings enforces the one model of how an instance fetches and
// mirrors: where the plugin declares one of XSOAR's conventional params
// (isFetch, mirror_direction, close_out, ...), the param decides, and the
// setting that stands for it must be unset or say the same. A setting that
// says the same is dropped, so settings keep only what no param covers. A
// different value is ErrInvalid naming both.
func checkSettings(m *abi.Manifest, name string, params map[string]any, st *store.Settings) error {
	var errs []error
	for _, p := range mirror.ConventionalParams {
		sv, set := mirror.SettingValue(*st, p)
		if !set || !mirror.Declares(m, p) {
			continue
		}
		pv := params[p]
		if !mirror.SameValue(p, sv, pv) {
			errs = append(errs, fmt.Errorf("%s %v conflicts with param %s %v, which plugin %s@%s declares: set the param instead",
				mirror.SettingName(p), showSetting(*st, p), p, showParam(pv), m.Name, m.Version))
			continue
		}
		mirror.ClearSetting(st, p)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: instance %q: %w", ErrInvalid, name, err)
	}
	return nil
}

func showSetting(st store.Settings, p string) string {
	if p == mirror.ParamMirrorDirection {
		return fmt.Sprintf("%q", st.MirrorDirection)
	}
	v, _ := mirror.SettingValue(st, p)
	return showParam(v)
}

func showParam(v any) string {
	switch x := v.(type) {
	case nil:
		return "(unset)"
	case string:
		return fmt.Sprintf("%q", x)
	}
	return fmt.Sprint(v)
}

// migrateSettings moves settings stored before the conventional params
// took over into the params the plugin declares, so an instance keeps
// fetching and mirroring as it did: the setting was what the host obeyed,
// so it wins over the param's stored value. Params named in keep (set in
// the same update) win instead. It reports whether anything moved.
func migrateSettings(m *abi.Manifest, params map[string]any, st *store.Settings, keep map[string]any) bool {
	moved := false
	for _, p := range mirror.ConventionalParams {
		sv, set := mirror.SettingValue(*st, p)
		if !set || !mirror.Declares(m, p) {
			continue
		}
		if _, ok := keep[p]; !ok {
			prm, _ := m.Param(p)
			if c, err := prm.Coerce(sv); err == nil {
				params[p] = c
			}
		}
		mirror.ClearSetting(st, p)
		moved = true
	}
	return moved
}

// migrateInstance applies migrateSettings to a stored instance and writes
// it back when something moved.
func (c *core) migrateInstance(ctx context.Context, rec store.Instance) (store.Instance, error) {
	pv, err := c.resolvePlugin(ctx, rec.Plugin, rec.PinnedVersion)
	if err != nil {
		return rec, nil // started (or not) as before; reported where it starts
	}
	m, err := manifestOf(pv)
	if err != nil {
		return rec, nil
	}
	probe := rec.Settings
	if !migrateSettings(m, map[string]any{}, &probe, nil) {
		return rec, nil
	}
	out, err := c.st.UpdateInstance(ctx, rec.ID, func(r *store.Instance) error {
		if r.Params == nil {
			r.Params = map[string]any{}
		}
		migrateSettings(m, r.Params, &r.Settings, nil)
		return nil
	})
	if err != nil {
		return rec, fmt.Errorf("instance %q: moving settings into conventional params: %w", rec.Name, err)
	}
	c.log.Info().Str("instance", rec.Name).Str("plugin", m.Name+"@"+m.Version).
		Msg("instance settings moved into the conventional params the plugin declares")
	return out, nil
}

// manifestFor returns the manifest of the plugin version an instance runs,
// or nil when it cannot be read.
func (c *core) manifestFor(ctx context.Context, rec store.Instance) *abi.Manifest {
	pv, err := c.resolvePlugin(ctx, rec.Plugin, rec.PinnedVersion)
	if err != nil {
		return nil
	}
	m, err := manifestOf(pv)
	if err != nil {
		return nil
	}
	return m
}

// pluginLabel names the plugin version an instance runs as name@version,
// or name@? when the version cannot be resolved.
func (c *core) pluginLabel(ctx context.Context, rec store.Instance) string {
	if m := c.manifestFor(ctx, rec); m != nil && m.Name != "" {
		return m.Name + "@" + m.Version
	}
	return rec.Plugin + "@?"
}
