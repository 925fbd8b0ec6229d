// Package gate decides, before wazero compiles a plugin, whether its module
// stays within the host's limits, and rewrites it so that the host can stop
// it cheaply.
//
// Parse decodes the whole module, every function body included, and refuses
// anything beyond Limits with an error naming the item, its size and the
// limit. Instrument then adds, at each loop header, non-leaf function entry
// and bulk memory or table operation, a counter that calls the host's check
// function every so much work (for the deadline) and a call-stack budget
// (for recursion). That replaces wazero's WithCloseOnContextDone, which leaves
// native code for Go at every loop iteration.
package gate

import (
	"errors"
	"fmt"
)

// Limits bound what a module may declare. Zero fields take the value of
// DefaultLimits.
type Limits struct {
	ModuleBytes       int    // the whole file
	Types             int    // function types
	Imports           int    // imports (all must be functions)
	Functions         int    // imported and defined
	FunctionBodyBytes int    // one function body
	CodeBytes         int    // all function bodies
	Locals            int    // per function, parameters included
	BlockDepth        int    // nesting of block, loop and if in a body
	Labels            int    // block, loop and if instructions and br_table entries in a body
	Globals           int    // defined globals
	Tables            int    // defined tables
	TableElements     uint32 // initial size of a table; the maximum is lowered to it
	MemoryBytes       uint64 // initial linear memory
	Exports           int
	ElementSegments   int
	ElementEntries    int // all element segments together
	DataSegments      int
	DataBytes         int // all data segments together
	CustomSections    int
	CustomBytes       int // all custom sections together, names included
	NameBytes         int // one import, export or custom section name
}

// DefaultLimits are the limits of a host that sets none. A first-party Go
// plugin (~4.5 MB) uses about a tenth of each: 3,000 functions, 3 MB of
// code, 48,000 data segments, a 7,000-element table; a quarter of Labels
// (2,100 in its largest function). Labels bounds the time and memory
// wazero takes to compile one function, which grow faster than linearly
// with them: at 8,192, about 1 s and 65 MB for ifs, 10 s and 180 MB for
// loops, where 100,000 ifs took over 2 minutes.
func DefaultLimits() Limits {
	return Limits{
		ModuleBytes:       32 << 20,
		Types:             10_000,
		Imports:           1_000,
		Functions:         50_000,
		FunctionBodyBytes: 1 << 20,
		CodeBytes:         24 << 20,
		Locals:            10_000,
		BlockDepth:        10_000,
		Labels:            8_192,
		Globals:           1_000,
		Tables:            4,
		TableElements:     100_000,
		MemoryBytes:       128 << 20,
		Exports:           1_000,
		ElementSegments:   10_000,
		ElementEntries:    200_000,
		DataSegments:      200_000,
		DataBytes:         24 << 20,
		CustomSections:    64,
		CustomBytes:       8 << 20,
		NameBytes:         1_024,
	}
}

// withDefaults fills zero fields from DefaultLimits.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	set := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&l.ModuleBytes, d.ModuleBytes)
	set(&l.Types, d.Types)
	set(&l.Imports, d.Imports)
	set(&l.Functions, d.Functions)
	set(&l.FunctionBodyBytes, d.FunctionBodyBytes)
	set(&l.CodeBytes, d.CodeBytes)
	set(&l.Locals, d.Locals)
	set(&l.BlockDepth, d.BlockDepth)
	set(&l.Labels, d.Labels)
	set(&l.Globals, d.Globals)
	set(&l.Tables, d.Tables)
	set(&l.Exports, d.Exports)
	set(&l.ElementSegments, d.ElementSegments)
	set(&l.ElementEntries, d.ElementEntries)
	set(&l.DataSegments, d.DataSegments)
	set(&l.DataBytes, d.DataBytes)
	set(&l.CustomSections, d.CustomSections)
	set(&l.CustomBytes, d.CustomBytes)
	set(&l.NameBytes, d.NameBytes)
	if l.TableElements == 0 {
		l.TableElements = d.TableElements
	}
	if l.MemoryBytes == 0 {
		l.MemoryBytes = d.MemoryBytes
	}
	return l
}

// ErrLimit is wrapped by every error that reports a limit exceeded.
var ErrLimit = errors.New("over the limit")

// ErrMalformed is wrapped by every error about a module that does not
// decode, or uses an instruction or feature the host does not run.
var ErrMalformed = errors.New("malformed or unsupported module")

// LimitError names what exceeded which limit.
type LimitError struct {
	Item  string // e.g. "function 12 body", "table 0 initial size"
	Size  uint64
	Limit uint64
	Unit  string // "bytes", "elements", ...
	Key   string // the limit's configuration key below limits., e.g. "module.function_body_bytes"
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("%s: %d %s, limit %d (limits.%s)", e.Item, e.Size, e.Unit, e.Limit, e.Key)
}

// Unwrap makes errors.Is(err, ErrLimit) hold.
func (e *LimitError) Unwrap() error { return ErrLimit }

func over(item string, size, limit uint64, unit, key string) error {
	if key != "memory_mib" {
		key = "module." + key
	}
	return &LimitError{Item: item, Size: size, Limit: limit, Unit: unit, Key: key}
}

type malformed struct{ msg string }

func (e *malformed) Error() string { return e.msg }
func (e *malformed) Unwrap() error { return ErrMalformed }

func malformedf(format string, args ...any) error {
	return &malformed{msg: fmt.Sprintf(format, args...)}
}
