package host

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"time"

	"github.com/rs/zerolog"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/connhost/connhost/abi"
)

var (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

// instantiateHostModule instantiates connhost_v1 in wr. Host functions find
// their call through the context (callFrom).
func instantiateHostModule(ctx context.Context, wr wazero.Runtime) error {
	b := wr.NewHostModuleBuilder(abi.ImportModule)
	fn := func(name string, f api.GoModuleFunc, params, results []api.ValueType) {
		b.NewFunctionBuilder().WithGoModuleFunction(f, params, results).Export(name)
	}
	fn(abi.ImportBufferRead, hostBufferRead, []api.ValueType{i32, i32}, []api.ValueType{i32})
	fn(abi.ImportOutput, hostOutput, []api.ValueType{i32, i32}, []api.ValueType{i32})
	fn(abi.ImportLog, hostLog, []api.ValueType{i32, i32, i32}, nil)
	fn(abi.ImportSleep, hostSleep, []api.ValueType{i64}, []api.ValueType{i32})
	fn(abi.ImportShouldStop, hostShouldStop, nil, []api.ValueType{i32})
	for _, name := range abi.RPCImports {
		h, ok := rpcHandlers[name]
		if !ok {
			return errors.New("no handler for RPC host function " + name)
		}
		fn(name, rpc(name, h), []api.ValueType{i32, i32}, []api.ValueType{i32})
	}
	_, err := b.Instantiate(ctx)
	return err
}

// mustCall returns the call a host function serves. A guest entering a host
// function outside an export call (e.g. from a start function) breaks the ABI.
func mustCall(ctx context.Context, name string) *callState {
	cs := callFrom(ctx)
	if cs == nil {
		panic(abi.Errorf(abi.KindABIViolation, "%s called outside an export call", name))
	}
	return cs
}

func hostBufferRead(ctx context.Context, mod api.Module, stack []uint64) {
	cs := mustCall(ctx, abi.ImportBufferRead)
	ptr, n := uint32(stack[0]), uint32(stack[1])
	staged := cs.mi.staged
	n = min(n, uint32(len(staged)))
	if !mod.Memory().Write(ptr, staged[:n]) {
		cs.violate("%s(%d, %d): out of bounds of guest memory (%d bytes)", abi.ImportBufferRead, ptr, n, mod.Memory().Size())
	}
	stack[0] = uint64(n)
}

func hostOutput(ctx context.Context, mod api.Module, stack []uint64) {
	cs := mustCall(ctx, abi.ImportOutput)
	ptr, n := uint32(stack[0]), uint32(stack[1])
	cs.outputCalls++
	if cs.outputCalls > 1 {
		cs.setFault(abi.Errorf(abi.KindABIViolation, "%s called more than once", abi.ImportOutput))
		stack[0] = abi.OutputOK
		return
	}
	if uint64(n) > uint64(cs.lim.OutputBytes) {
		cs.setFault(abi.Errorf(abi.KindOutputLimit, "output of %d bytes exceeds the limit of %d", n, cs.lim.OutputBytes))
		stack[0] = abi.OutputTooLong
		return
	}
	b, ok := mod.Memory().Read(ptr, n)
	if !ok {
		cs.violate("%s(%d, %d): out of bounds of guest memory (%d bytes)", abi.ImportOutput, ptr, n, mod.Memory().Size())
	}
	cs.output = append(cs.output[:0], b...)
	stack[0] = abi.OutputOK
}

var logLevels = [...]zerolog.Level{abi.LogDebug: zerolog.DebugLevel, abi.LogInfo: zerolog.InfoLevel, abi.LogWarn: zerolog.WarnLevel, abi.LogError: zerolog.ErrorLevel}

// hostLog logs one record. Empty messages count as records: a guest looping
// on them meets the log budget like any other.
func hostLog(ctx context.Context, mod api.Module, stack []uint64) {
	cs := mustCall(ctx, abi.ImportLog)
	level, ptr, n := uint32(stack[0]), uint32(stack[1]), uint32(stack[2])
	b, ok := mod.Memory().Read(ptr, n)
	if !ok {
		cs.violate("%s(%d, %d): out of bounds of guest memory (%d bytes)", abi.ImportLog, ptr, n, mod.Memory().Size())
	}
	checkDone(ctx)
	lvl := zerolog.InfoLevel
	if level < uint32(len(logLevels)) {
		lvl = logLevels[level]
	}
	cs.record(lvl, "guest", b)
}

// hostSleep waits on a timer, the call's context and the instance's stop
// signal. A stop request returns 1; a sleep that reaches the call's deadline
// (or a canceled call) does not return to the guest: the call fails with
// timeout (or canceled), as it would once the guest went on.
func hostSleep(ctx context.Context, _ api.Module, stack []uint64) {
	cs := mustCall(ctx, abi.ImportSleep)
	ms := int64(stack[0])
	if ms < 0 {
		cs.violate("%s(%d): negative duration", abi.ImportSleep, ms)
	}
	checkDone(ctx)
	var stop <-chan struct{}
	if cs.inst != nil {
		if cs.inst.stopped.Load() {
			stack[0] = abi.SleepInterrupted
			return
		}
		stop = cs.inst.stop
	}
	if ms == 0 {
		stack[0] = abi.SleepCompleted
		return
	}
	if !sleepFor(ctx, stop, time.Duration(min(ms, maxSleepMS))*time.Millisecond) {
		stack[0] = abi.SleepInterrupted
		return
	}
	stack[0] = abi.SleepCompleted
}

// maxSleepMS keeps ms × time.Millisecond from overflowing; it is some 292
// years, past any call's deadline.
const maxSleepMS = math.MaxInt64 / int64(time.Millisecond)

func hostShouldStop(ctx context.Context, _ api.Module, stack []uint64) {
	cs := mustCall(ctx, abi.ImportShouldStop)
	stack[0] = 0
	if cs.inst != nil && cs.inst.stopped.Load() {
		stack[0] = 1
	}
}

// rpcHandler serves one RPC host function: it gets the raw JSON request and
// returns the result to wrap in an envelope.
type rpcHandler func(ctx context.Context, cs *callState, req []byte) (any, error)

// rpc adapts an rpcHandler to the (req_ptr, req_len) -> len convention.
func rpc(name string, h rpcHandler) api.GoModuleFunc {
	return func(ctx context.Context, mod api.Module, stack []uint64) {
		cs := mustCall(ctx, name)
		checkDone(ctx)
		ptr, n := uint32(stack[0]), uint32(stack[1])
		var env []byte
		if uint64(n) > uint64(cs.lim.OutputBytes) {
			e := abi.Errorf(abi.KindOutputLimit, "%s request of %d bytes exceeds the limit of %d", name, n, cs.lim.OutputBytes)
			cs.setFault(e)
			env = abi.Fail(e)
		} else {
			req, ok := mod.Memory().Read(ptr, n)
			if !ok {
				cs.violate("%s(%d, %d): out of bounds of guest memory (%d bytes)", name, ptr, n, mod.Memory().Size())
			}
			env = respond(name, func() (any, error) { return h(ctx, cs, req) })
		}
		cs.mi.staged = env
		stack[0] = uint64(len(env))
	}
}

// respond runs a handler and builds its envelope, typing plain errors.
func respond(name string, h func() (any, error)) []byte {
	v, err := h()
	if err == nil {
		env, merr := abi.OK(v)
		if merr == nil {
			return env
		}
		err = abi.Errorf(abi.KindInternalError, "%s: encode result: %v", name, merr)
	}
	var ae *abi.Error
	switch {
	case errors.As(err, &ae):
	case errors.Is(err, context.DeadlineExceeded):
		ae = abi.Errorf(abi.KindTimeout, "%s: %v", name, err)
	case errors.Is(err, context.Canceled):
		ae = abi.Errorf(abi.KindCanceled, "%s: %v", name, err)
	default:
		ae = abi.Errorf(abi.KindFailed, "%s: %v", name, err)
	}
	return abi.Fail(ae)
}

// decode parses an RPC request; a malformed one is a bad_request.
func decode(name string, req []byte, v any) error {
	if err := json.Unmarshal(req, v); err != nil {
		return abi.Errorf(abi.KindBadRequest, "%s: %v", name, err)
	}
	return nil
}

func missing(name, field string) error {
	return abi.Errorf(abi.KindBadRequest, "%s: missing %s", name, field)
}

// services returns the call's Services, or unavailable when there is none
// (while Load probes the module).
func (cs *callState) services(name string) (Services, abi.InstanceInfo, error) {
	if cs.inst == nil || cs.inst.spec.Services == nil {
		return nil, abi.InstanceInfo{}, abi.Errorf(abi.KindUnavailable, "%s: no services behind this call", name)
	}
	return cs.inst.spec.Services, cs.inst.spec.Info, nil
}

// typed adapts a typed host function: it decodes the request as T, checks
// it, finds the call's Services and runs fn. Functions without a request
// body ignore what the guest sent.
func typed[T any](name string, check func(*T) error, fn func(context.Context, *callState, Services, abi.InstanceInfo, *T) (any, error)) rpcHandler {
	return func(ctx context.Context, cs *callState, req []byte) (any, error) {
		var r T
		if check != nil {
			if err := decode(name, req, &r); err != nil {
				return nil, err
			}
			if err := check(&r); err != nil {
				return nil, err
			}
		}
		svc, info, err := cs.services(name)
		if err != nil {
			return nil, err
		}
		return fn(ctx, cs, svc, info, &r)
	}
}

// required returns a bad_request naming field when v is empty.
func required(name, field, v string) error {
	if v == "" {
		return missing(name, field)
	}
	return nil
}

// none accepts any request: for functions that only read a body's shape.
func none[T any](*T) error { return nil }

var rpcHandlers = map[string]rpcHandler{
	abi.ImportIntegrationContextGet: typed[struct{}](abi.ImportIntegrationContextGet, nil,
		func(ctx context.Context, _ *callState, svc Services, info abi.InstanceInfo, _ *struct{}) (any, error) {
			v, ver, err := svc.IntegrationContext(ctx, info)
			if err != nil {
				return nil, err
			}
			if v == nil {
				v = map[string]any{}
			}
			return abi.ContextGetResult{Context: v, Version: ver}, nil
		}),
	abi.ImportIntegrationContextSet: typed(abi.ImportIntegrationContextSet,
		func(r *abi.ContextSetRequest) error {
			if r.Version < -1 {
				return abi.Errorf(abi.KindBadRequest, "%s: version %d: want -1 or a version read", abi.ImportIntegrationContextSet, r.Version)
			}
			if r.Context == nil {
				r.Context = map[string]any{}
			}
			return nil
		},
		func(ctx context.Context, _ *callState, svc Services, info abi.InstanceInfo, r *abi.ContextSetRequest) (any, error) {
			ver, err := svc.SetIntegrationContext(ctx, info, r.Context, r.Version)
			if err != nil {
				return nil, err
			}
			return abi.ContextGetResult{Context: r.Context, Version: ver}, nil
		}),
	abi.ImportCacheGet: typed(abi.ImportCacheGet,
		func(r *abi.CacheGetRequest) error { return required(abi.ImportCacheGet, "key", r.Key) },
		func(ctx context.Context, _ *callState, svc Services, info abi.InstanceInfo, r *abi.CacheGetRequest) (any, error) {
			v, found, err := svc.CacheGet(ctx, info, r.Key)
			if err != nil {
				return nil, err
			}
			return abi.CacheGetResult{Found: found, Value: v}, nil
		}),
	abi.ImportCacheSet: typed(abi.ImportCacheSet,
		func(r *abi.CacheSetRequest) error {
			if len(r.Value) == 0 {
				r.Value = json.RawMessage("null")
			}
			return required(abi.ImportCacheSet, "key", r.Key)
		},
		func(ctx context.Context, _ *callState, svc Services, info abi.InstanceInfo, r *abi.CacheSetRequest) (any, error) {
			return nil, svc.CacheSet(ctx, info, r.Key, r.Value, time.Duration(r.TTLSeconds*float64(time.Second)))
		}),
	abi.ImportCacheDelete: typed(abi.ImportCacheDelete,
		func(r *abi.CacheDeleteRequest) error { return required(abi.ImportCacheDelete, "key", r.Key) },
		func(ctx context.Context, _ *callState, svc Services, info abi.InstanceInfo, r *abi.CacheDeleteRequest) (any, error) {
			return nil, svc.CacheDelete(ctx, info, r.Key)
		}),
	abi.ImportLastRunGet: func(ctx context.Context, cs *callState, req []byte) (any, error) {
		if cs.fetch && cs.lastRunStaged {
			return abi.RunValue{Value: cs.lastRun}, nil
		}
		return typed[struct{}](abi.ImportLastRunGet, nil,
			func(ctx context.Context, _ *callState, svc Services, info abi.InstanceInfo, _ *struct{}) (any, error) {
				v, err := svc.LastRun(ctx, info)
				return abi.RunValue{Value: v}, err
			})(ctx, cs, req)
	},
	abi.ImportLastRunSet: typed(abi.ImportLastRunSet, none[abi.RunValue],
		func(ctx context.Context, cs *callState, svc Services, info abi.InstanceInfo, r *abi.RunValue) (any, error) {
			if cs.fetch {
				// Stored with the fetched incidents only if the fetch succeeds.
				cs.lastRun, cs.lastRunStaged = r.Value, true
				return nil, nil
			}
			return nil, svc.SetLastRun(ctx, info, r.Value)
		}),
	abi.ImportLastMirrorRunGet: typed[struct{}](abi.ImportLastMirrorRunGet, nil,
		func(ctx context.Context, _ *callState, svc Services, info abi.InstanceInfo, _ *struct{}) (any, error) {
			v, err := svc.LastMirrorRun(ctx, info)
			return abi.RunValue{Value: v}, err
		}),
	abi.ImportLastMirrorRunSet: typed(abi.ImportLastMirrorRunSet, none[abi.RunValue],
		func(ctx context.Context, _ *callState, svc Services, info abi.InstanceInfo, r *abi.RunValue) (any, error) {
			return nil, svc.SetLastMirrorRun(ctx, info, r.Value)
		}),
	abi.ImportAddEntry: typed(abi.ImportAddEntry,
		func(r *abi.AddEntryRequest) error { return required(abi.ImportAddEntry, "incident_id", r.IncidentID) },
		func(ctx context.Context, _ *callState, svc Services, info abi.InstanceInfo, r *abi.AddEntryRequest) (any, error) {
			id, err := svc.AddEntry(ctx, info, *r)
			return abi.AddEntryResult{ID: id}, err
		}),
	abi.ImportCreateIncidents: typed(abi.ImportCreateIncidents, none[abi.CreateIncidentsRequest],
		func(ctx context.Context, _ *callState, svc Services, info abi.InstanceInfo, r *abi.CreateIncidentsRequest) (any, error) {
			ids, err := svc.CreateIncidents(ctx, info, *r)
			if ids == nil {
				ids = []string{}
			}
			return abi.CreateIncidentsResult{IDs: ids}, err
		}),
	abi.ImportFindUser: typed(abi.ImportFindUser,
		func(r *abi.FindUserRequest) error {
			return required(abi.ImportFindUser, "username or email", r.Username+r.Email)
		},
		func(ctx context.Context, _ *callState, svc Services, info abi.InstanceInfo, r *abi.FindUserRequest) (any, error) {
			return svc.FindUser(ctx, info, *r)
		}),
	abi.ImportHandleEntitlementForUser: typed(abi.ImportHandleEntitlementForUser,
		func(r *abi.EntitlementRequest) error {
			return required(abi.ImportHandleEntitlementForUser, "guid", r.GUID)
		},
		func(ctx context.Context, _ *callState, svc Services, info abi.InstanceInfo, r *abi.EntitlementRequest) (any, error) {
			return nil, svc.HandleEntitlement(ctx, info, *r)
		}),
	abi.ImportUpdateModuleHealth: typed(abi.ImportUpdateModuleHealth, none[abi.ModuleHealth],
		func(ctx context.Context, _ *callState, svc Services, info abi.InstanceInfo, r *abi.ModuleHealth) (any, error) {
			return nil, svc.UpdateModuleHealth(ctx, info, *r)
		}),
	abi.ImportMirrorInvestigation: typed(abi.ImportMirrorInvestigation,
		func(r *abi.MirrorInvestigationRequest) error {
			return required(abi.ImportMirrorInvestigation, "incident_id", r.IncidentID)
		},
		func(ctx context.Context, _ *callState, svc Services, info abi.InstanceInfo, r *abi.MirrorInvestigationRequest) (any, error) {
			return nil, svc.MirrorInvestigation(ctx, info, *r)
		}),
	abi.ImportDirectMessage: typed(abi.ImportDirectMessage, none[abi.DirectMessageRequest],
		func(ctx context.Context, _ *callState, svc Services, info abi.InstanceInfo, r *abi.DirectMessageRequest) (any, error) {
			reply, err := svc.DirectMessage(ctx, info, *r)
			return abi.DirectMessageResult{Reply: reply}, err
		}),
	abi.ImportHTTPRequest: func(ctx context.Context, cs *callState, req []byte) (any, error) {
		var r abi.HTTPRequest
		if err := decode(abi.ImportHTTPRequest, req, &r); err != nil {
			return nil, err
		}
		if cs.inst == nil {
			return nil, abi.Errorf(abi.KindUnavailable, "%s: no instance behind this call", abi.ImportHTTPRequest)
		}
		return cs.inst.doHTTP(ctx, cs, r)
	},
}
