package host

import (
	"context"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host/internal/gate"
)

// The check function the gate's instrumentation calls. Plugins cannot
// import from this module themselves: the gate admits only connhost_v1 and
// WASI imports.
const (
	guardModule = "connhost_guard"
	guardName   = "check"
)

func instantiateGuard(ctx context.Context, wr wazero.Runtime, stackBytes uint32) error {
	_, err := wr.NewHostModuleBuilder(guardModule).NewFunctionBuilder().
		WithGoModuleFunction(guardCheck(stackBytes), []api.ValueType{api.ValueTypeI32}, nil).
		Export(guardName).Instantiate(ctx)
	return err
}

// guardCheck returns the check function. It runs every so much guest work,
// and when a call exceeds its stack budget. It stops the guest by
// panicking: wazero unwinds the call and returns the panic as its error,
// which classify turns into the fault.
// Calling into Go here is also what lets the Go scheduler preempt the
// goroutine running the guest.
func guardCheck(stackBytes uint32) api.GoModuleFunc {
	return func(ctx context.Context, _ api.Module, stack []uint64) {
		if uint32(stack[0]) == gate.CheckStack {
			e := abi.Errorf(abi.KindTrap, "call stack limit of %d bytes exceeded (limits.stack_kib): runaway recursion", stackBytes)
			if cs := callFrom(ctx); cs != nil {
				cs.setFault(e)
			}
			panic(e)
		}
		if err := ctx.Err(); err != nil {
			panic(err)
		}
		// The deadline itself, not only ctx.Err: a context learns of its
		// deadline from a timer goroutine, which guests spinning on every P
		// keep waiting for a turn (tens, at times hundreds, of
		// milliseconds). classify reports this exit code as a timeout.
		if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
			panic(sys.NewExitError(sys.ExitCodeDeadlineExceeded))
		}
	}
}
