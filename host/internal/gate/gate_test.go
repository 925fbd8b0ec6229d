package gate

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// wat assembles a WAT module with wabt's wat2wasm; noCheck skips its
// validation, for modules the gate must refuse.
func wat(t testing.TB, src string, noCheck bool) []byte {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "m.wat"), filepath.Join(dir, "m.wasm")
	if err := os.WriteFile(in, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{in, "-o", out, "--debug-names"}
	if noCheck {
		args = append(args, "--no-check")
	}
	if b, err := exec.Command("wat2wasm", args...).CombinedOutput(); err != nil {
		t.Fatalf("wat2wasm: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func anyImport(Import, []byte, []byte) error { return nil }

func TestLimits(t *testing.T) {
	tests := []struct {
		name string
		src  string
		lim  Limits
		want string
	}{
		{"table initial size", `(module (table 134217728 funcref))`, Limits{},
			"table 0 initial size: 134217728 elements, limit 100000 (limits.module.table_elements)"},
		{"tables", `(module (table 1 funcref) (table 1 funcref))`, Limits{Tables: 1},
			"tables: 2 entries, limit 1 (limits.module.tables)"},
		{"initial memory", `(module (memory 3000))`, Limits{},
			"memory 0 initial size: 196608000 bytes, limit 134217728 (limits.memory_mib)"},
		{"locals", `(module (func (local i32 i64 i64 i64)))`, Limits{Locals: 3},
			"function 0 locals: 4 locals, limit 3 (limits.module.locals)"},
		{"block nesting", `(module (func (block (block (block (block nop))))))`, Limits{BlockDepth: 3},
			"function 0 block nesting: 4 levels, limit 3 (limits.module.block_depth)"},
		{"function body", `(module (func nop nop nop nop nop nop nop nop nop nop nop nop nop nop nop nop nop nop nop nop))`, Limits{FunctionBodyBytes: 16},
			"function 0 body: 22 bytes, limit 16 (limits.module.function_body_bytes)"},
		{"code", `(module (func nop nop nop) (func nop nop nop) (func nop nop nop))`, Limits{CodeBytes: 12},
			"code: 15 bytes, limit 12 (limits.module.code_bytes)"},
		{"functions", `(module (func) (func) (func))`, Limits{Functions: 2},
			"functions: 3 functions, limit 2 (limits.module.functions)"},
		{"globals", `(module (global i32 (i32.const 0)) (global i32 (i32.const 0)))`, Limits{Globals: 1},
			"globals: 2 entries, limit 1 (limits.module.globals)"},
		{"data bytes", `(module (memory 1) (data (i32.const 0) "0123456789"))`, Limits{DataBytes: 8},
			"data segments: 10 bytes, limit 8 (limits.module.data_bytes)"},
		{"data segments", `(module (memory 1) (data (i32.const 0) "a") (data (i32.const 1) "b"))`, Limits{DataSegments: 1},
			"data segments: 2 entries, limit 1 (limits.module.data_segments)"},
		{"exports", `(module (func (export "a")) (func (export "b")))`, Limits{Exports: 1},
			"exports: 2 entries, limit 1 (limits.module.exports)"},
		{"export name", `(module (func (export "a_rather_long_export_name")))`, Limits{NameBytes: 8},
			"name of 25 bytes exceeds the limit of 8"},
		{"element entries", `(module (table 4 funcref) (func $f) (elem (i32.const 0) $f $f $f))`, Limits{ElementEntries: 2},
			"element segment: 3 entries, limit 2 (limits.module.element_entries)"},
		{"module size", `(module (func nop))`, Limits{ModuleBytes: 8},
			"bytes, limit 8 (limits.module.bytes)"},
		{"table import", `(module (import "env" "t" (table 1 funcref)))`, Limits{},
			`import "env"."t": a table import; a plugin imports only functions`},
		{"global import", `(module (import "env" "g" (global i32)))`, Limits{},
			`import "env"."g": a global import; a plugin imports only functions`},
		{"memory import", `(module (import "env" "m" (memory 1)))`, Limits{},
			`import "env"."m": a memory import; a plugin imports only functions`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(wat(t, tt.src, false), tt.lim, anyImport)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			var le *LimitError
			if errors.As(err, &le) != errors.Is(err, ErrLimit) || (!errors.Is(err, ErrLimit) && !errors.Is(err, ErrMalformed)) {
				t.Fatalf("error %v wraps neither ErrLimit nor ErrMalformed", err)
			}
		})
	}
}

// TestParseRefusesIndicesOfTheInstrumentation: code that names the global,
// local or function index Instrument is about to add must never reach the
// compiler, or a guest could reset its own counters.
func TestParseRefusesIndicesOfTheInstrumentation(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"global.set past the globals", `(module (global (mut i32) (i32.const 0)) (func (global.set 1 (i32.const 0))))`, "global 1 does not exist (1 globals)"},
		{"global.get past the globals", `(module (func (drop (global.get 0))))`, "global 0 does not exist (0 globals)"},
		{"local.set past the locals", `(module (func (param i32) (local.set 1 (i32.const 0))))`, "local 1 does not exist (1 locals)"},
		{"local.tee past the locals", `(module (func (drop (local.tee 0 (i32.const 7)))))`, "local 0 does not exist (0 locals)"},
		{"call past the functions", `(module (func (call 1)))`, "function 1 does not exist"},
		{"ref.func in code", `(module (func (drop (ref.func 0))) (elem declare func 0))`, "ref.func in code is not supported"},
		{"branch past the labels", `(module (func (block (br 2))))`, "branch to label 2, 2 enclosing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(wat(t, tt.src, true), Limits{}, anyImport)
			if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want malformed: %q", err, tt.want)
			}
		})
	}
}

func TestParseReportsEveryBadImport(t *testing.T) {
	src := `(module
	  (import "env" "a" (func))
	  (import "connhost_v1" "b" (func (param i32)))
	  (import "connhost_v1" "c" (func)))`
	_, err := Parse(wat(t, src, false), Limits{}, func(imp Import, params, _ []byte) error {
		if imp.Module != "connhost_v1" || len(params) != 0 {
			return errors.New("refused " + imp.Module + "." + imp.Name)
		}
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "refused env.a") || !strings.Contains(err.Error(), "refused connhost_v1.b") || strings.Contains(err.Error(), ".c") {
		t.Fatalf("error %v, want env.a and connhost_v1.b named, not c", err)
	}
}

// checked is an instrumented module instantiated with a check function
// that counts its calls by argument.
type checked struct {
	mod    api.Module
	checks [2]int
}

func instrumented(t *testing.T, src string, cfg Config) *checked {
	t.Helper()
	ctx := context.Background()
	m, err := Parse(wat(t, src, false), Limits{}, anyImport)
	if err != nil {
		t.Fatal(err)
	}
	cfg.CheckModule, cfg.CheckName = "guard", "check"
	c := &checked{}
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithCoreFeatures(api.CoreFeaturesV2))
	t.Cleanup(func() { _ = rt.Close(ctx) })
	_, err = rt.NewHostModuleBuilder("guard").NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, stack []uint64) {
			c.checks[stack[0]]++
			if stack[0] == CheckStack {
				panic("stack budget exceeded")
			}
		}), []api.ValueType{api.ValueTypeI32}, nil).Export("check").Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c.mod, err = rt.Instantiate(ctx, m.Instrument(cfg))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *checked) call(t *testing.T, name string, args ...uint64) ([]uint64, error) {
	t.Helper()
	return c.mod.ExportedFunction(name).Call(context.Background(), args...)
}

// semantics exercises what Instrument moves or wraps: function indices in
// calls, exports, the start function and element segments;
// multi-value results; branches to the function's label and returns from
// nested blocks.
const semantics = `(module
  (import "guard" "check" (func $check (param i32)))
  (type $t (func (param i32) (result i32)))
  (table 3 funcref)
  (elem (i32.const 0) $double $triple)
  (global $started (mut i32) (i32.const 0))
  (func $start (global.set $started (i32.const 42)))
  (start $start)
  (func $double (param i32) (result i32) (i32.mul (local.get 0) (i32.const 2)))
  (func $triple (param i32) (result i32) (i32.mul (local.get 0) (i32.const 3)))
  (func (export "started") (result i32) (global.get $started))
  (func (export "indirect") (param i32 i32) (result i32)
    (call_indirect (type $t) (local.get 1) (local.get 0)))
  (func (export "tablecopy") (result i32)
    (table.set 0 (i32.const 2) (table.get 0 (i32.const 1)))
    (call_indirect (type $t) (i32.const 5) (i32.const 2)))
  (func $pair (param i32) (result i32 i32)
    (if (i32.eqz (local.get 0)) (then (return (i32.const 1) (i32.const 2))))
    (if (i32.eq (local.get 0) (i32.const 1)) (then (br 1 (i32.const 3) (i32.const 4))))
    (call $double (local.get 0)) (i32.const 9))
  (func (export "pair") (param i32) (result i32) (i32.sub (call $pair (local.get 0))))
  (func $fib (export "fib") (param i32) (result i32)
    (if (result i32) (i32.lt_u (local.get 0) (i32.const 2))
      (then (local.get 0))
      (else (i32.add (call $fib (i32.sub (local.get 0) (i32.const 1)))
                     (call $fib (i32.sub (local.get 0) (i32.const 2)))))))
  (func (export "count") (param i32) (result i32) (local $acc i32)
    (loop $l
      (local.set $acc (i32.add (local.get $acc) (local.get 0)))
      (br_if $l (local.tee 0 (i32.sub (local.get 0) (i32.const 1)))))
    (local.get $acc))
  (func $down (param i32)
    (if (local.get 0) (then (call $down (i32.sub (local.get 0) (i32.const 1))))))
  (func (export "down") (param i32) (call $down (local.get 0)))
  (func (export "fill") (param i32) (memory.fill (i32.const 0) (i32.const 0) (local.get 0)))
  (memory 16)
)`

func TestInstrumentKeepsSemantics(t *testing.T) {
	c := instrumented(t, semantics, Config{})
	tests := []struct {
		fn   string
		args []uint64
		want []uint64
	}{
		{"started", nil, []uint64{42}},
		{"indirect", []uint64{0, 7}, []uint64{14}},
		{"indirect", []uint64{1, 7}, []uint64{21}},
		{"tablecopy", nil, []uint64{15}},
		{"pair", []uint64{0}, []uint64{^uint64(0) & 0xffffffff}}, // 1-2
		{"pair", []uint64{1}, []uint64{^uint64(0) & 0xffffffff}}, // 3-4
		{"pair", []uint64{5}, []uint64{1}},                       // 10-9
		{"fib", []uint64{20}, []uint64{6765}},
		{"count", []uint64{100}, []uint64{5050}},
	}
	for _, tt := range tests {
		got, err := c.call(t, tt.fn, tt.args...)
		if err != nil || len(got) != 1 || uint32(got[0]) != uint32(tt.want[0]) {
			t.Errorf("%s%v = %v, %v; want %v", tt.fn, tt.args, got, err, tt.want)
		}
	}
}

func TestInstrumentChecks(t *testing.T) {
	t.Run("a loop checks in proportion to its work", func(t *testing.T) {
		c := instrumented(t, semantics, Config{Work: 1 << 12})
		if _, err := c.call(t, "count", 1_000_000); err != nil {
			t.Fatal(err)
		}
		// The loop body weighs about 10 units: ~2,400 checks.
		if n := c.checks[CheckWork]; n < 1000 || n > 5000 {
			t.Fatalf("%d work checks for 10^6 iterations", n)
		}
	})
	t.Run("calls without loops check", func(t *testing.T) {
		c := instrumented(t, semantics, Config{Work: 1 << 12})
		if _, err := c.call(t, "fib", 25); err != nil { // ~250,000 calls, no loop
			t.Fatal(err)
		}
		if c.checks[CheckWork] < 1000 {
			t.Fatalf("%d work checks for ~250,000 calls", c.checks[CheckWork])
		}
	})
	t.Run("bulk memory charges its bytes", func(t *testing.T) {
		c := instrumented(t, semantics, Config{Work: 1 << 12})
		for range 64 {
			if _, err := c.call(t, "fill", 1<<20); err != nil {
				t.Fatal(err)
			}
		}
		// A unit per 16 bytes, at most a check's worth (4,095 units) per
		// operation: each 1 MiB fill brings the next check.
		if n := c.checks[CheckWork]; n < 60 || n > 66 {
			t.Fatalf("%d work checks for 64 MiB of memory.fill", n)
		}
	})
	t.Run("the stack budget is given back on every exit", func(t *testing.T) {
		c := instrumented(t, semantics, Config{StackBytes: 64 << 10})
		// Each call nests 200 frames and unwinds them through if, call and
		// the end of the function: a missing exit would add up past 64 KiB.
		for range 10_000 {
			if _, err := c.call(t, "down", 200); err != nil {
				t.Fatal(err)
			}
		}
		if c.checks[CheckStack] != 0 {
			t.Fatalf("%d stack checks", c.checks[CheckStack])
		}
	})
	t.Run("deep recursion exceeds the stack budget", func(t *testing.T) {
		c := instrumented(t, semantics, Config{StackBytes: 64 << 10})
		if _, err := c.call(t, "down", 100_000); err == nil || c.checks[CheckStack] != 1 {
			t.Fatalf("error %v, %d stack checks; want the budget exceeded once", err, c.checks[CheckStack])
		}
	})
}

func TestInstrumentLowersTableMaximum(t *testing.T) {
	c := instrumented(t, `(module
	  (table 1 funcref)
	  (func (export "grow") (param i32) (result i32) (table.grow 0 (ref.null func) (local.get 0))))`, Config{})
	got, err := c.call(t, "grow", 200_000) // past the default 100,000
	if err != nil || int32(got[0]) != -1 {
		t.Fatalf("table.grow past the limit = %v, %v; want -1", got, err)
	}
	got, err = c.call(t, "grow", 1000)
	if err != nil || got[0] != 1 {
		t.Fatalf("table.grow within the limit = %v, %v; want 1 (the old size)", got, err)
	}
}

func TestInstrumentKeepsNames(t *testing.T) {
	src := `(module (import "env" "f" (func $imported)) (func $first) (func $second (export "second") (call $first)))`
	m, err := Parse(wat(t, src, false), Limits{}, anyImport)
	if err != nil {
		t.Fatal(err)
	}
	out := m.Instrument(Config{CheckModule: "guard", CheckName: "check"})
	cm, err := wazero.NewRuntime(context.Background()).CompileModule(context.Background(), out)
	if err != nil {
		t.Fatal(err)
	}
	if d := cm.ExportedFunctions()["second"]; d == nil || d.Name() != "second" || d.Index() != 3 {
		t.Fatalf("export second: %v", d)
	}
}

// TestLimitsAdmitTheirValue: a module exactly at a limit loads.
func TestLimitsAdmitTheirValue(t *testing.T) {
	tests := []struct {
		name string
		src  string
		lim  Limits
	}{
		{"block nesting", `(module (func (block (block (block nop)))))`, Limits{BlockDepth: 3}},
		{"locals", `(module (func (local i32 i64 i64)))`, Limits{Locals: 3}},
		{"tables", `(module (table 1 funcref))`, Limits{Tables: 1}},
		{"table initial size", `(module (table 50 funcref))`, Limits{TableElements: 50}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Parse(wat(t, tt.src, false), tt.lim, anyImport); err != nil {
				t.Fatal(err)
			}
		})
	}
}
