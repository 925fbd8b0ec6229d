package sdk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/abi/jsonwire"
)

// Host is a handler's access to the connector instance it serves and to the
// connhost_v1 host functions. Errors from host functions are *abi.Error
// values wrapped with the function name; test them with errors.Is against
// ErrConflict, ErrDenied, ErrUnavailable or an &abi.Error{Kind: ...}.
type Host struct {
	imp           Imports
	inst          abi.InstanceInfo
	pluginVersion string
	params        Params
	limits        abi.Limits

	req []byte // reused request encoding buffer
}

// Params returns the instance parameters.
func (h *Host) Params() Params { return h.params }

// Instance returns the identity of the connector instance.
func (h *Host) Instance() abi.InstanceInfo { return h.inst }

// PluginVersion returns the plugin version the host loaded.
func (h *Host) PluginVersion() string { return h.pluginVersion }

// Limits returns the sandbox limits the instance runs with (memory, call
// deadline, output and log sizes, ...), so a command can size its work to
// them, e.g. page a fetch to stay well inside the deadline.
func (h *Host) Limits() abi.Limits { return h.limits }

func (h *Host) logf(level int32, format string, args []any) {
	h.imp.Log(level, fmt.Appendf(nil, format, args...))
}

// Debugf logs at debug level. Never log secret parameters or tokens.
func (h *Host) Debugf(format string, args ...any) { h.logf(abi.LogDebug, format, args) }

// Infof logs at info level.
func (h *Host) Infof(format string, args ...any) { h.logf(abi.LogInfo, format, args) }

// Warnf logs at warn level.
func (h *Host) Warnf(format string, args ...any) { h.logf(abi.LogWarn, format, args) }

// Errorf logs at error level. It does not make an error: see sdk.Errorf.
func (h *Host) Errorf(format string, args ...any) { h.logf(abi.LogError, format, args) }

// Sleep waits for d on the host. It returns true after the full time and
// false when the host asked the guest to stop or ctx is done. A sleep that
// reaches the call's deadline does not return: the call fails with timeout.
// Prefer it to time.Sleep, which a stop request does not interrupt. A
// negative d sleeps not at all (the host refuses a negative sleep).
func (h *Host) Sleep(ctx context.Context, d time.Duration) bool {
	if ctx.Err() != nil {
		return false
	}
	return h.imp.Sleep(ctx, max(d, 0).Milliseconds()) == abi.SleepCompleted
}

// ShouldStop reports whether the host wants the current call (typically a
// long-running execution) to return soon.
func (h *Host) ShouldStop() bool { return h.imp.ShouldStop() }

// rpc encodes req, calls the host function fn and decodes its result into
// out (which may be nil).
func (h *Host) rpc(ctx context.Context, fn string, req, out any) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("connhost %s: %w", fn, err)
	}
	b, err := h.encode(req)
	if err != nil {
		return fmt.Errorf("connhost %s: encode request: %w", fn, err)
	}
	env, err := abi.DecodeEnvelope(h.imp.RPC(ctx, fn, b))
	if err != nil {
		return fmt.Errorf("connhost %s: %w", fn, err)
	}
	if env.Error != nil {
		return fmt.Errorf("connhost %s: %w", fn, env.Error)
	}
	if out == nil || len(env.Result) == 0 {
		return nil
	}
	if d, ok := out.(interface{ DecodeJSON([]byte) error }); ok {
		err = d.DecodeJSON(env.Result)
	} else {
		err = json.Unmarshal(env.Result, out)
	}
	if err != nil {
		return fmt.Errorf("connhost %s: decode result: %w", fn, err)
	}
	return nil
}

var emptyObject = []byte("{}")

// encode marshals an RPC request into a reused buffer; the host copies it
// before the host function returns. The abi request types encode by hand.
func (h *Host) encode(v any) ([]byte, error) {
	if v == nil {
		return emptyObject, nil
	}
	if cap(h.req) > retainLimit {
		h.req = nil
	}
	var (
		b   []byte
		err error
	)
	if a, ok := v.(interface {
		AppendJSON([]byte, bool) ([]byte, error)
	}); ok {
		b, err = a.AppendJSON(h.req[:0], false)
	} else {
		b, err = jsonwire.AppendValue(h.req[:0], v, false)
	}
	if err != nil {
		return nil, err
	}
	h.req = b
	return b, nil
}

// IntegrationContext returns the instance's integration context and its
// version, to pass back to SetIntegrationContext.
func (h *Host) IntegrationContext(ctx context.Context) (map[string]any, int64, error) {
	var r abi.ContextGetResult
	if err := h.rpc(ctx, abi.ImportIntegrationContextGet, nil, &r); err != nil {
		return nil, 0, err
	}
	if r.Context == nil {
		r.Context = map[string]any{}
	}
	return r.Context, r.Version, nil
}

// SetIntegrationContext replaces the context if its stored version is still
// version (-1 writes unconditionally) and returns the new version. When
// another writer got there first the error satisfies errors.Is(err,
// ErrConflict) and nothing changed.
func (h *Host) SetIntegrationContext(ctx context.Context, value map[string]any, version int64) (int64, error) {
	var r abi.ContextGetResult
	if err := h.rpc(ctx, abi.ImportIntegrationContextSet, &abi.ContextSetRequest{Context: value, Version: version}, &r); err != nil {
		return 0, err
	}
	return r.Version, nil
}

// updateAttempts bounds UpdateIntegrationContext's retries on conflict.
const updateAttempts = 5

// UpdateIntegrationContext reads the context, lets fn change it in place and
// writes it back with the version read, retrying from a fresh read when
// another writer raced it (XSOAR set_to_integration_context_with_retries).
// fn may run several times and must not have other side effects.
func (h *Host) UpdateIntegrationContext(ctx context.Context, fn func(map[string]any) error) error {
	for range updateAttempts {
		v, ver, err := h.IntegrationContext(ctx)
		if err != nil {
			return err
		}
		if err := fn(v); err != nil {
			return err
		}
		_, err = h.SetIntegrationContext(ctx, v, ver)
		if !errors.Is(err, ErrConflict) {
			return err
		}
	}
	return fmt.Errorf("update integration context: still conflicting after %d attempts: %w", updateAttempts, ErrConflict)
}

// CacheGet reads a cache entry into v and reports whether it was found
// (expired entries are not).
func (h *Host) CacheGet(ctx context.Context, key string, v any) (bool, error) {
	var r abi.CacheGetResult
	if err := h.rpc(ctx, abi.ImportCacheGet, abi.CacheGetRequest{Key: key}, &r); err != nil {
		return false, err
	}
	if !r.Found {
		return false, nil
	}
	if err := json.Unmarshal(r.Value, v); err != nil {
		return false, fmt.Errorf("cache %q: decode value: %w", key, err)
	}
	return true, nil
}

// CacheSet stores v as JSON under key; ttl ≤ 0 keeps it until deleted.
func (h *Host) CacheSet(ctx context.Context, key string, v any, ttl time.Duration) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("cache %q: encode value: %w", key, err)
	}
	return h.rpc(ctx, abi.ImportCacheSet, &abi.CacheSetRequest{Key: key, Value: raw, TTLSeconds: ttl.Seconds()}, nil)
}

// CacheDelete removes a cache entry; a missing key is no error.
func (h *Host) CacheDelete(ctx context.Context, key string) error {
	return h.rpc(ctx, abi.ImportCacheDelete, abi.CacheDeleteRequest{Key: key}, nil)
}

// LastRun returns the stored fetch-incidents last run (empty if none).
func (h *Host) LastRun(ctx context.Context) (map[string]any, error) {
	return h.runGet(ctx, abi.ImportLastRunGet)
}

// SetLastRun stores the fetch-incidents last run. During fetch-incidents the
// host keeps it only if the fetch succeeds.
func (h *Host) SetLastRun(ctx context.Context, v map[string]any) error {
	return h.rpc(ctx, abi.ImportLastRunSet, &abi.RunValue{Value: v}, nil)
}

// LastMirrorRun returns the stored last mirror run (empty if none).
func (h *Host) LastMirrorRun(ctx context.Context) (map[string]any, error) {
	return h.runGet(ctx, abi.ImportLastMirrorRunGet)
}

// SetLastMirrorRun stores the last mirror run.
func (h *Host) SetLastMirrorRun(ctx context.Context, v map[string]any) error {
	return h.rpc(ctx, abi.ImportLastMirrorRunSet, &abi.RunValue{Value: v}, nil)
}

func (h *Host) runGet(ctx context.Context, fn string) (map[string]any, error) {
	var r abi.RunValue
	if err := h.rpc(ctx, fn, nil, &r); err != nil {
		return nil, err
	}
	if r.Value == nil {
		r.Value = map[string]any{}
	}
	return r.Value, nil
}

// AddEntry writes a war-room entry to an incident and returns its id.
func (h *Host) AddEntry(ctx context.Context, req abi.AddEntryRequest) (string, error) {
	var r abi.AddEntryResult
	err := h.rpc(ctx, abi.ImportAddEntry, &req, &r)
	return r.ID, err
}

// CreateIncidents creates incidents outside fetch-incidents (long-running
// connectors) and returns their ids in order.
func (h *Host) CreateIncidents(ctx context.Context, req abi.CreateIncidentsRequest) ([]string, error) {
	var r abi.CreateIncidentsResult
	err := h.rpc(ctx, abi.ImportCreateIncidents, &req, &r)
	return r.IDs, err
}

// FindUser returns the user with the username or email, or nil.
func (h *Host) FindUser(ctx context.Context, req abi.FindUserRequest) (*abi.User, error) {
	var u *abi.User
	err := h.rpc(ctx, abi.ImportFindUser, req, &u)
	return u, err
}

// HandleEntitlementForUser records a user's answer to a pending question.
func (h *Host) HandleEntitlementForUser(ctx context.Context, req abi.EntitlementRequest) error {
	return h.rpc(ctx, abi.ImportHandleEntitlementForUser, req, nil)
}

// UpdateModuleHealth sets the instance's health; an empty message with
// isError false clears it.
func (h *Host) UpdateModuleHealth(ctx context.Context, message string, isError bool) error {
	return h.rpc(ctx, abi.ImportUpdateModuleHealth, abi.ModuleHealth{Message: message, IsError: isError}, nil)
}

// MirrorInvestigation records that an incident is mirrored to a chat
// channel.
func (h *Host) MirrorInvestigation(ctx context.Context, req abi.MirrorInvestigationRequest) error {
	return h.rpc(ctx, abi.ImportMirrorInvestigation, req, nil)
}

// DirectMessage hands a user's free text to the host and returns its reply.
func (h *Host) DirectMessage(ctx context.Context, req abi.DirectMessageRequest) (string, error) {
	var r abi.DirectMessageResult
	err := h.rpc(ctx, abi.ImportDirectMessage, req, &r)
	return r.Reply, err
}
