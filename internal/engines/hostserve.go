package engines

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host"
)

// hostCallTimeout bounds the server's work on one host function call.
const hostCallTimeout = 30 * time.Second

// serveHost answers a host function call or heartbeat of an engine. The
// subject's group and engine tokens are the caller's own (its publish
// permissions allow nothing else), so an engine acts only on the instances
// of its group.
func (h *Hub) serveHost(m *nats.Msg) {
	toks := strings.Split(strings.TrimPrefix(m.Subject, hostPrefix), ".")
	if len(toks) != 3 {
		return
	}
	group, engine, op := toks[0], toks[1], toks[2]
	ctx, cancel := context.WithTimeout(context.Background(), hostCallTimeout)
	defer cancel()
	var rep reply
	if op == opBeat {
		rep.Result, rep.Error = h.beat(ctx, group, engine, m.Data)
	} else {
		res, err := h.hostCall(ctx, group, engine, op, m.Data)
		rep.Result, rep.Error = res, toWire(err)
	}
	raw, _ := json.Marshal(rep)
	_ = m.Respond(raw)
}

// beat records a heartbeat and answers with the group's long-running
// instances.
func (h *Hub) beat(ctx context.Context, group, engine string, data []byte) (json.RawMessage, *wireError) {
	var b Beat
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, toWire(abi.Errorf(abi.KindBadRequest, "heartbeat: %v", err))
	}
	b.Name, b.Group = engine, group
	now := time.Now().UTC()
	h.mu.Lock()
	s := h.status[engine]
	if s == nil || now.Sub(s.LastHeartbeat) >= h.opts.HeartbeatTimeout {
		calls, fails := int64(0), int64(0)
		if s != nil {
			calls, fails = s.Calls, s.Failures
		}
		s = &Status{ConnectedSince: now, Calls: calls, Failures: fails}
		h.status[engine] = s
		h.log.Info().Str("engine", engine).Str("group", group).Str("version", b.Version).Int("capacity", b.Capacity).Msg("engine connected")
	}
	s.Beat, s.LastHeartbeat = b, now
	h.mu.Unlock()
	var out beatReply
	if be := h.be.Load(); be != nil {
		specs, err := be.LongRunningSpecs(ctx, group)
		if err != nil {
			return nil, toWire(err)
		}
		out.LongRunning = specs
	}
	raw, _ := json.Marshal(out)
	return raw, nil
}

// hostCall runs one host function for an instance on an engine.
func (h *Hub) hostCall(ctx context.Context, group, engine, op string, data []byte) (json.RawMessage, error) {
	be := h.be.Load()
	if be == nil {
		return nil, abi.Errorf(abi.KindUnavailable, "the server is starting")
	}
	var call hostCall
	if err := json.Unmarshal(data, &call); err != nil {
		return nil, abi.Errorf(abi.KindBadRequest, "host call %s: %v", op, err)
	}
	ig, err := be.InstanceGroup(ctx, call.Info.ID)
	if err != nil || ig != group {
		h.log.Warn().Str("engine", engine).Str("group", group).Str("instance", call.Info.Name).Str("op", op).Msg("host call refused: instance not in the engine's group")
		return nil, abi.Errorf(abi.KindDenied, "instance %q is not assigned to engine group %q", call.Info.Name, group)
	}
	if call.Token != 0 {
		if err := h.checkLease(ctx, group, engine, call); err != nil {
			return nil, err
		}
	}
	return dispatchHost(ctx, be.HostServices(), op, call)
}

// checkLease refuses a long-running execution's call unless the caller
// holds the instance's lease under the same fencing token: a cut-off
// engine's late calls cannot act after another engine took over.
func (h *Hub) checkLease(ctx context.Context, group, engine string, call hostCall) error {
	e, err := h.leases.Get(ctx, leaseKey(group, call.Info.ID))
	if err != nil {
		return abi.Errorf(abi.KindConflict, "instance %q: engine %q does not hold the long-running lease", call.Info.Name, engine)
	}
	var l lease
	if json.Unmarshal(e.Value(), &l) != nil || l.Engine != engine || l.Token != call.Token {
		return abi.Errorf(abi.KindConflict, "instance %q: engine %q does not hold the long-running lease (token %d)", call.Info.Name, engine, call.Token)
	}
	return nil
}

// leaseKey is the lease of an instance in a group.
func leaseKey(group, id string) string { return group + "." + id }

// dispatchHost decodes a host call's body, calls the service and encodes
// its answer.
func dispatchHost(ctx context.Context, s host.Services, op string, call hostCall) (json.RawMessage, error) {
	inst := call.Info
	dec := func(v any) error {
		if err := json.Unmarshal(call.Body, v); err != nil {
			return abi.Errorf(abi.KindBadRequest, "host call %s: %v", op, err)
		}
		return nil
	}
	enc := func(v any, err error) (json.RawMessage, error) {
		if err != nil {
			return nil, err
		}
		return json.Marshal(v)
	}
	switch op {
	case opIntegrationContext:
		v, ver, err := s.IntegrationContext(ctx, inst)
		return enc(versioned{Value: v, Version: ver}, err)
	case opSetIntegrationContext:
		var in versioned
		if err := dec(&in); err != nil {
			return nil, err
		}
		ver, err := s.SetIntegrationContext(ctx, inst, in.Value, in.Version)
		return enc(ver, err)
	case opCacheGet:
		var in cacheReq
		if err := dec(&in); err != nil {
			return nil, err
		}
		v, ok, err := s.CacheGet(ctx, inst, in.Key)
		return enc(cacheReq{Value: v, Found: ok}, err)
	case opCacheSet:
		var in cacheReq
		if err := dec(&in); err != nil {
			return nil, err
		}
		return enc(true, s.CacheSet(ctx, inst, in.Key, in.Value, in.TTL))
	case opCacheDelete:
		var in cacheReq
		if err := dec(&in); err != nil {
			return nil, err
		}
		return enc(true, s.CacheDelete(ctx, inst, in.Key))
	case opLastRun:
		v, err := s.LastRun(ctx, inst)
		return enc(v, err)
	case opSetLastRun:
		var v map[string]any
		if err := dec(&v); err != nil {
			return nil, err
		}
		return enc(true, s.SetLastRun(ctx, inst, v))
	case opLastMirrorRun:
		v, err := s.LastMirrorRun(ctx, inst)
		return enc(v, err)
	case opSetLastMirrorRun:
		var v map[string]any
		if err := dec(&v); err != nil {
			return nil, err
		}
		return enc(true, s.SetLastMirrorRun(ctx, inst, v))
	case opAddEntry:
		var in abi.AddEntryRequest
		if err := dec(&in); err != nil {
			return nil, err
		}
		return enc(s.AddEntry(ctx, inst, in))
	case opCreateIncidents:
		var in abi.CreateIncidentsRequest
		if err := dec(&in); err != nil {
			return nil, err
		}
		return enc(s.CreateIncidents(ctx, inst, in))
	case opFindUser:
		var in abi.FindUserRequest
		if err := dec(&in); err != nil {
			return nil, err
		}
		return enc(s.FindUser(ctx, inst, in))
	case opHandleEntitlement:
		var in abi.EntitlementRequest
		if err := dec(&in); err != nil {
			return nil, err
		}
		return enc(true, s.HandleEntitlement(ctx, inst, in))
	case opUpdateModuleHealth:
		var in abi.ModuleHealth
		if err := dec(&in); err != nil {
			return nil, err
		}
		return enc(true, s.UpdateModuleHealth(ctx, inst, in))
	case opMirrorInvestigation:
		var in abi.MirrorInvestigationRequest
		if err := dec(&in); err != nil {
			return nil, err
		}
		return enc(true, s.MirrorInvestigation(ctx, inst, in))
	case opDirectMessage:
		var in abi.DirectMessageRequest
		if err := dec(&in); err != nil {
			return nil, err
		}
		return enc(s.DirectMessage(ctx, inst, in))
	}
	return nil, abi.Errorf(abi.KindNotImplemented, "host call %q", op)
}

// versioned is an integration context with its version.
type versioned struct {
	Value   map[string]any `json:"value"`
	Version int64          `json:"version"`
}

// cacheReq is a cache operation's input or output.
type cacheReq struct {
	Key   string          `json:"key,omitempty"`
	Value json.RawMessage `json:"value,omitempty"`
	TTL   time.Duration   `json:"ttl,omitempty"`
	Found bool            `json:"found,omitempty"`
}

// sortStatus orders engines by group, then name.
func sortStatus(s []Status) {
	sort.Slice(s, func(i, j int) bool {
		if s[i].Group != s[j].Group {
			return s[i].Group < s[j].Group
		}
		return s[i].Name < s[j].Name
	})
}
