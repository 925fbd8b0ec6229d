package watecho_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host/wasmrun"
	"github.com/connhost/connhost/internal/testenv"
)

func TestEcho(t *testing.T) {
	ctx := context.Background()
	rt, err := wasmrun.NewRuntime(ctx, testenv.CacheDir())
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	p, err := rt.Compile(ctx, testenv.Plugin(t, "watecho"))
	if err != nil {
		t.Fatal(err)
	}
	if p.Manifest.Name != "watecho" {
		t.Fatalf("manifest name %q", p.Manifest.Name)
	}
	h, err := rt.NewHost(ctx, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.TestModule(ctx); err != nil {
		t.Fatalf("test-module: %v", err)
	}
	tests := []struct {
		cmd, args string
		want      string        // result, when kind is empty
		kind      abi.ErrorKind // expected error kind
	}{
		{cmd: "echo", args: `{}`, want: `{}`},
		{cmd: "echo", args: `{"a":"1","b":"x y"}`, want: `{"a":"1","b":"x y"}`},
		{cmd: "echo", args: `{"n":1.5,"o":{"k":[true,null]}}`, want: `{"n":1.5,"o":{"k":[true,null]}}`},
		{cmd: "echo", args: `{"big":"` + strings.Repeat("x", 60000) + `"}`, want: `{"big":"` + strings.Repeat("x", 60000) + `"}`},
		{cmd: "echo", args: `{"big":"` + strings.Repeat("x", 70000) + `"}`, kind: abi.KindBadRequest},
		{cmd: "ech", args: `{}`, kind: abi.KindNotImplemented},
		{cmd: "echo2", args: `{}`, kind: abi.KindNotImplemented},
	}
	for _, tc := range tests {
		got, err := h.Call(ctx, tc.cmd, json.RawMessage(tc.args))
		if tc.kind != "" {
			if abi.KindOf(err) != tc.kind {
				t.Errorf("%s (%d bytes): err = %v, want kind %s", tc.cmd, len(tc.args), err, tc.kind)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("%s (%d bytes) = %.40s…, %v", tc.cmd, len(tc.args), got, err)
		}
	}
	logs := h.Logs()
	if len(logs) != 1 || logs[0].Message != "echo: configured" || logs[0].Level != abi.LogInfo {
		t.Errorf("logs = %+v, want one info line", logs)
	}
}
