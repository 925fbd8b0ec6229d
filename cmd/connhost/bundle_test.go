package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/internal/secrets"
	"github.com/connhost/connhost/internal/service"
	"github.com/connhost/connhost/internal/signing"
	"github.com/connhost/connhost/internal/store"
)

// offline runs the connhost binary with no network: in a new network
// namespace when unshare -n works here (root), and always with an
// environment that has no usable proxy and no module proxy.
func offline(t *testing.T, args ...string) result {
	t.Helper()
	name, argv := binary, args
	if err := exec.Command("unshare", "-n", "true").Run(); err == nil {
		name, argv = "unshare", append([]string{"-n", binary}, args...)
	} else {
		t.Logf("unshare -n unavailable (%v): relying on the environment only", err)
	}
	cmd := exec.Command(name, argv...)
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + cmd.Dir,
		"HTTP_PROXY=http://127.0.0.1:1", "HTTPS_PROXY=http://127.0.0.1:1", "NO_PROXY=", "GOPROXY=off"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running %s %v: %v", name, argv, err)
	}
	return result{stdout.String(), stderr.String(), code}
}

// openService opens a data dir written by the CLI, in process.
func openService(t *testing.T, dataDir string) *service.Service {
	t.Helper()
	ctx := context.Background()
	key, _, err := secrets.LoadOrCreateKeyFile(filepath.Join(dataDir, "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	box, err := secrets.New(key)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, filepath.Join(dataDir, "db"), store.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := host.NewRuntime(ctx, host.Config{CacheDir: cacheDir, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := service.New(ctx, service.Options{Store: st, Runtime: rt, Secrets: box, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = svc.Close(ctx)
		_ = rt.Close(ctx)
		_ = st.Close()
	})
	return svc
}

// TestBundleRoundTrip installs signed plugins into one data dir, bundles
// them, installs the bundle offline into a fresh data dir with
// require_signed, and runs an instance of the installed plugin there.
func TestBundleRoundTrip(t *testing.T) {
	work := t.TempDir()
	key := keygen(t, work, "author")
	plugins := []string{copyFile(t, echoWasm, work)}
	if tdWasm != "" {
		plugins = append(plugins, copyFile(t, tdWasm, work))
	}
	check(t, connhost(t, nil, append([]string{"plugin", "sign", "--key", key}, plugins...)...), exitOK, nil, nil)

	source := filepath.Join(work, "source")
	check(t, connhost(t, nil, append([]string{"plugin", "install", "--data-dir", source, "--signing-trusted-keys", key + ".pub"}, plugins...)...), exitOK, []string{"installed echo@0.1.0"}, nil)
	chb := filepath.Join(work, "plugins.chb")
	check(t, connhost(t, nil, append([]string{"bundle", "create", "-o", chb, "--key", key}, plugins...)...),
		exitOK, []string{"index signed by key ID"}, nil)

	target := filepath.Join(work, "target")
	args := []string{"bundle", "install", chb, "--data-dir", target, "--cache-dir", filepath.Join(work, "target-cache"),
		"--signing-trusted-keys", key + ".pub", "--signing-require-signed"}
	r := offline(t, args...)
	check(t, r, exitOK, []string{"installed echo@0.1.0", "signed by key ID"}, nil)
	// Reinstalling the same bundle is a no-op.
	check(t, offline(t, args...), exitOK, []string{"installed echo@0.1.0"}, nil)

	ctx := context.Background()
	// Both installs (plugin install, bundle install) keep each plugin's
	// .minisig with its version, for engines.
	for _, dir := range []string{source, target} {
		checkKeptSignatures(t, dir, key+".pub", len(plugins))
	}
	src := openService(t, source)
	want, err := src.Plugins.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dst := openService(t, target)
	got, err := dst.Plugins.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(plugins) || len(got) != len(want) {
		t.Fatalf("installed %d plugins, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Name != want[i].Name || got[i].SHA256 != want[i].SHA256 {
			t.Errorf("plugin %d: got %s sha256 %s, want %s sha256 %s", i, got[i].Name, got[i].SHA256, want[i].Name, want[i].SHA256)
		}
	}
	enabled := true
	if _, err := dst.Instances.Create(ctx, service.InstanceInput{Name: "echo-1", Plugin: "echo", Enabled: &enabled,
		Params: map[string]any{"token": "t0ken"}}); err != nil {
		t.Fatal(err)
	}
	if err := dst.Commands.Test(ctx, "echo-1"); err != nil {
		t.Fatalf("test-module on the offline-installed plugin: %v", err)
	}
	res, err := dst.Commands.Execute(ctx, "echo-1", service.ExecuteRequest{Command: "echo", Args: map[string]any{"msg": "air-gapped"}})
	if err != nil || !bytes.Contains(res.Result, []byte("air-gapped")) {
		t.Fatalf("echo: %s %v", res.Result, err)
	}
}

// checkKeptSignatures checks that each of the want plugins installed in
// dataDir keeps a .minisig by the key in pubFile.
func checkKeptSignatures(t *testing.T, dataDir, pubFile string, want int) {
	t.Helper()
	ctx := context.Background()
	raw, err := os.ReadFile(pubFile)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := signing.ParsePublicKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	policy := signing.NewPolicy([]signing.PublicKey{pub}, true)
	st, err := store.Open(ctx, filepath.Join(dataDir, "db"), store.Options{GCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	pvs, err := st.ListPlugins(ctx)
	if err != nil || len(pvs) != want {
		t.Fatalf("%s: %d plugins, want %d: %v", dataDir, len(pvs), want, err)
	}
	for _, pv := range pvs {
		blob, err := st.GetPluginBlob(ctx, pv.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := policy.Verify(blob, pv.Minisig); err != nil {
			t.Errorf("%s: plugin %s@%s keeps minisig %q: %v", dataDir, pv.Name, pv.Version, pv.Minisig, err)
		}
	}
}

// TestBundleInstallRefuses: the checks of bundle install, each on a fresh
// data dir except the downgrades, which need a newer version installed
// (and in one the older build still installed beside it).
func TestBundleInstallRefuses(t *testing.T) {
	work := t.TempDir()
	key, stranger := keygen(t, work, "author"), keygen(t, work, "stranger")
	signed := copyFile(t, echoWasm, work)
	check(t, connhost(t, nil, "plugin", "sign", "--key", key, signed), exitOK, nil, nil)

	old := echoVersion(t, work, "0.0.9")
	check(t, connhost(t, nil, "plugin", "sign", "--key", key, old), exitOK, nil, nil)

	bundleOf := func(name string, args ...string) string {
		out := filepath.Join(work, name)
		check(t, connhost(t, nil, append([]string{"bundle", "create", "-o", out}, args...)...), exitOK, nil, nil)
		return out
	}
	good := bundleOf("good.chb", "--key", key, signed)
	oldBundle := bundleOf("old.chb", "--key", key, old)
	unsignedPlugin := bundleOf("unsigned.chb", "--key", key, copyFile(t, echoWasm, t.TempDir()))
	strangerIndex := bundleOf("stranger.chb", "--key", stranger, signed)
	corrupt := filepath.Join(work, "corrupt.chb")
	b, _ := os.ReadFile(good)
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(corrupt, b, 0o644); err != nil {
		t.Fatal(err)
	}

	installed := filepath.Join(work, "installed")
	check(t, connhost(t, nil, "bundle", "install", good, "--data-dir", installed, "--signing-trusted-keys", key+".pub"), exitOK, nil, nil)
	// A data dir where the old build is still installed beside the
	// current one: the bundle must not bring it back either.
	both := filepath.Join(work, "both")
	check(t, connhost(t, nil, "bundle", "install", oldBundle, "--data-dir", both, "--signing-trusted-keys", key+".pub"), exitOK, nil, nil)
	check(t, connhost(t, nil, "bundle", "install", good, "--data-dir", both, "--signing-trusted-keys", key+".pub"), exitOK, nil, nil)

	tests := []struct {
		name     string
		bundle   string
		dataDir  string
		extra    []string
		code     int
		inStderr []string
	}{
		{"downgrade", oldBundle, installed, []string{"--signing-require-signed"}, exitFailed, []string{"downgrade refused", "offered version 0.0.9 is older than the current version 0.1.0"}},
		{"older build still installed", oldBundle, both, []string{"--signing-require-signed"}, exitFailed, []string{"downgrade refused", "offered version 0.0.9 is older than the current version 0.1.0"}},
		{"key not trusted for the name", good, "", []string{"--signing-trusted-keys", key + ".pub=ticket*|other"}, exitFailed,
			[]string{"signing key is not trusted for this plugin name", `may sign only plugins named ticket* or other, not "echo"`}},
		{"unsigned plugin, require_signed", unsignedPlugin, "", []string{"--signing-require-signed"}, exitFailed, []string{"unsigned and require_signed is on"}},
		{"index by unknown key", strangerIndex, "", nil, exitFailed, []string{"index signature", "unknown key"}},
		{"corrupt file", corrupt, "", nil, exitFailed, []string{"bundle install"}},
		{"no trusted key", good, "", []string{"--signing-require-signed"}, exitFailed, []string{"unknown key"}},
		// The former flags of bundle install: hidden aliases of the signing.* options, for one release.
		{"deprecated --require-signed", unsignedPlugin, "", []string{"--require-signed"}, exitFailed,
			[]string{"--require-signed is deprecated", "unsigned and require_signed is on"}},
		{"deprecated --trusted-key", good, "", []string{"--trusted-key", key + ".pub", "--require-signed"}, exitOK,
			[]string{"--trusted-key is deprecated"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.dataDir
			if dir == "" {
				dir = filepath.Join(t.TempDir(), "data")
			}
			args := append([]string{"bundle", "install", tt.bundle, "--data-dir", dir}, tt.extra...)
			if tt.name != "no trusted key" && tt.name != "deprecated --trusted-key" && tt.name != "key not trusted for the name" {
				args = append(args, "--signing-trusted-keys", key+".pub")
			}
			check(t, offline(t, args...), tt.code, nil, tt.inStderr)
			if tt.dataDir == "" && tt.code != exitOK {
				if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("a refused bundle created the data dir %s", dir)
				}
			}
		})
	}
}

// echoVersion packs testdata/echo as version into dir/VERSION/echo.wasm.
func echoVersion(t *testing.T, dir, version string) string {
	t.Helper()
	sub := filepath.Join(dir, version)
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(sub, "echo.wasm")
	manifest, err := os.ReadFile("testdata/echo.manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	m := writeTemp(t, "m.json", string(bytes.Replace(manifest, []byte(`"0.1.0"`), []byte(`"`+version+`"`), 1)))
	check(t, connhost(t, nil, "plugin", "pack", "--manifest", m, "-o", out, echoRaw), exitOK, nil, nil)
	return out
}

// TestPluginInstallDowngrade: `connhost plugin install` of an older build
// still installed is refused naming both versions, as is a file signed by
// a key not trusted for its name; `plugin rollback` is the way back.
func TestPluginInstallDowngrade(t *testing.T) {
	work := t.TempDir()
	old := echoVersion(t, work, "0.0.9")
	data := filepath.Join(work, "data")
	install := func(file string) result { return connhost(t, nil, "plugin", "install", "--data-dir", data, file) }
	check(t, install(old), exitOK, []string{"installed echo@0.0.9"}, nil)
	check(t, install(echoWasm), exitOK, []string{"installed echo@0.1.0"}, nil)
	check(t, install(old), exitUsage, nil, []string{"downgrade refused", "offered version 0.0.9 is older than the current version 0.1.0"})
	check(t, connhost(t, nil, "plugin", "rollback", "--data-dir", data, "echo"), exitOK, []string{"rolled back echo to 0.0.9"}, nil)
	check(t, install(old), exitOK, []string{"installed echo@0.0.9"}, nil)

	key := keygen(t, work, "author")
	signed := copyFile(t, echoWasm, work)
	check(t, connhost(t, nil, "plugin", "sign", "--key", key, signed), exitOK, nil, nil)
	check(t, connhost(t, nil, "plugin", "install", "--data-dir", data, "--signing-trusted-keys", key+".pub=acme-*", signed), exitUsage, nil,
		[]string{"untrusted plugin", `may sign only plugins named acme-*, not "echo"`})
	check(t, connhost(t, nil, "plugin", "install", "--data-dir", data, "--signing-trusted-keys", key+".pub=ech?", signed), exitOK,
		[]string{"installed echo@0.1.0", "signed by key ID"}, nil)
}
