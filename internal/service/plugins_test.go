package service_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/service"
	"github.com/connhost/connhost/internal/signing"
	"github.com/connhost/connhost/internal/testenv/wait"
)

// runs reports the version the instance's sandboxes run, as goecho's
// version command says.
func (e *env) runs(instance string) string {
	e.t.Helper()
	return e.run(instance, "version", nil)
}

func versionJSON(v string) string { return `{"version":"` + v + `"}` }

// TestPluginsInstall: installing is idempotent for the same file, refuses
// other content under an installed version, downgrades (also of a file
// still installed) and files that are not plugins.
func TestPluginsInstall(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		wasm    []byte
		want    error
		created bool
	}{
		{"new", echo(t, "1.0.0"), nil, true},
		{"same file again", echo(t, "1.0.0"), nil, false},
		{"other content, same version", echo(t, "1.0.0", abi.Param{Name: "greeting", Type: abi.ParamString}), service.ErrExists, false},
		{"newer", echo(t, "2.0.0"), nil, true},
		{"downgrade", echo(t, "1.5.0"), service.ErrConflict, false},
		{"not a plugin", []byte("\x00asm but not really"), service.ErrInvalid, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := e.svc.Plugins.Install(ctx, service.InstallRequest{Wasm: tc.wasm, By: "test"})
			wantErr(t, err, tc.want)
			// A refused file is not stored; an installed one is.
			sum := sha256.Sum256(tc.wasm)
			_, berr := e.st.GetPluginBlob(ctx, hex.EncodeToString(sum[:]))
			if stored := berr == nil; stored != (err == nil) {
				t.Errorf("install err %v, but the file is stored: %v (%v)", err, stored, berr)
			}
			if err != nil {
				return
			}
			if res.Created != tc.created || !res.Current || res.Signed || res.Warning == "" || res.InstalledBy != "test" {
				t.Errorf("result %+v", res)
			}
		})
	}
	// Sending the older, still installed file again does not make it
	// current: that is a downgrade, refused naming both versions.
	_, err := e.svc.Plugins.Install(ctx, service.InstallRequest{Wasm: echo(t, "1.0.0"), By: "test"})
	wantErr(t, err, service.ErrConflict)
	if !errors.Is(err, signing.ErrDowngrade) || !strings.Contains(err.Error(), "offered version 1.0.0 is older than the current version 2.0.0") {
		t.Errorf("reinstalling the older file: %v", err)
	}
	// The refused file is the installed 1.0.0's: refusing it must not
	// take away the file a version uses.
	sum := sha256.Sum256(echo(t, "1.0.0"))
	if _, err := e.st.GetPluginBlob(ctx, hex.EncodeToString(sum[:])); err != nil {
		t.Errorf("file of the installed 1.0.0 after its refused reinstall: %v", err)
	}
	if err := e.svc.Plugins.CheckDowngrade(ctx, "goecho", "1.0.0"); !errors.Is(err, signing.ErrDowngrade) {
		t.Errorf("CheckDowngrade of the older version: %v", err)
	}
	// Only an explicit set-current goes back; after it, the newer file is
	// an upgrade again and reinstalling the current one a no-op.
	if _, err := e.svc.Plugins.SetCurrent(ctx, "goecho", "1.0.0", service.SwitchOptions{By: "admin"}); err != nil {
		t.Fatal(err)
	}
	if res := e.install(echo(t, "1.0.0")); res.Created || res.Version != "1.0.0" {
		t.Errorf("reinstalling the current version: %+v", res)
	}
	vs, err := e.svc.Plugins.Versions(ctx, "goecho")
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 || vs[0].Version != "2.0.0" || vs[0].Current || vs[1].Version != "1.0.0" || !vs[1].Current {
		t.Errorf("versions %+v", vs)
	}
	ps, err := e.svc.Plugins.List(ctx)
	if err != nil || len(ps) != 1 || ps[0].Version != "1.0.0" || !ps[0].Current || ps[0].Manifest.Name != "goecho" {
		t.Errorf("list %+v, %v", ps, err)
	}
	if res := e.install(echo(t, "2.0.0")); res.Created || res.Version != "2.0.0" || !res.Current {
		t.Errorf("reinstalling the newer version after set-current: %+v", res)
	}
	if _, err := e.svc.Plugins.Versions(ctx, "nosuch"); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("versions of an unknown plugin: %v", err)
	}
}

// TestPluginsTrust: with require_signed, only files signed by a trusted
// key are installed; refusals are ErrUntrusted. InstallVerified skips the
// policy (its caller verified) but not the downgrade check. Each version
// keeps the .minisig it came with, for engines to verify.
func TestPluginsTrust(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: compiles several plugin versions and exercises no concurrency")
	}
	trusted, err := signing.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := signing.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *service.Options) { o.Policy = signing.NewPolicy([]signing.PublicKey{trusted.Public()}, true) })
	ctx := context.Background()
	v1, v2 := echo(t, "1.0.0"), echo(t, "2.0.0")
	sign := func(k signing.PrivateKey, wasm []byte) []byte {
		sig, err := signing.SignPlugin(k, wasm)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	for _, tc := range []struct {
		name      string
		wasm, sig []byte
		want      error
	}{
		{"unsigned", v1, nil, service.ErrUntrusted},
		{"unknown key", v1, sign(stranger, v1), service.ErrUntrusted},
		{"signature of another file", v1, sign(trusted, v2), service.ErrUntrusted},
		{"trusted", v1, sign(trusted, v1), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := e.svc.Plugins.Install(ctx, service.InstallRequest{Wasm: tc.wasm, Signature: tc.sig, By: "test"})
			wantErr(t, err, tc.want)
			if err == nil && (!res.Signed || res.KeyID != trusted.ID.String() || res.Warning != "") {
				t.Errorf("result %+v", res)
			}
		})
	}
	v2sig := sign(trusted, v2)
	if pi, err := e.svc.Plugins.InstallVerified(ctx, v2, v2sig, "bundle"); err != nil || pi.Version != "2.0.0" || !pi.Current {
		t.Fatalf("install verified: %+v, %v", pi, err)
	}
	if _, err := e.svc.Plugins.InstallVerified(ctx, echo(t, "1.5.0"), nil, "bundle"); !errors.Is(err, service.ErrConflict) {
		t.Errorf("verified downgrade: %v", err)
	}
	// Each version keeps how it passed the policy, for listings.
	vs, err := e.svc.Plugins.Versions(ctx, "goecho")
	if err != nil || len(vs) != 2 {
		t.Fatalf("versions %+v, %v", vs, err)
	}
	if vs[0].Version != "2.0.0" || vs[0].Signature != "bundle" || vs[0].SignedBy != "" ||
		vs[1].Version != "1.0.0" || vs[1].Signature != "signed" || vs[1].SignedBy != trusted.ID.String() {
		t.Errorf("recorded signatures: %s %q %q, %s %q %q", vs[0].Version, vs[0].Signature, vs[0].SignedBy, vs[1].Version, vs[1].Signature, vs[1].SignedBy)
	}
	// The kept .minisig is the file's signature by the trusted key.
	keyOnly := signing.NewPolicy([]signing.PublicKey{trusted.Public()}, true)
	for version, wasm := range map[string][]byte{"1.0.0": v1, "2.0.0": v2} {
		pv, err := e.st.GetPluginVersion(ctx, "goecho", version)
		if err != nil {
			t.Fatal(err)
		}
		if v, err := keyOnly.Verify(wasm, pv.Minisig); err != nil || !v.Signed {
			t.Errorf("goecho@%s keeps minisig %q: %v", version, pv.Minisig, err)
		}
	}
	t.Run("unsigned", func(t *testing.T) {
		open := newEnv(t)
		if _, err := open.svc.Plugins.Install(ctx, service.InstallRequest{Wasm: v1, By: "test"}); err != nil {
			t.Fatal(err)
		}
		if ps, err := open.svc.Plugins.List(ctx); err != nil || len(ps) != 1 || ps[0].Signature != "unsigned" || ps[0].SignedBy != "" {
			t.Errorf("an unsigned install lists as %+v, %v", ps, err)
		}
		if pv, err := open.st.GetPluginVersion(ctx, "goecho", "1.0.0"); err != nil || pv.Minisig != nil {
			t.Errorf("an unsigned install keeps minisig %q, %v", pv.Minisig, err)
		}
	})
}

// TestPluginsVersionSwitch: instances that follow the latest switch on
// install, rollback and set-current; pinned ones stay; rollback walks back
// through the versions that were current and then refuses.
func TestPluginsVersionSwitch(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.install(echo(t, "1.0.0"))
	e.instance(service.InstanceInput{Name: "follow", Plugin: "goecho", Enabled: ptr(true)})
	e.instance(service.InstanceInput{Name: "pinned", Plugin: "goecho", Version: ptr("1.0.0"), Enabled: ptr(true)})
	e.instance(service.InstanceInput{Name: "off", Plugin: "goecho"})

	res := e.install(echo(t, "2.0.0"))
	if !slices.Equal(res.Switched, []string{"follow"}) {
		t.Errorf("install switched %v, want [follow]", res.Switched)
	}
	if got := e.runs("follow"); got != versionJSON("2.0.0") {
		t.Errorf("follower runs %s after install", got)
	}
	if got := e.runs("pinned"); got != versionJSON("1.0.0") {
		t.Errorf("pinned instance runs %s after install", got)
	}
	if v, _ := e.svc.Instances.Get(ctx, "off"); v.Version != "2.0.0" {
		t.Errorf("disabled follower shows version %q", v.Version)
	}

	o := service.SwitchOptions{By: "test"}
	for _, tc := range []struct {
		name    string
		do      func() (service.SwitchResult, error)
		want    error
		current string // the follower's version afterwards
	}{
		{"rollback", func() (service.SwitchResult, error) { return e.svc.Plugins.Rollback(ctx, "goecho", o) }, nil, "1.0.0"},
		{"rollback with no previous version", func() (service.SwitchResult, error) { return e.svc.Plugins.Rollback(ctx, "goecho", o) }, service.ErrConflict, "1.0.0"},
		{"set current", func() (service.SwitchResult, error) { return e.svc.Plugins.SetCurrent(ctx, "goecho", "2.0.0", o) }, nil, "2.0.0"},
		{"set current to an unknown version", func() (service.SwitchResult, error) {
			return e.svc.Plugins.SetCurrent(ctx, "goecho", "9.0.0", o)
		}, service.ErrNotFound, "2.0.0"},
		{"rollback after set current", func() (service.SwitchResult, error) { return e.svc.Plugins.Rollback(ctx, "goecho", o) }, nil, "1.0.0"},
		{"rollback of an unknown plugin", func() (service.SwitchResult, error) { return e.svc.Plugins.Rollback(ctx, "nosuch", o) }, service.ErrNotFound, "1.0.0"},
		{"set current of an unknown plugin", func() (service.SwitchResult, error) {
			return e.svc.Plugins.SetCurrent(ctx, "nosuch", "1.0.0", o)
		}, service.ErrNotFound, "1.0.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := tc.do()
			wantErr(t, err, tc.want)
			if err == nil && (res.Version != tc.current || !res.Current || !slices.Equal(res.Switched, []string{"follow"})) {
				t.Errorf("result %+v", res)
			}
			if got := e.runs("follow"); got != versionJSON(tc.current) {
				t.Errorf("follower runs %s, want %s", got, tc.current)
			}
			if got := e.runs("pinned"); got != versionJSON("1.0.0") {
				t.Errorf("pinned instance runs %s", got)
			}
		})
	}
}

// TestPluginsPin: pinning moves one instance to a version and keeps it
// there across installs; unpinning makes it follow the current version.
func TestPluginsPin(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.install(echo(t, "1.0.0"))
	e.instance(service.InstanceInput{Name: "a", Plugin: "goecho", Enabled: ptr(true)})
	e.install(echo(t, "2.0.0"))
	o := service.SwitchOptions{By: "test"}
	for _, tc := range []struct {
		name, instance, version string
		want                    error
		runs                    string // what instance a runs afterwards
	}{
		{"pin to the older version", "a", "1.0.0", nil, "1.0.0"},
		{"pin to an unknown version", "a", "7.0.0", service.ErrNotFound, "1.0.0"},
		{"pin an unknown instance", "nosuch", "1.0.0", service.ErrNotFound, "1.0.0"},
		{"unpin", "a", "", nil, "2.0.0"},
		{"pin to the current version", "a", "2.0.0", nil, "2.0.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := e.svc.Plugins.Pin(ctx, tc.instance, tc.version, o)
			wantErr(t, err, tc.want)
			if err == nil && (v.PinnedVersion != tc.version || v.Version != tc.runs) {
				t.Errorf("view %+v", v)
			}
			if got := e.runs("a"); got != versionJSON(tc.runs) {
				t.Errorf("runs %s, want %s", got, tc.runs)
			}
		})
	}
	// Pinned to 2.0.0, the instance stays there when 3.0.0 is installed.
	if res := e.install(echo(t, "3.0.0")); len(res.Switched) != 0 {
		t.Errorf("install switched the pinned instance: %v", res.Switched)
	}
	if got := e.runs("a"); got != versionJSON("2.0.0") {
		t.Errorf("pinned instance runs %s after install", got)
	}
}

// TestPluginsUpgradeCheck: an instance whose params do not fit the new
// manifest blocks the switch (ErrConflict) and keeps every instance on
// its version, unless forced.
func TestPluginsUpgradeCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: compiles several plugin versions and exercises no concurrency")
	}
	e := newEnv(t)
	ctx := context.Background()
	greeting := abi.Param{Name: "greeting", Type: abi.ParamString}
	e.install(echo(t, "1.0.0", greeting))
	e.instance(service.InstanceInput{Name: "a", Plugin: "goecho", Enabled: ptr(true), Params: map[string]any{"greeting": "hi"}})
	for _, tc := range []struct {
		name string
		wasm []byte
	}{
		{"param changes type", echo(t, "2.0.0", abi.Param{Name: "greeting", Type: abi.ParamNumber})},
		{"param no longer declared", echo(t, "3.0.0")},
		{"new required param", echo(t, "4.0.0", greeting, abi.Param{Name: "region", Type: abi.ParamString, Required: true})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.svc.Plugins.Install(ctx, service.InstallRequest{Wasm: tc.wasm, By: "test"})
			wantErr(t, err, service.ErrConflict)
			if got := e.runs("a"); got != versionJSON("1.0.0") {
				t.Errorf("instance runs %s after a refused switch", got)
			}
		})
	}
	if _, err := e.svc.Plugins.Pin(ctx, "a", "3.0.0", service.SwitchOptions{}); !errors.Is(err, service.ErrConflict) {
		t.Errorf("pin to a version the params do not fit: %v", err)
	}
	res, err := e.svc.Plugins.Install(ctx, service.InstallRequest{Wasm: echo(t, "4.0.0", greeting, abi.Param{Name: "region", Type: abi.ParamString, Required: true}),
		By: "test", Force: true})
	if err != nil || !slices.Equal(res.Switched, []string{"a"}) {
		t.Fatalf("forced install: %+v, %v", res, err)
	}
	if got := e.runs("a"); got != versionJSON("4.0.0") {
		t.Errorf("instance runs %s after a forced switch", got)
	}
}

// TestPluginsDelete: a version an instance runs (current for followers,
// or pinned) cannot be deleted; others can, and deleting the last version
// forgets the plugin.
func TestPluginsDelete(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: compiles several plugin versions and exercises no concurrency")
	}
	e := newEnv(t)
	ctx := context.Background()
	e.install(echo(t, "1.0.0"))
	e.install(echo(t, "2.0.0"))
	e.instance(service.InstanceInput{Name: "follow", Plugin: "goecho"})
	e.instance(service.InstanceInput{Name: "pinned", Plugin: "goecho", Version: ptr("1.0.0")})
	for _, tc := range []struct {
		name, plugin, version string
		want                  error
	}{
		{"current version of a follower", "goecho", "2.0.0", service.ErrConflict},
		{"pinned version", "goecho", "1.0.0", service.ErrConflict},
		{"every version", "goecho", "", service.ErrConflict},
		{"unknown version", "goecho", "3.0.0", service.ErrNotFound},
		{"unknown plugin", "nosuch", "", service.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, e.svc.Plugins.Delete(ctx, tc.plugin, tc.version), tc.want)
		})
	}
	for _, name := range []string{"follow", "pinned"} {
		if err := e.svc.Instances.Delete(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.svc.Plugins.Delete(ctx, "goecho", "1.0.0"); err != nil {
		t.Fatal(err)
	}
	if vs, err := e.svc.Plugins.Versions(ctx, "goecho"); err != nil || len(vs) != 1 || vs[0].Version != "2.0.0" {
		t.Errorf("versions after deleting 1.0.0: %+v, %v", vs, err)
	}
	if err := e.svc.Plugins.Delete(ctx, "goecho", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Plugins.Versions(ctx, "goecho"); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("versions after deleting every version: %v", err)
	}
	if ps, err := e.svc.Plugins.List(ctx); err != nil || len(ps) != 0 {
		t.Errorf("list: %+v, %v", ps, err)
	}
}

// TestPluginsWatchDir: files in the watched directory are installed at
// start and when dropped in; a restart does not reinstall a file whose
// version is installed, so it does not undo a rollback.
func TestPluginsWatchDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "echo-1.wasm"), echo(t, "1.0.0"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *service.Options) { o.WatchDir = dir })
	ctx := context.Background()
	current := func() string {
		vs, _ := e.svc.Plugins.Versions(ctx, "goecho")
		for _, v := range vs {
			if v.Current {
				return v.Version
			}
		}
		return ""
	}
	waitFor(t, "1.0.0 installed from the directory", func() bool { return current() == "1.0.0" })
	if err := os.WriteFile(filepath.Join(dir, "echo-2.wasm"), echo(t, "2.0.0"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", e.logs.String())
		}
	})
	waitFor(t, "2.0.0 installed when dropped in", func() bool { return current() == "2.0.0" })
	if _, err := e.svc.Plugins.Rollback(ctx, "goecho", service.SwitchOptions{By: "test"}); err != nil {
		t.Fatal(err)
	}
	e.restart()
	// A file dropped after the restart is handled after the start's pass
	// over the directory, so once it is in, that pass is done.
	if err := os.WriteFile(filepath.Join(dir, "echo-3.wasm"), echo(t, "3.0.0"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "3.0.0 installed after the restart", func() bool { return current() == "3.0.0" })
	// The old build dropped in again under another name is refused: it
	// would take 3.0.0's place.
	if err := os.WriteFile(filepath.Join(dir, "echo-1-again.wasm"), echo(t, "1.0.0"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the old build refused", func() bool {
		return strings.Contains(e.logs.String(), "watched plugin file not installed") ||
			strings.Count(e.logs.String(), "watched plugin file installed") > 3
	})
	if log := e.logs.String(); !strings.Contains(log, "offered version 1.0.0 is older than the current version 3.0.0") {
		t.Errorf("log of the refused file:\n%s", log)
	}
	if v := current(); v != "3.0.0" {
		t.Errorf("current version %s after the old build was dropped in again, want 3.0.0", v)
	}
	if n := strings.Count(e.logs.String(), "watched plugin file installed"); n != 3 {
		t.Errorf("%d watched files installed, want 3 (the restart reinstalled one)", n)
	}
}

// waitFor polls cond for up to 10 s.
// waitFor waits for cond; what it waits for may include compiling a Go
// guest from cold, seconds on a busy machine.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	wait.For(t, time.Minute, what, cond)
}

// TestPluginsWatchDirKeepsSignature: a watched FILE.wasm.minisig is kept
// with the version it signs; one that appears, while the server is down,
// beside a file installed unsigned is added to that version at start
// without making it current (it is older than the current one).
func TestPluginsWatchDirKeepsSignature(t *testing.T) {
	key, err := signing.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	v1, v2 := echo(t, "1.0.0"), echo(t, "2.0.0")
	write := func(name string, data []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	sign := func(wasm []byte) []byte {
		sig, err := signing.SignPlugin(key, wasm)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	write("echo-1.wasm", v1)
	e := newEnv(t, func(o *service.Options) {
		o.WatchDir = dir
		o.Policy = signing.NewPolicy([]signing.PublicKey{key.Public()}, false)
	})
	minisig := func(version string) []byte {
		pv, err := e.st.GetPluginVersion(context.Background(), "goecho", version)
		if err != nil {
			return nil
		}
		return pv.Minisig
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", e.logs.String())
		}
	})
	waitFor(t, "1.0.0 installed unsigned", func() bool {
		_, err := e.st.GetPluginVersion(context.Background(), "goecho", "1.0.0")
		return err == nil
	})
	if s := minisig("1.0.0"); s != nil {
		t.Fatalf("unsigned 1.0.0 keeps minisig %q", s)
	}
	sig2 := sign(v2)
	write("echo-2.wasm.minisig", sig2)
	write("echo-2.wasm", v2)
	waitFor(t, "2.0.0 installed with its signature and current", func() bool {
		vs, err := e.svc.Plugins.Versions(context.Background(), "goecho")
		return err == nil && vs[0].Version == "2.0.0" && vs[0].Current && string(minisig("2.0.0")) == string(sig2)
	})

	if err := e.svc.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	sig1 := sign(v1)
	write("echo-1.wasm.minisig", sig1)
	e.open()
	waitFor(t, "1.0.0's signature kept at start", func() bool { return string(minisig("1.0.0")) == string(sig1) })
	vs, err := e.svc.Plugins.Versions(context.Background(), "goecho")
	if err != nil || len(vs) != 2 || !vs[0].Current || vs[0].Version != "2.0.0" || vs[1].Signature != "signed" || vs[1].SignedBy != key.ID.String() {
		t.Fatalf("versions after the signature was kept: %+v, %v", vs, err)
	}
}
