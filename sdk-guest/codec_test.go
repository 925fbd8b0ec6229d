package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/connhost/connhost/abi"
)

// parseArgsReflect is parseArgs as it was written with encoding/json: the
// reference the reflection-free Args must agree with.
func parseArgsReflect(b []byte) (map[string]string, []byte, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "{}" || string(b) == "null" {
		return nil, nil, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, nil, err
	}
	vals := make(map[string]string, len(m))
	for k, v := range m {
		var s string
		if len(v) > 0 && v[0] == '"' && json.Unmarshal(v, &s) == nil {
			vals[k] = s
			continue
		}
		if string(v) == "null" {
			continue
		}
		vals[k] = string(v)
	}
	return vals, b, nil
}

// FuzzParseArgs checks that Args accepts the arguments objects the
// encoding/json version accepted and reads the same values from them.
func FuzzParseArgs(f *testing.F) {
	for _, s := range []string{``, ` {} `, `null`, `[]`, `"x"`, `{"a":"1","b":2,"c":null,"d":{"e" : [1, true]}}`,
		`{"a":"x","a":null}`, `{"a":null,"a":"x"}`, `{"\u0061":"\ud800\u00e9<>"}`, "{\"k\xff\":\"v\xfe\"}", `{"a":1,}`, "\u00a0{}", `{"a":"1"} x`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := parseArgs(b)
		want, raw, werr := parseArgsReflect(b)
		if (err != nil) != (werr != nil) {
			t.Fatalf("parseArgs(%q): error %v, encoding/json %v", b, err, werr)
		}
		if err != nil {
			if abi.KindOf(err) != abi.KindBadRequest {
				t.Fatalf("parseArgs(%q): error kind %s, want bad_request", b, abi.KindOf(err))
			}
			return
		}
		if !maps.Equal(a.Map(), want) || a.Len() != len(want) {
			t.Fatalf("parseArgs(%q) = %q, encoding/json %q", b, a.Map(), want)
		}
		if raw != nil && !bytes.Equal(a.Raw(), raw) {
			t.Fatalf("parseArgs(%q).Raw() = %q, want %q", b, a.Raw(), raw)
		}
	})
}

// nopImports answers every RPC with a null result.
type nopImports struct{}

func (nopImports) RPC(context.Context, string, []byte) []byte { return []byte(`{"result":null}`) }
func (nopImports) Log(int32, []byte)                          {}
func (nopImports) Sleep(context.Context, int64) int32         { return abi.SleepCompleted }
func (nopImports) ShouldStop() bool                           { return false }

func echoModule(t testing.TB, result func(Args) any) *Module {
	m := NewModule(Connector{Commands: map[string]CommandFunc{
		"echo": func(_ context.Context, _ *Host, a Args) (any, error) { return result(a), nil },
	}}, nopImports{})
	env, err := abi.DecodeEnvelope(m.Configure(context.Background(), []byte(`{"abi_version":1,"instance":{"id":"i","name":"n","brand":"b"}}`)))
	if err != nil || env.Error != nil {
		t.Fatalf("configure: %v %v", err, env.Error)
	}
	return m
}

// args2KB is a 2 KB arguments object, as the runtime benchmark echoes.
var args2KB = func() []byte {
	obj := map[string]string{}
	for i := 0; len(obj) < 40; i++ {
		obj[fmt.Sprintf("field_%02d", i)] = strings.Repeat(string(rune('a'+i%26)), 36)
	}
	b, _ := json.Marshal(obj)
	return b
}()

// TestEchoSteadyState checks that echoing 2 KB allocates only the copy of
// the arguments once the output buffer has grown, and that the buffer grows
// once, not once per call. encoding/json's map decoding allocated ~130 times
// per call.
func TestEchoSteadyState(t *testing.T) {
	m := echoModule(t, func(a Args) any { return a.Raw() })
	ctx := context.Background()
	want := `{"result":` + string(args2KB) + `}`
	if got := m.Call(ctx, "echo", args2KB); string(got) != want {
		t.Fatalf("echo = %s", got)
	}
	grows := m.grows
	allocs := testing.AllocsPerRun(100, func() { m.Call(ctx, "echo", args2KB) })
	if allocs > 3 {
		t.Errorf("echo of 2 KB: %.0f allocations per call, want ≤ 3", allocs)
	}
	if m.grows != grows || grows > 1 {
		t.Errorf("output buffer grew %d times on the first call and %d times in 100 more, want 1 and 0", grows, m.grows-grows)
	}
}

// TestStageGrowsGeometrically checks that staged input of slowly growing
// sizes reallocates the buffer a logarithmic number of times, and that a
// buffer past retainLimit is not kept.
func TestStageGrowsGeometrically(t *testing.T) {
	var s stage
	for n := 1; n <= retainLimit; n += 7 {
		if b := s.get(n); len(b) != n {
			t.Fatalf("get(%d) has length %d", n, len(b))
		}
	}
	if s.allocs > 18 {
		t.Errorf("%d allocations to stage sizes up to %d bytes, want ≤ 18", s.allocs, retainLimit)
	}
	s.get(4 * retainLimit)
	if s.get(10); cap(s.buf) > retainLimit {
		t.Errorf("kept a %d-byte buffer past the %d-byte limit", cap(s.buf), retainLimit)
	}
}

// TestResultMatchesEncoder checks that results are written as the
// encoding/json Encoder without HTML escaping wrote them, for the types
// encoded by hand and for others.
func TestResultMatchesEncoder(t *testing.T) {
	type custom struct {
		A string `json:"a"`
	}
	for _, v := range []any{
		"s <&> \u2028 \xff", 1.5, true, []any{1.0, nil}, map[string]any{"b": "x", "a": []any{}},
		map[string]string{"k": "v"}, json.RawMessage(" [1, {\"a\" : \"<\"}] "), custom{"<"},
		abi.CommandResults{ReadableOutput: "done <b>", Outputs: map[string]any{"id": 1.0}},
		&abi.CommandResults{OutputsPrefix: "X"},
	} {
		m := echoModule(t, func(Args) any { return v })
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			t.Fatal(err)
		}
		want := `{"result":` + strings.TrimSuffix(buf.String(), "\n") + `}`
		if got := m.Call(context.Background(), "echo", nil); string(got) != want {
			t.Errorf("result %#v: envelope %s, want %s", v, got, want)
		}
	}
	m := echoModule(t, func(Args) any { return json.RawMessage(`{`) })
	env, err := abi.DecodeEnvelope(m.Call(context.Background(), "echo", nil))
	if err != nil || env.Error == nil || env.Error.Kind != abi.KindFailed || !strings.Contains(env.Error.Message, "encode result") {
		t.Errorf("invalid raw result: envelope %+v %v, want a failed encode result error", env, err)
	}
}

// appender is a result with its own encoder.
type appender struct{ raw string }

func (a appender) AppendJSON(dst []byte, _ bool) ([]byte, error) { return append(dst, a.raw...), nil }

// TestJSONAppender checks that a result implementing JSONAppender is
// written by its method, and that one writing invalid JSON fails the
// command instead of breaking the envelope.
func TestJSONAppender(t *testing.T) {
	m := echoModule(t, func(Args) any { return appender{`{"a":[1]}`} })
	if got := m.Call(context.Background(), "echo", nil); string(got) != `{"result":{"a":[1]}}` {
		t.Errorf("envelope %s", got)
	}
	m = echoModule(t, func(Args) any { return appender{`{"a":`} })
	env, err := abi.DecodeEnvelope(m.Call(context.Background(), "echo", nil))
	if err != nil || env.Error == nil || env.Error.Kind != abi.KindFailed {
		t.Errorf("invalid appended JSON: envelope %+v %v, want kind failed", env, err)
	}
}
