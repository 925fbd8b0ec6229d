package sdktest

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/connhost/connhost/abi"
)

// RPC implements sdk.Imports: it decodes the request of host function name,
// applies it to the in-memory state and returns the envelope, as the host
// stages it.
func (h *Host) RPC(ctx context.Context, name string, req []byte) []byte {
	res, err := h.rpc(ctx, name, req)
	if err != nil {
		e, ok := err.(*abi.Error)
		if !ok {
			e = &abi.Error{Kind: abi.KindInternalError, Message: err.Error()}
		}
		return abi.Fail(e)
	}
	out, err := abi.OK(res)
	if err != nil {
		return abi.Fail(&abi.Error{Kind: abi.KindInternalError, Message: err.Error()})
	}
	return out
}

// decode parses an RPC request strictly enough to reject what the host
// rejects: JSON that is not an object of the right shape.
func decode[T any](name string, req []byte) (T, error) {
	var v T
	if err := json.Unmarshal(req, &v); err != nil {
		return v, abi.Errorf(abi.KindBadRequest, "%s: %v", name, err)
	}
	return v, nil
}

func required(name, field, v string) error {
	if v == "" {
		return abi.Errorf(abi.KindBadRequest, "%s: %s is required", name, field)
	}
	return nil
}

func (h *Host) rpc(ctx context.Context, name string, req []byte) (any, error) {
	if name == abi.ImportHTTPRequest {
		r, err := decode[abi.HTTPRequest](name, req)
		if err != nil {
			return nil, err
		}
		return h.httpRequest(ctx, r)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch name {
	case abi.ImportIntegrationContextGet:
		return abi.ContextGetResult{Context: clone(h.ctxValue), Version: h.ctxVersion}, nil
	case abi.ImportIntegrationContextSet:
		r, err := decode[abi.ContextSetRequest](name, req)
		if err != nil {
			return nil, err
		}
		if r.Version != -1 && r.Version != h.ctxVersion {
			return nil, abi.Errorf(abi.KindConflict, "integration context of instance %s: version %d is stale, stored version is %d", h.Instance.Name, r.Version, h.ctxVersion)
		}
		h.ctxValue, h.ctxVersion = r.Context, h.ctxVersion+1
		return abi.ContextGetResult{Context: clone(h.ctxValue), Version: h.ctxVersion}, nil
	case abi.ImportCacheGet:
		r, err := decode[abi.CacheGetRequest](name, req)
		if err != nil {
			return nil, err
		}
		if err := required(name, "key", r.Key); err != nil {
			return nil, err
		}
		e, ok := h.cache[r.Key]
		if !ok || (!e.expires.IsZero() && !h.now().Before(e.expires)) {
			return abi.CacheGetResult{}, nil
		}
		return abi.CacheGetResult{Found: true, Value: e.value}, nil
	case abi.ImportCacheSet:
		r, err := decode[abi.CacheSetRequest](name, req)
		if err != nil {
			return nil, err
		}
		if err := required(name, "key", r.Key); err != nil {
			return nil, err
		}
		e := cacheEntry{value: r.Value}
		if r.TTLSeconds > 0 {
			e.expires = h.now().Add(time.Duration(r.TTLSeconds * float64(time.Second)))
		}
		h.cache[r.Key] = e
		return nil, nil
	case abi.ImportCacheDelete:
		r, err := decode[abi.CacheDeleteRequest](name, req)
		if err != nil {
			return nil, err
		}
		delete(h.cache, r.Key)
		return nil, nil
	case abi.ImportLastRunGet:
		return abi.RunValue{Value: clone(h.lastRun)}, nil
	case abi.ImportLastRunSet:
		r, err := decode[abi.RunValue](name, req)
		if err != nil {
			return nil, err
		}
		if h.inFetch {
			h.staged = r.Value
		} else {
			h.lastRun = r.Value
		}
		return nil, nil
	case abi.ImportLastMirrorRunGet:
		return abi.RunValue{Value: clone(h.lastMirrorRun)}, nil
	case abi.ImportLastMirrorRunSet:
		r, err := decode[abi.RunValue](name, req)
		if err != nil {
			return nil, err
		}
		h.lastMirrorRun = r.Value
		return nil, nil
	case abi.ImportAddEntry:
		r, err := decode[abi.AddEntryRequest](name, req)
		if err != nil {
			return nil, err
		}
		if err := required(name, "incident_id", r.IncidentID); err != nil {
			return nil, err
		}
		h.entries = append(h.entries, r)
		return abi.AddEntryResult{ID: h.id("entry")}, nil
	case abi.ImportCreateIncidents:
		r, err := decode[abi.CreateIncidentsRequest](name, req)
		if err != nil {
			return nil, err
		}
		ids := make([]string, len(r.Incidents))
		for i := range r.Incidents {
			ids[i] = h.id("incident")
		}
		h.incidents = append(h.incidents, r.Incidents...)
		if r.LastRun != nil {
			h.lastRun = r.LastRun
		}
		return abi.CreateIncidentsResult{IDs: ids}, nil
	case abi.ImportFindUser:
		r, err := decode[abi.FindUserRequest](name, req)
		if err != nil {
			return nil, err
		}
		if r.Username == "" && r.Email == "" {
			return nil, abi.Errorf(abi.KindBadRequest, "%s: username or email is required", name)
		}
		for _, u := range h.users {
			if (r.Username != "" && u.Username == r.Username) || (r.Email != "" && u.Email == r.Email) {
				return u, nil
			}
		}
		return nil, nil
	case abi.ImportHandleEntitlementForUser:
		r, err := decode[abi.EntitlementRequest](name, req)
		if err != nil {
			return nil, err
		}
		if err := required(name, "guid", r.GUID); err != nil {
			return nil, err
		}
		h.entitlements = append(h.entitlements, r)
		return nil, nil
	case abi.ImportUpdateModuleHealth:
		r, err := decode[abi.ModuleHealth](name, req)
		if err != nil {
			return nil, err
		}
		h.health = r
		return nil, nil
	case abi.ImportMirrorInvestigation:
		r, err := decode[abi.MirrorInvestigationRequest](name, req)
		if err != nil {
			return nil, err
		}
		if err := required(name, "incident_id", r.IncidentID); err != nil {
			return nil, err
		}
		h.mirrors = append(h.mirrors, r)
		return nil, nil
	case abi.ImportDirectMessage:
		r, err := decode[abi.DirectMessageRequest](name, req)
		if err != nil {
			return nil, err
		}
		if h.DirectMessage == nil {
			return nil, abi.Errorf(abi.KindUnavailable, "%s: no chat server behind instance %s", name, h.Instance.Name)
		}
		h.mu.Unlock() // the callback may use the accessors
		reply, err := h.DirectMessage(r)
		h.mu.Lock()
		if err != nil {
			return nil, err
		}
		return abi.DirectMessageResult{Reply: reply}, nil
	}
	return nil, abi.Errorf(abi.KindIncompatible, "unknown host function %s", name)
}

func (h *Host) id(kind string) string {
	h.nextID++
	return kind + "-" + strconv.Itoa(h.nextID)
}

// clone deep-copies a JSON object so that neither side aliases the other's
// state, as the wire does.
func clone(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("sdktest: state is not JSON: %v", err))
	}
	var out map[string]any
	_ = json.Unmarshal(b, &out) // what Marshal made parses
	return out
}

// IntegrationContext returns the stored integration context and version.
func (h *Host) IntegrationContext() (map[string]any, int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return clone(h.ctxValue), h.ctxVersion
}

// SetIntegrationContext replaces the context, bumping its version as a
// write by another instance would.
func (h *Host) SetIntegrationContext(v map[string]any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ctxValue, h.ctxVersion = clone(v), h.ctxVersion+1
}

// LastRun returns the stored fetch-incidents last run.
func (h *Host) LastRun() map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	return clone(h.lastRun)
}

// SetLastRun replaces the stored last run.
func (h *Host) SetLastRun(v map[string]any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.lastRun = clone(v)
}

// LastMirrorRun returns the stored last mirror run.
func (h *Host) LastMirrorRun() map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	return clone(h.lastMirrorRun)
}

// Entries returns the entries written with add_entry, in order.
func (h *Host) Entries() []abi.AddEntryRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.entries)
}

// Incidents returns the incidents stored by successful fetches and by
// create_incidents, in order.
func (h *Host) Incidents() []abi.Incident {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.incidents)
}

// AddUser makes u known to find_user.
func (h *Host) AddUser(u abi.User) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.users = append(h.users, u)
}

// Entitlements returns the recorded handle_entitlement_for_user requests.
func (h *Host) Entitlements() []abi.EntitlementRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.entitlements)
}

// Mirrors returns the recorded mirror_investigation requests.
func (h *Host) Mirrors() []abi.MirrorInvestigationRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.mirrors)
}

// Health returns the last module health set.
func (h *Host) Health() abi.ModuleHealth {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.health
}

// Logs returns the messages logged so far.
func (h *Host) Logs() []LogLine {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.logs)
}

// CacheKeys returns the keys of live cache entries, sorted.
func (h *Host) CacheKeys() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	live := maps.Clone(h.cache)
	maps.DeleteFunc(live, func(_ string, e cacheEntry) bool { return !e.expires.IsZero() && !now.Before(e.expires) })
	return slices.Sorted(maps.Keys(live))
}
