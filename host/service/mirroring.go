package service

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host/mirror"
)

// The service is the mirroring engine's view of the enabled instances.
var _ mirror.Instances = (*Service)(nil)

// SetMirror attaches the mirroring engine: local changes to mirrored
// incidents then wake its outbox, and the mirroring operations below work.
func (s *Service) SetMirror(e *mirror.Engine) {
	s.mu.Lock()
	s.mirror = e
	s.mu.Unlock()
}

func (s *Service) engine() (*mirror.Engine, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mirror == nil {
		return nil, fmt.Errorf("%w: mirroring is not running on this server", ErrConflict)
	}
	return s.mirror, nil
}

// kick tells the engine a local change may have something to send.
func (s *Service) kick() {
	s.mu.Lock()
	e := s.mirror
	s.mu.Unlock()
	if e != nil {
		e.Kick()
	}
}

// Targets returns the enabled instances for the engine.
func (s *Service) Targets(context.Context) []mirror.Target {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]mirror.Target, 0, len(s.live))
	for _, li := range s.live {
		out = append(out, mirror.Target{Instance: li.rec, Manifest: li.plugin.Manifest})
	}
	return out
}

// Target returns the enabled instance called name.
func (s *Service) Target(_ context.Context, name string) (mirror.Target, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, li := range s.live {
		if li.rec.Name == name {
			return mirror.Target{Instance: li.rec, Manifest: li.plugin.Manifest}, true
		}
	}
	return mirror.Target{}, false
}

// Call runs a server command (fetch, mirroring) on an enabled instance.
func (s *Service) Call(ctx context.Context, instance, command string, args any) (json.RawMessage, error) {
	done, err := s.enter()
	if err != nil {
		return nil, err
	}
	defer done()
	li, release, err := s.running(ctx, instance)
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

// RunFetch runs fetch-incidents on an instance for the scheduler.
func (s *Service) RunFetch(ctx context.Context, instance string) error {
	done, err := s.enter()
	if err != nil {
		return err
	}
	defer done()
	li, release, err := s.running(ctx, instance)
	if err != nil {
		return err
	}
	defer release()
	_, err = s.fetch(ctx, li)
	return err
}

// MirrorStats returns an instance's mirroring statistics.
func (s *Service) MirrorStats(ctx context.Context, instance string) (mirror.Stats, error) {
	e, err := s.engine()
	if err != nil {
		return mirror.Stats{}, err
	}
	if _, err := s.st.GetInstanceByName(ctx, instance); err != nil {
		return mirror.Stats{}, fmt.Errorf("instance %q: %w", instance, err)
	}
	return e.Stats(ctx, instance)
}

// SyncRecords returns up to limit sync records of an instance.
func (s *Service) SyncRecords(ctx context.Context, instance string, limit int) ([]mirror.SyncRecord, error) {
	e, err := s.engine()
	if err != nil {
		return nil, err
	}
	if _, err := s.st.GetInstanceByName(ctx, instance); err != nil {
		return nil, fmt.Errorf("instance %q: %w", instance, err)
	}
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	return e.SyncRecords(ctx, instance, limit)
}

// SyncRecord returns one incident's sync record.
func (s *Service) SyncRecord(ctx context.Context, incidentID string) (mirror.SyncRecord, error) {
	e, err := s.engine()
	if err != nil {
		return mirror.SyncRecord{}, err
	}
	return e.SyncRecord(ctx, incidentID)
}

// PurgeClosedMirrors stops mirroring an instance's incidents closed more
// than olderThanDays days ago.
func (s *Service) PurgeClosedMirrors(ctx context.Context, instance string, olderThanDays float64) (int, error) {
	e, err := s.engine()
	if err != nil {
		return 0, err
	}
	if olderThanDays < 0 {
		return 0, fmt.Errorf("%w: olderThan %v: want days ≥ 0", ErrInvalid, olderThanDays)
	}
	if _, err := s.st.GetInstanceByName(ctx, instance); err != nil {
		return 0, fmt.Errorf("instance %q: %w", instance, err)
	}
	return e.PurgeClosed(ctx, instance, time.Duration(olderThanDays*float64(24*time.Hour)))
}

// DebugMirror mirrors one incident now and returns a log of every step.
func (s *Service) DebugMirror(ctx context.Context, incidentID string) ([]string, error) {
	e, err := s.engine()
	if err != nil {
		return nil, err
	}
	return e.Debug(ctx, incidentID)
}

// PushMirror marks a remote incident of an instance as changed, so it is
// mirrored in within a second.
func (s *Service) PushMirror(ctx context.Context, instance, remoteID string) error {
	e, err := s.engine()
	if err != nil {
		return err
	}
	if err := e.Push(ctx, instance, remoteID); err != nil {
		return fmt.Errorf("%w: %w", ErrConflict, err)
	}
	return nil
}

// RunMirrorCycle runs one incoming mirroring cycle of an instance now.
func (s *Service) RunMirrorCycle(ctx context.Context, instance string) (mirror.CycleReport, error) {
	e, err := s.engine()
	if err != nil {
		return mirror.CycleReport{}, err
	}
	rep, err := e.RunIncoming(ctx, instance)
	if err != nil {
		return rep, fmt.Errorf("%w: %w", ErrConflict, err)
	}
	return rep, nil
}

// RemoteSchema runs get-mapping-fields: the remote system's incident types
// and their fields.
func (s *Service) RemoteSchema(ctx context.Context, instance string) (abi.GetMappingFieldsResponse, error) {
	raw, err := s.Call(ctx, instance, abi.CommandGetMappingFields, map[string]any{})
	if err != nil {
		return nil, err
	}
	var out abi.GetMappingFieldsResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		return nil, fmt.Errorf("instance %q command %s: result: %w", instance, abi.CommandGetMappingFields, err)
	}
	return out, nil
}
