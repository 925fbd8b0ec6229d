package service_test

import (
	"context"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/secrets"
	"github.com/connhost/connhost/internal/service"
)

// TestServiceNew: the store, runtime and secrets are required.
func TestServiceNew(t *testing.T) {
	e := newEnv(t)
	for name, o := range map[string]service.Options{
		"no store":   {Runtime: rt, Secrets: e.box},
		"no runtime": {Store: e.st, Secrets: e.box},
		"no secrets": {Store: e.st, Runtime: rt},
	} {
		if _, err := service.New(context.Background(), o); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

// TestServiceRestart: enabled instances start with the service (unless
// idle); one that cannot start is recorded in its health and does not
// stop the others.
func TestServiceRestart(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.install(probe(t, "1.0.0"))
	e.instance(service.InstanceInput{Name: "p", Plugin: "probe", Enabled: ptr(true)})
	e.instance(service.InstanceInput{Name: "sealed", Plugin: "probe", Enabled: ptr(true), Params: map[string]any{"api_key": "k"}})

	e.opts.Idle = true
	e.restart()
	_, err := e.svc.Commands.Execute(ctx, "p", service.ExecuteRequest{Command: "echo"})
	wantErr(t, err, service.ErrConflict) // an idle service starts no instance

	// Another secret key: the sealed param no longer opens.
	box, err := secrets.New([]byte(rand.Text() + rand.Text())[:secrets.KeySize])
	if err != nil {
		t.Fatal(err)
	}
	e.opts.Idle, e.opts.Secrets = false, box
	e.restart()
	if got := e.run("p", "echo", nil); got != "{}" {
		t.Errorf("restarted instance answers %s", got)
	}
	h, err := e.svc.Instances.Health(ctx, "sealed")
	if err != nil || !h.IsError || !strings.Contains(h.Message, "did not start") {
		t.Errorf("health of the instance that did not start: %+v, %v", h, err)
	}
}

// TestServiceClose: after Close the service is not ready and refuses work
// with ErrShuttingDown.
func TestServiceClose(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.install(probe(t, "1.0.0"))
	e.instance(service.InstanceInput{Name: "p", Plugin: "probe", Enabled: ptr(true)})
	if !e.svc.Ready() {
		t.Fatal("a new service is not ready")
	}
	if err := e.svc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if e.svc.Ready() {
		t.Error("a closed service is ready")
	}
	s := e.svc
	for name, call := range map[string]func() error{
		"execute": func() error {
			_, err := s.Commands.Execute(ctx, "p", service.ExecuteRequest{Command: "echo"})
			return err
		},
		"fetch": func() error { _, err := s.Commands.Fetch(ctx, "p"); return err },
		"test":  func() error { return s.Commands.Test(ctx, "p") },
		"install": func() error {
			_, err := s.Plugins.Install(ctx, service.InstallRequest{Wasm: probe(t, "1.0.0")})
			return err
		},
		"rollback":  func() error { _, err := s.Plugins.Rollback(ctx, "probe", service.SwitchOptions{}); return err },
		"pin":       func() error { _, err := s.Plugins.Pin(ctx, "p", "", service.SwitchOptions{}); return err },
		"call":      func() error { _, err := s.Mirroring.Call(ctx, "p", "echo", nil); return err },
		"run fetch": func() error { return s.Mirroring.RunFetch(ctx, "p") },
		"http": func() error {
			_, err := s.LongRunning.HandleHTTP(ctx, "p", abi.HTTPRequest{Method: "GET", Path: "/"}, nil)
			return err
		},
	} {
		t.Run(name, func(t *testing.T) { wantErr(t, call(), service.ErrShuttingDown) })
	}
}
