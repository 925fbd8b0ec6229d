package gate

import "fmt"

type patchKind uint8

const (
	patchLoop   patchKind = iota + 1 // insert the loop check at pos; val is the loop's weight
	patchFunc                        // re-encode the function index in [pos, end)
	patchReturn                      // insert the call-stack exit before the return at pos
	patchBulk                        // charge the count of the bulk memory or table operation at pos, shifted right by val
)

type patch struct {
	pos, end int
	kind     patchKind
	val      uint32
}

// callWeight is what a call instruction adds to its loop's or function's
// weight: a leaf function of at most this weight is not instrumented, so
// its caller pays for it.
const callWeight = 64

// scanBody decodes one function body, checks its limits and every index
// it uses against the original module (so that no guest code can name what
// Instrument adds), and records where Instrument patches it.
func (m *Module) scanBody(b *body, fidx int) error {
	r := &reader{b: m.wasm[:b.end], off: b.start}
	bad := func(format string, args ...any) error {
		return malformedf("function %d at offset %d: %s", fidx, r.off, fmt.Sprintf(format, args...))
	}
	ft := m.types[b.typ]
	groups := r.u32()
	locals := uint64(len(ft.params))
	for g := uint32(0); g < groups && r.err == nil; g++ {
		n := r.u32()
		t := r.byte()
		if r.err == nil && !isValType(t) {
			return bad("local type 0x%02x", t)
		}
		locals += uint64(n)
		if locals > uint64(m.lim.Locals) {
			return over(fmt.Sprintf("function %d locals", fidx), locals, uint64(m.lim.Locals), "locals", "locals")
		}
	}
	if r.err != nil {
		return bad("locals: %v", r.err)
	}
	b.locals = uint32(locals) - uint32(len(ft.params))
	b.expr = r.off
	b.leaf = true

	type ctl struct {
		op    byte // 0 for the function itself, else block, loop or if
		patch int  // loops: index of their patch
		count uint32
	}
	stack := make([]ctl, 1, 16)
	var count uint32
	nFuncs, nImports := uint32(m.numFuncs()), uint32(len(m.imports))
	label := func() {
		if l := r.u32(); r.err == nil && uint64(l) >= uint64(len(stack)) {
			r.fail("branch to label %d, %d enclosing", l, len(stack))
		}
	}
	funcIdx := func(pos int) {
		idx := r.u32()
		switch {
		case r.err != nil:
		case idx >= nFuncs:
			r.fail("function %d does not exist", idx)
		case idx >= nImports:
			b.patches = append(b.patches, patch{pos: pos, end: r.off, kind: patchFunc})
		}
	}
	memarg := func() {
		if align := r.u32(); r.err == nil && align >= 64 {
			r.fail("memory index in alignment (multiple memories are not supported)")
		}
		r.u32()
	}
	zero := func() {
		if c := r.byte(); r.err == nil && c != 0 {
			r.fail("memory or table immediate 0x%02x, want 0", c)
		}
	}
	for r.err == nil {
		pos := r.off
		if pos >= b.end {
			return bad("body ends without end")
		}
		op := r.byte()
		count++
		switch {
		case op == 0x00 || op == 0x01 || op == 0x1a || op == 0x1b || op == 0xd1 || (op >= 0x45 && op <= 0xc4):
		case op >= 0x02 && op <= 0x04: // block, loop, if
			bt := r.b[min(r.off, len(r.b)-1)]
			if bt == 0x40 || isValType(bt) {
				r.byte()
			} else if t := r.sleb(5); r.err == nil && (t < 0 || t >= int64(len(m.types))) {
				return bad("block type %d does not exist", t)
			}
			if len(stack) >= m.lim.BlockDepth {
				return over(fmt.Sprintf("function %d block nesting", fidx), uint64(len(stack)), uint64(m.lim.BlockDepth), "levels", "block_depth")
			}
			c := ctl{op: op, count: count}
			if op == 0x03 {
				c.patch = len(b.patches)
				b.patches = append(b.patches, patch{pos: r.off, kind: patchLoop})
			}
			stack = append(stack, c)
		case op == 0x05: // else
			if stack[len(stack)-1].op != 0x04 {
				return bad("else outside if")
			}
		case op == 0x0b: // end
			top := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if top.op == 0x03 {
				b.patches[top.patch].val = max(1, count-top.count)
			}
			if len(stack) == 0 {
				if r.off != b.end {
					return bad("%d bytes after the body's end", b.end-r.off)
				}
				b.weight = count
				return nil
			}
		case op == 0x0c || op == 0x0d: // br, br_if
			label()
		case op == 0x0e: // br_table
			n := r.u32()
			if r.err == nil && int(n) > b.end-r.off {
				return bad("br_table of %d labels", n)
			}
			for i := uint32(0); i <= n && r.err == nil; i++ {
				label()
			}
		case op == 0x0f: // return
			b.patches = append(b.patches, patch{pos: pos, kind: patchReturn})
		case op == 0x10: // call
			funcIdx(r.off)
			b.leaf = false
			count += callWeight - 1
		case op == 0x11: // call_indirect
			if t := r.u32(); r.err == nil && int(t) >= len(m.types) {
				return bad("call_indirect type %d does not exist", t)
			}
			if t := r.u32(); r.err == nil && int(t) >= len(m.tables) {
				return bad("call_indirect table %d does not exist", t)
			}
			b.leaf = false
			count += callWeight - 1
		case op == 0x1c: // select t*
			if n := r.u32(); r.err == nil && n != 1 {
				return bad("select with %d types", n)
			}
			if t := r.byte(); r.err == nil && !isValType(t) {
				return bad("select type 0x%02x", t)
			}
		case op >= 0x20 && op <= 0x22: // local.get, local.set, local.tee
			if idx := r.u32(); r.err == nil && uint64(idx) >= locals {
				return bad("local %d does not exist (%d locals)", idx, locals)
			}
		case op == 0x23 || op == 0x24: // global.get, global.set
			if idx := r.u32(); r.err == nil && int(idx) >= m.globals {
				return bad("global %d does not exist (%d globals)", idx, m.globals)
			}
		case op == 0x25 || op == 0x26: // table.get, table.set
			if t := r.u32(); r.err == nil && int(t) >= len(m.tables) {
				return bad("table %d does not exist", t)
			}
		case op >= 0x28 && op <= 0x3e: // loads and stores
			memarg()
		case op == 0x3f || op == 0x40: // memory.size, memory.grow
			zero()
		case op == 0x41:
			r.sleb(5)
		case op == 0x42:
			r.sleb(10)
		case op == 0x43:
			r.bytes(4)
		case op == 0x44:
			r.bytes(8)
		case op == 0xd0: // ref.null
			if t := r.byte(); r.err == nil && t != tFuncref && t != tExternref {
				return bad("ref.null type 0x%02x", t)
			}
		case op == 0xd2: // ref.func
			funcIdx(r.off)
		case op == 0xfc:
			switch sub := r.u32(); {
			case r.err != nil:
			case sub <= 7: // saturating truncations
			case sub == 8: // memory.init
				r.u32()
				zero()
				b.patches = append(b.patches, patch{pos: pos, kind: patchBulk, val: memShift})
			case sub == 9 || sub == 13: // data.drop, elem.drop
				r.u32()
			case sub == 10: // memory.copy
				zero()
				zero()
				b.patches = append(b.patches, patch{pos: pos, kind: patchBulk, val: memShift})
			case sub == 11: // memory.fill
				zero()
				b.patches = append(b.patches, patch{pos: pos, kind: patchBulk, val: memShift})
			case sub == 12 || sub == 14: // table.init, table.copy
				r.u32()
				r.u32()
				b.patches = append(b.patches, patch{pos: pos, kind: patchBulk, val: tableShift})
			case sub >= 15 && sub <= 17: // table.grow, table.size, table.fill
				if t := r.u32(); r.err == nil && int(t) >= len(m.tables) {
					return bad("table %d does not exist", t)
				}
				if sub != 16 {
					b.patches = append(b.patches, patch{pos: pos, kind: patchBulk, val: tableShift})
				}
			default:
				return bad("unsupported instruction 0xfc %d", sub)
			}
		case op == 0xfd: // SIMD
			switch sub := r.u32(); {
			case r.err != nil:
			case sub <= 11 || sub == 92 || sub == 93: // loads and stores
				memarg()
			case sub == 12 || sub == 13: // v128.const, i8x16.shuffle
				r.bytes(16)
			case sub >= 21 && sub <= 34: // extract and replace lane
				r.byte()
			case sub >= 84 && sub <= 91: // load and store lane
				memarg()
				r.byte()
			case sub <= 255:
			default:
				return bad("unsupported instruction 0xfd %d", sub)
			}
		default:
			return bad("unsupported instruction 0x%02x", op)
		}
	}
	return bad("%v", r.err)
}
