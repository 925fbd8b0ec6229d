// Package conformance runs one ABI conformance suite against the same
// connector written twice: with the Go SDK (plugins/goecho) and by hand in
// WAT without any SDK (plugins/watecho). Both run in the real host runtime,
// which proves the ABI can be implemented from SPEC.md alone.
package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/internal/testenv"
)

func TestConformance(t *testing.T) {
	for _, name := range []string{"goecho", "watecho"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			wasm := testenv.Plugin(t, name)
			var logs testenv.LogBuffer
			rt, err := host.NewRuntime(ctx, host.Config{CacheDir: testenv.CacheDir(), Logger: zerolog.New(&logs)})
			if err != nil {
				t.Fatal(err)
			}
			defer rt.Close(ctx)
			p, err := rt.Load(ctx, wasm)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			if p.Manifest.Name != name || p.Manifest.ABIVersion != abi.Version {
				t.Fatalf("manifest %+v", p.Manifest)
			}
			inst, err := rt.NewInstance(ctx, p, host.InstanceSpec{
				Info:     abi.InstanceInfo{ID: "i1", Name: "conf-" + name, Brand: name},
				Services: host.NewMemServices(),
				Limits:   host.Limits{PoolSize: 2},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer inst.Close(ctx)

			cases := []struct {
				command, args string
				want          string        // result JSON, when no error
				kind          abi.ErrorKind // error kind, when an error
			}{
				{abi.CommandTestModule, `{}`, `"ok"`, ""},
				{"echo", `{"msg":"héllo \"quoted\"","n":"2"}`, `{"msg":"héllo \"quoted\"","n":"2"}`, ""},
				{"echo", `{}`, `{}`, ""},
				{"no-such-command", `{}`, "", abi.KindNotImplemented},
				{abi.CommandGetModifiedRemoteData, `{"last_update":"2026-01-01T00:00:00Z"}`, "", abi.KindNotImplemented},
			}
			for _, c := range cases {
				got, err := inst.Execute(ctx, c.command, json.RawMessage(c.args))
				if c.kind != "" {
					var ce *host.CallError
					if !errors.As(err, &ce) || ce.Err.Kind != c.kind || !strings.Contains(err.Error(), c.command) {
						t.Fatalf("%s: error %v, want kind %s naming the command", c.command, err, c.kind)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", c.command, err)
				}
				if !jsonEqual(t, got, []byte(c.want)) {
					t.Fatalf("%s(%s) = %s, want %s", c.command, c.args, got, c.want)
				}
			}

			// Concurrent calls share the pool; each gets its own answer.
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 25; i++ {
						args := fmt.Sprintf(`{"g":"%d","i":"%d"}`, g, i)
						got, err := inst.Execute(ctx, "echo", json.RawMessage(args))
						if err != nil || !jsonEqual(t, got, []byte(args)) {
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
			if st := inst.Stats(); st.Created > 2 || st.Discarded != 0 {
				t.Fatalf("pool stats %+v: want at most 2 module instances, none discarded", st)
			}
			if !strings.Contains(logs.String(), "echo: configured") || !strings.Contains(logs.String(), "conf-"+name) {
				t.Fatalf("guest log line missing or not tagged with the instance:\n%s", logs.String())
			}
		})
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("result %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("want %s: %v", b, err)
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}
