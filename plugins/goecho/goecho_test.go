package main

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host/wasmrun"
	"github.com/connhost/connhost/internal/testenv"
	"github.com/connhost/connhost/sdk-guest/sdktest"
)

// hosts returns the connector run natively and as the built wasm module.
func hosts(t *testing.T) map[string]*sdktest.Host {
	t.Helper()
	ctx := context.Background()
	rt, err := wasmrun.NewRuntime(ctx, testenv.CacheDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close(ctx) })
	p, err := rt.Compile(ctx, testenv.Plugin(t, "goecho"))
	if err != nil {
		t.Fatal(err)
	}
	wh, err := rt.NewHost(ctx, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*sdktest.Host{"native": sdktest.New(connector, nil), "wasm": wh}
}

func TestEcho(t *testing.T) {
	ctx := context.Background()
	for name, h := range hosts(t) {
		t.Run(name, func(t *testing.T) {
			if err := h.TestModule(ctx); err != nil {
				t.Fatalf("test-module: %v", err)
			}
			for _, args := range []string{`{}`, `{"a":"1","b":"x y"}`, `{"n":1.5,"o":{"k":[true,null]}}`} {
				got, err := h.Call(ctx, "echo", json.RawMessage(args))
				if err != nil {
					t.Fatalf("echo %s: %v", args, err)
				}
				if string(got) != args {
					t.Errorf("echo %s = %s", args, got)
				}
			}
			_, err := h.Call(ctx, "nope", nil)
			if abi.KindOf(err) != abi.KindNotImplemented {
				t.Errorf("unknown command: err = %v, want kind not_implemented", err)
			}
			logs := h.Logs()
			if len(logs) != 1 || logs[0].Message != "echo: configured" || logs[0].Level != abi.LogInfo {
				t.Errorf("logs = %+v, want one info line", logs)
			}
		})
	}
}

// BenchmarkWasm measures a whole connhost_call through the wasm guest:
// staging, the SDK's dispatch and codec compiled for wasip1, and output.
func BenchmarkWasm(b *testing.B) {
	ctx := context.Background()
	rt, err := wasmrun.NewRuntime(ctx, testenv.CacheDir())
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close(ctx)
	p, err := rt.Compile(ctx, testenv.Plugin(b, "goecho"))
	if err != nil {
		b.Fatal(err)
	}
	h, err := rt.NewHost(ctx, p, nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct{ name, cmd, args string }{
		{"test-module", abi.CommandTestModule, `{}`},
		{"echo-small", "echo", `{"id":"TD-1","body":"hello"}`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			args := json.RawMessage(tc.args)
			for b.Loop() {
				if _, err := h.Call(ctx, tc.cmd, args); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
