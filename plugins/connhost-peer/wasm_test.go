package main

import (
	"context"
	"slices"
	"testing"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host/wasmrun"
	"github.com/connhost/connhost/internal/service"
	"github.com/connhost/connhost/internal/testenv"
)

// TestWasmAgainstServer runs the built module against a real peer server:
// the SDK's exports, http_request and the codec as compiled for wasip1.
func TestWasmAgainstServer(t *testing.T) {
	ctx := context.Background()
	p := newPeer(t)
	a := p.incident(t, service.IncidentInput{Name: ptr("a")})
	b := p.incident(t, service.IncidentInput{Name: ptr("b")})

	rt, err := wasmrun.NewRuntime(ctx, testenv.CacheDir())
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	pl, err := rt.Compile(ctx, testenv.Plugin(t, "connhost-peer"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pl.Manifest.ValidateParams(p.params(nil)); err != nil {
		t.Fatalf("fixture params do not fit the manifest: %v", err)
	}
	h, err := rt.NewHost(ctx, pl, p.params(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.TestModule(ctx); err != nil {
		t.Fatalf("test-module: %v", err)
	}
	incs, err := h.FetchIncidents(ctx)
	if err != nil || !slices.Equal(mirrorIDs(incs), []string{a.ID, b.ID}) {
		t.Fatalf("fetch = %v, %v", mirrorIDs(incs), err)
	}
	bad, err := rt.NewHost(ctx, pl, p.params(map[string]any{"api_key": "wrong"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.TestModule(ctx); abi.KindOf(err) != abi.KindFailed {
		t.Errorf("test-module with a wrong key: err = %v", err)
	}
}
