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
	"github.com/connhost/connhost/internal/signing"
	"github.com/connhost/connhost/internal/store"
)

// Plugins installs plugin versions and chooses the version instances run:
// the current version of each plugin (install, set current, rollback),
// per-instance pins, and the watched plugin directory. A change of
// version switches the running instances atomically (see activate).
type Plugins struct {
	c      *core
	policy *signing.Policy
	watch  *watcher
}

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
	// Signature is how the file passed the trust policy at install:
	// "signed" by the trusted key SignedBy, "unsigned", "bundle" (checked
	// with its bundle), or "" when not recorded (installed by an older
	// connhost).
	Signature string `json:"signature,omitempty"`
	SignedBy  string `json:"signedBy,omitempty"`
}

// pluginInfo describes a stored version.
func pluginInfo(pv store.PluginVersion) (PluginInfo, error) {
	var m abi.Manifest
	if err := json.Unmarshal(pv.Manifest, &m); err != nil {
		return PluginInfo{}, fmt.Errorf("plugin %s@%s: stored manifest: %w", pv.Name, pv.Version, store.ErrCorrupt)
	}
	return PluginInfo{Name: pv.Name, Version: pv.Version, SHA256: pv.SHA256,
		InstalledAt: pv.InstalledAt, InstalledBy: pv.InstalledBy, Manifest: &m, Signature: pv.Signature, SignedBy: pv.SignedBy}, nil
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

	// signature and signedBy are what the trust policy found, to record
	// with the version.
	signature, signedBy string
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
// switches to it atomically (see activate). Installing the bytes of an
// installed version makes that version current again unless it is older
// than the current one (a downgrade: only Rollback and SetCurrent go
// back); other bytes under an installed name and version are refused
// (ErrExists: versions are immutable). A refusal of the policy is
// ErrUntrusted, a file that is not a valid plugin ErrInvalid, a downgrade
// ErrConflict wrapping signing.ErrDowngrade.
func (ps *Plugins) Install(ctx context.Context, req InstallRequest) (InstallResult, error) {
	v, err := ps.policy.Verify(req.Wasm, req.Signature)
	if err != nil {
		return InstallResult{}, fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	if v.Warning != "" {
		ps.c.log.Warn().Str("plugin", v.Label()).Str("by", req.By).Msg(v.Warning)
	}
	req.signature = "unsigned"
	if v.Signed {
		req.signature, req.signedBy = "signed", v.KeyID.String()
	}
	res, err := ps.install(ctx, req)
	if err != nil {
		return InstallResult{}, fromStore(err)
	}
	res.Signed, res.Warning = v.Signed, v.Warning
	if v.Signed {
		res.KeyID = v.KeyID.String()
	}
	return res, nil
}

// InstallVerified installs and switches to a plugin file whose signature
// the caller has already checked against a trust policy (bundle install
// verifies every member before installing any). sig is the file's
// .minisig from the bundle (nil when unsigned), kept with the version for
// engines. The downgrade check still applies.
func (ps *Plugins) InstallVerified(ctx context.Context, wasm, sig []byte, by string) (PluginInfo, error) {
	res, err := ps.install(ctx, InstallRequest{Wasm: wasm, Signature: sig, By: by, signature: "bundle"})
	return res.PluginInfo, fromStore(err)
}

func (ps *Plugins) install(ctx context.Context, req InstallRequest) (InstallResult, error) {
	c := ps.c
	done, err := c.enter()
	if err != nil {
		return InstallResult{}, err
	}
	defer done()
	// Compiling takes seconds for a large guest: it happens before the
	// lifecycle lock, so calls and other changes go on meanwhile.
	p, err := c.rt.Load(ctx, req.Wasm)
	if err != nil {
		return InstallResult{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	p = c.keepPlugin(ctx, p)
	m := p.Manifest
	c.lifecycle.Lock()
	defer c.lifecycle.Unlock()
	pv, created, err := ps.storeVersion(ctx, p, req)
	if err != nil {
		return InstallResult{}, err
	}
	switched, err := ps.activate(ctx, pv, p, activation{by: req.By, force: req.Force, verify: req.VerifyInstances,
		commit: func(cur *store.PluginCurrent) {
			if cur.Version != "" && cur.Version != pv.Version {
				cur.Previous = append(slices.DeleteFunc(cur.Previous, func(v string) bool { return v == cur.Version }), cur.Version)
			}
			cur.Version, cur.ChangedBy = pv.Version, req.By
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
		c.log.Info().Str("plugin", m.Name+"@"+m.Version).Str("sha256", p.SHA256).Str("by", req.By).Msg("plugin installed")
	}
	return InstallResult{PluginInfo: info, Created: created, Switched: switched}, nil
}

// storeVersion stores a compiled plugin's file and version unless the same
// file is installed already, after the downgrade check (which also applies
// to a file installed already: sending an old build again does not make it
// current). It first records the version that is current now, so "current"
// never silently moves to the newest version by being unset.
func (ps *Plugins) storeVersion(ctx context.Context, p *host.Plugin, req InstallRequest) (store.PluginVersion, bool, error) {
	st, m := ps.c.st, p.Manifest
	old, err := st.GetPluginVersion(ctx, m.Name, m.Version)
	switch {
	case err == nil && old.SHA256 != p.SHA256:
		return store.PluginVersion{}, false, fmt.Errorf("%w: plugin %s@%s is installed with other content (sha256 %s); bump the version",
			ErrExists, m.Name, m.Version, old.SHA256)
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return store.PluginVersion{}, false, err
	}
	installed, err := st.ListPluginVersions(ctx, m.Name)
	if err != nil {
		return store.PluginVersion{}, false, err
	}
	if err := ps.checkDowngrade(ctx, m.Name, m.Version, installed); err != nil {
		return store.PluginVersion{}, false, err
	}
	if old.Version != "" {
		if old.Minisig == nil && req.Signature != nil {
			return ps.addSignature(ctx, old, req)
		}
		return old, false, nil
	}
	if len(installed) > 0 {
		if _, err := st.GetPluginCurrent(ctx, m.Name); errors.Is(err, store.ErrNotFound) {
			if _, err := st.UpdatePluginCurrent(ctx, m.Name, func(cur *store.PluginCurrent) error {
				cur.Version = installed[0].Version
				return nil
			}); err != nil {
				return store.PluginVersion{}, false, err
			}
		} else if err != nil {
			return store.PluginVersion{}, false, err
		}
	}
	if err := st.PutPluginBlob(ctx, p.SHA256, req.Wasm); err != nil {
		return store.PluginVersion{}, false, err
	}
	raw, _ := json.Marshal(m)
	pv, err := st.PutPluginVersion(ctx, store.PluginVersion{
		Name: m.Name, Version: m.Version, SHA256: p.SHA256, Manifest: raw,
		InstalledAt: ps.c.now().UTC(), InstalledBy: req.By, Signature: req.signature, SignedBy: req.signedBy,
		// Kept for engines, which verify the file with their own policy.
		Minisig: req.Signature,
	})
	if err != nil {
		return store.PluginVersion{}, false, err
	}
	return pv, true, nil
}

// addSignature keeps the signature a file installed before without one
// came with this time, and publishes it to engines at once: the instances
// running the version are not restarted, so nothing else would. The
// signature is kept even when engines are unreachable (a warning): it is
// published when an instance of the version next starts.
func (ps *Plugins) addSignature(ctx context.Context, old store.PluginVersion, req InstallRequest) (store.PluginVersion, bool, error) {
	pv, err := ps.c.st.AddPluginSignature(ctx, old.Name, old.Version, req.Signature, req.signature, req.signedBy)
	if err != nil {
		return store.PluginVersion{}, false, err
	}
	log := ps.c.log.With().Str("plugin", pv.Name+"@"+pv.Version).Str("by", req.By).Logger()
	log.Info().Msg("signature added to an installed plugin version")
	if ps.c.remote != nil {
		if err := ps.c.remote.Publish(ctx, pv.SHA256, req.Wasm, pv.Minisig); err != nil {
			log.Warn().Err(err).Msg("signature kept but not yet published to engines")
		}
	}
	return pv, false, nil
}

// keepSignature adds sig to installed version pv, which has none, once
// the trust policy accepts it, without changing which version is current.
func (ps *Plugins) keepSignature(ctx context.Context, pv store.PluginVersion, wasm, sig []byte, by string) error {
	v, err := ps.policy.Verify(wasm, sig)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	req := InstallRequest{Wasm: wasm, Signature: sig, By: by, signature: "signed", signedBy: v.KeyID.String()}
	_, _, err = ps.addSignature(ctx, pv, req)
	return fromStore(err)
}

// CheckDowngrade returns the refusal an install of version of plugin name
// would meet (ErrConflict wrapping signing.ErrDowngrade), or nil. Install
// makes this check itself; bundle install calls it for every member before
// installing any.
func (ps *Plugins) CheckDowngrade(ctx context.Context, name, version string) error {
	installed, err := ps.c.st.ListPluginVersions(ctx, name)
	if err != nil {
		return fromStore(err)
	}
	return fromStore(ps.checkDowngrade(ctx, name, version, installed))
}

// checkDowngrade applies signing.CheckDowngrade against the version
// instances following the latest run now.
func (ps *Plugins) checkDowngrade(ctx context.Context, name, version string, installed []store.PluginVersion) error {
	current := ""
	if len(installed) > 0 {
		cur, err := ps.c.resolvePlugin(ctx, name, "")
		if err != nil {
			return err
		}
		current = cur.Version
	}
	versions := make([]string, 0, len(installed))
	for _, pv := range installed {
		versions = append(versions, pv.Version)
	}
	if err := signing.CheckDowngrade(name, version, current, versions); err != nil {
		return fmt.Errorf("%w: %w", ErrConflict, err)
	}
	return nil
}

// SwitchOptions tune Rollback, SetCurrent and Pin.
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
func (ps *Plugins) Rollback(ctx context.Context, name string, o SwitchOptions) (SwitchResult, error) {
	c := ps.c
	done, err := c.enter()
	if err != nil {
		return SwitchResult{}, err
	}
	defer done()
	c.lifecycle.Lock()
	defer c.lifecycle.Unlock()
	cur, err := ps.currentRecord(ctx, name)
	if err != nil {
		return SwitchResult{}, fromStore(err)
	}
	var target store.PluginVersion
	keep := len(cur.Previous)
	for keep > 0 {
		keep--
		pv, err := c.st.GetPluginVersion(ctx, name, cur.Previous[keep])
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return SwitchResult{}, fromStore(err)
		}
		target = pv
		break
	}
	if target.Version == "" {
		return SwitchResult{}, fmt.Errorf("%w: plugin %s: no previous version to roll back to (current %s)", ErrConflict, name, cur.Version)
	}
	res, err := ps.switchTo(ctx, target, activation{by: o.By, force: o.Force, verify: o.VerifyInstances,
		commit: func(cur *store.PluginCurrent) {
			cur.Version, cur.Previous, cur.ChangedBy = target.Version, cur.Previous[:keep], o.By
		}})
	return res, fromStore(err)
}

// SetCurrent makes an installed version current, switching the instances
// that follow the latest; the version it replaces can be rolled back to.
// Unlike Install it may choose an older version: it is an explicit
// operator action on versions already admitted.
func (ps *Plugins) SetCurrent(ctx context.Context, name, version string, o SwitchOptions) (SwitchResult, error) {
	c := ps.c
	done, err := c.enter()
	if err != nil {
		return SwitchResult{}, err
	}
	defer done()
	c.lifecycle.Lock()
	defer c.lifecycle.Unlock()
	pv, err := c.st.GetPluginVersion(ctx, name, version)
	if err != nil {
		return SwitchResult{}, fromStore(err)
	}
	if _, err := ps.currentRecord(ctx, name); err != nil {
		return SwitchResult{}, fromStore(err)
	}
	res, err := ps.switchTo(ctx, pv, activation{by: o.By, force: o.Force, verify: o.VerifyInstances,
		commit: func(cur *store.PluginCurrent) {
			if cur.Version != pv.Version {
				cur.Previous = append(slices.DeleteFunc(cur.Previous, func(v string) bool { return v == cur.Version }), cur.Version)
			}
			cur.Version, cur.ChangedBy = pv.Version, o.By
		}})
	return res, fromStore(err)
}

func (ps *Plugins) switchTo(ctx context.Context, pv store.PluginVersion, a activation) (SwitchResult, error) {
	p, err := ps.c.loadPlugin(ctx, pv)
	if err != nil {
		return SwitchResult{}, err
	}
	switched, err := ps.activate(ctx, pv, p, a)
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
func (ps *Plugins) currentRecord(ctx context.Context, name string) (store.PluginCurrent, error) {
	st := ps.c.st
	cur, err := st.GetPluginCurrent(ctx, name)
	if err == nil {
		return cur, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return store.PluginCurrent{}, err
	}
	pv, err := ps.c.resolvePlugin(ctx, name, "")
	if err != nil {
		return store.PluginCurrent{}, err
	}
	return st.UpdatePluginCurrent(ctx, name, func(cur *store.PluginCurrent) error {
		cur.Version = pv.Version
		return nil
	})
}

// List returns the current version of every installed plugin.
func (ps *Plugins) List(ctx context.Context) ([]PluginInfo, error) {
	pvs, err := ps.c.st.ListPlugins(ctx)
	if err != nil {
		return nil, fromStore(err)
	}
	out := make([]PluginInfo, 0, len(pvs))
	for _, newest := range pvs {
		pv, err := ps.c.resolvePlugin(ctx, newest.Name, "")
		if err != nil {
			return nil, fromStore(err)
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

// Versions returns every installed version of a plugin, newest first,
// marking the current one.
func (ps *Plugins) Versions(ctx context.Context, name string) ([]PluginInfo, error) {
	pvs, err := ps.c.st.ListPluginVersions(ctx, name)
	if err != nil {
		return nil, fromStore(err)
	}
	if len(pvs) == 0 {
		return nil, fmt.Errorf("plugin %q: %w", name, ErrNotFound)
	}
	cur, err := ps.c.resolvePlugin(ctx, name, "")
	if err != nil {
		return nil, fromStore(err)
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

// Delete removes a plugin version, or every version when version is "".
// It refuses (ErrConflict) while an instance uses a version being removed.
func (ps *Plugins) Delete(ctx context.Context, name, version string) error {
	c := ps.c
	c.lifecycle.Lock()
	defer c.lifecycle.Unlock()
	versions, err := ps.Versions(ctx, name)
	if err != nil {
		return err
	}
	insts, err := c.st.ListInstances(ctx)
	if err != nil {
		return fromStore(err)
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
		if err := c.st.DeletePluginVersion(ctx, name, v.Version); err != nil {
			return fromStore(err)
		}
	}
	if !found {
		return fmt.Errorf("plugin %s@%s: %w", name, version, ErrNotFound)
	}
	if left, err := c.st.ListPluginVersions(ctx, name); err == nil && len(left) == 0 {
		return fromStore(c.st.DeletePluginCurrent(ctx, name))
	}
	return nil
}
