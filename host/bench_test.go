package host

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host/internal/gate"
	sdk "github.com/connhost/connhost/sdk-guest"
	"github.com/connhost/connhost/sdk-guest/sdktest"
)

// benchInstance returns a warm instance of a guest on a runtime that
// instruments guests unless unchecked is set.
func benchInstance(b *testing.B, name string, unchecked bool, lim Limits) *Instance {
	b.Helper()
	return benchInstanceOf(b, guest(b, name), unchecked, lim)
}

// benchInstanceOf is benchInstance for a module given as bytes.
func benchInstanceOf(b *testing.B, wasm []byte, unchecked bool, lim Limits) *Instance {
	b.Helper()
	ctx := context.Background()
	rt, err := newRuntime(ctx, Config{Logger: zerolog.Nop()}, unchecked)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = rt.Close(ctx) })
	p, err := rt.Load(ctx, wasm)
	if err != nil {
		b.Fatal(err)
	}
	inst, err := rt.NewInstance(ctx, p, InstanceSpec{Info: abi.InstanceInfo{ID: "b", Name: "bench"}, Services: NewMemServices(), Limits: lim})
	if err != nil {
		b.Fatal(err)
	}
	if err := inst.Warm(ctx, 1); err != nil {
		b.Fatal(err)
	}
	return inst
}

func reportMicros(b *testing.B, start time.Time) {
	b.ReportMetric(float64(time.Since(start).Microseconds())/float64(b.N), "µs/op")
}

// BenchmarkCall measures a warm call of a trivial command: the host's
// per-call overhead (WAT no-op), a Go SDK guest's test-module (no decoding),
// and a raw Go guest that decodes its input with encoding/json.
func BenchmarkCall(b *testing.B) {
	for _, g := range []struct{ name, guest string }{{"wat-noop", "noop"}, {"go-sdk-test-module", "goecho"}, {"go-test-module", "probe"}} {
		b.Run(g.name, func(b *testing.B) {
			inst := benchInstance(b, g.guest, false, Limits{})
			ctx := context.Background()
			args := json.RawMessage(`{}`)
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				if _, err := inst.Execute(ctx, abi.CommandTestModule, args); err != nil {
					b.Fatal(err)
				}
			}
			reportMicros(b, start)
		})
	}
}

// echo2KB is a 2 KB JSON object: the arguments of BenchmarkInterruption's
// echo.
var echo2KB = func() json.RawMessage {
	obj := map[string]string{}
	for i := 0; len(obj) < 40; i++ {
		obj[fmt.Sprintf("field_%02d", i)] = strings.Repeat(string(rune('a'+i%26)), 36)
	}
	b, _ := json.Marshal(obj)
	return b
}()

// BenchmarkInterruption compares guests run with the gate's instrumentation
// (checked: the only way a spinning guest is stopped) and without it
// (unchecked), side by side: each iteration runs every variant once, so a
// machine that speeds up or slows down affects them alike. The guests are a
// CPU-bound loop of 10^7 iterations (count.wat), and the Go SDK echoing a
// 2 KB JSON object (goecho), which also runs natively: the same SDK code and
// handler compiled for the host, called through sdktest. It reports each
// variant's mean time per call and the ratios.
func BenchmarkInterruption(b *testing.B) {
	ctx := context.Background()
	for _, g := range []struct{ name, guest, command string }{
		{"loop", "count", abi.CommandTestModule},
		{"echo-2KB", "goecho", "echo"},
	} {
		b.Run(g.name, func(b *testing.B) {
			variants := []struct {
				name string
				call func() error
			}{}
			for _, unchecked := range []bool{false, true} {
				inst := benchInstance(b, g.guest, unchecked, Limits{})
				name := "checked"
				if unchecked {
					name = "unchecked"
				}
				variants = append(variants, struct {
					name string
					call func() error
				}{name, func() error { _, err := inst.Execute(ctx, g.command, echo2KB); return err }})
			}
			if g.guest == "goecho" {
				h := sdktest.New(sdk.Connector{Commands: map[string]sdk.CommandFunc{
					"echo": func(_ context.Context, _ *sdk.Host, args sdk.Args) (any, error) { return args.Raw(), nil },
				}}, nil)
				variants = append(variants, struct {
					name string
					call func() error
				}{"native", func() error { _, err := h.Call(ctx, "echo", echo2KB); return err }})
			}
			spent := make([]time.Duration, len(variants))
			b.ResetTimer()
			for range b.N {
				for i, v := range variants {
					start := time.Now()
					if err := v.call(); err != nil {
						b.Fatal(err)
					}
					spent[i] += time.Since(start)
				}
			}
			for i, v := range variants {
				b.ReportMetric(float64(spent[i].Microseconds())/float64(b.N), v.name+"-µs/op")
			}
			b.ReportMetric(float64(spent[0])/float64(spent[1]), "checked/unchecked")
			if len(variants) == 3 {
				b.ReportMetric(float64(spent[0])/float64(spent[2]), "checked/native")
			}
		})
	}
}

// EnvBaselineEcho names the environment variable BenchmarkEcho2KB reads: the
// path of a raw goecho module (no manifest) built against an older SDK, to
// compare with today's SDK in the same run (docs/benchmarks-runtime.md says
// how to build it).
const EnvBaselineEcho = "CONNHOST_BENCH_BASELINE_ECHO"

// BenchmarkEcho2KB measures the Go SDK echoing a 2 KB JSON object: the goecho
// guest in the sandbox as the server runs it (instrumented), the same SDK
// code and handler compiled natively and called through sdktest, and, when
// $CONNHOST_BENCH_BASELINE_ECHO names one, goecho built against an older
// SDK. Each iteration calls every variant once, so load on the machine
// affects them alike; it reports each variant's median time per call and
// the ratios of the medians.
func BenchmarkEcho2KB(b *testing.B) {
	ctx := context.Background()
	type variant struct {
		name string
		call func() error
		inst *Instance // nil natively
	}
	execute := func(inst *Instance) func() error {
		return func() error {
			out, err := inst.Execute(ctx, "echo", echo2KB)
			// An older SDK's result ends in the newline of json.Encoder.
			if err == nil && len(bytes.TrimSpace(out)) != len(echo2KB) {
				err = fmt.Errorf("echo returned %d bytes, want %d", len(out), len(echo2KB))
			}
			return err
		}
	}
	g := benchInstance(b, "goecho", false, Limits{})
	variants := []variant{{"guest", execute(g), g}}
	h := sdktest.New(sdk.Connector{Commands: map[string]sdk.CommandFunc{
		"echo": func(_ context.Context, _ *sdk.Host, args sdk.Args) (any, error) { return args.Raw(), nil },
	}}, nil)
	variants = append(variants, variant{"native", func() error { _, err := h.Call(ctx, "echo", echo2KB); return err }, nil})
	if path := os.Getenv(EnvBaselineEcho); path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		m := manifest("goecho")
		wasm, err := abi.EmbedManifest(raw, &m)
		if err != nil {
			b.Fatal(err)
		}
		bl := benchInstanceOf(b, wasm, false, Limits{})
		variants = append(variants, variant{"baseline", execute(bl), bl})
	}
	// Medians, not means: on a shared machine a few calls descheduled for
	// milliseconds would dominate a mean.
	spent := make([][]time.Duration, len(variants))
	b.ResetTimer()
	for range b.N {
		for i, v := range variants {
			start := time.Now()
			if err := v.call(); err != nil {
				b.Fatal(err)
			}
			spent[i] = append(spent[i], time.Since(start))
		}
	}
	p50 := make([]float64, len(variants))
	for i, v := range variants {
		slices.Sort(spent[i])
		p50[i] = float64(spent[i][len(spent[i])/2].Nanoseconds()) / 1000
		b.ReportMetric(p50[i], v.name+"-µs/op-p50")
		if v.inst != nil {
			// The Go runtime grows linear memory as its heap grows; an SDK
			// that allocates less per call needs less of it.
			b.ReportMetric(float64(v.inst.memoryBytes())/(1<<10), v.name+"-linear-KiB")
		}
	}
	b.ReportMetric(p50[0]/p50[1], "guest/native")
	if len(variants) == 3 {
		b.ReportMetric(p50[2]/p50[0], "baseline/guest")
		b.ReportMetric(p50[2]/p50[1], "baseline/native")
	}
}

// ticket2KB is the ~2 KB ticket BenchmarkTypedArgs passes.
var ticket2KB = json.RawMessage(`{"id":"TD-1042","title":"Suspicious login <from> a new device","body":"` +
	strings.Repeat("User reported an unexpected MFA prompt. ", 45) + `","tags":["phishing","mfa","vip","triage"]}`)

// BenchmarkTypedArgs compares a command decoding its arguments into a
// struct and returning one through encoding/json with the same command
// through jsonwire and sdk.JSONAppender (the typedecho guest), side by side,
// medians per call.
func BenchmarkTypedArgs(b *testing.B) {
	ctx := context.Background()
	inst := benchInstance(b, "typedecho", false, Limits{})
	cmds := []string{"ticket-reflect", "ticket-fast"}
	var want json.RawMessage
	spent := make([][]time.Duration, len(cmds))
	b.ResetTimer()
	for range b.N {
		for i, cmd := range cmds {
			start := time.Now()
			out, err := inst.Execute(ctx, cmd, ticket2KB)
			spent[i] = append(spent[i], time.Since(start))
			if err != nil {
				b.Fatal(err)
			}
			if want == nil {
				want = out
			} else if !bytes.Equal(bytes.TrimSpace(out), bytes.TrimSpace(want)) {
				b.Fatalf("%s returned %s, want %s", cmd, out, want)
			}
		}
	}
	p50 := make([]float64, len(cmds))
	for i, cmd := range cmds {
		slices.Sort(spent[i])
		p50[i] = float64(spent[i][len(spent[i])/2].Nanoseconds()) / 1000
		b.ReportMetric(p50[i], cmd+"-µs/op-p50")
	}
	b.ReportMetric(p50[0]/p50[1], "reflect/fast")
}

// EnvBaselineWebhook is EnvBaselineEcho for plugins/webhook.
const EnvBaselineWebhook = "CONNHOST_BENCH_BASELINE_WEBHOOK"

// alert2KB is a ~2 KB Alertmanager-style webhook body.
var alert2KB = []byte(`{"receiver":"connhost","status":"firing","groupKey":"{}:{alertname=\"HighLatency\"}","commonLabels":{"alertname":"HighLatency","instance":"api-7:9100","severity":"critical"},"alerts":[` +
	strings.TrimSuffix(strings.Repeat(`{"status":"firing","labels":{"alertname":"HighLatency","instance":"api-7:9100"},"annotations":{"summary":"p99 latency above 2s <for 10m>"},"startsAt":"2026-12-02T07:00:00Z"},`, 9), ",") + `]}`)

// BenchmarkWebhookGuest measures the webhook connector's connhost_http
// call for one 2 KB JSON body: the SDK decoding the request, the plugin
// building the incident, the create_incidents RPC (in-memory services),
// and the SDK encoding the response. With $CONNHOST_BENCH_BASELINE_WEBHOOK
// naming the plugin built against an older SDK, both run side by side,
// medians per call.
func BenchmarkWebhookGuest(b *testing.B) {
	ctx := context.Background()
	req := abi.HTTPRequest{Method: "POST", Path: "/", Headers: map[string][]string{"Content-Type": {"application/json"}}, Body: alert2KB}
	names := []string{"guest"}
	insts := []*Instance{benchInstance(b, "webhook", false, Limits{})}
	if path := os.Getenv(EnvBaselineWebhook); path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		m, err := abi.ReadManifest(guest(b, "webhook"))
		if err != nil {
			b.Fatal(err)
		}
		wasm, err := abi.EmbedManifest(raw, m)
		if err != nil {
			b.Fatal(err)
		}
		names = append(names, "baseline")
		insts = append(insts, benchInstanceOf(b, wasm, false, Limits{}))
	}
	spent := make([][]time.Duration, len(insts))
	b.ResetTimer()
	for range b.N {
		for i, inst := range insts {
			start := time.Now()
			resp, err := inst.HandleHTTP(ctx, req)
			spent[i] = append(spent[i], time.Since(start))
			if err != nil || resp.Status != 200 {
				b.Fatalf("%s: status %d, %v: %s", names[i], resp.Status, err, resp.Body)
			}
		}
	}
	p50 := make([]float64, len(insts))
	for i, name := range names {
		slices.Sort(spent[i])
		p50[i] = float64(spent[i][len(spent[i])/2].Nanoseconds()) / 1000
		b.ReportMetric(p50[i], name+"-µs/op-p50")
	}
	if len(p50) == 2 {
		b.ReportMetric(p50[1]/p50[0], "baseline/guest")
	}
}

// BenchmarkGate measures the load-time gate (decoding and checking every
// function body, then instrumenting) against what it precedes, a cold
// compile, on a ~3.5 MB Go guest.
func BenchmarkGate(b *testing.B) {
	wasm := guest(b, "probe")
	ctx := context.Background()
	rt, err := NewRuntime(ctx, Config{Logger: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close(ctx)
	instrument := func() []byte {
		mod, err := parseModule(wasm, rt.cfg.Module, rt.hostFuncs)
		if err != nil {
			b.Fatal(err)
		}
		return mod.Instrument(gate.Config{CheckModule: guardModule, CheckName: guardName})
	}
	b.Run("gate", func(b *testing.B) {
		b.SetBytes(int64(len(wasm)))
		for range b.N {
			instrument()
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
	})
	b.Run("compile", func(b *testing.B) {
		code := instrument()
		b.SetBytes(int64(len(wasm)))
		for range b.N {
			wr := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithCoreFeatures(api.CoreFeaturesV2))
			if _, err := wr.CompileModule(ctx, code); err != nil {
				b.Fatal(err)
			}
			_ = wr.Close(ctx)
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
	})
}

// BenchmarkLoad compares compiling a ~3.7 MB Go guest from scratch with
// loading it from the compilation cache, each in a fresh Runtime (as after a
// restart). Load includes validation and one probe instantiation.
func BenchmarkLoad(b *testing.B) {
	wasm := guest(b, "probe")
	ctx := context.Background()
	load := func(b *testing.B, cache string) {
		rt, err := NewRuntime(ctx, Config{CacheDir: cache, Logger: zerolog.Nop()})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := rt.Load(ctx, wasm); err != nil {
			b.Fatal(err)
		}
		_ = rt.Close(ctx)
	}
	b.Run("cold", func(b *testing.B) {
		b.SetBytes(int64(len(wasm)))
		for range b.N {
			load(b, "")
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/op")
	})
	b.Run("cached", func(b *testing.B) {
		cache := b.TempDir()
		load(b, cache)
		b.SetBytes(int64(len(wasm)))
		b.ResetTimer()
		for range b.N {
			load(b, cache)
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/op")
	})
	// wazero-cached is the part of cached that is wazero's own: a fresh
	// wazero runtime compiling the gated module from the cache directory
	// Load filled (it decodes and validates the module, then reads and
	// checksums the compiled code). It is the floor under a cached Load.
	b.Run("wazero-cached", func(b *testing.B) {
		cache := b.TempDir()
		load(b, cache)
		rt, err := NewRuntime(ctx, Config{Logger: zerolog.Nop()})
		if err != nil {
			b.Fatal(err)
		}
		defer rt.Close(ctx)
		ge, _, err := rt.gateModule(wasm, "")
		if err != nil {
			b.Fatal(err)
		}
		sum := sha256.Sum256(wasm)
		dir := filepath.Join(cache, hex.EncodeToString(sum[:]))
		b.SetBytes(int64(len(wasm)))
		b.ResetTimer()
		for range b.N {
			cc, err := wazero.NewCompilationCacheWithDir(dir)
			if err != nil {
				b.Fatal(err)
			}
			wr := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithCoreFeatures(api.CoreFeaturesV2).WithCompilationCache(cc))
			if _, err := wr.CompileModule(ctx, ge.code); err != nil {
				b.Fatal(err)
			}
			_ = wr.Close(ctx)
			_ = cc.Close(ctx)
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/op")
	})
}

// BenchmarkInstantiate measures creating and configuring one module
// instance (what a cold pool slot costs a call).
func BenchmarkInstantiate(b *testing.B) {
	for _, g := range []string{"noop", "probe"} {
		b.Run(g, func(b *testing.B) {
			inst := benchInstance(b, g, false, Limits{})
			ctx := context.Background()
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				cs := inst.newCall("bench")
				mi, e := inst.newModule(ctx, cs)
				if e != nil {
					b.Fatal(e)
				}
				_ = mi.mod.Close(ctx)
			}
			reportMicros(b, start)
		})
	}
}

// BenchmarkWarmInstanceMemory reports what an idle warm Go module instance
// holds: its linear memory, and the Go heap it adds to the host.
func BenchmarkWarmInstanceMemory(b *testing.B) {
	const n = 8
	ctx := context.Background()
	var linear, heap float64
	for range b.N {
		inst := benchInstance(b, "probe", false, Limits{PoolSize: n})
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if err := inst.Warm(ctx, n); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		linear = float64(inst.memoryBytes()) / n / (1 << 20)
		heap = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / (n - 1) / (1 << 20)
		_ = inst.Close(ctx)
	}
	b.ReportMetric(linear, "MiB-linear/instance")
	b.ReportMetric(heap, "MiB-heap/instance")
}

// BenchmarkDeadlineInterrupt measures how late a stuck guest is stopped
// after its deadline: a spinning guest (loop) and one blocked in the host
// sleep (sleeper). Each call discards its module instance, so the next one
// instantiates: only the lateness past the deadline is reported.
func BenchmarkDeadlineInterrupt(b *testing.B) {
	const deadline = 20 * time.Millisecond
	for _, g := range []string{"loop", "sleeper"} {
		b.Run(g, func(b *testing.B) {
			inst := benchInstance(b, g, false, Limits{CallTimeout: deadline})
			ctx := context.Background()
			late := make([]time.Duration, 0, b.N)
			for range b.N {
				if err := inst.Warm(ctx, 1); err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				_, err := inst.Execute(ctx, "stuck", nil)
				late = append(late, time.Since(start)-deadline)
				if abi.KindOf(err) != abi.KindTimeout {
					b.Fatalf("error %v, want timeout", err)
				}
			}
			slices.Sort(late)
			b.ReportMetric(float64(late[len(late)/2].Microseconds())/1000, "ms-late-p50")
			b.ReportMetric(float64(late[len(late)-1].Microseconds())/1000, "ms-late-max")
		})
	}
}
