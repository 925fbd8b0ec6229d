package host

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host/internal/gate"
)

// The small limits the hostile-guest corpus runs under.
const (
	hostileMemory  = 16 << 20
	hostileTimeout = 300 * time.Millisecond
	hostileStack   = 256 << 10
	hostileTables  = 10_000 // Module.TableElements
	// Module.DataSegments and Module.ElementEntries: each costs every
	// module instance host memory (see instanceBound). A Go guest has
	// 37,000-48,000 data segments.
	hostileSegments = 50_000
	// lateBy is how far past its deadline a failing call may return.
	lateBy = 100 * time.Millisecond
)

// hostileConfig is the Runtime configuration of a case before its own
// changes.
func hostileConfig() Config {
	return Config{
		CacheDir: testCache,
		Logger:   zerolog.Nop(),
		Limits:   Limits{MemoryBytes: hostileMemory, CallTimeout: hostileTimeout},
		Module: ModuleLimits{
			TableElements: hostileTables, DataSegments: hostileSegments, ElementEntries: hostileSegments,
		},
		StackBytes: hostileStack,
	}
}

// instanceOverhead is the host memory a module instance holds beyond its
// linear memory, call stack and tables: wazero's module instance, its call
// engines and their initial stacks, the host's per-call state.
// TestHostileOverhead measures it on idle module instances: under 20 KiB
// for a WAT guest, 40-160 KiB for a Go guest (whose Go runtime also
// touches ~3.4 MiB of linear memory at start-up, which counts under
// MemoryBytes). 1 MiB leaves room for larger guests.
const instanceOverhead = 1 << 20

// testSlack is RSS the test itself may add while a case runs: the Go heap
// of the harness and of compiling the case's module, not freed until the
// next GC.
const testSlack = 16 << 20

// instanceBound is the documented peak host memory of one module instance
// under cfg (whose Module must set TableElements, DataSegments and
// ElementEntries):
//   - its linear memory: MemoryBytes, reserved, resident only where touched;
//   - its call stack: the budget plus at most 4 KiB of uncounted leaf
//     frame, in wazero's native stack, which grows by doubling with the old
//     copy alive until the next GC: up to 3 × StackBytes;
//   - its tables: 8 bytes an element, each at most TableElements; a growing
//     table briefly holds its old and new arrays: 2 ×;
//   - its data segments: wazero keeps a 24-byte slice header per segment;
//   - its element entries: a reference, a 32-byte function object and its
//     pointer in a growing slice, 64 bytes in all (measured 62 at 200,000);
//   - and instanceOverhead.
func instanceBound(cfg Config, tables int) uint64 {
	m := cfg.Module
	return cfg.Limits.MemoryBytes + 3*uint64(cfg.StackBytes) + uint64(tables)*2*8*uint64(m.TableElements) +
		24*uint64(m.DataSegments) + 64*uint64(m.ElementEntries) + instanceOverhead
}

// TestHostileOverhead measures instanceOverhead: the RSS an idle module
// instance adds beyond its linear memory, for a WAT and a Go guest (many
// of the small ones, so that the Go heap's noise averages out).
func TestHostileOverhead(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the corpus times and measures the host; the run without -short holds it to its budgets")
	}
	ctx := context.Background()
	for _, g := range []struct {
		name string
		n    int
	}{{"noop", 32}, {"goecho", 4}} {
		t.Run(g.name, func(t *testing.T) {
			rt, err := NewRuntime(ctx, Config{CacheDir: testCache, Logger: zerolog.Nop()})
			if err != nil {
				t.Fatal(err)
			}
			defer rt.Close(ctx)
			p, err := rt.Load(ctx, guest(t, g.name))
			if err != nil {
				t.Fatal(err)
			}
			inst, err := rt.NewInstance(ctx, p, hostileSpec(rt.cfg, g.name, g.n))
			if err != nil {
				t.Fatal(err)
			}
			defer inst.Close(ctx)
			base, ok := rssBaseline(t)
			if !ok {
				t.Skip("no RSS figures")
			}
			if err := inst.Warm(ctx, g.n); err != nil {
				t.Fatal(err)
			}
			after, _ := rssBaseline(t)
			mem := int64(inst.memoryBytes()) / int64(g.n)
			each := (int64(after) - int64(base)) / int64(g.n)
			t.Logf("%s: an idle module instance adds %d KiB of RSS; its linear memory is %d KiB", g.name, each>>10, mem>>10)
			if each-mem > instanceOverhead {
				t.Errorf("overhead %d KiB beyond linear memory, instanceOverhead is %d KiB", (each-mem)>>10, instanceOverhead>>10)
			}
		})
	}
}

// rss reads the process's peak (VmHWM) and current (VmRSS) resident set.
func rss() (peak, cur uint64, err error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmHWM" && k != "VmRSS") {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %v", k, err)
		}
		if k == "VmHWM" {
			peak = kb << 10
		} else {
			cur = kb << 10
		}
	}
	return peak, cur, sc.Err()
}

// runDelays returns, by thread of the process, how long it has waited for
// a CPU held by something else (schedstat's run_delay); empty where the
// kernel does not say.
func runDelays() map[string]time.Duration {
	tasks, _ := filepath.Glob("/proc/self/task/*/schedstat")
	out := make(map[string]time.Duration, len(tasks))
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if fs := strings.Fields(string(b)); len(fs) >= 2 {
			ns, _ := strconv.ParseInt(fs[1], 10, 64)
			out[f] = time.Duration(ns)
		}
	}
	return out
}

// starvation returns the longest any one thread waited for a CPU between
// two runDelays.
func starvation(before, after map[string]time.Duration) time.Duration {
	var most time.Duration
	for k, d := range after {
		most = max(most, d-before[k])
	}
	return most
}

// rssBaseline frees what the Go heap can give back, resets the kernel's
// peak RSS of the process to its current RSS and returns that. ok is false
// where the peak cannot be reset (no /proc, clear_refs not writable).
func rssBaseline(t *testing.T) (base uint64, ok bool) {
	runtime.GC()
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Logf("RSS check cannot run: reset peak RSS: %v", err)
		return 0, false
	}
	_, cur, err := rss()
	if err != nil {
		t.Logf("RSS check cannot run: %v", err)
		return 0, false
	}
	return cur, true
}

// genModule describes an ABI v1 module the corpus builds as bytes, for
// attacks that WAT cannot write compactly (a count of a billion locals, a
// ten-thousand-deep nesting). Its connhost_call calls fn, then outputs
// {"result":"ok"}. Function indices: 0 output (imported), 1
// connhost_abi_version, 2 connhost_configure, 3 connhost_call, 4 fn.
type genModule struct {
	locals []byte // fn's local declarations, the group count included; nil: none
	code   []byte // fn's expression, without its final end
	data   int    // extra 1-byte passive data segments
	elems  int    // entries of a passive element segment, each fn
	copies int    // uncalled copies of fn (indices 5, 6, ...)
}

// wasm encodes the module, without a manifest.
func (g genModule) wasm() []byte {
	vec := func(items ...[]byte) []byte {
		b := binary.AppendUvarint(nil, uint64(len(items)))
		return append(b, slices.Concat(items...)...)
	}
	sized := func(b []byte) []byte { return append(binary.AppendUvarint(nil, uint64(len(b))), b...) }
	name := func(s string) []byte { return sized([]byte(s)) }
	const i32 = 0x7f
	types := vec(
		[]byte{0x60, 2, i32, i32, 1, i32}, // 0: (i32, i32) -> i32
		[]byte{0x60, 0, 1, i32},           // 1: () -> i32
		[]byte{0x60, 1, i32, 1, i32},      // 2: (i32) -> i32
		[]byte{0x60, 0, 0},                // 3: () -> ()
	)
	imports := vec(slices.Concat(name("connhost_v1"), name("output"), []byte{0, 0}))
	funcs := vec(append([][]byte{{1}, {2}, {0}}, slices.Repeat([][]byte{{3}}, 1+g.copies)...)...)
	memory := vec([]byte{0, 1})
	exports := vec(
		slices.Concat(name(abi.ExportMemory), []byte{2, 0}),
		slices.Concat(name(abi.ExportABIVersion), []byte{0, 1}),
		slices.Concat(name(abi.ExportConfigure), []byte{0, 2}),
		slices.Concat(name(abi.ExportCall), []byte{0, 3}),
	)
	output := func(at byte) []byte { // output 15 bytes at at; drop; i32.const 0
		return []byte{0x41, at, 0x41, 15, 0x10, 0, 0x1a, 0x41, 0}
	}
	locals := g.locals
	if locals == nil {
		locals = []byte{0}
	}
	code := vec(append([][]byte{
		sized([]byte{0, 0x41, 1, 0x0b}),
		sized(slices.Concat([]byte{0}, output(0), []byte{0x0b})),
		sized(slices.Concat([]byte{0, 0x10, 4}, output(16), []byte{0x0b})),
	}, slices.Repeat([][]byte{sized(slices.Concat(locals, g.code, []byte{0x0b}))}, 1+g.copies)...)...)
	segs := [][]byte{
		slices.Concat([]byte{0, 0x41, 0, 0x0b}, name(`{"result":null}`)),
		slices.Concat([]byte{0, 0x41, 16, 0x0b}, name(`{"result":"ok"}`)),
	}
	for range g.data {
		segs = append(segs, []byte{1, 1, 0}) // passive, one byte
	}
	type section struct {
		id   byte
		body []byte
	}
	secs := []section{{1, types}, {2, imports}, {3, funcs}, {5, memory}, {7, exports}}
	if g.elems > 0 {
		entries := slices.Repeat([][]byte{{4}}, g.elems)
		secs = append(secs, section{9, vec(slices.Concat([]byte{1, 0}, vec(entries...)))}) // passive, function indices
	}
	secs = append(secs, section{10, code}, section{11, vec(segs...)})
	out := []byte("\x00asm\x01\x00\x00\x00")
	for _, s := range secs {
		out = append(append(out, s.id), sized(s.body)...)
	}
	return out
}

// operandStack returns the code of a function (index 4, no parameters)
// that loads n distinct values, calls itself and then sums them into
// memory: the values stay live across the call, so each frame spills them.
func operandStack(n int) []byte {
	code := []byte{0x41, 0} // the store's address
	for k := range n {
		code = append(code, 0x41, 0, 0x28, 2) // i32.const 0, i32.load offset=4k
		code = binary.AppendUvarint(code, uint64(4*k))
	}
	code = append(code, 0x10, 4)
	code = append(code, bytes.Repeat([]byte{0x6a}, n-1)...) // i32.add
	return append(code, 0x36, 2, 0)                         // i32.store
}

// fatFan returns the code of a function (index 4) that runs n increments
// of a memory cell in a row, then calls itself twice, 40 levels deep (the
// depth counted in memory, so the code has no loop).
func fatFan(n int) []byte {
	depth := []byte{0x41, 32, 0x41, 32, 0x28, 2, 0, 0x41, 1}                     // address, mem[32], 1
	code := []byte{0x41, 32, 0x28, 2, 0, 0x41, 40, 0x4f, 0x04, 0x40, 0x0f, 0x0b} // if mem[32] >= 40: return
	code = append(append(code, depth...), 0x6a, 0x36, 2, 0)                      // mem[32]++
	code = append(code, bytes.Repeat([]byte{0x41, 128, 1, 0x41, 128, 1, 0x28, 2, 0, 0x41, 1, 0x6a, 0x36, 2, 0}, n)...)
	code = append(code, 0x10, 4, 0x10, 4)
	return append(append(code, depth...), 0x6b, 0x36, 2, 0) // mem[32]--
}

// ifs returns n empty ifs in a row: (if (i32.const 1) (then nop)).
func ifs(n int) []byte { return bytes.Repeat([]byte{0x41, 1, 0x04, 0x40, 0x01, 0x0b}, n) }

// brTable returns a block holding a br_table of n entries (and a default),
// all to the block.
func brTable(n int) []byte {
	code := binary.AppendUvarint([]byte{0x02, 0x40, 0x41, 0, 0x0e}, uint64(n))
	return append(append(code, make([]byte, n+1)...), 0x0b)
}

// nested returns n nested empty blocks.
func nested(n int) []byte {
	return append(bytes.Repeat([]byte{0x02, 0x40}, n), bytes.Repeat([]byte{0x0b}, n)...)
}

// stage is where a hostile case fails.
type stage int

const (
	atLoad stage = iota // Runtime.Load
	atWarm              // Instance.Warm: instantiate and configure
	atCall              // Instance.Execute on warm module instances
)

// hostileCase is one attack of the corpus.
type hostileCase struct {
	name string
	// The module: testdata/hostile/<file>.wat (noCheck: built with
	// `wat2wasm --no-check`) or bytes built in Go, with a manifest
	// embedded; or a test guest.
	file    string
	noCheck bool
	gen     *genModule
	guest   string
	config  func(*Config) // changes to hostileConfig
	stage   stage
	command string
	// calls is how many module instances fail at once: concurrent calls,
	// each on its own module instance, or one Warm of that many; default 1.
	calls int
	// kind and want: what the failing Load, Warm or call returns; kind ""
	// means it succeeds, with want in its result.
	kind abi.ErrorKind
	want []string
	then string // a command that succeeds on the same Instance after the fault
	// deadline is the budget the failure must come within (plus lateBy);
	// default Limits.CallTimeout. A Load also has the gate's time.
	deadline time.Duration
	tables   int    // tables for the RSS bound
	noRSS    string // why the RSS bound is not asserted
}

// module returns the case's module with a manifest embedded.
func (c hostileCase) module(t *testing.T) []byte {
	t.Helper()
	var raw []byte
	switch {
	case c.guest != "":
		return guest(t, c.guest)
	case c.gen != nil:
		raw = c.gen.wasm()
	default:
		out := filepath.Join(t.TempDir(), c.file+".wasm")
		args := []string{filepath.Join("testdata", "hostile", c.file+".wat"), "-o", out}
		if c.noCheck {
			args = append(args, "--no-check")
		}
		if b, err := exec.Command("wat2wasm", args...).CombinedOutput(); err != nil {
			t.Fatalf("wat2wasm %v: %v\n%s", args, err, b)
		}
		var err error
		if raw, err = os.ReadFile(out); err != nil {
			t.Fatal(err)
		}
	}
	m := manifest("hostile")
	wasm, err := abi.EmbedManifest(raw, &m)
	if err != nil {
		t.Fatal(err)
	}
	return wasm
}

// drainCompiles waits until no compilation runs in r: until an abandoned
// one stops.
func drainCompiles(r *Runtime) {
	for range cap(r.compiling) {
		r.compiling <- struct{}{}
	}
	for range cap(r.compiling) {
		<-r.compiling
	}
}

// prober calls a noop Instance every few milliseconds while a case runs:
// the host must keep serving other instances, promptly. A call's latency
// counts from when it was due, so time the prober waited to be scheduled
// counts too.
type prober struct {
	stop chan struct{}
	done chan struct{}
	lat  []time.Duration
	errs []error
}

// probe starts a prober on inst.
func probe(inst *Instance) *prober {
	p := &prober{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		due := time.Now()
		for {
			if _, err := inst.Execute(context.Background(), "ok", nil); err != nil {
				p.errs = append(p.errs, err)
			}
			p.lat = append(p.lat, time.Since(due))
			due = time.Now().Add(5 * time.Millisecond)
			select {
			case <-p.stop:
				return
			case <-time.After(time.Until(due)):
			}
		}
	}()
	return p
}

// end stops the prober and returns its calls' 99th percentile and maximum
// latency.
func (p *prober) end() (p99, worst time.Duration) {
	close(p.stop)
	<-p.done
	slices.Sort(p.lat)
	return p.lat[len(p.lat)*99/100], p.lat[len(p.lat)-1]
}

// TestHostile runs the hostile-guest corpus through the real runtime under
// small limits. Each case asserts that the attack fails with its documented
// kind and message within its deadline + lateBy, and that no compilation
// runs on after that; that the host's peak RSS grows by at most
// instanceBound per module instance involved (+ testSlack); and that
// meanwhile an Instance of another plugin keeps serving calls (99th
// percentile latency under lateBy) and the Go runtime can still stop the
// world (a guest that never returned to Go would block the garbage
// collector). Timings also allow the time the kernel kept the test off the
// CPU. Each case logs its figures.
func TestHostile(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the corpus times and measures the host; the run without -short holds it to its budgets")
	}
	ctx := context.Background()
	// The noop Instance on a Runtime of its own: cases change their
	// Runtime's configuration (a 1 ms compile budget, say).
	rt, err := NewRuntime(ctx, hostileConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	p, err := rt.Load(ctx, guest(t, "noop"))
	if err != nil {
		t.Fatal(err)
	}
	noop, err := rt.NewInstance(ctx, p, hostileSpec(rt.cfg, "noop", 1))
	if err != nil {
		t.Fatal(err)
	}
	defer noop.Close(ctx)
	if err := noop.Warm(ctx, 1); err != nil {
		t.Fatal(err)
	}
	for _, c := range hostileCases() {
		t.Run(c.name, func(t *testing.T) { runHostile(t, c, noop) })
	}
}

// hostileSpec is the spec of an Instance with the Runtime's limits and
// pool size pool.
func hostileSpec(cfg Config, name string, pool int) InstanceSpec {
	lim := cfg.Limits
	lim.PoolSize = pool
	return InstanceSpec{Info: abi.InstanceInfo{ID: name, Name: name}, Services: NewMemServices(), Limits: lim}
}

func runHostile(t *testing.T, c hostileCase, noop *Instance) {
	ctx := context.Background()
	cfg := hostileConfig()
	if c.config != nil {
		c.config(&cfg)
	}
	rt, err := NewRuntime(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close(ctx)
	cfg = rt.cfg // with defaults
	calls := max(c.calls, 1)
	deadline := c.deadline
	if deadline == 0 {
		deadline = cfg.Limits.CallTimeout
	}
	wasm := c.module(t)
	if c.stage == atLoad {
		// Load runs the gate before any budget starts: its time, linear
		// in the module's size, adds to the deadline.
		start := time.Now()
		if mod, err := parseModule(wasm, cfg.Module, rt.hostFuncs); err == nil {
			mod.Instrument(gate.Config{CheckModule: guardModule, CheckName: guardName, StackBytes: cfg.StackBytes})
		}
		deadline += time.Since(start)
	}

	// Loading and warming come before the failing step, outside its
	// deadline, unless they are the failing step.
	var inst *Instance
	if c.stage > atLoad {
		p, err := rt.Load(ctx, wasm)
		if err != nil {
			t.Fatalf("load: %v", err)
		}
		if inst, err = rt.NewInstance(ctx, p, hostileSpec(cfg, "hostile", calls)); err != nil {
			t.Fatal(err)
		}
		defer inst.Close(ctx)
	}
	if c.stage == atCall {
		if err := inst.Warm(ctx, calls); err != nil {
			t.Fatalf("warm: %v", err)
		}
	}

	base, rssOK := rssBaseline(t)
	delays := runDelays()
	pr := probe(noop)
	var stw, gc time.Duration
	gcDone := make(chan struct{})
	go func() {
		defer close(gcDone)
		time.Sleep(deadline / 4)
		start := time.Now()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms) // stops the world, briefly
		stw = time.Since(start)
		start = time.Now()
		runtime.GC()
		gc = time.Since(start)
	}()
	parallel := 1 // a Load, or a Warm of calls module instances
	if c.stage == atCall {
		parallel = calls
	}
	errs := make([]error, parallel)
	took := make([]time.Duration, parallel)
	results := make([]string, parallel)
	var wg sync.WaitGroup
	for k := range parallel {
		wg.Go(func() {
			start := time.Now()
			switch c.stage {
			case atLoad:
				_, errs[k] = rt.Load(ctx, wasm)
			case atWarm:
				errs[k] = inst.Warm(ctx, calls)
			case atCall:
				var res []byte
				res, errs[k] = inst.Execute(ctx, c.command, nil)
				results[k] = string(res)
			}
			took[k] = time.Since(start)
		})
	}
	wg.Wait()
	// A compilation abandoned at its budget must stop soon after, not run
	// on in the background, holding a compile slot and the CPU.
	start := time.Now()
	drainCompiles(rt)
	drained := time.Since(start)
	<-gcDone
	p99, worst := pr.end()
	// Timings may take lateBy plus the time the kernel kept a thread of
	// the process off the CPU: on a loaded machine, what other processes
	// take is not the host's doing; on an idle one this is about zero.
	starved := starvation(delays, runDelays())
	slack := raceSlack(lateBy) + starved
	peak, _, rssErr := rss()

	for k, err := range errs {
		if c.kind == "" {
			if err != nil {
				t.Errorf("call %d: %v, want success", k, err)
			}
			for _, w := range c.want {
				if !strings.Contains(results[k], w) {
					t.Errorf("call %d: result %s lacks %q", k, results[k], w)
				}
			}
			continue
		}
		if got := abi.KindOf(err); got != c.kind {
			t.Errorf("call %d: error %v (kind %q), want kind %s", k, err, got, c.kind)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("call %d: error %q does not name %q", k, err, w)
			}
		}
	}
	for k, d := range took {
		if d > deadline+slack {
			t.Errorf("call %d took %v, want at most %v + %v", k, d, deadline, slack)
		}
	}
	if drained > slack {
		t.Errorf("compilation ran on for %v after Load returned, want at most %v", drained, slack)
	}

	// Module instances the case creates: the call's, or the one Load
	// probes unless the gate refuses the module first.
	instances := calls
	if c.stage == atLoad && c.kind != "" && c.kind != abi.KindTimeout {
		instances = 0
	}
	bound := uint64(instances)*instanceBound(cfg, c.tables) + testSlack
	growth := "n/a"
	if rssErr != nil {
		t.Logf("RSS check cannot run: %v", rssErr)
	} else if rssOK {
		g := int64(peak) - int64(base)
		growth = fmt.Sprintf("%.1f MiB", float64(g)/(1<<20))
		if c.noRSS == "" && g > int64(bound) {
			t.Errorf("peak RSS grew by %s, bound %.1f MiB (%d module instances)", growth, float64(bound)/(1<<20), instances)
		}
	}
	t.Logf("took %v (deadline %v), compiling on %v; peak RSS %s, bound %.1f MiB (%d module instances); noop p99 %v, max %v (%d calls); stop the world %v, GC %v; kernel starved a thread %v",
		slices.Max(took).Round(time.Millisecond/10), deadline, drained.Round(time.Millisecond/10), growth, float64(bound)/(1<<20), instances,
		p99.Round(time.Millisecond/10), worst.Round(time.Millisecond/10), len(pr.lat), stw.Round(time.Millisecond/10), gc.Round(time.Millisecond/10), starved.Round(time.Millisecond/10))

	for _, err := range pr.errs {
		t.Errorf("noop call during the case: %v", err)
	}
	if p99 > slack {
		t.Errorf("noop calls during the case: 99th percentile latency %v, want at most %v", p99, slack)
	}
	if stw > slack {
		t.Errorf("stopping the world took %v, want at most %v", stw, slack)
	}
	if _, err := noop.Execute(ctx, "ok", nil); err != nil {
		t.Errorf("noop call after the case: %v", err)
	}
	if c.then != "" {
		if _, err := inst.Execute(ctx, c.then, nil); err != nil {
			t.Errorf("%s after the fault: %v", c.then, err)
		}
	}
}

// hostileCases is the corpus: the attacks the red team ran, by class.
func hostileCases() []hostileCase {
	mem := func(b uint64) func(*Config) { return func(c *Config) { c.Limits.MemoryBytes = b } }
	return []hostileCase{
		// 1. Tables.
		{name: "table-huge", file: "table_huge", stage: atLoad, kind: abi.KindIncompatible,
			want: []string{"table 0 initial size: 134217728 elements, limit 10000 (limits.module.table_elements)"}},
		{name: "table-grow", file: "table_grow", stage: atCall, command: "grow", kind: abi.KindTimeout,
			want: []string{"deadline exceeded"}, then: "ok", tables: 1},
		{name: "table-grow-capped", file: "table_grow", stage: atCall, command: "size", want: []string{`5001`}, tables: 1},
		// 2. Deep recursion without loops, in 8 module instances at once.
		{name: "recursion", file: "recursion", stage: atCall, command: "recurse", calls: 8, kind: abi.KindTrap,
			want: []string{"call stack limit of 262144 bytes exceeded"}, then: "ok"},
		// A frame the gate must size by its operand stack: 4,000 values
		// live across each recursive call (32 KB of native stack a frame).
		{name: "operand-stack", gen: &genModule{code: operandStack(4000)}, stage: atCall, command: "x", calls: 4,
			kind: abi.KindTrap, want: []string{"call stack limit of 262144 bytes exceeded"}},
		// 3. Exponential calls without loops.
		{name: "exponential", file: "exponential", stage: atCall, command: "fan", kind: abi.KindTimeout,
			want: []string{"deadline exceeded"}, then: "ok"},
		// The same with a 150 KB function: an entry charges at most 4,096
		// units whatever its body runs, so checks come every 64 entries.
		{name: "fat-exponential", gen: &genModule{code: fatFan(10_000)}, stage: atCall, command: "x", kind: abi.KindTimeout,
			want: []string{"deadline exceeded"}},
		// 4. Memory grown page by page to the limit, every page touched.
		{name: "memgrow", file: "memgrow", stage: atCall, command: "grow", kind: abi.KindMemoryLimit,
			want: []string{"linear memory limit of 16777216 bytes exceeded"}, then: "ok"},
		// 5. Entries that never return.
		{name: "init-loop", file: "init_loop", stage: atLoad, kind: abi.KindTimeout, want: []string{"_initialize: deadline exceeded"}},
		{name: "start-loop", file: "start_loop", stage: atLoad, kind: abi.KindTimeout, want: []string{"deadline exceeded"}},
		{name: "abi-loop", file: "abi_loop", stage: atLoad, kind: abi.KindTimeout, want: []string{"connhost_abi_version: deadline exceeded"}},
		{name: "configure-loop", file: "configure_loop", stage: atWarm, kind: abi.KindTimeout, want: []string{"configure: connhost_configure: deadline exceeded"}},
		// 6. Initial memory above the limit, then under one that fits it.
		{name: "memory-initial", file: "memory_initial", config: mem(128 << 20), stage: atLoad, kind: abi.KindIncompatible,
			want: []string{"memory 0 initial size: 196608000 bytes, limit 134217728 (limits.memory_mib)"}},
		{name: "memory-initial-fits", file: "memory_initial", config: mem(256 << 20), stage: atCall, command: "x", want: []string{`"ok"`}},
		// 7. Imports the host does not provide.
		{name: "import-table-global", file: "import_table_global", stage: atLoad, kind: abi.KindIncompatible,
			want: []string{`import "env"."table": a table import; a plugin imports only functions`}},
		{name: "import-guard", file: "import_guard", stage: atLoad, kind: abi.KindIncompatible,
			want: []string{`import "connhost_guard"."check": unknown module "connhost_guard"`}},
		// 8. Code naming what the instrumentation adds.
		{name: "tamper-global", file: "tamper_global", noCheck: true, stage: atLoad, kind: abi.KindIncompatible,
			want: []string{"global 0 does not exist (0 globals)"}},
		{name: "tamper-local", file: "tamper_local", noCheck: true, stage: atLoad, kind: abi.KindIncompatible,
			want: []string{"local 2 does not exist (2 locals)"}},
		{name: "tamper-call", file: "tamper_call", noCheck: true, stage: atLoad, kind: abi.KindIncompatible,
			want: []string{"function 4 does not exist"}},
		{name: "tamper-export", file: "tamper_export", noCheck: true, stage: atLoad, kind: abi.KindIncompatible,
			want: []string{`export "fuel": global 0 does not exist (0 globals)`}},
		// 9. Bulk memory and table work in a loop.
		{name: "memfill", file: "memfill", stage: atCall, command: "fill", kind: abi.KindTimeout,
			want: []string{"deadline exceeded"}, then: "ok"},
		{name: "table-fill", file: "table_fill", stage: atCall, command: "fill", kind: abi.KindTimeout,
			want: []string{"deadline exceeded"}, then: "ok", tables: 1},
		// 10. Spinning, more guests than GOMAXPROCS at once.
		{name: "spin", guest: "loop", stage: atCall, command: "spin", calls: 4, kind: abi.KindTimeout,
			want: []string{"deadline exceeded"}, then: "ok"},
		// 11. Compilation budget.
		{name: "compile-timeout", guest: "panic", config: func(c *Config) { c.CacheDir, c.CompileTimeout = "", time.Millisecond },
			stage: atLoad, kind: abi.KindTimeout, deadline: time.Millisecond,
			want: []string{"compilation exceeded its time budget (1ms, compile_timeout)"}, noRSS: "compilation memory, not a module instance's"},
		// A module whose functions each compile in tens of milliseconds,
		// seconds in all: Load gives up at the budget, and the compilation
		// must stop too.
		{name: "compile-abandoned", gen: &genModule{code: ifs(1000), copies: 50},
			config: func(c *Config) { c.CacheDir, c.CompileTimeout = "", 300*time.Millisecond },
			stage:  atLoad, kind: abi.KindTimeout, deadline: 300 * time.Millisecond,
			want: []string{"compilation exceeded its time budget (300ms, compile_timeout)"}, noRSS: "compilation memory, not a module instance's"},
		{name: "function-body", gen: &genModule{code: bytes.Repeat([]byte{0x01}, 2000)}, // nop
			config: func(c *Config) { c.Module.FunctionBodyBytes = 1024 }, stage: atLoad, kind: abi.KindIncompatible,
			want: []string{"function 4 body: 2002 bytes, limit 1024 (limits.module.function_body_bytes)"}},
		// 12. Others. Four billion locals in 7 bytes.
		{name: "locals", gen: &genModule{locals: []byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x7f}}, stage: atLoad, kind: abi.KindIncompatible,
			want: []string{"function 4 locals: 4294967295 locals, limit 10000 (limits.module.locals)"}},
		{name: "nesting", gen: &genModule{code: nested(101)}, config: func(c *Config) { c.Module.BlockDepth = 100 },
			stage: atLoad, kind: abi.KindIncompatible, want: []string{"function 4 block nesting: 101 levels, limit 100 (limits.module.block_depth)"}},
		// Functions that wazero compiles in time and memory growing faster
		// than their size: a 500 KB br_table took 108 s and 1.1 GB, 10,000
		// loops (70 KB) over 30 s.
		{name: "br-table", gen: &genModule{code: brTable(500_000)}, stage: atLoad, kind: abi.KindIncompatible,
			want: []string{"function 4 labels: 500002 labels, limit 8192 (limits.module.labels)"}},
		{name: "loops", gen: &genModule{code: bytes.Repeat([]byte{0x03, 0x40, 0x41, 0, 0x0d, 0, 0x0b}, 10_000)}, // loop (br_if 0 (i32.const 0))
			stage: atLoad, kind: abi.KindIncompatible, want: []string{"function 4 labels: 8193 labels, limit 8192 (limits.module.labels)"}},
		// ref.func in a loop: host memory wazero holds until the module
		// instance closes.
		{name: "ref-func", file: "ref_func", stage: atLoad, kind: abi.KindIncompatible,
			want: []string{"function 4 at offset", "ref.func in code is not supported"}},
		// Instantiation costs that scale with the module, not the memory
		// limit: data segments and element entries at the corpus's limits.
		{name: "data-segments", gen: &genModule{data: hostileSegments - 2}, stage: atWarm, calls: 4},
		{name: "element-entries", gen: &genModule{elems: hostileSegments}, stage: atWarm, calls: 4},
	}
}

// raceSlack widens a timing budget under the race detector.
func raceSlack(d time.Duration) time.Duration {
	if raceDetector {
		return 10 * d
	}
	return d
}
