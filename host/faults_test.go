package host

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/connhost/connhost/abi"
)

// TestFaults runs each fault guest: the fault fails only its own call with
// an error naming it, the module instance is discarded, the next call on the
// same Instance succeeds and another Instance of the plugin is untouched.
func TestFaults(t *testing.T) {
	tests := []struct {
		guest, command string
		args           any
		limits         Limits
		// deadline, if set, bounds the faulting call alone (its context):
		// unlike Limits.CallTimeout it does not also bound a Go guest's
		// start-up in Warm and in the recovery call, which a busy machine
		// stretches past a budget of 100 ms.
		deadline time.Duration
		kind     abi.ErrorKind
		want     string
	}{
		{guest: "trap", command: "boom", kind: abi.KindTrap, want: "unreachable"},
		{guest: "panic", command: "panic", kind: abi.KindTrap, want: "panic: deliberate panic from the panic guest"},
		{guest: "loop", command: "spin", limits: Limits{CallTimeout: 200 * time.Millisecond}, kind: abi.KindTimeout, want: "deadline exceeded"},
		{guest: "membomb", command: "bomb", limits: Limits{MemoryBytes: 48 << 20}, kind: abi.KindMemoryLimit, want: "memory limit of 50331648 bytes exceeded"},
		{guest: "outputbomb", command: "bomb", kind: abi.KindOutputLimit, want: "output of 5242880 bytes exceeds the limit of 4194304"},
		{guest: "badjson", command: "bad", kind: abi.KindABIViolation, want: "malformed result envelope"},
		{guest: "sleeper", command: "sleep", limits: Limits{CallTimeout: 200 * time.Millisecond}, kind: abi.KindTimeout, want: "deadline exceeded"},
		// time.Sleep is WASI poll_oneoff, which sleeps for real and ends the
		// call at its deadline.
		{guest: "wasisleeper", command: "sleep", args: map[string]int{"ms": 600}, deadline: 100 * time.Millisecond, kind: abi.KindTimeout, want: "deadline exceeded"},
		{guest: "abuse", command: "oob", kind: abi.KindABIViolation, want: "buffer_read(65532, 5): out of bounds"},
		{guest: "abuse", command: "noout", kind: abi.KindABIViolation, want: "returned without calling output"},
		{guest: "abuse", command: "twice", kind: abi.KindABIViolation, want: "output called more than once"},
		{guest: "abuse", command: "ret1", kind: abi.KindABIViolation, want: "connhost_call returned 1, want 0"},
	}
	e := newEnv(t)
	for _, tt := range tests {
		t.Run(tt.guest+"/"+tt.command, func(t *testing.T) {
			svc := NewMemServices()
			spec := InstanceSpec{Limits: tt.limits}
			a := e.instance(t, tt.guest, svc, spec)
			b := e.instance(t, tt.guest, svc, InstanceSpec{Info: abi.InstanceInfo{ID: "other", Name: "other"}, Limits: tt.limits})
			ctx := context.Background()
			if err := a.Warm(ctx, 1); err != nil {
				t.Fatal(err)
			}
			if err := b.Warm(ctx, 1); err != nil {
				t.Fatal(err)
			}
			callCtx := ctx
			if tt.deadline > 0 {
				var cancel context.CancelFunc
				callCtx, cancel = context.WithTimeout(ctx, tt.deadline)
				defer cancel()
			}
			raw, err := json.Marshal(tt.args)
			if err != nil {
				t.Fatal(err)
			}
			_, err = a.Execute(callCtx, tt.command, raw)
			ce := wantCallError(t, err, tt.kind, tt.want)
			if ce.Instance != "inst-"+tt.guest || ce.Command != tt.command || ce.Plugin == "" {
				t.Errorf("CallError names %q/%q/%q", ce.Instance, ce.Plugin, ce.Command)
			}
			if st := a.Stats(); st.Discarded != 1 || st.Idle != 0 || st.Busy != 0 {
				t.Errorf("after fault: stats %+v, want the module instance discarded", st)
			}
			if got := mustExec[string](t, a, "ok", nil); got != "ok" {
				t.Errorf("next call: %q", got)
			}
			if st := a.Stats(); st.Created != 2 || st.Idle != 1 {
				t.Errorf("after recovery: stats %+v, want a fresh module instance", st)
			}
			if got := mustExec[string](t, b, "ok", nil); got != "ok" {
				t.Errorf("other instance: %q", got)
			}
			if st := b.Stats(); st.Created != 1 || st.Discarded != 0 {
				t.Errorf("other instance: stats %+v, want its warm module instance untouched", st)
			}
		})
	}
}

// TestLoadRejects checks Load names what is wrong with a plugin file.
func TestLoadRejects(t *testing.T) {
	noManifest := []byte("\x00asm\x01\x00\x00\x00")
	tests := []struct {
		name string
		wasm []byte
		kind abi.ErrorKind
		want []string
	}{
		{"wrongabi", guest(t, "wrongabi"), abi.KindIncompatible, []string{`connhost_abi_version returned 2`}},
		{"noexports", guest(t, "noexports"), abi.KindIncompatible, []string{`missing export "connhost_call" (i32, i32) -> (i32)`}},
		{"badimports", guest(t, "badimports"), abi.KindIncompatible, []string{
			`import "env"."abort": unknown module "env"`,
			`import "connhost_v1"."teleport": no such function`,
			`import "connhost_v1"."output" has signature (i32) -> (i32), want (i32, i32) -> (i32)`,
		}},
		{"not wasm", []byte("#!/bin/sh\n"), abi.KindBadRequest, []string{"not a wasm module"}},
		{"no manifest", noManifest, abi.KindBadRequest, []string{"no connhost.manifest custom section"}},
	}
	e := newEnv(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.rt.Load(context.Background(), tt.wasm)
			if abi.KindOf(err) != tt.kind {
				t.Fatalf("error %v, want kind %s", err, tt.kind)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not name %q", err, w)
				}
			}
		})
	}
}
