// Package memlimit bounds the linear memory of one wazero module instance.
// wazero's own memory limit (RuntimeConfig.WithMemoryLimitPages) is
// runtime-wide and fixed at compile time; an Allocator is created per module
// instance, so each connector instance can have its own limit.
package memlimit

import (
	"sync/atomic"

	"github.com/tetratelabs/wazero/experimental"
)

// Allocator is an experimental.MemoryAllocator that refuses to grow a linear
// memory past Limit bytes. A refused grow makes memory.grow return -1 in the
// guest; Refused then reports it, so the host can name the fault.
type Allocator struct {
	limit   uint64
	refused atomic.Bool
	mem     atomic.Pointer[linearMemory]
}

// New returns an Allocator for one module instance, capped at limit bytes.
func New(limit uint64) *Allocator { return &Allocator{limit: limit} }

// Allocate implements experimental.MemoryAllocator. A module has at most one
// memory, so the Allocator tracks the last one allocated.
func (a *Allocator) Allocate(capacity, _ uint64) experimental.LinearMemory {
	m := &linearMemory{a: a}
	if capacity <= a.limit {
		m.buf = make([]byte, 0, capacity)
	}
	a.mem.Store(m)
	return m
}

// Refused reports whether a grow was refused because of the limit.
func (a *Allocator) Refused() bool { return a.refused.Load() }

// Limit returns the limit in bytes.
func (a *Allocator) Limit() uint64 { return a.limit }

// Size returns the current length in bytes of the allocated memory.
func (a *Allocator) Size() uint64 {
	if m := a.mem.Load(); m != nil {
		return m.size.Load()
	}
	return 0
}

type linearMemory struct {
	a    *Allocator
	buf  []byte
	size atomic.Uint64
}

// Reallocate grows the backing slice to size bytes. Growth reserves a quarter
// more capacity (within the limit) so that a guest growing page by page does
// not copy its whole memory each time, without doubling a large heap.
func (m *linearMemory) Reallocate(size uint64) []byte {
	if size > m.a.limit {
		m.a.refused.Store(true)
		return nil
	}
	if size > uint64(cap(m.buf)) {
		newCap := min(size+size/4, m.a.limit)
		nb := make([]byte, size, newCap)
		copy(nb, m.buf)
		m.buf = nb
	} else {
		m.buf = m.buf[:size]
	}
	m.size.Store(size)
	return m.buf
}

// Free drops the backing slice.
func (m *linearMemory) Free() {
	m.buf = nil
	m.size.Store(0)
}
