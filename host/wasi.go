package host

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"math"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/connhost/connhost/abi"
)

// The host serves wazero's WASI functions except those that could loop,
// block or forge a host fault, which it replaces with its own (SPEC §1):
// each bounds its work per call, checks every guest pointer, and ends the
// call from inside the function once the call's deadline has passed.

// WASI errno values (wasi_snapshot_preview1, type errno).
const (
	errnoSuccess = 0
	errnoBadf    = 8
	errnoFault   = 21
	errnoInval   = 28
	errnoNotsup  = 58
	errnoSpipe   = 70
)

// Per-call bounds of the WASI functions below.
const (
	maxIovecs        = 1024    // fd_write and fd_read, as Linux's IOV_MAX; EINVAL beyond
	maxWriteBytes    = 1 << 20 // fd_write; beyond it the write is short
	maxRandomBytes   = 1 << 20 // random_get; EINVAL beyond
	maxSubscriptions = 1024    // poll_oneoff; EINVAL beyond
)

var le = binary.LittleEndian

// instantiateWASI instantiates wasi_snapshot_preview1 in wr: wazero's
// functions, with the host's own in place of fd_write, fd_read, fd_pwrite,
// fd_pread, poll_oneoff, random_get and proc_exit, and of the clocks, which
// must agree with poll_oneoff's absolute timeouts.
func instantiateWASI(ctx context.Context, wr wazero.Runtime) error {
	b := wr.NewHostModuleBuilder(wasi_snapshot_preview1.ModuleName)
	wasi_snapshot_preview1.NewFunctionExporter().ExportFunctions(b)
	// Exporting a name again replaces wazero's function of that name.
	fn := func(name string, f api.GoModuleFunc, params ...api.ValueType) {
		b.NewFunctionBuilder().WithName(name).WithGoModuleFunction(f, params, []api.ValueType{i32}).Export(name)
	}
	fn("fd_write", wasiFdWrite, i32, i32, i32, i32)
	fn("fd_read", wasiFdRead, i32, i32, i32, i32)
	fn("fd_pwrite", wasiFdPositioned, i32, i32, i32, i64, i32)
	fn("fd_pread", wasiFdPositioned, i32, i32, i32, i64, i32)
	fn("poll_oneoff", wasiPollOneoff, i32, i32, i32, i32)
	fn("random_get", wasiRandomGet, i32, i32)
	fn("clock_time_get", wasiClockTimeGet, i32, i64, i32)
	fn("clock_res_get", wasiClockResGet, i32, i32)
	b.NewFunctionBuilder().WithName("proc_exit").
		WithGoModuleFunction(api.GoModuleFunc(wasiProcExit), []api.ValueType{i32}, nil).Export("proc_exit")
	_, err := b.Instantiate(ctx)
	return err
}

// checkDone ends the export call from inside a host function once the
// call's context is done: the call has failed (timeout or canceled, which
// classify reads from the context) and the guest must not run on.
func checkDone(ctx context.Context) {
	if err := ctx.Err(); err != nil {
		panic(err)
	}
}

// sleepFor sleeps d. It returns true after d and false on a stop request
// (stop may be nil). When the call's context ends first it ends the call; a
// d past the call's deadline waits for the deadline alone.
func sleepFor(ctx context.Context, stop <-chan struct{}, d time.Duration) bool {
	var fired <-chan time.Time
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > d {
		t := time.NewTimer(d)
		defer t.Stop()
		fired = t.C
	}
	select {
	case <-fired:
		return true
	case <-stop:
		return false
	case <-ctx.Done():
		panic(ctx.Err())
	}
}

// iovecs reads and bounds-checks n iovecs at ptr. ok false means EFAULT.
func iovecs(mem api.Memory, ptr, n uint32) (vec []byte, ok bool) {
	vec, ok = mem.Read(ptr, n*8)
	for i := uint32(0); ok && i < n; i++ {
		_, ok = mem.Read(le.Uint32(vec[i*8:]), le.Uint32(vec[i*8+4:]))
	}
	return vec, ok
}

// wasiFdWrite is fd_write. Stdout and stderr go to the call's log, under
// its budget; no other fd is writable. It takes at most maxIovecs iovecs
// and maxWriteBytes bytes per call (a short write: callers write the rest,
// as they must anyway). Past the budget, bytes are counted, not scanned, so
// iovecs repeating one buffer cost nothing.
func wasiFdWrite(ctx context.Context, mod api.Module, stack []uint64) {
	cs := mustCall(ctx, "fd_write")
	checkDone(ctx)
	fd, iovs, n, result := uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint32(stack[3])
	mem := mod.Memory()
	switch {
	case fd != 1 && fd != 2:
		stack[0] = errnoBadf
		return
	case n > maxIovecs:
		stack[0] = errnoInval
		return
	}
	vec, ok := iovecs(mem, iovs, n)
	if _, ok2 := mem.Read(result, 4); !ok || !ok2 {
		stack[0] = errnoFault
		return
	}
	now := time.Now()
	var written uint32
	for i := uint32(0); i < n && written < maxWriteBytes; i++ {
		b, _ := mem.Read(le.Uint32(vec[i*8:]), le.Uint32(vec[i*8+4:]))
		b = b[:min(uint32(len(b)), maxWriteBytes-written)]
		cs.writeStream(now, int(fd), b)
		written += uint32(len(b))
	}
	mem.WriteUint32Le(result, written)
	stack[0] = errnoSuccess
}

// wasiFdRead is fd_read: stdin is empty, every read of it is end of file;
// no other fd is readable.
func wasiFdRead(ctx context.Context, mod api.Module, stack []uint64) {
	checkDone(ctx)
	fd, iovs, n, result := uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint32(stack[3])
	mem := mod.Memory()
	switch {
	case fd != 0:
		stack[0] = errnoBadf
	case n > maxIovecs:
		stack[0] = errnoInval
	default:
		_, ok := iovecs(mem, iovs, n)
		if !ok || !mem.WriteUint32Le(result, 0) {
			stack[0] = errnoFault
			return
		}
		stack[0] = errnoSuccess
	}
}

// wasiFdPositioned is fd_pwrite and fd_pread: stdin, stdout and stderr are
// streams (ESPIPE) and there is no other fd. wazero's would walk every iovec
// of a stream before failing.
func wasiFdPositioned(ctx context.Context, _ api.Module, stack []uint64) {
	checkDone(ctx)
	if fd := uint32(stack[0]); fd <= 2 {
		stack[0] = errnoSpipe
		return
	}
	stack[0] = errnoBadf
}

// WASI event and clock constants.
const (
	eventClock   = 0
	eventFdRead  = 1
	eventFdWrite = 2

	clockRealtime  = 0
	clockMonotonic = 1

	subscriptionSize = 48
	eventSize        = 32
)

// pollEvent is a subscription that poll_oneoff may report as an event.
type pollEvent struct {
	userdata uint64
	typ      byte
	errno    uint16
	after    time.Duration // a clock's time from the start of the call; 0 for fds
}

// wasiPollOneoff is poll_oneoff. Clock subscriptions, relative or absolute
// on the realtime or monotonic clock, sleep for real, interrupted only by
// the end of the call: a sleep past the call's deadline ends the call at
// the deadline (timeout). There are no fds to wait on: fd_read and
// fd_write subscriptions are answered at once with an event carrying
// ENOTSUP (stdin, stdout, stderr) or EBADF. At most maxSubscriptions.
func wasiPollOneoff(ctx context.Context, mod api.Module, stack []uint64) {
	checkDone(ctx)
	in, out, n, nevents := uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint32(stack[3])
	mem := mod.Memory()
	if n == 0 || n > maxSubscriptions {
		stack[0] = errnoInval
		return
	}
	subs, ok1 := mem.Read(in, n*subscriptionSize)
	evs, ok2 := mem.Read(out, n*eventSize)
	if _, ok3 := mem.Read(nevents, 4); !ok1 || !ok2 || !ok3 {
		stack[0] = errnoFault
		return
	}
	start := time.Now()
	// Subscriptions are read in full before any event is written: in and
	// out may overlap.
	events := make([]pollEvent, 0, n)
	ready := false // an event is ready now: no sleep
	wait := time.Duration(math.MaxInt64)
	for i := range n {
		s := subs[i*subscriptionSize : (i+1)*subscriptionSize]
		e := pollEvent{userdata: le.Uint64(s[0:]), typ: s[8]}
		switch e.typ {
		case eventClock:
			flags := le.Uint16(s[40:])
			if flags > 1 { // subscription_clock_abstime is the only flag
				stack[0] = errnoInval
				return
			}
			e.after, e.errno = clockWait(start, le.Uint32(s[16:]), le.Uint64(s[24:]), flags == 1)
			ready = ready || e.errno != 0 // a clock in error is reported at once
			wait = min(wait, e.after)
		case eventFdRead, eventFdWrite:
			e.errno = errnoBadf
			if le.Uint32(s[16:]) <= 2 {
				e.errno = errnoNotsup
			}
			ready = true
		default:
			stack[0] = errnoInval
			return
		}
		events = append(events, e)
	}
	if !ready && wait > 0 {
		sleepFor(ctx, nil, wait)
	}
	elapsed := time.Since(start)
	clear(evs)
	k := uint32(0)
	for _, e := range events {
		if e.typ == eventClock && e.errno == 0 && e.after > elapsed {
			continue
		}
		ev := evs[k*eventSize:]
		le.PutUint64(ev[0:], e.userdata)
		le.PutUint16(ev[8:], e.errno)
		ev[10] = e.typ
		k++
	}
	mem.WriteUint32Le(nevents, k)
	stack[0] = errnoSuccess
}

// clockWait returns how long after start a clock subscription fires:
// timeout nanoseconds later, or at timeout on clock id when abs.
func clockWait(start time.Time, id uint32, timeout uint64, abs bool) (time.Duration, uint16) {
	ns := int64(min(timeout, math.MaxInt64))
	switch {
	case !abs:
		return time.Duration(ns), 0
	case id == clockRealtime:
		return max(time.Duration(ns-start.UnixNano()), 0), 0
	case id == clockMonotonic:
		return max(time.Duration(ns)-monotonic(start), 0), 0
	}
	return 0, errnoInval
}

// monoEpoch is the zero of the monotonic clock guests see.
var monoEpoch = time.Now()

func monotonic(t time.Time) time.Duration { return t.Sub(monoEpoch) }

// wasiClockTimeGet is clock_time_get on the realtime and monotonic clocks
// (EINVAL for the CPU-time ones, as wazero).
func wasiClockTimeGet(_ context.Context, mod api.Module, stack []uint64) {
	id, result := uint32(stack[0]), uint32(stack[2])
	now := time.Now()
	var t int64
	switch id {
	case clockRealtime:
		t = now.UnixNano()
	case clockMonotonic:
		t = int64(monotonic(now))
	default:
		stack[0] = errnoInval
		return
	}
	if !mod.Memory().WriteUint64Le(result, uint64(t)) {
		stack[0] = errnoFault
		return
	}
	stack[0] = errnoSuccess
}

// wasiClockResGet is clock_res_get: both clocks count nanoseconds.
func wasiClockResGet(_ context.Context, mod api.Module, stack []uint64) {
	id, result := uint32(stack[0]), uint32(stack[1])
	switch {
	case id != clockRealtime && id != clockMonotonic:
		stack[0] = errnoInval
	case !mod.Memory().WriteUint64Le(result, 1):
		stack[0] = errnoFault
	default:
		stack[0] = errnoSuccess
	}
}

// wasiRandomGet is random_get from crypto/rand, at most maxRandomBytes per
// call (EINVAL beyond): filling a whole linear memory in one call would
// hold the host function past the call's deadline.
func wasiRandomGet(ctx context.Context, mod api.Module, stack []uint64) {
	checkDone(ctx)
	ptr, n := uint32(stack[0]), uint32(stack[1])
	if n > maxRandomBytes {
		stack[0] = errnoInval
		return
	}
	b, ok := mod.Memory().Read(ptr, n)
	if !ok {
		stack[0] = errnoFault
		return
	}
	_, _ = rand.Read(b) // crypto/rand never returns an error
	stack[0] = errnoSuccess
}

// wasiProcExit is proc_exit: the guest ends its module instance. The call
// fails with kind trap naming the code, whatever the code: wazero's codes
// for a deadline or a cancellation (sys.ExitCodeDeadlineExceeded,
// sys.ExitCodeContextCanceled) must not pass for the host's timeout or
// canceled. A Go guest's panic calls proc_exit(2) after printing it to
// stderr, so the error names the panic line too.
func wasiProcExit(ctx context.Context, mod api.Module, stack []uint64) {
	code := uint32(stack[0])
	checkDone(ctx)
	if cs := callFrom(ctx); cs != nil {
		detail := ""
		if cs.panicLine != "" {
			detail = ": " + cs.panicLine
		}
		cs.setFault(abi.Errorf(abi.KindTrap, "guest called proc_exit(%d)%s", code, detail))
	}
	// As wazero's: other callers of the module see the exit code, and
	// nothing of the guest runs after this function.
	_ = mod.CloseWithExitCode(ctx, code)
	panic(sys.NewExitError(code))
}
