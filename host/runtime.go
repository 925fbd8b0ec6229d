// Package host runs connhost plugins: sandboxed WebAssembly modules that
// follow ABI v1 (abi/SPEC.md), on wazero. A Runtime loads plugins, a Plugin
// is a validated compiled module, and an Instance is a connector instance of
// a plugin: its parameters, host services, egress allow-list and limits,
// backed by a pool of warm module instances.
package host

import (
	"time"

	"github.com/rs/zerolog"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host/internal/gate"
)

// Config configures a Runtime.
type Config struct {
	// CacheDir is the wazero compilation cache directory; "" disables the
	// disk cache. It must not be the plugins directory: entries are
	// per-plugin subdirectories named by the plugin's SHA-256.
	CacheDir string
	// Logger receives guest logs and stdout/stderr, tagged with instance,
	// plugin and command. Parameters and HTTP headers/bodies are never logged.
	Logger zerolog.Logger
	// Limits bound loading a plugin: its initial memory must fit
	// MemoryBytes, and every guest entry during load (_initialize, the start
	// function, connhost_abi_version) runs under CallTimeout. Zero fields
	// take the defaults of Limits.
	Limits Limits
	// Module bounds what a plugin module may declare; zero fields take
	// gate defaults (DefaultModuleLimits). Its MemoryBytes is ignored:
	// Limits.MemoryBytes applies.
	Module ModuleLimits
	// StackBytes is the call-stack budget of a guest call: the estimated
	// native stack of its nested frames. Past it the call fails with kind
	// trap. Default DefaultStackBytes.
	StackBytes uint32
	// CompileTimeout bounds the compilation of one plugin; default
	// DefaultCompileTimeout. At most CompileConcurrency plugins compile at
	// once; an abandoned compilation holds its slot until it stops, after
	// the function it is compiling.
	CompileTimeout time.Duration
	// Resolver resolves the host names plugins request; nil means
	// net.DefaultResolver.
	Resolver Resolver
	// AllowPrivateEgress lets allowed host names resolve to private
	// addresses (RFC 1918, 100.64.0.0/10, fc00::/7). Loopback, link-local,
	// unspecified and other special addresses stay refused unless an
	// allow-list names the address itself.
	AllowPrivateEgress bool
}

// ModuleLimits bound what a plugin module may declare (see the load-time
// gate in abi/SPEC.md §8).
type ModuleLimits = gate.Limits

// DefaultModuleLimits returns the module limits of a Config that sets none.
func DefaultModuleLimits() ModuleLimits { return gate.DefaultLimits() }

// Defaults of Config.
const (
	DefaultStackBytes     = 1 << 20
	DefaultCompileTimeout = 2 * time.Minute
	// CompileConcurrency is how many plugins compile at once: a cold
	// compile of a Go guest takes seconds of one core and ~100 MB.
	CompileConcurrency = 2
)

// Limits bounds what one connector instance may use. Zero values mean the
// documented default.
type Limits struct {
	MemoryBytes   uint64        // default 128 MiB; per module instance
	CallTimeout   time.Duration // default 30s
	OutputBytes   int           // default 4 MiB; output envelope and each RPC request
	LogBytes      int           // default 64 KiB per call (guest log + stdout/stderr), then truncated with a marker
	HTTPBodyBytes int           // default 8 MiB, http_request response body cap
	PoolSize      int           // max warm module instances per Instance; default 4
	// PoolIdle closes each warm module instance that has waited this long
	// for a call, so a pool nobody calls shrinks to zero and costs almost
	// nothing; the next call instantiates one again. 0 keeps them forever
	// (the zero value: this is not defaulted).
	PoolIdle time.Duration

	// LogRecords bounds the log records of one call: log host function
	// calls and stdout/stderr lines, empty ones included. Default 1,000.
	// Records over it, or over LogBytes, are dropped and counted, and the
	// call ends with one line saying how many. A long-running execution
	// never ends, so it is bounded by the per-minute budgets alone.
	LogRecords int
	// LogRecordsPerMinute and LogBytesPerMinute bound the log records and
	// bytes of the whole Instance (all its module instances and calls) per
	// one-minute window. Defaults 10,000 records and 1 MiB. What goes over
	// is dropped and counted, with one line per window.
	LogRecordsPerMinute int
	LogBytesPerMinute   int
}

// Default limits, applied to zero fields of Limits.
const (
	DefaultMemoryBytes   = 128 << 20
	DefaultCallTimeout   = 30 * time.Second
	DefaultOutputBytes   = 4 << 20
	DefaultLogBytes      = 64 << 10
	DefaultHTTPBodyBytes = 8 << 20
	DefaultPoolSize      = 4

	DefaultLogRecords          = 1000
	DefaultLogRecordsPerMinute = 10000
	DefaultLogBytesPerMinute   = 1 << 20
)

// withDefaults returns l with zero fields set to their defaults.
func (l Limits) withDefaults() Limits {
	if l.MemoryBytes == 0 {
		l.MemoryBytes = DefaultMemoryBytes
	}
	if l.CallTimeout <= 0 {
		l.CallTimeout = DefaultCallTimeout
	}
	if l.OutputBytes <= 0 {
		l.OutputBytes = DefaultOutputBytes
	}
	if l.LogBytes <= 0 {
		l.LogBytes = DefaultLogBytes
	}
	if l.HTTPBodyBytes <= 0 {
		l.HTTPBodyBytes = DefaultHTTPBodyBytes
	}
	if l.PoolSize <= 0 {
		l.PoolSize = DefaultPoolSize
	}
	if l.LogRecords <= 0 {
		l.LogRecords = DefaultLogRecords
	}
	if l.LogRecordsPerMinute <= 0 {
		l.LogRecordsPerMinute = DefaultLogRecordsPerMinute
	}
	if l.LogBytesPerMinute <= 0 {
		l.LogBytesPerMinute = DefaultLogBytesPerMinute
	}
	return l
}

// InstanceSpec describes a connector instance to run.
type InstanceSpec struct {
	Info     abi.InstanceInfo
	Params   map[string]any // already validated by the caller (Manifest.ValidateParams)
	Services Services       // host functions act on this
	// Egress narrows the allow-list of http_request, derived from the
	// manifest's egress ("param:NAME" resolved to the host and port of the
	// URL in Params[NAME]): entries "host", "host:port" or "*.domain", of
	// which only what the manifest also allows counts (NarrowEgress). nil
	// keeps the manifest's list.
	Egress []string
	Limits Limits
}

// InstanceStats counts an Instance's module instances.
type InstanceStats struct {
	Idle      int // warm, waiting for a call
	Busy      int // serving a call
	Created   int // instantiated since the Instance was created
	Discarded int // closed after a fault, a failed configure, Close or idling
	// Reaped counts the module instances closed because they waited
	// Limits.PoolIdle for a call (part of Discarded).
	Reaped int
}
