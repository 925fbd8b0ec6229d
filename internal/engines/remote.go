package engines

import (
	"context"
	"encoding/json"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host"
)

// remoteServices are the host functions of an instance on an engine: each
// is a request to the server's services, which apply the same checks,
// limits and errors as for a local instance.
type remoteServices struct {
	e     *Engine
	token uint64 // fencing token of a long-running execution, else 0
}

var _ host.Services = (*remoteServices)(nil)

// call sends one host call and decodes its result into out (if not nil).
func (r *remoteServices) call(ctx context.Context, inst abi.InstanceInfo, op string, body, out any) error {
	raw, err := json.Marshal(body)
	if err != nil {
		return abi.Errorf(abi.KindBadRequest, "%s: %v", op, err)
	}
	req, _ := json.Marshal(hostCall{Info: inst, Token: r.token, Body: raw})
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, hostCallTimeout)
		defer cancel()
	}
	msg, err := r.e.nc.RequestWithContext(ctx, hostPrefix+r.e.opts.Group+"."+r.e.opts.Name+"."+op, req)
	if err != nil {
		if ctx.Err() != nil {
			return abi.Errorf(abi.KindTimeout, "%s: the server did not answer: %v", op, err)
		}
		return abi.Errorf(abi.KindUnavailable, "%s: the server is not reachable from engine %q: %v", op, r.e.opts.Name, err)
	}
	var rep reply
	if err := json.Unmarshal(msg.Data, &rep); err != nil {
		return abi.Errorf(abi.KindInternalError, "%s: bad reply: %v", op, err)
	}
	if rep.Error != nil {
		return rep.Error.err()
	}
	if out != nil && len(rep.Result) > 0 {
		if err := json.Unmarshal(rep.Result, out); err != nil {
			return abi.Errorf(abi.KindInternalError, "%s: bad reply: %v", op, err)
		}
	}
	return nil
}

// IntegrationContext implements host.Services.
func (r *remoteServices) IntegrationContext(ctx context.Context, inst abi.InstanceInfo) (map[string]any, int64, error) {
	var v versioned
	err := r.call(ctx, inst, opIntegrationContext, nil, &v)
	return v.Value, v.Version, err
}

// SetIntegrationContext implements host.Services.
func (r *remoteServices) SetIntegrationContext(ctx context.Context, inst abi.InstanceInfo, value map[string]any, version int64) (int64, error) {
	var ver int64
	err := r.call(ctx, inst, opSetIntegrationContext, versioned{Value: value, Version: version}, &ver)
	return ver, err
}

// CacheGet implements host.Services.
func (r *remoteServices) CacheGet(ctx context.Context, inst abi.InstanceInfo, key string) (json.RawMessage, bool, error) {
	var out cacheReq
	err := r.call(ctx, inst, opCacheGet, cacheReq{Key: key}, &out)
	return out.Value, out.Found, err
}

// CacheSet implements host.Services.
func (r *remoteServices) CacheSet(ctx context.Context, inst abi.InstanceInfo, key string, value json.RawMessage, ttl time.Duration) error {
	return r.call(ctx, inst, opCacheSet, cacheReq{Key: key, Value: value, TTL: ttl}, nil)
}

// CacheDelete implements host.Services.
func (r *remoteServices) CacheDelete(ctx context.Context, inst abi.InstanceInfo, key string) error {
	return r.call(ctx, inst, opCacheDelete, cacheReq{Key: key}, nil)
}

// LastRun implements host.Services.
func (r *remoteServices) LastRun(ctx context.Context, inst abi.InstanceInfo) (map[string]any, error) {
	var v map[string]any
	err := r.call(ctx, inst, opLastRun, nil, &v)
	return v, err
}

// SetLastRun implements host.Services.
func (r *remoteServices) SetLastRun(ctx context.Context, inst abi.InstanceInfo, value map[string]any) error {
	return r.call(ctx, inst, opSetLastRun, value, nil)
}

// LastMirrorRun implements host.Services.
func (r *remoteServices) LastMirrorRun(ctx context.Context, inst abi.InstanceInfo) (map[string]any, error) {
	var v map[string]any
	err := r.call(ctx, inst, opLastMirrorRun, nil, &v)
	return v, err
}

// SetLastMirrorRun implements host.Services.
func (r *remoteServices) SetLastMirrorRun(ctx context.Context, inst abi.InstanceInfo, value map[string]any) error {
	return r.call(ctx, inst, opSetLastMirrorRun, value, nil)
}

// AddEntry implements host.Services.
func (r *remoteServices) AddEntry(ctx context.Context, inst abi.InstanceInfo, req abi.AddEntryRequest) (string, error) {
	var id string
	err := r.call(ctx, inst, opAddEntry, req, &id)
	return id, err
}

// CreateIncidents implements host.Services.
func (r *remoteServices) CreateIncidents(ctx context.Context, inst abi.InstanceInfo, req abi.CreateIncidentsRequest) ([]string, error) {
	var ids []string
	err := r.call(ctx, inst, opCreateIncidents, req, &ids)
	return ids, err
}

// FindUser implements host.Services.
func (r *remoteServices) FindUser(ctx context.Context, inst abi.InstanceInfo, req abi.FindUserRequest) (*abi.User, error) {
	var u *abi.User
	err := r.call(ctx, inst, opFindUser, req, &u)
	return u, err
}

// HandleEntitlement implements host.Services.
func (r *remoteServices) HandleEntitlement(ctx context.Context, inst abi.InstanceInfo, req abi.EntitlementRequest) error {
	return r.call(ctx, inst, opHandleEntitlement, req, nil)
}

// UpdateModuleHealth implements host.Services.
func (r *remoteServices) UpdateModuleHealth(ctx context.Context, inst abi.InstanceInfo, health abi.ModuleHealth) error {
	return r.call(ctx, inst, opUpdateModuleHealth, health, nil)
}

// MirrorInvestigation implements host.Services.
func (r *remoteServices) MirrorInvestigation(ctx context.Context, inst abi.InstanceInfo, req abi.MirrorInvestigationRequest) error {
	return r.call(ctx, inst, opMirrorInvestigation, req, nil)
}

// DirectMessage implements host.Services.
func (r *remoteServices) DirectMessage(ctx context.Context, inst abi.InstanceInfo, req abi.DirectMessageRequest) (string, error) {
	var s string
	err := r.call(ctx, inst, opDirectMessage, req, &s)
	return s, err
}
