package gate

// Arguments the instrumented code passes to the check function.
const (
	CheckWork  = 0 // the work budget since the last check is used up
	CheckStack = 1 // the call-stack budget is exceeded; the host must trap
)

// Config says what Instrument adds. Zero fields take the defaults below.
type Config struct {
	// CheckModule and CheckName name the host function (i32) -> () that
	// instrumented code calls; it must trap to stop the guest.
	CheckModule, CheckName string
	// Work is how many work units (about one per instruction executed)
	// pass between two checks. Default 1<<18: tens of microseconds.
	Work uint32
	// StackBytes is the call-stack budget: the estimated native stack of
	// the non-leaf frames live at once. Default 1 MiB.
	StackBytes uint32
}

const (
	defaultWork       = 1 << 18
	defaultStackBytes = 1 << 20
	// maxEntryWeight caps what one function entry charges, so that a call
	// to a large function that takes a short path is not charged as if it
	// ran its whole body. A body is at most FunctionBodyBytes, so the
	// straight-line work between checks stays bounded.
	maxEntryWeight = 4096
	// A bulk operation charges its count shifted right: one unit per 16
	// bytes of memory (memset and memmove move about that much in an
	// instruction's time) and one per 2 table elements (about a
	// nanosecond each). Neither charge can overflow the i32 counter.
	memShift   = 4
	tableShift = 1
)

// frameBytes is the call-stack charge of a function frame: a fixed part
// plus 16 bytes per parameter, result and slot (slots: locals and operand
// stack, which compiled code spills when it calls: a function that piles up
// 1,000 values and recurses takes 8 KB of native stack a frame).
func frameBytes(ft funcType, slots uint32) uint32 {
	return 64 + 16*(uint32(len(ft.params))+uint32(len(ft.results))+slots+2)
}

// maxLeafFrame is the largest frame of a function without calls that goes
// uncounted on the call stack.
const maxLeafFrame = 4 << 10

// instrumenter holds the indices Instrument adds.
type instrumenter struct {
	m           *Module
	cfg         Config
	checkFunc   uint32
	fuel, depth uint32 // globals
	blockTypes  map[string]uint32
	extraTypes  [][]byte // result lists of added block types
	checkType   uint32
	scratch     []byte
}

// Instrument returns the module with the checks described in the package
// comment. The result imports cfg's check function after the original
// imports, so every defined function's index moves up by one; it adds two
// mutable i32 globals after the original ones and an i32 local to every
// function that runs a bulk memory operation. Parse has already refused any
// guest code that names them.
func (m *Module) Instrument(cfg Config) []byte {
	if cfg.Work == 0 {
		cfg.Work = defaultWork
	}
	if cfg.StackBytes == 0 {
		cfg.StackBytes = defaultStackBytes
	}
	in := &instrumenter{
		m: m, cfg: cfg,
		checkFunc:  uint32(len(m.imports)),
		fuel:       uint32(m.globals),
		depth:      uint32(m.globals) + 1,
		checkType:  uint32(len(m.types)),
		blockTypes: map[string]uint32{},
	}
	// Multi-value functions need a block type naming their results.
	for i := range m.bodies {
		res := m.types[m.bodies[i].typ].results
		if !m.bodies[i].leaf && len(res) > 1 {
			if _, ok := in.blockTypes[string(res)]; !ok {
				in.blockTypes[string(res)] = in.checkType + 1 + uint32(len(in.extraTypes))
				in.extraTypes = append(in.extraTypes, res)
			}
		}
	}

	out := make([]byte, 0, len(m.wasm)+len(m.wasm)/4)
	out = append(out, m.wasm[:8]...)
	added := map[byte]bool{}
	// flush adds the sections Instrument needs and the module lacks, in
	// their place in the order.
	flush := func(before int) {
		for _, id := range []byte{secType, secImport, secGlobal} {
			if !added[id] && order[id] < before {
				added[id] = true
				out = in.section(out, id, nil)
			}
		}
	}
	for _, s := range m.sections {
		if s.id == secCustom {
			out = in.custom(out, s)
			continue
		}
		flush(order[s.id])
		added[s.id] = true
		out = in.section(out, s.id, &s)
	}
	flush(1 << 30)
	return out
}

// section appends section id, rewritten from s (nil: the module has none).
func (in *instrumenter) section(out []byte, id byte, s *section) []byte {
	m := in.m
	var r *reader
	n := uint32(0)
	if s != nil {
		r = &reader{b: m.wasm[:s.end], off: s.body}
	}
	var p []byte
	switch id {
	case secType:
		if r != nil {
			n = r.u32()
		}
		p = appendU32(p, n+1+uint32(len(in.extraTypes)))
		if r != nil {
			p = append(p, r.b[r.off:]...)
		}
		p = append(p, 0x60, 1, tI32, 0)
		for _, res := range in.extraTypes {
			p = append(p, 0x60, 0)
			p = appendU32(p, uint32(len(res)))
			p = append(p, res...)
		}
	case secImport:
		if r != nil {
			n = r.u32()
		}
		p = appendU32(p, n+1)
		if r != nil {
			p = append(p, r.b[r.off:]...)
		}
		p = appendName(p, in.cfg.CheckModule)
		p = appendName(p, in.cfg.CheckName)
		p = append(p, 0)
		p = appendU32(p, in.checkType)
	case secGlobal:
		if r != nil {
			n = r.u32()
		}
		p = appendU32(p, n+2)
		if r != nil {
			p = append(p, r.b[r.off:]...)
		}
		for range 2 {
			p = append(p, tI32, 1, 0x41, 0, 0x0b)
		}
	case secTable:
		p = appendU32(p, uint32(len(m.tables)))
		for _, t := range m.tables {
			// The element type byte precedes the limits.
			p = append(p, m.wasm[t.limitAt-1], 1)
			p = appendU32(p, t.min)
			mx := m.lim.TableElements
			if t.hasMax && t.max < mx {
				mx = t.max
			}
			p = appendU32(p, mx)
		}
	case secExport:
		n = r.u32()
		p = appendU32(p, n)
		for range n {
			name := r.name(m.lim.NameBytes)
			kind := r.byte()
			idx := r.u32()
			p = appendName(p, name)
			p = append(p, kind)
			if kind == 0 {
				idx = m.shiftFunc(idx)
			}
			p = appendU32(p, idx)
		}
	case secStart:
		p = appendU32(p, m.shiftFunc(r.u32()))
	case secElement:
		n = r.u32()
		p = appendU32(p, n)
		for range n {
			_, _ = m.element(r, &p) // decoded once already by Parse
		}
	case secCode:
		p = appendU32(p, uint32(len(m.bodies)))
		for i := range m.bodies {
			p = in.body(p, &m.bodies[i])
		}
	default:
		return append(out, m.wasm[s.start:s.end]...)
	}
	out = append(out, id)
	out = appendU32(out, uint32(len(p)))
	return append(out, p...)
}

func appendName(b []byte, s string) []byte {
	b = appendU32(b, uint32(len(s)))
	return append(b, s...)
}

// custom appends a custom section; the name section's function indices
// are moved like the functions'.
func (in *instrumenter) custom(out []byte, s section) []byte {
	r := &reader{b: in.m.wasm[:s.end], off: s.body}
	if r.name(in.m.lim.NameBytes) != "name" {
		return append(out, in.m.wasm[s.start:s.end]...)
	}
	p, ok := in.names(r)
	if !ok {
		return out // names are debug information: drop what does not decode
	}
	out = append(out, secCustom)
	out = appendU32(out, uint32(len(p)))
	return append(out, p...)
}

// names rewrites the name section: module name kept, function and local
// names moved, other subsections dropped.
func (in *instrumenter) names(r *reader) ([]byte, bool) {
	p := appendName(nil, "name")
	for !r.done() {
		id := r.byte()
		size := r.u32()
		sub := &reader{b: r.bytes(size)}
		if r.err != nil {
			return nil, false
		}
		var q []byte
		switch id {
		case 0:
			q = sub.b
		case 1, 2:
			n := sub.u32()
			q = appendU32(q, n)
			for range n {
				q = appendU32(q, in.m.shiftFunc(sub.u32()))
				if id == 1 {
					q = appendName(q, sub.name(1<<20))
					continue
				}
				from := sub.off
				k := sub.u32()
				for range k {
					sub.u32()
					sub.name(1 << 20)
				}
				q = append(q, sub.b[from:sub.off]...)
			}
			if sub.err != nil {
				return nil, false
			}
		default:
			continue
		}
		p = append(p, id)
		p = appendU32(p, uint32(len(q)))
		p = append(p, q...)
	}
	return p, r.err == nil
}

// body appends one instrumented function body.
//
// Work is counted in units scaled so that a 32-bit counter wraps after
// Config.Work units: the check runs on the carry of the addition, so the
// counter is never reset and the rare path writes nothing. A counter that
// the rare path resets made wazero's register allocator slow a tight loop
// by half; one kept in a global, by four times. Loops count in a local;
// function entries and bulk operations in a module-wide global, so that
// work spread over many calls adds up.
func (in *instrumenter) body(out []byte, b *body) []byte {
	m := in.m
	ft := m.types[b.typ]
	lc := uint32(len(ft.params)) + b.locals // the loop counter
	tmp := lc + 1                           // a bulk operation's byte count
	w := in.scratch[:0]
	r := &reader{b: m.wasm[:b.expr], off: b.start}
	groups := r.u32()
	w = appendU32(w, groups+1)
	w = append(w, m.wasm[r.off:b.expr]...)
	w = append(w, 2, tI32)

	if !b.leaf || b.weight > callWeight {
		w = in.chargeGlobal(w, in.scale(min(b.weight, maxEntryWeight)))
	}
	frame := frameBytes(ft, b.locals+b.stack)
	if !b.leaf {
		// Entry: take the frame from the call-stack budget.
		w = in.op(w, 0x23, in.depth)
		w = i32const(w, frame)
		w = append(w, 0x6a) // i32.add
		w = in.op(w, 0x22, tmp)
		w = in.op(w, 0x24, in.depth)
		w = in.op(w, 0x20, tmp)
		w = i32const(w, in.cfg.StackBytes)
		w = append(w, 0x4b, 0x04, 0x40) // i32.gt_u, if
		w = in.callCheck(w, CheckStack)
		w = append(w, 0x0b)
		// The body in a block, so that a branch to the function's label
		// lands before the frame is given back.
		w = append(w, 0x02)
		switch res := ft.results; len(res) {
		case 0:
			w = append(w, 0x40)
		case 1:
			w = append(w, res[0])
		default:
			w = appendS32(w, int32(in.blockTypes[string(res)]))
		}
	}
	exit := func(w []byte) []byte {
		w = in.op(w, 0x23, in.depth)
		w = i32const(w, frame)
		w = append(w, 0x6b) // i32.sub
		return in.op(w, 0x24, in.depth)
	}
	cur := b.expr
	for _, pt := range b.patches {
		w = append(w, m.wasm[cur:pt.pos]...)
		cur = pt.pos
		switch pt.kind {
		case patchLoop:
			units := in.scale(pt.val)
			w = in.op(w, 0x20, lc)
			w = i32const(w, units)
			w = append(w, 0x6a)
			w = in.op(w, 0x22, lc)
			w = i32const(w, units)
			w = append(w, 0x49, 0x04, 0x40) // i32.lt_u (the carry), if
			w = in.callCheck(w, CheckWork)
			w = append(w, 0x0b)
		case patchFunc:
			idx := (&reader{b: m.wasm[:pt.end], off: pt.pos}).u32()
			w = appendU32(w, idx+1)
			cur = pt.end
		case patchReturn:
			if !b.leaf {
				w = exit(w)
			}
		case patchBulk:
			// The byte or element count is on top of the stack: keep it,
			// and charge it, shifted (at most a wrap's worth), to the
			// global counter.
			shifted := func(w []byte) []byte {
				w = in.op(w, 0x20, tmp)
				w = i32const(w, pt.val)
				return append(w, 0x76) // i32.shr_u
			}
			w = in.op(w, 0x22, tmp) // local.tee
			w = shifted(w)
			w = i32const(w, in.cfg.Work-1)
			w = shifted(w)
			w = i32const(w, in.cfg.Work)
			w = append(w, 0x49, 0x1b) // i32.lt_u, select: min(n>>shift, Work-1)
			w = i32const(w, in.unit())
			w = append(w, 0x6c) // i32.mul
			w = in.op(w, 0x21, tmp)
			w = in.op(w, 0x23, in.fuel)
			w = in.op(w, 0x20, tmp)
			w = append(w, 0x6a)
			w = in.op(w, 0x24, in.fuel)
			w = in.op(w, 0x23, in.fuel)
			w = in.op(w, 0x20, tmp)
			w = append(w, 0x49, 0x04, 0x40) // the carry, if
			w = in.callCheck(w, CheckWork)
			w = append(w, 0x0b)
		}
	}
	w = append(w, m.wasm[cur:b.end-1]...) // without the body's end
	if !b.leaf {
		w = append(w, 0x0b)
		w = exit(w)
	}
	w = append(w, 0x0b)
	in.scratch = w
	out = appendU32(out, uint32(len(w)))
	return append(out, w...)
}

// unit is the counter increment of one unit of work: the counter wraps
// after cfg.Work units.
func (in *instrumenter) unit() uint32 { return uint32((1 << 32) / uint64(in.cfg.Work)) }

// scale converts units of work to counter increments, below one wrap.
func (in *instrumenter) scale(units uint32) uint32 {
	return min(units, in.cfg.Work-1) * in.unit()
}

// chargeGlobal appends: add inc to the module's work counter, and call the
// check function on the carry.
func (in *instrumenter) chargeGlobal(w []byte, inc uint32) []byte {
	w = in.op(w, 0x23, in.fuel)
	w = i32const(w, inc)
	w = append(w, 0x6a) // i32.add
	w = in.op(w, 0x24, in.fuel)
	w = in.op(w, 0x23, in.fuel)
	w = i32const(w, inc)
	w = append(w, 0x49, 0x04, 0x40) // i32.lt_u, if
	w = in.callCheck(w, CheckWork)
	return append(w, 0x0b)
}

func (in *instrumenter) op(w []byte, op byte, idx uint32) []byte {
	return appendU32(append(w, op), idx)
}

func (in *instrumenter) callCheck(w []byte, why int32) []byte {
	w = i32const(w, uint32(why))
	return in.op(w, 0x10, in.checkFunc)
}

func i32const(w []byte, v uint32) []byte {
	return appendS32(append(w, 0x41), int32(v))
}
