package engines

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/internal/testenv/wasmbuild"
)

// TestConformanceOnEngine runs the cases of plugins/conformance against
// the same two connectors (Go SDK and hand-written WAT) on an engine: the
// results, the error kinds and the command names in errors come back as a
// local call gives them, and concurrent calls each get their own answer.
func TestConformanceOnEngine(t *testing.T) {
	f := newFixture(t)
	f.engine(t, "c1", "conf")
	for _, name := range []string{"goecho", "watecho"} {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			wasm, err := wasmbuild.Build(ctx, wasmbuild.Source{Path: "plugins/" + name})
			if err != nil {
				t.Fatal(err)
			}
			sha := sha256Hex(wasm)
			if err := f.hub.Publish(ctx, sha, wasm, nil); err != nil {
				t.Fatal(err)
			}
			f.be.mu.Lock()
			f.be.groups["conf-"+name] = "conf"
			f.be.mu.Unlock()
			sp := Spec{Info: abi.InstanceInfo{ID: "conf-" + name, Name: "conf-" + name, Brand: name}, Plugin: name + "@1.0.0", SHA256: sha,
				Limits: host.Limits{PoolSize: 2}}
			for _, c := range []struct {
				command, args string
				want          string
				kind          abi.ErrorKind
			}{
				{abi.CommandTestModule, `{}`, `"ok"`, ""},
				{"echo", `{"msg":"héllo \"quoted\"","n":"2"}`, `{"msg":"héllo \"quoted\"","n":"2"}`, ""},
				{"echo", `{}`, `{}`, ""},
				{"no-such-command", `{}`, "", abi.KindNotImplemented},
				{abi.CommandGetModifiedRemoteData, `{"last_update":"2026-01-01T00:00:00Z"}`, "", abi.KindNotImplemented},
			} {
				got, err := f.hub.Execute(ctx, "conf", sp, c.command, json.RawMessage(c.args))
				if c.kind != "" {
					var ce *host.CallError
					if !errors.As(err, &ce) || ce.Err.Kind != c.kind || !strings.Contains(err.Error(), c.command) || ce.Instance != sp.Info.Name {
						t.Fatalf("%s: error %v, want kind %s naming the instance and command", c.command, err, c.kind)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", c.command, err)
				}
				if !jsonEq(got, []byte(c.want)) {
					t.Fatalf("%s(%s) = %s, want %s", c.command, c.args, got, c.want)
				}
			}
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for g := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 10 {
						args := fmt.Sprintf(`{"g":"%d","i":"%d"}`, g, i)
						got, err := f.hub.Execute(ctx, "conf", sp, "echo", json.RawMessage(args))
						if err != nil || !jsonEq(got, []byte(args)) {
							errs <- fmt.Errorf("echo %s = %s, %v", args, got, err)
							return
						}
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
		})
	}
}

func jsonEq(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}
