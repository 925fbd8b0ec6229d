package engines

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/signing"
)

// TestEngineTrustPolicy: an engine verifies each plugin file with the
// signature published beside it against its own trust policy before
// compiling it. A file signed by a key the engine trusts (for the plugin's
// name) runs; an unsigned file, one signed by a key the engine does not
// trust, and one signed by a key trusted only for other names are refused
// with kind denied, naming the engine, the plugin and the reason.
func TestEngineTrustPolicy(t *testing.T) {
	trusted, err := signing.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := signing.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	scoped := func(names ...string) *signing.Policy {
		p, err := signing.NewScopedPolicy([]signing.TrustedKey{{Key: trusted.Public(), Names: names}}, true)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		signer  *signing.PrivateKey // nil: unsigned
		policy  *signing.Policy
		wantErr string // "" runs; else in the refusal
	}{
		{"signed by a trusted key", &trusted, signing.NewPolicy([]signing.PublicKey{trusted.Public()}, true), ""},
		{"unsigned, signatures required", nil, signing.NewPolicy([]signing.PublicKey{trusted.Public()}, true), signing.ErrUnsigned.Error()},
		{"unsigned, signatures optional", nil, signing.NewPolicy(nil, false), ""},
		{"signed by an untrusted key", &stranger, signing.NewPolicy([]signing.PublicKey{trusted.Public()}, true), signing.ErrUnknownKey.Error()},
		{"signed by a key trusted for this name", &trusted, scoped("engine*"), ""},
		{"signed by a key trusted for other names", &trusted, scoped("other-*"), signing.ErrNameNotAllowed.Error()},
		{"untrusted signature, signatures optional", &stranger, signing.NewPolicy(nil, false), signing.ErrUnknownKey.Error()},
	}
	// One runtime for every engine: its compilation cache is warm after
	// the first case.
	rt := newFixture(t).rt
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A hub per case: the object store holds one signature per file.
			f := newFixture(t)
			ctx := t.Context()
			var sig []byte
			if tc.signer != nil {
				if sig, err = signing.SignPlugin(*tc.signer, f.wasm); err != nil {
					t.Fatal(err)
				}
			}
			_, seed, err := f.hub.Enroll(ctx, "strict", "dmz")
			if err != nil {
				t.Fatal(err)
			}
			e, err := Connect(ctx, EngineOptions{URL: f.hub.ClientURL(), Name: "strict", Group: "dmz", Seed: seed,
				Runtime: rt, Policy: tc.policy, Logger: zerolog.Nop()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = e.Close(context.Background()) })
			sha := shaHex(f.wasm)
			if err := f.hub.Publish(ctx, sha, f.wasm, sig); err != nil {
				t.Fatal(err)
			}
			f.be.mu.Lock()
			f.be.groups["i1"] = "dmz"
			f.be.mu.Unlock()
			sp := Spec{Info: abi.InstanceInfo{ID: "i1", Name: "inst-i1", Brand: "engineprobe"}, Plugin: "engineprobe@1.0.0", SHA256: sha}.WithHash()
			res, err := f.hub.Execute(ctx, "dmz", sp, "echo", json.RawMessage(`{"x":1}`))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("call on engine: %v", err)
				}
				if !strings.Contains(string(res), `"x":1`) {
					t.Fatalf("echo = %s", res)
				}
				return
			}
			var ae *abi.Error
			if !errors.As(err, &ae) || ae.Kind != abi.KindDenied {
				t.Fatalf("call on engine: %v (%T), want kind %s", err, err, abi.KindDenied)
			}
			for _, want := range []string{`engine "strict"`, "engineprobe@1.0.0", `instance "inst-i1"`, tc.wantErr} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("refusal %q does not say %q", err, want)
				}
			}
		})
	}
}
