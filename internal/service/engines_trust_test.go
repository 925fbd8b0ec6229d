package service_test

import (
	"context"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/internal/engines"
	"github.com/connhost/connhost/internal/service"
	"github.com/connhost/connhost/internal/signing"
	"github.com/connhost/connhost/internal/store"
)

// TestPluginsSignatureReachesEngine: the .minisig a plugin was installed
// with travels to engines, so an engine requiring signatures runs a signed
// version of an instance in its group; after an unsigned version (admitted
// by the server's lenient policy) replaces it, the engine refuses it with
// kind denied naming the engine and the plugin. Installing that file again
// with its .minisig adds the signature, and the engine runs it.
func TestPluginsSignatureReachesEngine(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: compiles two plugin versions and exercises no concurrency")
	}
	key, err := signing.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	hub, err := engines.StartHub(ctx, engines.HubOptions{Listen: "127.0.0.1:0", StoreDir: t.TempDir(), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hub.Close)
	e := newEnv(t, func(o *service.Options) {
		o.Engines = hub
		o.Policy = signing.NewPolicy([]signing.PublicKey{key.Public()}, false)
	})
	hub.Attach(e.svc)
	_, seed, err := hub.Enroll(ctx, "strict", "dmz")
	if err != nil {
		t.Fatal(err)
	}
	rt, err := host.NewRuntime(ctx, host.Config{CacheDir: t.TempDir(), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close(context.Background()) })
	eng, err := engines.Connect(ctx, engines.EngineOptions{URL: hub.ClientURL(), Name: "strict", Group: "dmz", Seed: seed,
		Runtime: rt, Policy: signing.NewPolicy([]signing.PublicKey{key.Public()}, true), Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close(context.Background()) })

	v1 := echo(t, "1.0.0")
	sig, err := signing.SignPlugin(key, v1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Plugins.Install(ctx, service.InstallRequest{Wasm: v1, Signature: sig, By: "test"}); err != nil {
		t.Fatal(err)
	}
	e.instance(service.InstanceInput{Name: "remote", Plugin: "goecho", Enabled: ptr(true), Settings: &store.Settings{EngineGroup: "dmz"}})
	if got := e.run("remote", "version", nil); got != `{"version":"1.0.0"}` {
		t.Fatalf("signed plugin on the engine: %s", got)
	}

	v2 := echo(t, "2.0.0")
	if _, err := e.svc.Plugins.Install(ctx, service.InstallRequest{Wasm: v2, By: "test"}); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Commands.Execute(ctx, "remote", service.ExecuteRequest{Command: "version"})
	if abi.KindOf(err) != abi.KindDenied {
		t.Fatalf("unsigned plugin on the engine: %v (kind %q), want kind denied", err, abi.KindOf(err))
	}
	for _, want := range []string{`engine "strict"`, "goecho@2.0.0", signing.ErrUnsigned.Error()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("refusal %q does not say %q", err, want)
		}
	}

	sig2, err := signing.SignPlugin(key, v2)
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.svc.Plugins.Install(ctx, service.InstallRequest{Wasm: v2, Signature: sig2, By: "test"})
	if err != nil || res.Created || res.Signature != "signed" || res.SignedBy != key.ID.String() {
		t.Fatalf("installing goecho@2.0.0 again, signed: %+v, %v", res, err)
	}
	if got := e.run("remote", "version", nil); got != `{"version":"2.0.0"}` {
		t.Fatalf("goecho@2.0.0 signed afterwards, on the engine: %s", got)
	}
}
