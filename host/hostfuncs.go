package host

import (
	"context"
	"encoding/json"
	"errors"
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

func hostLog(ctx context.Context, mod api.Module, stack []uint64) {
	cs := mustCall(ctx, abi.ImportLog)
	level, ptr, n := uint32(stack[0]), uint32(stack[1]), uint32(stack[2])
	b, ok := mod.Memory().Read(ptr, n)
	if !ok {
		cs.violate("%s(%d, %d): out of bounds of guest memory (%d bytes)", abi.ImportLog, ptr, n, mod.Memory().Size())
	}
	lvl := zerolog.InfoLevel
	if level < uint32(len(logLevels)) {
		lvl = logLevels[level]
	}
	cs.emit(lvl, "guest", string(b))
}

// hostSleep waits on a timer, the call's context (deadline) and the
// instance's stop signal, so a sleeping guest never outlives its call.
func hostSleep(ctx context.Context, _ api.Module, stack []uint64) {
	cs := mustCall(ctx, abi.ImportSleep)
	ms := int64(stack[0])
	var stop <-chan struct{}
	if cs.inst != nil {
		if cs.inst.stopped.Load() {
			stack[0] = abi.SleepInterrupted
			return
		}
		stop = cs.inst.stop
	}
	if ms <= 0 {
		stack[0] = abi.SleepCompleted
		return
	}
	t := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		stack[0] = abi.SleepCompleted
	case <-ctx.Done():
		stack[0] = abi.SleepInterrupted
	case <-stop:
		stack[0] = abi.SleepInterrupted
	}
}

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

var rpcHandlers = map[string]rpcHandler{
	abi.ImportIntegrationContextGet: func(ctx context.Context, cs *callState, _ []byte) (any, error) {
		svc, info, err := cs.services(abi.ImportIntegrationContextGet)
		if err != nil {
			return nil, err
		}
		v, ver, err := svc.IntegrationContext(ctx, info)
		if err != nil {
			return nil, err
		}
		if v == nil {
			v = map[string]any{}
		}
		return abi.ContextGetResult{Context: v, Version: ver}, nil
	},
	abi.ImportIntegrationContextSet: func(ctx context.Context, cs *callState, req []byte) (any, error) {
		const name = abi.ImportIntegrationContextSet
		var r abi.ContextSetRequest
		if err := decode(name, req, &r); err != nil {
			return nil, err
		}
		if r.Version < -1 {
			return nil, abi.Errorf(abi.KindBadRequest, "%s: version %d: want -1 or a version read", name, r.Version)
		}
		svc, info, err := cs.services(name)
		if err != nil {
			return nil, err
		}
		if r.Context == nil {
			r.Context = map[string]any{}
		}
		ver, err := svc.SetIntegrationContext(ctx, info, r.Context, r.Version)
		if err != nil {
			return nil, err
		}
		return abi.ContextGetResult{Context: r.Context, Version: ver}, nil
	},
	abi.ImportCacheGet: func(ctx context.Context, cs *callState, req []byte) (any, error) {
		const name = abi.ImportCacheGet
		var r abi.CacheGetRequest
		if err := decode(name, req, &r); err != nil {
			return nil, err
		}
		if r.Key == "" {
			return nil, missing(name, "key")
		}
		svc, info, err := cs.services(name)
		if err != nil {
			return nil, err
		}
		v, found, err := svc.CacheGet(ctx, info, r.Key)
		if err != nil {
			return nil, err
		}
		return abi.CacheGetResult{Found: found, Value: v}, nil
	},
	abi.ImportCacheSet: func(ctx context.Context, cs *callState, req []byte) (any, error) {
		const name = abi.ImportCacheSet
		var r abi.CacheSetRequest
		if err := decode(name, req, &r); err != nil {
			return nil, err
		}
		if r.Key == "" {
			return nil, missing(name, "key")
		}
		if len(r.Value) == 0 {
			r.Value = json.RawMessage("null")
		}
		svc, info, err := cs.services(name)
		if err != nil {
			return nil, err
		}
		return nil, svc.CacheSet(ctx, info, r.Key, r.Value, time.Duration(r.TTLSeconds*float64(time.Second)))
	},
	abi.ImportCacheDelete: func(ctx context.Context, cs *callState, req []byte) (any, error) {
		const name = abi.ImportCacheDelete
		var r abi.CacheDeleteRequest
		if err := decode(name, req, &r); err != nil {
			return nil, err
		}
		if r.Key == "" {
			return nil, missing(name, "key")
		}
		svc, info, err := cs.services(name)
		if err != nil {
			return nil, err
		}
		return nil, svc.CacheDelete(ctx, info, r.Key)
	},
	abi.ImportLastRunGet: func(ctx context.Context, cs *callState, _ []byte) (any, error) {
		if cs.fetch && cs.lastRunStaged {
			return abi.RunValue{Value: cs.lastRun}, nil
		}
		svc, info, err := cs.services(abi.ImportLastRunGet)
		if err != nil {
			return nil, err
		}
		v, err := svc.LastRun(ctx, info)
		return abi.RunValue{Value: v}, err
	},
	abi.ImportLastRunSet: func(ctx context.Context, cs *callState, req []byte) (any, error) {
		const name = abi.ImportLastRunSet
		var r abi.RunValue
		if err := decode(name, req, &r); err != nil {
			return nil, err
		}
		svc, info, err := cs.services(name)
		if err != nil {
			return nil, err
		}
		if cs.fetch {
			// Stored with the fetched incidents only if the fetch succeeds.
			cs.lastRun, cs.lastRunStaged = r.Value, true
			return nil, nil
		}
		return nil, svc.SetLastRun(ctx, info, r.Value)
	},
	abi.ImportLastMirrorRunGet: func(ctx context.Context, cs *callState, _ []byte) (any, error) {
		svc, info, err := cs.services(abi.ImportLastMirrorRunGet)
		if err != nil {
			return nil, err
		}
		v, err := svc.LastMirrorRun(ctx, info)
		return abi.RunValue{Value: v}, err
	},
	abi.ImportLastMirrorRunSet: func(ctx context.Context, cs *callState, req []byte) (any, error) {
		const name = abi.ImportLastMirrorRunSet
		var r abi.RunValue
		if err := decode(name, req, &r); err != nil {
			return nil, err
		}
		svc, info, err := cs.services(name)
		if err != nil {
			return nil, err
		}
		return nil, svc.SetLastMirrorRun(ctx, info, r.Value)
	},
	abi.ImportAddEntry: func(ctx context.Context, cs *callState, req []byte) (any, error) {
		const name = abi.ImportAddEntry
		var r abi.AddEntryRequest
		if err := decode(name, req, &r); err != nil {
			return nil, err
		}
		if r.IncidentID == "" {
			return nil, missing(name, "incident_id")
		}
		svc, info, err := cs.services(name)
		if err != nil {
			return nil, err
		}
		id, err := svc.AddEntry(ctx, info, r)
		return abi.AddEntryResult{ID: id}, err
	},
	abi.ImportCreateIncidents: func(ctx context.Context, cs *callState, req []byte) (any, error) {
		const name = abi.ImportCreateIncidents
		var r abi.CreateIncidentsRequest
		if err := decode(name, req, &r); err != nil {
			return nil, err
		}
		svc, info, err := cs.services(name)
		if err != nil {
			return nil, err
		}
		ids, err := svc.CreateIncidents(ctx, info, r)
		if ids == nil {
			ids = []string{}
		}
		return abi.CreateIncidentsResult{IDs: ids}, err
	},
	abi.ImportFindUser: func(ctx context.Context, cs *callState, req []byte) (any, error) {
		const name = abi.ImportFindUser
		var r abi.FindUserRequest
		if err := decode(name, req, &r); err != nil {
			return nil, err
		}
		if r.Username == "" && r.Email == "" {
			return nil, missing(name, "username or email")
		}
		svc, info, err := cs.services(name)
		if err != nil {
			return nil, err
		}
		return svc.FindUser(ctx, info, r)
	},
	abi.ImportHandleEntitlementForUser: func(ctx context.Context, cs *callState, req []byte) (any, error) {
		const name = abi.ImportHandleEntitlementForUser
		var r abi.EntitlementRequest
		if err := decode(name, req, &r); err != nil {
			return nil, err
		}
		if r.GUID == "" {
			return nil, missing(name, "guid")
		}
		svc, info, err := cs.services(name)
		if err != nil {
			return nil, err
		}
		return nil, svc.HandleEntitlement(ctx, info, r)
	},
	abi.ImportUpdateModuleHealth: func(ctx context.Context, cs *callState, req []byte) (any, error) {
		const name = abi.ImportUpdateModuleHealth
		var r abi.ModuleHealth
		if err := decode(name, req, &r); err != nil {
			return nil, err
		}
		svc, info, err := cs.services(name)
		if err != nil {
			return nil, err
		}
		return nil, svc.UpdateModuleHealth(ctx, info, r)
	},
	abi.ImportMirrorInvestigation: func(ctx context.Context, cs *callState, req []byte) (any, error) {
		const name = abi.ImportMirrorInvestigation
		var r abi.MirrorInvestigationRequest
		if err := decode(name, req, &r); err != nil {
			return nil, err
		}
		if r.IncidentID == "" {
			return nil, missing(name, "incident_id")
		}
		svc, info, err := cs.services(name)
		if err != nil {
			return nil, err
		}
		return nil, svc.MirrorInvestigation(ctx, info, r)
	},
	abi.ImportDirectMessage: func(ctx context.Context, cs *callState, req []byte) (any, error) {
		const name = abi.ImportDirectMessage
		var r abi.DirectMessageRequest
		if err := decode(name, req, &r); err != nil {
			return nil, err
		}
		svc, info, err := cs.services(name)
		if err != nil {
			return nil, err
		}
		reply, err := svc.DirectMessage(ctx, info, r)
		return abi.DirectMessageResult{Reply: reply}, err
	},
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
