package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/host/signing"
	"github.com/connhost/connhost/store"
)

// ErrUntrusted wraps refusals of the trust policy (signing.ErrUnsigned,
// ErrUnknownKey, ErrTamperedPlugin, ...); the wrapped error names the check.
var ErrUntrusted = errors.New("untrusted plugin")

// PluginInfo describes one installed plugin version.
type PluginInfo struct {
	Name        string        `json:"name"`
	Version     string        `json:"version"`
	SHA256      string        `json:"sha256"`
	InstalledAt time.Time     `json:"installedAt"`
	InstalledBy string        `json:"installedBy,omitempty"`
	Manifest    *abi.Manifest `json:"manifest"`
	// Current is set on the version that instances following the latest
	// run.
	Current bool `json:"current,omitempty"`
}

func pluginInfo(pv store.PluginVersion) (PluginInfo, error) {
	var m abi.Manifest
	if err := json.Unmarshal(pv.Manifest, &m); err != nil {
		return PluginInfo{}, fmt.Errorf("plugin %s@%s: stored manifest: %w", pv.Name, pv.Version, store.ErrCorrupt)
	}
	return PluginInfo{Name: pv.Name, Version: pv.Version, SHA256: pv.SHA256,
		InstalledAt: pv.InstalledAt, InstalledBy: pv.InstalledBy, Manifest: &m}, nil
}

// InstallRequest is one plugin file to install and switch to.
type InstallRequest struct {
	Wasm []byte
	// Signature is the detached .minisig; nil when the plugin has none.
	Signature []byte
	// By names who installs, for the version's audit fields.
	By string
	// Force switches instances whose params do not fit the new manifest.
	Force bool
	// VerifyInstances runs test-module on every switched instance before
	// switching; one failure keeps every instance on its version.
	VerifyInstances bool
}

// InstallResult is what Install did.
type InstallResult struct {
	PluginInfo
	// Created is false when the same file was installed before.
	Created bool `json:"created"`
	// Switched names the enabled instances now running this version.
	Switched []string `json:"switched"`
	// Signed and KeyID say whether a trusted key signed the file.
	Signed bool   `json:"signed"`
	KeyID  string `json:"keyId,omitempty"`
	// Warning is set when an unsigned plugin was admitted.
	Warning string `json:"warning,omitempty"`
}

// Install verifies a plugin file against the trust policy and the
// downgrade check, compiles it (through the compilation cache), stores it
// and makes it the current version: every instance that follows the latest
// switches to it atomically (see switchInstances). Installing the bytes of
// an installed version makes that version current again; other bytes under
// an installed name and version are refused (versions are immutable).
func (s *Service) Install(ctx context.Context, req InstallRequest) (InstallResult, error) {
	v, err := s.policy.Verify(req.Wasm, req.Signature)
	if err != nil {
		return InstallResult{}, fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	if v.Warning != "" {
		s.log.Warn().Str("plugin", v.Label()).Str("by", req.By).Msg(v.Warning)
	}
	res, err := s.install(ctx, req)
	if err != nil {
		return InstallResult{}, err
	}
	res.Signed, res.Warning = v.Signed, v.Warning
	if v.Signed {
		res.KeyID = v.KeyID.String()
	}
	return res, nil
}

// InstallPlugin installs and switches to a plugin file as Install does,
// without a signature: it applies the trust policy to an unsigned file.
// Callers that verified the file against their own policy (bundle install)
// use InstallVerified.
func (s *Service) InstallPlugin(ctx context.Context, wasm []byte, by string) (PluginInfo, error) {
	res, err := s.Install(ctx, InstallRequest{Wasm: wasm, By: by})
	return res.PluginInfo, err
}

// InstallVerified installs and switches to a plugin file whose signature
// the caller has already checked against a trust policy (bundle install
// verifies every member before installing any). The downgrade check still
// applies.
func (s *Service) InstallVerified(ctx context.Context, wasm []byte, by string) (PluginInfo, error) {
	res, err := s.install(ctx, InstallRequest{Wasm: wasm, By: by})
	return res.PluginInfo, err
}

func (s *Service) install(ctx context.Context, req InstallRequest) (InstallResult, error) {
	done, err := s.enter()
	if err != nil {
		return InstallResult{}, err
	}
	defer done()
	// Compiling takes seconds for a large guest: it happens before the
	// lifecycle lock, so calls and other changes go on meanwhile.
	p, err := s.rt.Load(ctx, req.Wasm)
	if err != nil {
		return InstallResult{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	p = s.keepPlugin(ctx, p)
	m := p.Manifest
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	pv, created, err := s.storeVersion(ctx, p, req)
	if err != nil {
		return InstallResult{}, err
	}
	switched, err := s.activate(ctx, pv, p, activation{by: req.By, force: req.Force, verify: req.VerifyInstances,
		commit: func(c *store.PluginCurrent) {
			if c.Version != "" && c.Version != pv.Version {
				c.Previous = append(slices.DeleteFunc(c.Previous, func(v string) bool { return v == c.Version }), c.Version)
			}
			c.Version, c.ChangedBy = pv.Version, req.By
		}})
	if err != nil {
		return InstallResult{}, err
	}
	info, err := pluginInfo(pv)
	if err != nil {
		return InstallResult{}, err
	}
	info.Current = true
	if created {
		s.log.Info().Str("plugin", m.Name).Str("version", m.Version).Str("sha256", p.SHA256).Str("by", req.By).Msg("plugin installed")
	}
	return InstallResult{PluginInfo: info, Created: created, Switched: switched}, nil
}

// storeVersion stores a compiled plugin's file and version unless the same
// file is installed already, after the downgrade check. It first records
// the version that is current now, so "current" never silently moves to
// the newest version by being unset.
func (s *Service) storeVersion(ctx context.Context, p *host.Plugin, req InstallRequest) (store.PluginVersion, bool, error) {
	m := p.Manifest
	if old, err := s.st.GetPluginVersion(ctx, m.Name, m.Version); err == nil {
		if old.SHA256 != p.SHA256 {
			return store.PluginVersion{}, false, fmt.Errorf("%w: plugin %s@%s is installed with other content (sha256 %s); bump the version",
				ErrExists, m.Name, m.Version, old.SHA256)
		}
		return old, false, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return store.PluginVersion{}, false, err
	}
	installed, err := s.st.ListPluginVersions(ctx, m.Name)
	if err != nil {
		return store.PluginVersion{}, false, err
	}
	versions := make([]string, 0, len(installed))
	for _, pv := range installed {
		versions = append(versions, pv.Version)
	}
	if err := signing.CheckDowngrade(m.Name, m.Version, versions); err != nil {
		return store.PluginVersion{}, false, fmt.Errorf("%w: %w", ErrConflict, err)
	}
	if len(installed) > 0 {
		if _, err := s.st.GetPluginCurrent(ctx, m.Name); errors.Is(err, store.ErrNotFound) {
			if _, err := s.st.UpdatePluginCurrent(ctx, m.Name, func(c *store.PluginCurrent) error {
				c.Version = installed[0].Version
				return nil
			}); err != nil {
				return store.PluginVersion{}, false, err
			}
		} else if err != nil {
			return store.PluginVersion{}, false, err
		}
	}
	if err := s.st.PutPluginBlob(ctx, p.SHA256, req.Wasm); err != nil {
		return store.PluginVersion{}, false, err
	}
	raw, _ := json.Marshal(m)
	pv, err := s.st.PutPluginVersion(ctx, store.PluginVersion{
		Name: m.Name, Version: m.Version, SHA256: p.SHA256, Manifest: raw,
		InstalledAt: s.now().UTC(), InstalledBy: req.By,
	})
	if err != nil {
		return store.PluginVersion{}, false, err
	}
	return pv, true, nil
}

// keepPlugin caches a freshly compiled plugin by hash, or returns the one
// already cached (closing p).
func (s *Service) keepPlugin(ctx context.Context, p *host.Plugin) *host.Plugin {
	s.mu.Lock()
	defer s.mu.Unlock()
	if existing, ok := s.plugins[p.SHA256]; ok {
		if existing != p {
			_ = p.Close(ctx)
		}
		return existing
	}
	s.plugins[p.SHA256] = p
	return p
}

// SwitchOptions tune Rollback and SetCurrent.
type SwitchOptions struct {
	By              string
	Force           bool
	VerifyInstances bool
}

// SwitchResult is the version a plugin's followers run after Rollback or
// SetCurrent, and the enabled instances switched to it.
type SwitchResult struct {
	PluginInfo
	Switched []string `json:"switched"`
}

// Rollback makes the version that was current before the current one
// current again, switching the instances that follow the latest. Versions
// deleted since are skipped; with none left it is ErrConflict.
func (s *Service) Rollback(ctx context.Context, name string, o SwitchOptions) (SwitchResult, error) {
	done, err := s.enter()
	if err != nil {
		return SwitchResult{}, err
	}
	defer done()
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	cur, err := s.currentRecord(ctx, name)
	if err != nil {
		return SwitchResult{}, err
	}
	var target store.PluginVersion
	keep := len(cur.Previous)
	for keep > 0 {
		keep--
		pv, err := s.st.GetPluginVersion(ctx, name, cur.Previous[keep])
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return SwitchResult{}, err
		}
		target = pv
		break
	}
	if target.Version == "" {
		return SwitchResult{}, fmt.Errorf("%w: plugin %s: no previous version to roll back to (current %s)", ErrConflict, name, cur.Version)
	}
	return s.switchTo(ctx, target, activation{by: o.By, force: o.Force, verify: o.VerifyInstances,
		commit: func(c *store.PluginCurrent) {
			c.Version, c.Previous, c.ChangedBy = target.Version, c.Previous[:keep], o.By
		}})
}

// SetCurrent makes an installed version current, switching the instances
// that follow the latest; the version it replaces can be rolled back to.
// Unlike Install it may choose an older version: it is an explicit
// operator action on versions already admitted.
func (s *Service) SetCurrent(ctx context.Context, name, version string, o SwitchOptions) (SwitchResult, error) {
	done, err := s.enter()
	if err != nil {
		return SwitchResult{}, err
	}
	defer done()
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	pv, err := s.st.GetPluginVersion(ctx, name, version)
	if err != nil {
		return SwitchResult{}, err
	}
	if _, err := s.currentRecord(ctx, name); err != nil {
		return SwitchResult{}, err
	}
	return s.switchTo(ctx, pv, activation{by: o.By, force: o.Force, verify: o.VerifyInstances,
		commit: func(c *store.PluginCurrent) {
			if c.Version != pv.Version {
				c.Previous = append(slices.DeleteFunc(c.Previous, func(v string) bool { return v == c.Version }), c.Version)
			}
			c.Version, c.ChangedBy = pv.Version, o.By
		}})
}

func (s *Service) switchTo(ctx context.Context, pv store.PluginVersion, a activation) (SwitchResult, error) {
	p, err := s.loadPlugin(ctx, pv)
	if err != nil {
		return SwitchResult{}, err
	}
	switched, err := s.activate(ctx, pv, p, a)
	if err != nil {
		return SwitchResult{}, err
	}
	info, err := pluginInfo(pv)
	if err != nil {
		return SwitchResult{}, err
	}
	info.Current = true
	return SwitchResult{PluginInfo: info, Switched: switched}, nil
}

// currentRecord returns a plugin's current-version record, creating it
// from the newest installed version when it was never set.
func (s *Service) currentRecord(ctx context.Context, name string) (store.PluginCurrent, error) {
	cur, err := s.st.GetPluginCurrent(ctx, name)
	if err == nil {
		return cur, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return store.PluginCurrent{}, err
	}
	pv, err := s.resolvePlugin(ctx, name, "")
	if err != nil {
		return store.PluginCurrent{}, err
	}
	return s.st.UpdatePluginCurrent(ctx, name, func(c *store.PluginCurrent) error {
		c.Version = pv.Version
		return nil
	})
}

// ListPlugins returns the current version of every installed plugin.
func (s *Service) ListPlugins(ctx context.Context) ([]PluginInfo, error) {
	pvs, err := s.st.ListPlugins(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]PluginInfo, 0, len(pvs))
	for _, newest := range pvs {
		pv, err := s.resolvePlugin(ctx, newest.Name, "")
		if err != nil {
			return nil, err
		}
		pi, err := pluginInfo(pv)
		if err != nil {
			return nil, err
		}
		pi.Current = true
		out = append(out, pi)
	}
	return out, nil
}

// PluginVersions returns every installed version of a plugin, newest
// first, marking the current one.
func (s *Service) PluginVersions(ctx context.Context, name string) ([]PluginInfo, error) {
	pvs, err := s.st.ListPluginVersions(ctx, name)
	if err != nil {
		return nil, err
	}
	if len(pvs) == 0 {
		return nil, fmt.Errorf("plugin %q: %w", name, ErrNotFound)
	}
	cur, err := s.resolvePlugin(ctx, name, "")
	if err != nil {
		return nil, err
	}
	out := make([]PluginInfo, 0, len(pvs))
	for _, pv := range pvs {
		pi, err := pluginInfo(pv)
		if err != nil {
			return nil, err
		}
		pi.Current = pv.Version == cur.Version
		out = append(out, pi)
	}
	return out, nil
}

// DeletePlugin removes a plugin version, or every version when version is
// "". It refuses while an instance uses a version being removed.
func (s *Service) DeletePlugin(ctx context.Context, name, version string) error {
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
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
			if in.Plugin == name && ((in.PinnedVersion == "" && (v.Current || version == "")) || in.PinnedVersion == v.Version) {
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
	if left, err := s.st.ListPluginVersions(ctx, name); err == nil && len(left) == 0 {
		return s.st.DeletePluginCurrent(ctx, name)
	}
	return nil
}

// resolvePlugin returns the stored version an instance runs: its pinned
// version, or the plugin's current version (the newest when none was set
// or the current one was deleted).
func (s *Service) resolvePlugin(ctx context.Context, name, pinned string) (store.PluginVersion, error) {
	if pinned != "" {
		return s.st.GetPluginVersion(ctx, name, pinned)
	}
	cur, err := s.st.GetPluginCurrent(ctx, name)
	switch {
	case err == nil:
		pv, err := s.st.GetPluginVersion(ctx, name, cur.Version)
		if !errors.Is(err, store.ErrNotFound) {
			return pv, err
		}
	case !errors.Is(err, store.ErrNotFound):
		return store.PluginVersion{}, err
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
	return s.keepPlugin(ctx, p), nil
}
