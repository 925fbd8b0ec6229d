package main

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host/wasmrun"
	"github.com/connhost/connhost/internal/testenv"
	"github.com/connhost/connhost/plugins/ticketdesk/tdserver"
)

// TestWasmAgainstServer runs the built module: the SDK's exports, the
// http_request round trip and the codec as compiled for wasip1.
func TestWasmAgainstServer(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.srv.CreateTicket(tdserver.Ticket{Title: "a"})
	f.srv.CreateTicket(tdserver.Ticket{Title: "b"})

	rt, err := wasmrun.NewRuntime(ctx, testenv.CacheDir())
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	p, err := rt.Compile(ctx, testenv.Plugin(t, "ticketdesk"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Manifest.ValidateParams(f.params(nil)); err != nil {
		t.Fatalf("fixture params do not fit the manifest: %v", err)
	}
	h, err := rt.NewHost(ctx, p, f.params(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.TestModule(ctx); err != nil {
		t.Fatalf("test-module: %v", err)
	}
	incs, err := h.FetchIncidents(ctx)
	if err != nil || !slices.Equal(ids(incs), []string{"TD-1", "TD-2"}) {
		t.Fatalf("fetch = %v, %v", ids(incs), err)
	}
	f.clock.set(f.t0.Add(time.Minute))
	f.srv.AddComment("TD-1", tdserver.Comment{Body: "hello", Author: "bob"})
	f.srv.Close("TD-1", "Resolved", "")
	r, err := h.GetRemoteData(ctx, abi.GetRemoteDataArgs{RemoteIncidentID: "TD-1", LastUpdate: f.t0.Format(time.RFC3339)})
	if err != nil || len(r.Entries) != 2 || !isEntry(r.Entries[1], abi.KeyIncidentClose) {
		t.Fatalf("get-remote-data = %+v, %v", r, err)
	}
	if _, v := h.IntegrationContext(); v != 1 {
		t.Errorf("integration context version = %d, want 1 after recording the close", v)
	}
	f.srv.SetRateLimited(true)
	if _, err := h.Command(ctx, "ticketdesk-get-ticket", map[string]string{"id": "TD-1"}); abi.KindOf(err) != abi.KindRateLimited {
		t.Errorf("rate limited command: err = %v", err)
	}
	bad, err := rt.NewHost(ctx, p, f.params(map[string]any{"max_fetch": float64(0)}))
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Configure(ctx); abi.KindOf(err) != abi.KindBadRequest {
		t.Errorf("configure with max_fetch 0: err = %v, want bad_request", err)
	}
}
