package gate

import (
	"errors"
	"fmt"
)

// Section ids of the binary format.
const (
	secCustom    = 0
	secType      = 1
	secImport    = 2
	secFunction  = 3
	secTable     = 4
	secMemory    = 5
	secGlobal    = 6
	secExport    = 7
	secStart     = 8
	secElement   = 9
	secCode      = 10
	secData      = 11
	secDataCount = 12
)

// order is each known section's position in the required order.
var order = map[byte]int{
	secType: 1, secImport: 2, secFunction: 3, secTable: 4, secMemory: 5, secGlobal: 6,
	secExport: 7, secStart: 8, secElement: 9, secDataCount: 10, secCode: 11, secData: 12,
}

var sectionNames = [...]string{"custom", "type", "import", "function", "table", "memory",
	"global", "export", "start", "element", "code", "data", "data count"}

// Value types.
const (
	tI32       = 0x7f
	tI64       = 0x7e
	tF32       = 0x7d
	tF64       = 0x7c
	tV128      = 0x7b
	tFuncref   = 0x70
	tExternref = 0x6f
)

func isValType(b byte) bool {
	switch b {
	case tI32, tI64, tF32, tF64, tV128, tFuncref, tExternref:
		return true
	}
	return false
}

type section struct {
	id         byte
	start, end int // whole section, header included
	body       int // start of the payload
}

type funcType struct {
	params, results []byte
}

// table is a defined table; maxAt is the offset of its limits in the module
// so Instrument can lower its maximum.
type table struct {
	min     uint32
	max     uint32
	hasMax  bool
	limitAt int // offset of the limits flag byte
}

// body is one function body after decoding.
type body struct {
	start, end int // locals and expression, without the size prefix
	expr       int // start of the expression
	typ        uint32
	locals     uint32 // declared locals, parameters not included
	leaf       bool   // no call or call_indirect, and a small frame: not counted on the call stack
	stack      uint32 // the operand stack's greatest height
	weight     uint32 // instructions, calls counted heavier
	patches    []patch
}

// Module is a decoded module that passed the limits. Build it with Parse.
type Module struct {
	wasm     []byte
	lim      Limits
	sections []section
	types    []funcType
	// imports holds the function imports (the only kind allowed), and
	// importTypes their type indices.
	imports     []Import
	importTypes []uint32
	funcs       []uint32 // type index of each defined function
	tables      []table
	memMin      uint32 // pages
	hasMem      bool
	globals     int
	bodies      []body
}

// Import is one function import of a module.
type Import struct {
	Module, Name string
}

// InitialMemoryBytes returns the size of the module's memory at
// instantiation.
func (m *Module) InitialMemoryBytes() uint64 { return uint64(m.memMin) * 65536 }

// ImportChecker says whether a module may import a function with the given
// parameter and result types (value types in their binary encoding).
type ImportChecker func(imp Import, params, results []byte) error

// Parse decodes wasm and checks it against lim, every function body
// included. Every function import is passed to checkImport, and any import
// that is not a function is refused; all import problems are reported
// together. Errors wrap ErrLimit or ErrMalformed.
func Parse(wasm []byte, lim Limits, checkImport ImportChecker) (*Module, error) {
	lim = lim.withDefaults()
	if len(wasm) > lim.ModuleBytes {
		return nil, over("module", uint64(len(wasm)), uint64(lim.ModuleBytes), "bytes", "bytes")
	}
	if len(wasm) < 8 || string(wasm[:8]) != "\x00asm\x01\x00\x00\x00" {
		return nil, malformedf("not a wasm module (bad magic or version)")
	}
	m := &Module{wasm: wasm, lim: lim}
	r := &reader{b: wasm, off: 8}
	last := 0
	var customs, customBytes, declaredFuncs int
	hasDeclaredFuncs := false
	for !r.done() {
		s := section{start: r.off}
		s.id = r.byte()
		size := r.u32()
		s.body = r.off
		r.bytes(size)
		if r.err != nil {
			return nil, malformedf("section at offset %d: %v", s.start, r.err)
		}
		s.end = r.off
		if s.id != secCustom {
			pos, ok := order[s.id]
			if !ok {
				return nil, malformedf("section at offset %d: unknown section id %d", s.start, s.id)
			}
			if pos <= last {
				return nil, malformedf("section %s at offset %d: out of order or repeated", sectionNames[s.id], s.start)
			}
			last = pos
		}
		m.sections = append(m.sections, s)
		sr := &reader{b: wasm[:s.end], off: s.body}
		var err error
		switch s.id {
		case secCustom:
			customs++
			customBytes += s.end - s.body
			if sr.name(lim.NameBytes); sr.err != nil {
				return nil, malformedf("custom section at offset %d: name: %v", s.start, sr.err)
			}
		case secType:
			err = m.parseTypes(sr)
		case secImport:
			err = m.parseImports(sr, checkImport)
		case secFunction:
			hasDeclaredFuncs = true
			err = m.parseFunctions(sr)
			declaredFuncs = len(m.funcs)
		case secTable:
			err = m.parseTables(sr)
		case secMemory:
			err = m.parseMemory(sr)
		case secGlobal:
			err = m.parseGlobals(sr)
		case secExport:
			err = m.parseExports(sr)
		case secStart:
			idx := sr.u32()
			if sr.err == nil && int(idx) >= m.numFuncs() {
				err = malformedf("start function %d does not exist", idx)
			}
		case secElement:
			err = m.parseElements(sr)
		case secCode:
			err = m.parseCode(sr)
		case secData:
			err = m.parseData(sr)
		case secDataCount:
			sr.u32()
		}
		if err != nil {
			return nil, err
		}
		if sr.err != nil {
			return nil, malformedf("%s section at offset %d: %v", sectionNames[s.id], s.start, sr.err)
		}
		if s.id != secCustom && sr.off != s.end {
			return nil, malformedf("%s section at offset %d: %d bytes left over", sectionNames[s.id], s.start, s.end-sr.off)
		}
	}
	if customs > lim.CustomSections {
		return nil, over("custom sections", uint64(customs), uint64(lim.CustomSections), "sections", "custom_sections")
	}
	if customBytes > lim.CustomBytes {
		return nil, over("custom sections", uint64(customBytes), uint64(lim.CustomBytes), "bytes", "custom_bytes")
	}
	if hasDeclaredFuncs && len(m.bodies) != declaredFuncs {
		return nil, malformedf("function section declares %d functions, code section has %d bodies", declaredFuncs, len(m.bodies))
	}
	if !hasDeclaredFuncs && len(m.bodies) != 0 {
		return nil, malformedf("code section without a function section")
	}
	return m, nil
}

func (m *Module) numFuncs() int { return len(m.imports) + len(m.funcs) }

func (m *Module) count(r *reader, what, key string, limit int) int {
	n := r.u32()
	if r.err == nil && uint64(n) > uint64(limit) {
		r.err = over(what, uint64(n), uint64(limit), "entries", key)
		return 0
	}
	return int(n)
}

func (m *Module) parseTypes(r *reader) error {
	n := m.count(r, "types", "types", m.lim.Types)
	for i := 0; i < n && r.err == nil; i++ {
		if form := r.byte(); form != 0x60 {
			return malformedf("type %d: form 0x%02x is not a function type", i, form)
		}
		var ft funcType
		for j := 0; j < 2; j++ {
			k := r.u32()
			if r.err == nil && int(k) > m.lim.Locals {
				return over(fmt.Sprintf("type %d", i), uint64(k), uint64(m.lim.Locals), "parameters or results", "locals")
			}
			vs := r.bytes(k)
			for _, v := range vs {
				if !isValType(v) {
					return malformedf("type %d: unknown value type 0x%02x", i, v)
				}
			}
			if j == 0 {
				ft.params = vs
			} else {
				ft.results = vs
			}
		}
		m.types = append(m.types, ft)
	}
	if r.err != nil {
		return limitOr(r.err, "type section: %v")
	}
	return nil
}

// limitOr passes a limit error through and wraps anything else as malformed.
func limitOr(err error, format string) error {
	if _, ok := err.(*LimitError); ok {
		return err
	}
	return malformedf(format, err)
}

func (m *Module) parseImports(r *reader, checkImport ImportChecker) error {
	n := m.count(r, "imports", "imports", m.lim.Imports)
	var errs []error
	for i := 0; i < n && r.err == nil; i++ {
		imp := Import{Module: r.name(m.lim.NameBytes), Name: r.name(m.lim.NameBytes)}
		kind := r.byte()
		if r.err != nil {
			break
		}
		if kind != 0 {
			// The descriptor of another kind is not decoded: the module
			// is refused anyway.
			return errors.Join(append(errs, malformedf("import %q.%q: a %s import; a plugin imports only functions", imp.Module, imp.Name, externKind(kind)))...)
		}
		t := r.u32()
		if r.err == nil && int(t) >= len(m.types) {
			return malformedf("import %q.%q: type %d does not exist", imp.Module, imp.Name, t)
		}
		if err := checkImport(imp, m.types[t].params, m.types[t].results); err != nil {
			errs = append(errs, &malformed{msg: err.Error()})
		}
		m.imports = append(m.imports, imp)
		m.importTypes = append(m.importTypes, t)
	}
	if r.err != nil {
		return limitOr(r.err, "import section: %v")
	}
	return errors.Join(errs...)
}

func externKind(k byte) string {
	switch k {
	case 0:
		return "function"
	case 1:
		return "table"
	case 2:
		return "memory"
	case 3:
		return "global"
	}
	return fmt.Sprintf("kind 0x%02x", k)
}

func (m *Module) parseFunctions(r *reader) error {
	n := r.u32()
	if r.err == nil && uint64(n)+uint64(len(m.imports)) > uint64(m.lim.Functions) {
		return over("functions", uint64(n)+uint64(len(m.imports)), uint64(m.lim.Functions), "functions", "functions")
	}
	m.funcs = make([]uint32, 0, n)
	for i := uint32(0); i < n && r.err == nil; i++ {
		t := r.u32()
		if r.err == nil && int(t) >= len(m.types) {
			return malformedf("function %d: type %d does not exist", len(m.imports)+int(i), t)
		}
		m.funcs = append(m.funcs, t)
	}
	return nil
}

// limits reads a limits pair: flag 0 (min) or 1 (min, max); shared and
// 64-bit forms belong to proposals the host does not enable.
func limits(r *reader) (min, max uint32, hasMax bool, err error) {
	switch flag := r.byte(); flag {
	case 0:
		min = r.u32()
	case 1:
		min, max, hasMax = r.u32(), r.u32(), true
	default:
		if r.err == nil {
			return 0, 0, false, malformedf("limits flag 0x%02x (shared or 64-bit memories and tables are not supported)", flag)
		}
	}
	if hasMax && max < min {
		return 0, 0, false, malformedf("limits: maximum %d below minimum %d", max, min)
	}
	return min, max, hasMax, nil
}

func (m *Module) parseTables(r *reader) error {
	n := m.count(r, "tables", "tables", m.lim.Tables)
	for i := 0; i < n && r.err == nil; i++ {
		if rt := r.byte(); r.err == nil && rt != tFuncref && rt != tExternref {
			return malformedf("table %d: element type 0x%02x", i, rt)
		}
		at := r.off
		min, max, hasMax, err := limits(r)
		if err != nil {
			return malformedf("table %d: %v", i, err)
		}
		if min > m.lim.TableElements {
			return over(fmt.Sprintf("table %d initial size", i), uint64(min), uint64(m.lim.TableElements), "elements", "table_elements")
		}
		m.tables = append(m.tables, table{min: min, max: max, hasMax: hasMax, limitAt: at})
	}
	return nil
}

func (m *Module) parseMemory(r *reader) error {
	n := r.u32()
	if r.err == nil && n > 1 {
		return malformedf("%d memories (a module has at most one)", n)
	}
	if n == 1 {
		min, _, _, err := limits(r)
		if err != nil {
			return malformedf("memory 0: %v", err)
		}
		if min > 65536 {
			return malformedf("memory 0: initial size %d pages is above 4 GiB", min)
		}
		if b := uint64(min) * 65536; b > m.lim.MemoryBytes {
			return over("memory 0 initial size", b, m.lim.MemoryBytes, "bytes", "memory_mib")
		}
		m.memMin, m.hasMem = min, true
	}
	return nil
}

func (m *Module) parseGlobals(r *reader) error {
	n := m.count(r, "globals", "globals", m.lim.Globals)
	for i := 0; i < n && r.err == nil; i++ {
		if t := r.byte(); r.err == nil && !isValType(t) {
			return malformedf("global %d: value type 0x%02x", i, t)
		}
		if mut := r.byte(); r.err == nil && mut > 1 {
			return malformedf("global %d: mutability 0x%02x", i, mut)
		}
		if err := m.constExpr(r, nil); err != nil {
			return malformedf("global %d: %v", i, err)
		}
		m.globals++
	}
	return nil
}

func (m *Module) parseExports(r *reader) error {
	n := m.count(r, "exports", "exports", m.lim.Exports)
	for i := 0; i < n && r.err == nil; i++ {
		name := r.name(m.lim.NameBytes)
		kind := r.byte()
		idx := r.u32()
		if r.err != nil {
			break
		}
		// Every index is checked against the original module: the globals
		// Instrument adds must not be exported.
		var n int
		switch kind {
		case 0:
			n = m.numFuncs()
		case 1:
			n = len(m.tables)
		case 2:
			if m.hasMem {
				n = 1
			}
		case 3:
			n = m.globals
		default:
			return malformedf("export %q: kind 0x%02x", name, kind)
		}
		if int(idx) >= n {
			return malformedf("export %q: %s %d does not exist (%d %ss)", name, externKind(kind), idx, n, externKind(kind))
		}
	}
	if r.err != nil {
		return limitOr(r.err, "export section: %v")
	}
	return nil
}

// constExpr decodes a constant expression; with out non-nil it appends the
// expression to *out with function indices shifted past the added import.
func (m *Module) constExpr(r *reader, out *[]byte) error {
	for {
		start := r.off
		op := r.byte()
		switch op {
		case 0x0b: // end
			if out != nil {
				*out = append(*out, 0x0b)
			}
			return r.err
		case 0x41: // i32.const
			r.sleb(5)
		case 0x42: // i64.const
			r.sleb(10)
		case 0x43:
			r.bytes(4)
		case 0x44:
			r.bytes(8)
		case 0x23: // global.get: only imported globals, and a plugin has none
			idx := r.u32()
			if r.err == nil {
				return malformedf("constant expression reads global %d (a plugin imports no globals)", idx)
			}
		case 0xd0: // ref.null
			r.byte()
		case 0xd2: // ref.func
			idx := r.u32()
			if r.err == nil && int(idx) >= m.numFuncs() {
				return malformedf("ref.func %d: no such function", idx)
			}
			if out != nil {
				*out = append(*out, 0xd2)
				*out = appendU32(*out, m.shiftFunc(idx))
				continue
			}
		case 0xfd: // v128.const
			if sub := r.u32(); r.err == nil && sub != 12 {
				return malformedf("constant expression: instruction 0xfd %d", sub)
			}
			r.bytes(16)
		default:
			if r.err == nil {
				return malformedf("constant expression: instruction 0x%02x", op)
			}
		}
		if r.err != nil {
			return r.err
		}
		if out != nil {
			*out = append(*out, r.b[start:r.off]...)
		}
	}
}

// shiftFunc maps a function index of the original module to the
// instrumented one, where the check import follows the original imports.
func (m *Module) shiftFunc(idx uint32) uint32 {
	if int(idx) >= len(m.imports) {
		return idx + 1
	}
	return idx
}

func (m *Module) parseElements(r *reader) error {
	n := m.count(r, "element segments", "element_segments", m.lim.ElementSegments)
	total := 0
	for i := 0; i < n && r.err == nil; i++ {
		k, err := m.element(r, nil)
		if err != nil {
			return malformedf("element segment %d: %v", i, err)
		}
		total += k
		if total > m.lim.ElementEntries {
			return over("element segments", uint64(total), uint64(m.lim.ElementEntries), "entries", "element_entries")
		}
	}
	return nil
}

// element decodes one element segment, re-encoding it into *out when out
// is non-nil. It returns the number of entries.
func (m *Module) element(r *reader, out *[]byte) (int, error) {
	start := r.off
	flags := r.u32()
	emit := func(from int) {
		if out != nil {
			*out = append(*out, r.b[from:r.off]...)
		}
	}
	if r.err != nil {
		return 0, r.err
	}
	if flags > 7 {
		return 0, fmt.Errorf("flags %d", flags)
	}
	emit(start)
	if flags&1 == 0 { // active
		if flags&2 != 0 {
			from := r.off
			r.u32() // table index
			emit(from)
		}
		if err := m.constExpr(r, out); err != nil {
			return 0, err
		}
	}
	exprs := flags&4 != 0
	if flags&3 != 0 { // an element kind or reference type byte follows
		from := r.off
		r.byte()
		emit(from)
	}
	from := r.off
	n := r.u32()
	emit(from)
	if r.err == nil && int(n) > m.lim.ElementEntries {
		return 0, over("element segment", uint64(n), uint64(m.lim.ElementEntries), "entries", "element_entries")
	}
	for j := uint32(0); j < n && r.err == nil; j++ {
		if exprs {
			if err := m.constExpr(r, out); err != nil {
				return 0, err
			}
			continue
		}
		idx := r.u32()
		if r.err == nil && int(idx) >= m.numFuncs() {
			return 0, fmt.Errorf("function %d does not exist", idx)
		}
		if out != nil {
			*out = appendU32(*out, m.shiftFunc(idx))
		}
	}
	return int(n), r.err
}

func (m *Module) parseData(r *reader) error {
	n := m.count(r, "data segments", "data_segments", m.lim.DataSegments)
	total := 0
	for i := 0; i < n && r.err == nil; i++ {
		switch flag := r.u32(); flag {
		case 0:
			if err := m.constExpr(r, nil); err != nil {
				return malformedf("data segment %d: %v", i, err)
			}
		case 1:
		case 2:
			if mem := r.u32(); r.err == nil && mem != 0 {
				return malformedf("data segment %d: memory %d", i, mem)
			}
			if err := m.constExpr(r, nil); err != nil {
				return malformedf("data segment %d: %v", i, err)
			}
		default:
			if r.err == nil {
				return malformedf("data segment %d: flags %d", i, flag)
			}
		}
		k := r.u32()
		total += int(k)
		if r.err == nil && total > m.lim.DataBytes {
			return over("data segments", uint64(total), uint64(m.lim.DataBytes), "bytes", "data_bytes")
		}
		r.bytes(k)
	}
	if r.err != nil {
		return limitOr(r.err, "data section: %v")
	}
	return nil
}

func (m *Module) parseCode(r *reader) error {
	n := r.u32()
	if r.err == nil && int(n) != len(m.funcs) {
		return malformedf("code section has %d bodies, function section declares %d", n, len(m.funcs))
	}
	codeBytes := 0
	m.bodies = make([]body, 0, n)
	for i := uint32(0); i < n && r.err == nil; i++ {
		fidx := len(m.imports) + int(i)
		size := r.u32()
		if r.err != nil {
			break
		}
		if int(size) > m.lim.FunctionBodyBytes {
			return over(fmt.Sprintf("function %d body", fidx), uint64(size), uint64(m.lim.FunctionBodyBytes), "bytes", "function_body_bytes")
		}
		codeBytes += int(size)
		if codeBytes > m.lim.CodeBytes {
			return over("code", uint64(codeBytes), uint64(m.lim.CodeBytes), "bytes", "code_bytes")
		}
		start := r.off
		if r.bytes(size); r.err != nil {
			break
		}
		b := body{start: start, end: r.off, typ: m.funcs[i]}
		if err := m.scanBody(&b, fidx); err != nil {
			return err
		}
		m.bodies = append(m.bodies, b)
	}
	if r.err != nil {
		return malformedf("code section: %v", r.err)
	}
	return nil
}
