package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/store"
)

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
	badEgressRe    = regexp.MustCompile(`[/\s@]`)
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
	for _, h := range st.Egress {
		if h == "" || len(h) > 253 || badEgressRe.MatchString(h) {
			errs = append(errs, fmt.Errorf("settings.egress %q: want host, host:port or *.domain", h))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// sealParams encrypts the secret params of inst in place.
func (s *Service) sealParams(m *abi.Manifest, name string, params map[string]any) error {
	for k, v := range params {
		p, _ := m.Param(k)
		if p.Type != abi.ParamSecret {
			continue
		}
		sealed, err := s.box.Seal(v.(string), secretAD(name, k))
		if err != nil {
			return err
		}
		params[k] = sealed
	}
	return nil
}

// openParams returns params with secrets decrypted.
func (s *Service) openParams(m *abi.Manifest, rec store.Instance) (map[string]any, error) {
	out := make(map[string]any, len(rec.Params))
	for k, v := range rec.Params {
		p, _ := m.Param(k)
		if p.Type == abi.ParamSecret {
			sv, _ := v.(string)
			plain, err := s.box.Open(sv, secretAD(rec.Name, k))
			if err != nil {
				return nil, fmt.Errorf("instance %q param %q: %w", rec.Name, k, err)
			}
			v = plain
		}
		out[k] = v
	}
	return out, nil
}

func secretAD(instance, param string) string { return "instance/" + instance + "/param/" + param }

// CreateInstance validates and stores a new instance, and starts it when
// enabled.
func (s *Service) CreateInstance(ctx context.Context, in InstanceInput) (InstanceView, error) {
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
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
	pv, err := s.resolvePlugin(ctx, in.Plugin, pinned)
	if err != nil {
		return InstanceView{}, fmt.Errorf("instance %q: %w", in.Name, err)
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
	if err := validateSettings(settings); err != nil {
		return InstanceView{}, fmt.Errorf("instance %q: %w", in.Name, err)
	}
	if err := s.sealParams(m, in.Name, params); err != nil {
		return InstanceView{}, err
	}
	rec, err := s.st.CreateInstance(ctx, store.Instance{
		Name: in.Name, Plugin: in.Plugin, PinnedVersion: pinned,
		Enabled: in.Enabled != nil && *in.Enabled, Params: params, Settings: settings,
	})
	if err != nil {
		return InstanceView{}, err
	}
	s.log.Info().Str("instance", rec.Name).Str("plugin", rec.Plugin).Msg("instance created")
	if rec.Enabled {
		if err := s.start(ctx, rec); err != nil {
			_ = s.st.SetHealth(ctx, rec.ID, "instance did not start: "+err.Error(), true)
			return InstanceView{}, err
		}
	}
	return s.view(ctx, rec)
}

// UpdateInstance changes an instance's plugin version, params, settings or
// enabled state, restarting its sandboxes when it runs.
func (s *Service) UpdateInstance(ctx context.Context, name string, in InstanceInput) (InstanceView, error) {
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	old, err := s.st.GetInstanceByName(ctx, name)
	if err != nil {
		return InstanceView{}, fmt.Errorf("instance %q: %w", name, err)
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
	pv, err := s.resolvePlugin(ctx, old.Plugin, pinned)
	if err != nil {
		return InstanceView{}, fmt.Errorf("instance %q: %w", name, err)
	}
	m, err := manifestOf(pv)
	if err != nil {
		return InstanceView{}, err
	}
	merged, err := s.openParams(m, old)
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
	params, err := m.ValidateParams(merged)
	if err != nil {
		return InstanceView{}, fmt.Errorf("%w: instance %q of plugin %s: %w", ErrInvalid, name, m.Name, err)
	}
	settings := old.Settings
	if in.Settings != nil {
		settings = *in.Settings
	}
	if err := validateSettings(settings); err != nil {
		return InstanceView{}, fmt.Errorf("instance %q: %w", name, err)
	}
	if err := s.sealParams(m, name, params); err != nil {
		return InstanceView{}, err
	}
	rec, err := s.st.UpdateInstance(ctx, old.ID, func(r *store.Instance) error {
		r.PinnedVersion, r.Params, r.Settings = pinned, params, settings
		if in.Enabled != nil {
			r.Enabled = *in.Enabled
		}
		return nil
	})
	if err != nil {
		return InstanceView{}, err
	}
	s.stop(ctx, rec.ID)
	if rec.Enabled {
		if err := s.start(ctx, rec); err != nil {
			_ = s.st.SetHealth(ctx, rec.ID, "instance did not start: "+err.Error(), true)
			return InstanceView{}, err
		}
	}
	s.log.Info().Str("instance", rec.Name).Str("plugin", rec.Plugin).Bool("enabled", rec.Enabled).Msg("instance updated")
	return s.view(ctx, rec)
}

// SetEnabled enables (warming its sandbox pool) or disables (draining it)
// an instance.
func (s *Service) SetEnabled(ctx context.Context, name string, enabled bool) (InstanceView, error) {
	return s.UpdateInstance(ctx, name, InstanceInput{Enabled: &enabled})
}

// DeleteInstance stops an instance and removes it with its context, cache,
// last runs and health.
func (s *Service) DeleteInstance(ctx context.Context, name string) error {
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	rec, err := s.st.GetInstanceByName(ctx, name)
	if err != nil {
		return fmt.Errorf("instance %q: %w", name, err)
	}
	s.stop(ctx, rec.ID)
	if err := s.st.DeleteInstance(ctx, rec.ID); err != nil {
		return err
	}
	if err := s.st.DeleteChatMirrors(ctx, rec.ID); err != nil {
		s.log.Warn().Err(err).Str("instance", rec.Name).Msg("chat mirrors of deleted instance not removed")
	}
	s.log.Info().Str("instance", rec.Name).Str("plugin", rec.Plugin).Msg("instance deleted")
	return nil
}

// GetInstance returns one instance.
func (s *Service) GetInstance(ctx context.Context, name string) (InstanceView, error) {
	rec, err := s.st.GetInstanceByName(ctx, name)
	if err != nil {
		return InstanceView{}, fmt.Errorf("instance %q: %w", name, err)
	}
	return s.view(ctx, rec)
}

// ListInstances returns every instance, by name.
func (s *Service) ListInstances(ctx context.Context) ([]InstanceView, error) {
	recs, err := s.st.ListInstances(ctx)
	if err != nil {
		return nil, err
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Name < recs[j].Name })
	out := make([]InstanceView, 0, len(recs))
	for _, r := range recs {
		v, err := s.view(ctx, r)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func (s *Service) view(ctx context.Context, rec store.Instance) (InstanceView, error) {
	v := InstanceView{
		ID: rec.ID, Name: rec.Name, Plugin: rec.Plugin, PinnedVersion: rec.PinnedVersion,
		Enabled: rec.Enabled, Params: map[string]any{}, Settings: rec.Settings,
		Created: rec.Created, Modified: rec.Modified,
	}
	pv, err := s.resolvePlugin(ctx, rec.Plugin, rec.PinnedVersion)
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
	h, err := s.st.Health(ctx, rec.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return InstanceView{}, err
	}
	v.Health = h
	return v, nil
}

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

// limitsFor returns the sandbox limits of an instance.
func (s *Service) limitsFor(st store.Settings) host.Limits {
	l := s.limits
	if st.MemoryMiB > 0 {
		l.MemoryBytes = uint64(st.MemoryMiB) << 20
	}
	if st.CallTimeoutSeconds > 0 {
		l.CallTimeout = time.Duration(st.CallTimeoutSeconds) * time.Second
	}
	return l
}

// sandbox creates the runtime instance of a stored instance, on the
// version it runs. The caller owns it.
func (s *Service) sandbox(ctx context.Context, rec store.Instance) (*host.Instance, *host.Plugin, error) {
	pv, err := s.resolvePlugin(ctx, rec.Plugin, rec.PinnedVersion)
	if err != nil {
		return nil, nil, err
	}
	p, err := s.loadPlugin(ctx, pv)
	if err != nil {
		return nil, nil, err
	}
	inst, err := s.sandboxOf(ctx, rec, p)
	if err != nil {
		return nil, nil, err
	}
	return inst, p, nil
}

// sandboxOf creates the runtime instance of a stored instance on plugin p.
// The caller owns it.
func (s *Service) sandboxOf(ctx context.Context, rec store.Instance, p *host.Plugin) (*host.Instance, error) {
	params, err := s.openParams(p.Manifest, rec)
	if err != nil {
		return nil, err
	}
	inst, err := s.rt.NewInstance(ctx, p, host.InstanceSpec{
		Info:     abi.InstanceInfo{ID: rec.ID, Name: rec.Name, Brand: rec.Plugin},
		Params:   params,
		Services: hostServices{s},
		Egress:   rec.Settings.Egress,
		Limits:   s.limitsFor(rec.Settings),
	})
	if err != nil {
		return nil, fmt.Errorf("instance %q plugin %s: %w", rec.Name, p.Label(), err)
	}
	return inst, nil
}

// start brings up an enabled instance and warms one sandbox, so the first
// command does not pay for instantiation and a broken configuration shows at
// once.
func (s *Service) start(ctx context.Context, rec store.Instance) error {
	inst, p, err := s.sandbox(ctx, rec)
	if err != nil {
		return err
	}
	if err := inst.Warm(ctx, 1); err != nil {
		_ = inst.Close(ctx)
		return fmt.Errorf("instance %q plugin %s: warm: %w", rec.Name, rec.Plugin, err)
	}
	s.mu.Lock()
	old := s.live[rec.ID]
	s.live[rec.ID] = &liveInstance{rec: rec, plugin: p, inst: inst}
	s.mu.Unlock()
	if old != nil {
		s.retire(old)
	}
	s.log.Info().Str("instance", rec.Name).Str("plugin", p.Manifest.Name).Str("version", p.Manifest.Version).Msg("instance started")
	return s.startLongRunning(ctx, rec, p)
}

// stop drains and removes a running instance, if it runs.
func (s *Service) stop(ctx context.Context, id string) {
	s.mu.Lock()
	li := s.live[id]
	delete(s.live, id)
	s.mu.Unlock()
	if li == nil {
		return
	}
	s.stopLongRunning(ctx, li.rec)
	// Disabling or deleting ends the instance's work: sleeping calls are
	// woken so it does not wait for them.
	li.inst.Stop()
	if err := li.inst.Close(ctx); err != nil {
		s.log.Warn().Err(err).Str("instance", li.rec.Name).Msg("instance did not drain cleanly")
	}
	s.log.Info().Str("instance", li.rec.Name).Str("plugin", li.rec.Plugin).Msg("instance stopped")
}

// running returns the live instance called name, held until release is
// called (see hold).
func (s *Service) running(ctx context.Context, name string) (li *liveInstance, release func(), err error) {
	rec, err := s.st.GetInstanceByName(ctx, name)
	if err != nil {
		return nil, nil, fmt.Errorf("instance %q: %w", name, err)
	}
	li, release = s.hold(rec.ID)
	if li == nil {
		return nil, nil, fmt.Errorf("%w: instance %q is disabled", ErrConflict, name)
	}
	return li, release, nil
}

// Health returns the instance's module health.
func (s *Service) Health(ctx context.Context, name string) (store.ModuleHealth, error) {
	rec, err := s.st.GetInstanceByName(ctx, name)
	if err != nil {
		return store.ModuleHealth{}, fmt.Errorf("instance %q: %w", name, err)
	}
	h, err := s.st.Health(ctx, rec.ID)
	if errors.Is(err, store.ErrNotFound) {
		return store.ModuleHealth{}, nil
	}
	return h, err
}

// IntegrationContext returns an instance's integration context and version.
func (s *Service) IntegrationContext(ctx context.Context, name string) (map[string]any, int64, error) {
	rec, err := s.st.GetInstanceByName(ctx, name)
	if err != nil {
		return nil, 0, fmt.Errorf("instance %q: %w", name, err)
	}
	return s.st.GetContext(ctx, rec.ID)
}

// SetIntegrationContext replaces an instance's integration context; version
// -1 writes unconditionally, otherwise a stale version is ErrConflict.
func (s *Service) SetIntegrationContext(ctx context.Context, name string, value map[string]any, version int64) (int64, error) {
	rec, err := s.st.GetInstanceByName(ctx, name)
	if err != nil {
		return 0, fmt.Errorf("instance %q: %w", name, err)
	}
	if value == nil {
		value = map[string]any{}
	}
	return s.st.SetContext(ctx, rec.ID, value, version)
}
