package host

import (
	"time"

	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/rs/zerolog"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/abi/jsonwire"
	"github.com/connhost/connhost/host/internal/memlimit"
)

const wasmPageSize = 65536

// modInst is one wazero module instance of a plugin. It is used by one call
// at a time.
type modInst struct {
	mod                                api.Module
	alloc                              *memlimit.Allocator
	fnABI, fnConfigure, fnCall, fnHTTP api.Function
	// staged is the staged buffer (SPEC §2), replaced by each export call
	// and RPC host function.
	staged []byte
	// callBuf backs the staged command and arguments, reused across calls.
	callBuf []byte
	stack   [2]uint64
	// idleSince is when the module instance last went back to the pool.
	idleSince time.Time
}

// memoryBytes returns the size of the instance's linear memory.
func (mi *modInst) memoryBytes() uint64 { return mi.alloc.Size() }

// callKey is the context key under which host functions find their call.
type callKey struct{}

// callState is the per-call state host functions act on. It reaches them
// through the context.Context of the export call.
type callState struct {
	inst    *Instance // nil while Load probes the module
	mi      *modInst
	lim     Limits
	command string
	log     zerolog.Logger // tagged with instance and plugin

	output      []byte
	outputCalls int
	// fault is a host-detected failure that fails the call whatever the
	// guest does next (output_limit, abi_violation).
	fault *abi.Error

	tally     logTally  // log records and bytes, logged and dropped
	lines     [3][]byte // partial stdout (1) and stderr (2) lines
	panicLine string
	// stderrMidLine and panicBuf find panicLine once the log is muted.
	stderrMidLine bool
	panicBuf      []byte

	fetch         bool
	lastRun       map[string]any
	lastRunStaged bool
}

func callFrom(ctx context.Context) *callState {
	cs, _ := ctx.Value(callKey{}).(*callState)
	return cs
}

// violate records an ABI violation and traps the guest: wazero recovers the
// panic of a host function and returns it as the error of the export call.
func (cs *callState) violate(format string, args ...any) {
	cs.fault = abi.Errorf(abi.KindABIViolation, format, args...)
	panic(cs.fault)
}

// setFault records the first host-detected failure of the call.
func (cs *callState) setFault(e *abi.Error) {
	if cs.fault == nil {
		cs.fault = e
	}
}

// instantiate creates a module instance of p, runs _initialize and checks
// connhost_abi_version. cs becomes its current call.
func (p *Plugin) instantiate(ctx context.Context, cs *callState) (*modInst, *abi.Error) {
	if need := uint64(p.minPages) * wasmPageSize; need > cs.lim.MemoryBytes {
		return nil, abi.Errorf(abi.KindMemoryLimit, "instantiate: module needs %d bytes of initial memory, limit is %d", need, cs.lim.MemoryBytes)
	}
	mi := &modInst{alloc: memlimit.New(cs.lim.MemoryBytes)}
	cs.mi = mi
	// Clocks, randomness and stdout/stderr are the host's own WASI functions
	// (wasi.go), which reach the call through the context.
	cfg := wazero.NewModuleConfig().WithName("").WithStartFunctions()
	ictx := experimental.WithMemoryAllocator(context.WithValue(ctx, callKey{}, cs), mi.alloc)
	mi.alloc.Enter()
	defer mi.alloc.Exit()
	mod, err := p.wr.InstantiateModule(ictx, p.compiled, cfg)
	if err != nil {
		return nil, cs.classify(ctx, "instantiate", err)
	}
	mi.mod = mod
	mi.fnABI = mod.ExportedFunction(abi.ExportABIVersion)
	mi.fnConfigure = mod.ExportedFunction(abi.ExportConfigure)
	mi.fnCall = mod.ExportedFunction(abi.ExportCall)
	mi.fnHTTP = mod.ExportedFunction(abi.ExportHTTP)
	fail := func(e *abi.Error) (*modInst, *abi.Error) {
		_ = mod.Close(ctx)
		return nil, e
	}
	if p.hasInit {
		if err := mod.ExportedFunction(abi.ExportInitialize).CallWithStack(ictx, mi.stack[:]); err != nil {
			return fail(cs.classify(ctx, abi.ExportInitialize, err))
		}
	}
	if err := mi.fnABI.CallWithStack(ictx, mi.stack[:]); err != nil {
		return fail(cs.classify(ctx, abi.ExportABIVersion, err))
	}
	if v := int32(mi.stack[0]); v != abi.Version {
		return fail(abi.Errorf(abi.KindIncompatible, "%s returned %d, this host serves ABI version %d", abi.ExportABIVersion, v, abi.Version))
	}
	return mi, nil
}

// invoke calls an export of mi with the staged buffer already set and
// decodes the envelope it outputs. discard reports a host-detected fault
// after which the module instance must not be reused.
func (cs *callState) invoke(ctx context.Context, fn api.Function, export string, params ...uint64) (res json.RawMessage, e *abi.Error, discard bool) {
	mi := cs.mi
	cs.output, cs.outputCalls, cs.fault = nil, 0, nil
	copy(mi.stack[:], params)
	mi.alloc.Enter()
	err := fn.CallWithStack(context.WithValue(ctx, callKey{}, cs), mi.stack[:])
	mi.alloc.Exit()
	if err == nil && ctx.Err() != nil {
		// The deadline passed while the guest was in a host function (sleep,
		// http_request) and it returned before wazero closed the module: the
		// call is still late, and the module may be closing under it.
		err = ctx.Err()
	}
	if err != nil {
		return nil, cs.classify(ctx, export, err), true
	}
	if ret := uint32(mi.stack[0]); ret != abi.StatusOK {
		return nil, abi.Errorf(abi.KindABIViolation, "%s returned %d, want 0", export, ret), true
	}
	if cs.fault != nil {
		return nil, cs.fault, true
	}
	if cs.outputCalls == 0 {
		return nil, abi.Errorf(abi.KindABIViolation, "%s returned without calling output", export), true
	}
	env, err := decodeEnvelope(cs.output)
	if err != nil {
		return nil, abi.Errorf(abi.KindABIViolation, "%s: %v", export, err), true
	}
	if env.Error != nil {
		return nil, abi.NormalizeGuest(env.Error), false
	}
	return env.Result, nil, false
}

// classify turns the error of an export call into the typed fault.
func (cs *callState) classify(ctx context.Context, export string, err error) *abi.Error {
	if cs.fault != nil {
		return cs.fault
	}
	detail := ""
	if cs.panicLine != "" {
		detail = ": " + cs.panicLine
	}
	if cs.mi != nil && cs.mi.alloc.Refused() {
		return abi.Errorf(abi.KindMemoryLimit, "%s: linear memory limit of %d bytes exceeded%s", export, cs.lim.MemoryBytes, detail)
	}
	var ee *sys.ExitError
	if errors.As(err, &ee) {
		switch ee.ExitCode() {
		case sys.ExitCodeDeadlineExceeded:
			return cs.timeout(export)
		case sys.ExitCodeContextCanceled:
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return cs.timeout(export)
			}
			return abi.Errorf(abi.KindCanceled, "%s: call canceled", export)
		}
		return abi.Errorf(abi.KindTrap, "%s: guest exited with code %d%s", export, ee.ExitCode(), detail)
	}
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return cs.timeout(export)
	case errors.Is(ctx.Err(), context.Canceled):
		return abi.Errorf(abi.KindCanceled, "%s: call canceled", export)
	}
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	return abi.Errorf(abi.KindTrap, "%s: %s%s", export, msg, detail)
}

func (cs *callState) timeout(export string) *abi.Error {
	return abi.Errorf(abi.KindTimeout, "%s: deadline exceeded (call timeout %s)", export, cs.lim.CallTimeout)
}

const resultPrefix = `{"result":`

// decodeEnvelope decodes an envelope, with a fast path for the common
// compact success shape {"result":X}: X valid JSON means exactly one member.
// Anything else goes through the strict abi.DecodeEnvelope.
func decodeEnvelope(b []byte) (abi.Envelope, error) {
	if len(b) > len(resultPrefix)+1 && string(b[:len(resultPrefix)]) == resultPrefix && b[len(b)-1] == '}' {
		if v := b[len(resultPrefix) : len(b)-1]; jsonwire.Valid(v) {
			return abi.Envelope{Result: v}, nil
		}
	}
	return abi.DecodeEnvelope(b)
}
