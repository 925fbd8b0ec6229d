package sdk_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/connhost/connhost/abi"
	sdk "github.com/connhost/connhost/sdk-guest"
	"github.com/connhost/connhost/sdk-guest/sdktest"
)

// benchModule returns a configured Module over the in-memory host, to
// measure the SDK's dispatch and codec without a wasm runtime.
func benchModule(b *testing.B) *sdk.Module {
	c := sdk.Connector{Commands: map[string]sdk.CommandFunc{
		"echo": func(_ context.Context, _ *sdk.Host, a sdk.Args) (any, error) { return a.Raw(), nil },
		"noargs": func(context.Context, *sdk.Host, sdk.Args) (any, error) {
			return abi.CommandResults{ReadableOutput: "done"}, nil
		},
		"cache": func(ctx context.Context, h *sdk.Host, a sdk.Args) (any, error) {
			var v string
			_, err := h.CacheGet(ctx, "k", &v)
			return v, err
		},
	}}
	fake := sdktest.New(c, nil)
	m := sdk.NewModule(c, fake)
	env, err := abi.DecodeEnvelope(m.Configure(context.Background(), []byte(`{"abi_version":1,"instance":{"id":"i","name":"n","brand":"b"},"params":{}}`)))
	if err != nil || env.Error != nil {
		b.Fatalf("configure: %v %v", err, env.Error)
	}
	return m
}

// echo2KB is the 2 KB arguments object of the runtime's echo benchmark.
var echo2KB = func() string {
	obj := map[string]string{}
	for i := 0; len(obj) < 40; i++ {
		obj[fmt.Sprintf("field_%02d", i)] = strings.Repeat(string(rune('a'+i%26)), 36)
	}
	b, _ := json.Marshal(obj)
	return string(b)
}()

// BenchmarkCall measures Module.Call natively: the SDK's dispatch and
// codec, its allocations, without a wasm runtime.
func BenchmarkCall(b *testing.B) {
	cases := []struct {
		name, cmd, args string
	}{
		{"test-module", abi.CommandTestModule, `{}`},
		{"no-args", "noargs", `{}`},
		{"echo-small", "echo", `{"id":"TD-1","body":"hello"}`},
		{"cache-rpc", "cache", `{}`},
		{"echo-2KB", "echo", echo2KB},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			m := benchModule(b)
			args := []byte(tc.args)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				m.Call(ctx, tc.cmd, args)
			}
		})
	}
}
