package api

import (
	"bytes"
	"encoding/json"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host/api/apitypes"
	"github.com/connhost/connhost/internal/mirror"
	"github.com/connhost/connhost/internal/service"
	"github.com/connhost/connhost/internal/store"
)

// The functions below map the service's and store's types to the API's
// (apitypes) and back, field by field, so that neither a storage field nor
// a storage name reaches a response by accident. Lists and maps that the
// API always sends are never nil: the document has no nulls.

// orEmpty returns s, or an empty slice for nil, for lists the API always
// sends.
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// mapSlice maps every element of in with f; nil stays nil.
func mapSlice[S, T any](in []S, f func(S) T) []T {
	if in == nil {
		return nil
	}
	out := make([]T, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}

func pluginOut(p service.PluginInfo) apitypes.PluginInfo {
	return apitypes.PluginInfo{Name: p.Name, Version: p.Version, SHA256: p.SHA256, InstalledAt: p.InstalledAt,
		InstalledBy: p.InstalledBy, Manifest: p.Manifest, Current: p.Current, Signature: p.Signature, SignedBy: p.SignedBy}
}

func installOut(r service.InstallResult) apitypes.InstallResult {
	return apitypes.InstallResult{PluginInfo: pluginOut(r.PluginInfo), Created: r.Created, Switched: orEmpty(r.Switched),
		Signed: r.Signed, KeyID: r.KeyID, Warning: r.Warning}
}

func switchOut(r service.SwitchResult) apitypes.SwitchResult {
	return apitypes.SwitchResult{PluginInfo: pluginOut(r.PluginInfo), Switched: orEmpty(r.Switched)}
}

func settingsOut(s store.Settings) apitypes.Settings {
	return apitypes.Settings{FetchEnabled: s.FetchEnabled, FetchIntervalMinutes: s.FetchIntervalMinutes,
		MirrorDirection: s.MirrorDirection, CloseIncident: s.CloseIncident, CloseOut: s.CloseOut,
		CommentTag: s.CommentTag, WorkNotesTag: s.WorkNotesTag, FileTag: s.FileTag,
		IncidentsFetchQuery: s.IncidentsFetchQuery, Egress: s.Egress, MemoryMiB: s.MemoryMiB,
		CallTimeoutSeconds: s.CallTimeoutSeconds, LongRunning: s.LongRunning, ExternalHTTP: s.ExternalHTTP,
		EngineGroup: s.EngineGroup}
}

func settingsIn(s apitypes.Settings) store.Settings {
	return store.Settings{FetchEnabled: s.FetchEnabled, FetchIntervalMinutes: s.FetchIntervalMinutes,
		MirrorDirection: s.MirrorDirection, CloseIncident: s.CloseIncident, CloseOut: s.CloseOut,
		CommentTag: s.CommentTag, WorkNotesTag: s.WorkNotesTag, FileTag: s.FileTag,
		IncidentsFetchQuery: s.IncidentsFetchQuery, Egress: s.Egress, MemoryMiB: s.MemoryMiB,
		CallTimeoutSeconds: s.CallTimeoutSeconds, LongRunning: s.LongRunning, ExternalHTTP: s.ExternalHTTP,
		EngineGroup: s.EngineGroup}
}

func healthOut(h store.ModuleHealth) apitypes.ModuleHealth {
	return apitypes.ModuleHealth{Message: h.Message, IsError: h.IsError, Updated: h.Updated}
}

func instanceIn(in apitypes.InstanceInput) service.InstanceInput {
	return instancePatchIn(apitypes.InstancePatch(in))
}

func instancePatchIn(in apitypes.InstancePatch) service.InstanceInput {
	out := service.InstanceInput{Name: in.Name, Plugin: in.Plugin, Version: in.Version, Enabled: in.Enabled, Params: in.Params}
	if in.Settings != nil {
		st := settingsIn(*in.Settings)
		out.Settings = &st
	}
	return out
}

func instanceOut(v service.InstanceView) apitypes.Instance {
	params := v.Params
	if params == nil {
		params = map[string]any{}
	}
	return apitypes.Instance{ID: v.ID, Name: v.Name, Plugin: v.Plugin, Version: v.Version, PinnedVersion: v.PinnedVersion,
		Enabled: v.Enabled, Params: params, SecretsSet: v.SecretsSet, Settings: settingsOut(v.Settings),
		Health: healthOut(v.Health), Created: v.Created, Modified: v.Modified}
}

func longRunningOut(s service.LongRunningStatus) apitypes.LongRunningStatus {
	return apitypes.LongRunningStatus{Supervised: s.Supervised, Running: s.Running, Restarts: s.Restarts,
		LastError: s.LastError, Started: s.Started, Health: healthOut(s.Health)}
}

// resultOut leaves out a command result of null, as every absent value.
func resultOut(r json.RawMessage) json.RawMessage {
	if bytes.Equal(bytes.TrimSpace(r), []byte("null")) {
		return nil
	}
	return r
}

func fetchOut(s service.FetchSummary) apitypes.FetchResult {
	return apitypes.FetchResult{Result: apitypes.FetchSummary{Created: orEmpty(s.Created), Fetched: s.Fetched}}
}

func labelsIn(ls []apitypes.Label) []abi.Label {
	return mapSlice(ls, func(l apitypes.Label) abi.Label { return abi.Label{Type: l.Type, Value: l.Value} })
}

func incidentIn(in apitypes.IncidentInput) service.IncidentInput {
	out := service.IncidentInput{Name: in.Name, Type: in.Type, Severity: in.Severity, Owner: in.Owner, Details: in.Details,
		Occurred: in.Occurred, RawJSON: in.RawJSON, CustomFields: in.CustomFields}
	if in.Labels != nil {
		ls := orEmpty(labelsIn(*in.Labels))
		out.Labels = &ls
	}
	return out
}

func incidentOut(i store.Incident) apitypes.Incident {
	return apitypes.Incident{ID: i.ID, Name: i.Name, Type: i.Type, Severity: i.Severity, Status: i.Status,
		Occurred: i.Occurred, Created: i.Created, Modified: i.Modified, Owner: i.Owner,
		Labels:  mapSlice(i.Labels, func(l abi.Label) apitypes.Label { return apitypes.Label{Type: l.Type, Value: l.Value} }),
		Details: i.Details, RawJSON: i.RawJSON, CustomFields: i.CustomFields, CloseReason: i.CloseReason,
		CloseNotes: i.CloseNotes, Closed: i.Closed, SourceInstance: i.Instance, SourceID: i.SourceID,
		DbotMirrorID: i.DbotMirrorID, DbotMirrorDirection: i.DbotMirrorDirection, DbotMirrorInstance: i.DbotMirrorInstance,
		DbotMirrorTags: i.DbotMirrorTags, DbotDirtyFields: i.DbotDirtyFields, DbotCurrentDirtyFields: i.DbotCurrentDirtyFields,
		DbotMirrorLastSync: i.DbotMirrorLastSync, Version: i.Version}
}

func entryIn(in apitypes.EntryInput) service.EntryInput {
	return service.EntryInput{Type: in.Type, Contents: in.Contents, Format: in.Format, Tags: in.Tags, Note: in.Note, User: in.User}
}

func entryOut(e store.Entry) apitypes.Entry {
	return apitypes.Entry{ID: e.ID, IncidentID: e.IncidentID, Type: e.Type, Contents: e.Contents, Format: e.Format,
		Tags: e.Tags, Note: e.Note, User: e.User, Created: e.Created, Origin: e.Origin, ExternalID: e.ExternalID, Footer: e.Footer}
}

func userIn(in apitypes.UserInput) service.UserInput {
	return service.UserInput{Username: in.Username, Email: in.Email, Name: in.Name, Roles: in.Roles}
}

func userOut(u store.User) apitypes.User {
	return apitypes.User{ID: u.ID, Username: u.Username, Email: u.Email, Name: u.Name, Roles: u.Roles, Created: u.Created}
}

func mirrorStatsOut(s mirror.Stats) apitypes.MirrorStats {
	out := apitypes.MirrorStats{Instance: s.Instance, Mirrored: s.Mirrored, ClosedRecords: s.Closed, PurgedRecords: s.Purged,
		Cycles: s.Cycles, RateLimited: s.RateLimited, SkipUpdate: s.SkipUpdate, Errors: s.Errors, LastRun: s.LastRun,
		LastDuration: int64(s.LastDuration), LastError: s.LastError, OutboxPending: s.OutboxPending}
	if s.LastReport != nil {
		r := cycleOut(*s.LastReport)
		out.LastReport = &r
	}
	return out
}

func cycleOut(r mirror.CycleReport) apitypes.CycleReport {
	return apitypes.CycleReport{Instance: r.Instance, Mode: r.Mode, Candidates: r.Candidate, Synced: r.Synced,
		Skipped: r.Skipped, Failed: r.Failed, Entries: r.Entries, StoppedBy: r.Stopped, Pending: r.Pending,
		Duration: int64(r.Duration)}
}

func syncRecordOut(r mirror.SyncRecord) apitypes.SyncRecord {
	out := apitypes.SyncRecord{IncidentID: r.IncidentID, Instance: r.Instance, RemoteID: r.RemoteID, Direction: r.Direction,
		Status: r.Status, LastSync: r.LastSync, DirtyFields: r.DirtyFields, Purged: r.Purged}
	if o := r.Outgoing; o != nil {
		out.Outgoing = &apitypes.MirrorOut{Pending: o.Pending, EntryCursor: o.EntryCursor, Attempts: o.Attempts,
			NextAttempt: o.NextAttempt, LastError: o.LastError, LastPush: o.LastPush}
	}
	return out
}
