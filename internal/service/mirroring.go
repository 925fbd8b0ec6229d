package service

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/mirror"
)

// Mirroring is the mirroring engine's view of the enabled instances
// (mirror.Instances) and the operations on the engine: statistics, sync
// records, purges, pushes, cycles and debug runs on demand. Until an
// engine is attached (SetEngine) the operations are ErrConflict.
type Mirroring struct {
	c    *core
	cmds *Commands
}

var _ mirror.Instances = (*Mirroring)(nil)

// SetEngine attaches the mirroring engine: local changes to mirrored
// incidents then wake its outbox, and the operations below work.
func (ms *Mirroring) SetEngine(e *mirror.Engine) { ms.c.engine.Store(e) }

func (ms *Mirroring) engine() (*mirror.Engine, error) {
	e := ms.c.engine.Load()
	if e == nil {
		return nil, fmt.Errorf("%w: mirroring is not running on this server", ErrConflict)
	}
	return e, nil
}

// Targets returns the enabled instances for the engine.
func (ms *Mirroring) Targets(context.Context) []mirror.Target {
	c := ms.c
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]mirror.Target, 0, len(c.live))
	for _, li := range c.live {
		out = append(out, mirror.Target{Instance: li.rec, Manifest: li.plugin.Manifest})
	}
	return out
}

// Target returns the enabled instance called name.
func (ms *Mirroring) Target(_ context.Context, name string) (mirror.Target, bool) {
	c := ms.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, li := range c.live {
		if li.rec.Name == name {
			return mirror.Target{Instance: li.rec, Manifest: li.plugin.Manifest}, true
		}
	}
	return mirror.Target{}, false
}

// Call runs a mirroring command on an enabled instance for the engine,
// without the argument checks of Commands.Execute. update-remote-system
// counts as outgoing mirroring, anything else as incoming.
func (ms *Mirroring) Call(ctx context.Context, instance, command string, args any) (json.RawMessage, error) {
	trigger := TriggerMirrorIn
	if command == abi.CommandUpdateRemoteSystem {
		trigger = TriggerMirrorOut
	}
	return ms.call(ctx, instance, command, trigger, args)
}

func (ms *Mirroring) call(ctx context.Context, instance, command, trigger string, args any) (_ json.RawMessage, err error) {
	defer func(start time.Time) { ms.c.observe(knownName(instance, err), command, trigger, start, err) }(time.Now())
	done, err := ms.c.enter()
	if err != nil {
		return nil, err
	}
	defer done()
	li, release, err := ms.c.running(ctx, instance)
	if err != nil {
		return nil, err
	}
	defer release()
	raw, err := json.Marshal(args)
	if err != nil {
		return nil, fmt.Errorf("instance %q command %s: args: %w", instance, command, err)
	}
	return li.inst.Execute(ctx, command, raw)
}

// RunFetch runs fetch-incidents on an enabled instance for the scheduler,
// as Commands.Fetch does.
func (ms *Mirroring) RunFetch(ctx context.Context, instance string) (err error) {
	defer func(start time.Time) { ms.c.observe(instance, abi.CommandFetchIncidents, TriggerFetch, start, err) }(time.Now())
	done, err := ms.c.enter()
	if err != nil {
		return err
	}
	defer done()
	li, release, err := ms.c.running(ctx, instance)
	if err != nil {
		return err
	}
	defer release()
	_, err = ms.cmds.fetch(ctx, li)
	return fromStore(err)
}

// Stats returns an instance's mirroring statistics.
func (ms *Mirroring) Stats(ctx context.Context, instance string) (mirror.Stats, error) {
	e, err := ms.engine()
	if err != nil {
		return mirror.Stats{}, err
	}
	if _, err := ms.c.st.GetInstanceByName(ctx, instance); err != nil {
		return mirror.Stats{}, fmt.Errorf("instance %q: %w", instance, fromStore(err))
	}
	st, err := e.Stats(ctx, instance)
	return st, fromStore(err)
}

// SyncRecords returns up to limit (1 to 1000; otherwise 1000) sync records
// of an instance.
func (ms *Mirroring) SyncRecords(ctx context.Context, instance string, limit int) ([]mirror.SyncRecord, error) {
	e, err := ms.engine()
	if err != nil {
		return nil, err
	}
	if _, err := ms.c.st.GetInstanceByName(ctx, instance); err != nil {
		return nil, fmt.Errorf("instance %q: %w", instance, fromStore(err))
	}
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	recs, err := e.SyncRecords(ctx, instance, limit)
	return recs, fromStore(err)
}

// SyncRecord returns one incident's sync record; an incident that is
// unknown or not mirrored is ErrNotFound.
func (ms *Mirroring) SyncRecord(ctx context.Context, incidentID string) (mirror.SyncRecord, error) {
	e, err := ms.engine()
	if err != nil {
		return mirror.SyncRecord{}, err
	}
	rec, err := e.SyncRecord(ctx, incidentID)
	return rec, fromStore(err)
}

// PurgeClosed stops mirroring an instance's incidents closed more than
// olderThanDays days ago, and returns how many it purged.
func (ms *Mirroring) PurgeClosed(ctx context.Context, instance string, olderThanDays float64) (int, error) {
	e, err := ms.engine()
	if err != nil {
		return 0, err
	}
	if olderThanDays < 0 {
		return 0, fmt.Errorf("%w: olderThan %v: want days ≥ 0", ErrInvalid, olderThanDays)
	}
	if _, err := ms.c.st.GetInstanceByName(ctx, instance); err != nil {
		return 0, fmt.Errorf("instance %q: %w", instance, fromStore(err))
	}
	n, err := e.PurgeClosed(ctx, instance, time.Duration(olderThanDays*float64(24*time.Hour)))
	return n, fromStore(err)
}

// Debug mirrors one incident now and returns a log of every step.
func (ms *Mirroring) Debug(ctx context.Context, incidentID string) ([]string, error) {
	e, err := ms.engine()
	if err != nil {
		return nil, err
	}
	steps, err := e.Debug(ctx, incidentID)
	return steps, fromStore(err)
}

// Push marks a remote incident of an instance as changed, so it is
// mirrored in within a second. An instance that does not mirror incoming,
// or a full queue, is ErrConflict.
func (ms *Mirroring) Push(ctx context.Context, instance, remoteID string) error {
	e, err := ms.engine()
	if err != nil {
		return err
	}
	if err := e.Push(ctx, instance, remoteID); err != nil {
		return fmt.Errorf("%w: %w", ErrConflict, fromStore(err))
	}
	return nil
}

// RunCycle runs one incoming mirroring cycle of an instance now. An
// unknown instance is ErrNotFound; one that does not mirror incoming, or
// one with a cycle running, is ErrConflict.
func (ms *Mirroring) RunCycle(ctx context.Context, instance string) (mirror.CycleReport, error) {
	e, err := ms.engine()
	if err != nil {
		return mirror.CycleReport{}, err
	}
	if _, err := ms.c.st.GetInstanceByName(ctx, instance); err != nil {
		return mirror.CycleReport{}, fmt.Errorf("instance %q: %w", instance, fromStore(err))
	}
	rep, err := e.RunIncoming(ctx, instance)
	if err != nil {
		return rep, fmt.Errorf("%w: %w", ErrConflict, fromStore(err))
	}
	return rep, nil
}

// RemoteSchema runs get-mapping-fields: the remote system's incident types
// and their fields.
func (ms *Mirroring) RemoteSchema(ctx context.Context, instance string) (abi.GetMappingFieldsResponse, error) {
	raw, err := ms.call(ctx, instance, abi.CommandGetMappingFields, TriggerAPI, map[string]any{})
	if err != nil {
		return nil, err
	}
	var out abi.GetMappingFieldsResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("instance %q command %s: result: %w", instance, abi.CommandGetMappingFields, err)
	}
	return out, nil
}
