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
		// The operand stack's height below the block, and the block's
		// parameters and results.
		base, params, results uint32
	}
	stack := make([]ctl, 1, 16)
	stack[0].results = uint32(len(ft.results))
	var count uint32
	labels := 0 // against lim.Labels
	moreLabels := func(n int) error {
		if labels += n; labels > m.lim.Labels {
			return over(fmt.Sprintf("function %d labels", fidx), uint64(labels), uint64(m.lim.Labels), "labels", "labels")
		}
		return nil
	}
	// height bounds the operand stack's height from above (exactly, in
	// reachable code), so that the frame a call spills is charged in full:
	// see frameBytes.
	var height, maxHeight uint32
	effect := func(pops, pushes uint32) {
		height = max(height, stack[len(stack)-1].base+pops) - pops // not below the block
		height += pushes
		maxHeight = max(maxHeight, height)
	}
	unreachable := func() { height = stack[len(stack)-1].base }
	nFuncs, nImports := uint32(m.numFuncs()), uint32(len(m.imports))
	label := func() {
		if l := r.u32(); r.err == nil && uint64(l) >= uint64(len(stack)) {
			r.fail("branch to label %d, %d enclosing", l, len(stack))
		}
	}
	funcIdx := func(pos int) (funcType, bool) {
		idx := r.u32()
		switch {
		case r.err != nil:
			return funcType{}, false
		case idx >= nFuncs:
			r.fail("function %d does not exist", idx)
			return funcType{}, false
		case idx >= nImports:
			b.patches = append(b.patches, patch{pos: pos, end: r.off, kind: patchFunc})
			return m.types[m.funcs[idx-nImports]], true
		}
		return m.types[m.importTypes[idx]], true
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
		case op == 0x00: // unreachable
			unreachable()
		case op == 0x01: // nop
		case op == 0x1a: // drop
			effect(1, 0)
		case op == 0x1b: // select
			effect(3, 1)
		case op == 0xd1: // ref.is_null
			effect(1, 1)
		case op >= 0x45 && op <= 0xc4: // numeric
			effect(numericPops(op), 1)
		case op >= 0x02 && op <= 0x04: // block, loop, if
			var params, results uint32
			bt := r.b[min(r.off, len(r.b)-1)]
			if bt == 0x40 || isValType(bt) {
				r.byte()
				if bt != 0x40 {
					results = 1
				}
			} else if t := r.sleb(5); r.err == nil && (t < 0 || t >= int64(len(m.types))) {
				return bad("block type %d does not exist", t)
			} else if r.err == nil {
				params, results = uint32(len(m.types[t].params)), uint32(len(m.types[t].results))
			}
			if len(stack) > m.lim.BlockDepth {
				return over(fmt.Sprintf("function %d block nesting", fidx), uint64(len(stack)), uint64(m.lim.BlockDepth), "levels", "block_depth")
			}
			if err := moreLabels(1); err != nil {
				return err
			}
			if op == 0x04 {
				effect(1, 0) // the condition
			}
			effect(params, 0)
			c := ctl{op: op, count: count, base: height, params: params, results: results}
			effect(0, params)
			if op == 0x03 {
				c.patch = len(b.patches)
				b.patches = append(b.patches, patch{pos: r.off, kind: patchLoop})
			}
			stack = append(stack, c)
		case op == 0x05: // else
			top := stack[len(stack)-1]
			if top.op != 0x04 {
				return bad("else outside if")
			}
			height = top.base + top.params
		case op == 0x0b: // end
			top := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			height = top.base + top.results
			if top.op == 0x03 {
				b.patches[top.patch].val = max(1, count-top.count)
			}
			if len(stack) == 0 {
				if r.off != b.end {
					return bad("%d bytes after the body's end", b.end-r.off)
				}
				b.weight = count
				b.stack = maxHeight
				// Leaves go uncounted on the call stack (one at most is
				// live, on top of the counted frames), unless their frame
				// is large.
				if b.leaf && frameBytes(ft, b.locals+b.stack) > maxLeafFrame {
					b.leaf = false
				}
				return nil
			}
		case op == 0x0c: // br
			label()
			unreachable()
		case op == 0x0d: // br_if
			label()
			effect(1, 0)
		case op == 0x0e: // br_table
			n := r.u32()
			if r.err == nil && int(n) > b.end-r.off {
				return bad("br_table of %d labels", n)
			}
			if err := moreLabels(int(n) + 1); r.err == nil && err != nil {
				return err
			}
			for i := uint32(0); i <= n && r.err == nil; i++ {
				label()
			}
			unreachable()
		case op == 0x0f: // return
			b.patches = append(b.patches, patch{pos: pos, kind: patchReturn})
			unreachable()
		case op == 0x10: // call
			if ft, ok := funcIdx(r.off); ok {
				effect(uint32(len(ft.params)), uint32(len(ft.results)))
			}
			b.leaf = false
			count += callWeight - 1
		case op == 0x11: // call_indirect
			t := r.u32()
			if r.err == nil && int(t) >= len(m.types) {
				return bad("call_indirect type %d does not exist", t)
			}
			if t := r.u32(); r.err == nil && int(t) >= len(m.tables) {
				return bad("call_indirect table %d does not exist", t)
			}
			if r.err == nil {
				effect(1+uint32(len(m.types[t].params)), uint32(len(m.types[t].results)))
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
			effect(3, 1)
		case op >= 0x20 && op <= 0x22: // local.get, local.set, local.tee
			if idx := r.u32(); r.err == nil && uint64(idx) >= locals {
				return bad("local %d does not exist (%d locals)", idx, locals)
			}
			effect([...]uint32{0, 1, 1}[op-0x20], [...]uint32{1, 0, 1}[op-0x20])
		case op == 0x23 || op == 0x24: // global.get, global.set
			if idx := r.u32(); r.err == nil && int(idx) >= m.globals {
				return bad("global %d does not exist (%d globals)", idx, m.globals)
			}
			effect(uint32(op-0x23), uint32(0x24-op))
		case op == 0x25 || op == 0x26: // table.get, table.set
			if t := r.u32(); r.err == nil && int(t) >= len(m.tables) {
				return bad("table %d does not exist", t)
			}
			effect(uint32(op-0x24), uint32(0x26-op))
		case op >= 0x28 && op <= 0x3e: // loads and stores
			memarg()
			if op <= 0x35 {
				effect(1, 1)
			} else {
				effect(2, 0)
			}
		case op == 0x3f || op == 0x40: // memory.size, memory.grow
			zero()
			effect(uint32(op-0x3f), 1)
		case op == 0x41:
			r.sleb(5)
			effect(0, 1)
		case op == 0x42:
			r.sleb(10)
			effect(0, 1)
		case op == 0x43:
			r.bytes(4)
			effect(0, 1)
		case op == 0x44:
			r.bytes(8)
			effect(0, 1)
		case op == 0xd0: // ref.null
			if t := r.byte(); r.err == nil && t != tFuncref && t != tExternref {
				return bad("ref.null type 0x%02x", t)
			}
			effect(0, 1)
		case op == 0xd2: // ref.func
			// wazero allocates a host object for each execution and keeps
			// it until the module instance closes: a loop of ref.func grows
			// host memory by ~100 MB a second. Constant expressions
			// (element segments, globals) may still use it.
			return bad("ref.func in code is not supported (each execution holds host memory until the module instance closes)")
		case op == 0xfc:
			switch sub := r.u32(); {
			case r.err != nil:
			case sub <= 7: // saturating truncations
				effect(1, 1)
			case sub == 8: // memory.init
				effect(3, 0)
				r.u32()
				zero()
				b.patches = append(b.patches, patch{pos: pos, kind: patchBulk, val: memShift})
			case sub == 9 || sub == 13: // data.drop, elem.drop
				r.u32()
			case sub == 10: // memory.copy
				effect(3, 0)
				zero()
				zero()
				b.patches = append(b.patches, patch{pos: pos, kind: patchBulk, val: memShift})
			case sub == 11: // memory.fill
				effect(3, 0)
				zero()
				b.patches = append(b.patches, patch{pos: pos, kind: patchBulk, val: memShift})
			case sub == 12 || sub == 14: // table.init, table.copy
				effect(3, 0)
				r.u32()
				r.u32()
				b.patches = append(b.patches, patch{pos: pos, kind: patchBulk, val: tableShift})
			case sub >= 15 && sub <= 17: // table.grow, table.size, table.fill
				if t := r.u32(); r.err == nil && int(t) >= len(m.tables) {
					return bad("table %d does not exist", t)
				}
				effect([...]uint32{2, 0, 3}[sub-15], [...]uint32{1, 1, 0}[sub-15])
				if sub != 16 {
					b.patches = append(b.patches, patch{pos: pos, kind: patchBulk, val: tableShift})
				}
			default:
				return bad("unsupported instruction 0xfc %d", sub)
			}
		case op == 0xfd: // SIMD
			sub := r.u32()
			if r.err == nil {
				effect(simdEffect(sub))
			}
			switch {
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

// numericPops returns how many operands numeric instruction op (0x45-0xc4)
// takes; each pushes one result.
func numericPops(op byte) uint32 {
	switch {
	case op >= 0x46 && op <= 0x4f, op >= 0x51 && op <= 0x66, op >= 0x6a && op <= 0x78,
		op >= 0x7c && op <= 0x8a, op >= 0x92 && op <= 0x98, op >= 0xa0 && op <= 0xa6:
		return 2 // comparisons and binary operators
	}
	return 1 // tests, unary operators and conversions
}

// simdEffect returns how many operands SIMD instruction 0xfd sub takes and
// how many results it pushes.
func simdEffect(sub uint32) (pops, pushes uint32) {
	switch {
	case sub <= 10 || sub == 92 || sub == 93: // loads
		return 1, 1
	case sub == 11: // v128.store
		return 2, 0
	case sub == 12: // v128.const
		return 0, 1
	case sub == 13 || sub == 14: // i8x16.shuffle, i8x16.swizzle
		return 2, 1
	case sub <= 20: // splats
		return 1, 1
	case sub <= 34: // extract lane (1 operand), replace lane (2)
		switch sub {
		case 23, 26, 28, 30, 32, 34:
			return 2, 1
		}
		return 1, 1
	case sub <= 76: // comparisons
		return 2, 1
	case sub == 77 || sub == 83: // v128.not, v128.any_true
		return 1, 1
	case sub <= 81: // and, andnot, or, xor
		return 2, 1
	case sub == 82: // v128.bitselect
		return 3, 1
	case sub <= 87: // load lane
		return 2, 1
	case sub <= 91: // store lane
		return 2, 0
	}
	// From 94, binary operators take two operands; the rest one.
	switch {
	case sub == 101 || sub == 102 || sub >= 107 && sub <= 115 || sub >= 118 && sub <= 121 || sub == 123,
		sub == 130 || sub == 133 || sub == 134 || sub >= 139 && sub <= 147 || sub >= 149 && sub <= 153 || sub >= 155 && sub <= 159,
		sub >= 171 && sub <= 174 || sub == 177 || sub >= 181 && sub <= 186 || sub >= 188 && sub <= 191,
		sub >= 203 && sub <= 206 || sub == 209 || sub >= 213 && sub <= 223,
		sub >= 228 && sub <= 235 || sub >= 240 && sub <= 247:
		return 2, 1
	}
	return 1, 1
}
