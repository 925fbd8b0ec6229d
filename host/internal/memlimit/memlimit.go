// Package memlimit bounds the linear memory of one wazero module instance.
// wazero's own memory limit (RuntimeConfig.WithMemoryLimitPages) is
// runtime-wide and fixed at compile time; an Allocator is created per module
// instance, so each connector instance can have its own limit.
//
// Where the platform allows (Linux), the memory is one reservation of
// address space of the limit's size, made once: growing it never copies, and
// the host holds only the pages the guest has touched. Elsewhere it is a Go
// slice grown with headroom.
package memlimit

import (
	"sync"
	"sync/atomic"

	"github.com/tetratelabs/wazero/experimental"
)

// Allocator is an experimental.MemoryAllocator that refuses to grow a linear
// memory past Limit bytes. A refused grow makes memory.grow return -1 in the
// guest; Refused then reports it, so the host can name the fault.
//
// The host brackets every call into the module with Enter and Exit: memory
// freed while a call runs (a plugin closed under it) is released only when
// the call returns, since the guest's compiled code still addresses it.
type Allocator struct {
	limit   uint64
	refused atomic.Bool
	size    atomic.Uint64

	mu     sync.Mutex
	mem    *linearMemory
	active int
}

// New returns an Allocator for one module instance, capped at limit bytes.
func New(limit uint64) *Allocator { return &Allocator{limit: limit} }

// Allocate implements experimental.MemoryAllocator. A module has at most one
// memory, so the Allocator tracks the last one allocated.
func (a *Allocator) Allocate(capacity, maximum uint64) experimental.LinearMemory {
	m := &linearMemory{a: a}
	if capacity <= a.limit {
		if b, err := reserve(min(a.limit, max(maximum, capacity))); err == nil {
			m.buf, m.mapped = b, true
		} else {
			m.buf = make([]byte, 0, capacity)
		}
	}
	a.mu.Lock()
	a.mem = m
	a.mu.Unlock()
	return m
}

// Refused reports whether a grow was refused because of the limit.
func (a *Allocator) Refused() bool { return a.refused.Load() }

// Limit returns the limit in bytes.
func (a *Allocator) Limit() uint64 { return a.limit }

// Size returns the current length in bytes of the allocated memory.
func (a *Allocator) Size() uint64 { return a.size.Load() }

// Enter marks a call into the module as running.
func (a *Allocator) Enter() {
	a.mu.Lock()
	a.active++
	a.mu.Unlock()
}

// Exit marks a call as returned, releasing memory freed meanwhile.
func (a *Allocator) Exit() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.active--
	if a.active == 0 && a.mem != nil && a.mem.freed {
		a.mem.release()
	}
}

type linearMemory struct {
	a      *Allocator
	buf    []byte
	mapped bool // buf is a reservation of address space, not Go memory
	freed  bool // guarded by a.mu
}

// Reallocate grows the memory to size bytes. A reservation is resliced; a
// Go slice reserves a quarter more capacity (within the limit) so that a
// guest growing page by page does not copy its whole memory each time.
func (m *linearMemory) Reallocate(size uint64) []byte {
	if size > m.a.limit || (m.mapped && size > uint64(cap(m.buf))) {
		m.a.refused.Store(true)
		return nil
	}
	switch {
	case m.mapped || size <= uint64(cap(m.buf)):
		m.buf = m.buf[:size]
	default:
		nb := make([]byte, size, min(size+size/4, m.a.limit))
		copy(nb, m.buf)
		m.buf = nb
	}
	m.a.size.Store(size)
	return m.buf
}

// Free releases the memory, or marks it for release when the running call
// returns.
func (m *linearMemory) Free() {
	m.a.mu.Lock()
	defer m.a.mu.Unlock()
	m.freed = true
	m.a.size.Store(0)
	if m.a.active == 0 {
		m.release()
	}
}

func (m *linearMemory) release() {
	if m.mapped && m.buf != nil {
		_ = unreserve(m.buf[:cap(m.buf)])
	}
	m.buf = nil
}
