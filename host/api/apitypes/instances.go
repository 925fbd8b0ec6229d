package apitypes

import (
	"encoding/json"
	"time"
)

// Settings are an instance's operator settings: XSOAR's instance fields
// (fetching, mirroring) and connhost's sandbox limits. Where the plugin's
// manifest declares one of XSOAR's conventional params (isFetch,
// incidentFetchInterval, mirror_direction, close_incident, close_out,
// comment_tag, work_notes_tag, file_tag), that param drives the host and
// the setting of the same name must be left out or say the same (it is then
// dropped); a different value is a 400 naming both. The settings below
// marked "unless the plugin declares the param" apply only to plugins that
// do not.
type Settings struct {
	// FetchEnabled runs fetch-incidents on schedule, every
	// incidentFetchInterval, when the plugin sets isfetch. Unless the
	// plugin declares the param isFetch.
	FetchEnabled bool `json:"isFetch" jsonschema:"default=false"`
	// FetchIntervalMinutes is the scheduled fetch's interval in minutes; 0
	// means 1. Unless the plugin declares the param incidentFetchInterval.
	FetchIntervalMinutes int `json:"incidentFetchInterval,omitempty" jsonschema:"minimum=0"`
	// MirrorDirection is how the instance mirrors: None, In, Out or Both
	// (XSOAR's None, Incoming, Outgoing, Incoming And Outgoing). Fetched
	// incidents with a dbotMirrorId get it as dbotMirrorDirection. Unless
	// the plugin declares the param mirror_direction.
	MirrorDirection string `json:"mirror_direction,omitempty" jsonschema:"enum=None,enum=In,enum=Out,enum=Both"`
	// CloseIncident lets a dbotIncidentClose entry from the remote close
	// the incident. Unless the plugin declares the param close_incident.
	CloseIncident bool `json:"close_incident,omitempty"`
	// CloseOut sends a local close to the remote (inc_status 2 in
	// update-remote-system). Unless the plugin declares the param
	// close_out.
	CloseOut bool `json:"close_out,omitempty"`
	// CommentTag is an entry tag that selects entries to mirror out, beside
	// each incident's dbotMirrorTags. Unless the plugin declares the param
	// comment_tag.
	CommentTag string `json:"comment_tag,omitempty"`
	// WorkNotesTag is another entry tag that selects entries to mirror
	// out. Unless the plugin declares the param work_notes_tag.
	WorkNotesTag string `json:"work_notes_tag,omitempty"`
	// FileTag is another entry tag that selects entries to mirror out.
	// Unless the plugin declares the param file_tag.
	FileTag string `json:"file_tag,omitempty"`
	// IncidentsFetchQuery is stored and shown for XSOAR compatibility; the
	// host does not read it (a connector that filters its fetch declares
	// its own param).
	IncidentsFetchQuery string `json:"incidents_fetch_query,omitempty"`
	// Egress narrows the hosts the plugin's manifest lets the instance
	// reach: host, host:port or *.domain, each allowing only what the
	// manifest's list also allows; an entry the manifest does not allow at
	// all is refused (400). Unset keeps the manifest's list.
	Egress []string `json:"egress,omitempty"`
	// MemoryMiB caps a sandbox's memory; 0 is the server default.
	MemoryMiB int `json:"memoryMiB,omitempty" jsonschema:"minimum=0,maximum=4096"`
	// CallTimeoutSeconds caps one command; 0 is the server default.
	CallTimeoutSeconds int `json:"callTimeoutSeconds,omitempty" jsonschema:"minimum=0,maximum=3600"`
	// LongRunning runs the plugin's long-running-execution under
	// supervision.
	LongRunning bool `json:"longRunning,omitempty"`
	// ExternalHTTP exposes the instance at /instance/execute/{name}.
	ExternalHTTP bool `json:"externalHTTP,omitempty"`
	// EngineGroup runs the instance's commands on the engines of this
	// group (docs/engines.md); empty runs them on the server. Refused
	// when the server runs without engines.
	EngineGroup string `json:"engine_group,omitempty" jsonschema:"maxLength=63,pattern=^([a-z0-9][a-z0-9_-]*)?$"`
}

// ModuleHealth is what an instance last reported about itself, or why it
// did not start.
type ModuleHealth struct {
	Message string `json:"message"`
	IsError bool   `json:"isError"`
	// Updated is when it was reported; absent before the first report.
	Updated time.Time `json:"updated,omitzero"`
}

// InstanceInput is the body of POST /instances: a new instance.
type InstanceInput struct {
	Name   string `json:"name"`
	Plugin string `json:"plugin"`
	// Version pins a plugin version; absent or "" follows the current one.
	Version *string `json:"version,omitempty"`
	// Enabled starts the instance; a new instance is disabled unless it
	// says true.
	Enabled *bool `json:"enabled,omitempty" jsonschema:"default=false"`
	// Params are parameter values by name, checked against the manifest.
	// XSOAR's conventional params, where the manifest declares them, drive
	// fetching and mirroring (docs/mirroring.md).
	Params map[string]any `json:"params,omitempty"`
	// Settings are what no declared param covers; a setting that
	// conflicts with a declared param is a 400.
	Settings *Settings `json:"settings,omitempty"`
}

// InstancePatch is the body of PATCH /instances/{name}: only the fields
// given change.
type InstancePatch struct {
	// Name, if given, must be the instance's: renaming is not supported.
	Name string `json:"name,omitempty"`
	// Plugin, if given, must be the instance's plugin.
	Plugin string `json:"plugin,omitempty"`
	// Version pins a plugin version; "" follows the current one.
	Version *string `json:"version,omitempty"`
	// Enabled starts or stops the instance.
	Enabled *bool `json:"enabled,omitempty"`
	// Params are merged into the stored ones: a param set to null is
	// removed, a secret left out keeps its value.
	Params map[string]any `json:"params,omitempty"`
	// Settings replace the stored settings; a setting that conflicts with
	// a param the plugin declares is a 400. Left out, settings stored
	// before the conventional params took over move into them (unless
	// this patch sets that param).
	Settings *Settings `json:"settings,omitempty"`
}

// Instance is a connector instance. Secret parameter values are never
// returned.
type Instance struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Plugin string `json:"plugin"`
	// Version is the plugin version the instance runs.
	Version string `json:"version"`
	// PinnedVersion is set when the instance is pinned to a version.
	PinnedVersion string `json:"pinnedVersion,omitempty"`
	Enabled       bool   `json:"enabled"`
	// Params are the non-secret parameter values.
	Params map[string]any `json:"params"`
	// SecretsSet names the secret params that have a value.
	SecretsSet []string     `json:"secretsSet,omitempty"`
	Settings   Settings     `json:"settings"`
	Health     ModuleHealth `json:"health"`
	Created    time.Time    `json:"created"`
	Modified   time.Time    `json:"modified"`
}

// InstanceList is every instance.
type InstanceList struct {
	Instances []Instance `json:"instances"`
}

// ExecuteRequest runs one command on an instance: the war room's !command.
type ExecuteRequest struct {
	Command string `json:"command" jsonschema:"minLength=1"`
	// Args are the command's arguments (string values, as XSOAR), checked
	// against the arguments the manifest declares.
	Args map[string]any `json:"args,omitempty"`
	// IncidentID writes the result (or the error) as an entry of this
	// incident.
	IncidentID string `json:"incidentId,omitempty"`
}

// ExecuteResult is a command's result and, with an incident, its entry.
type ExecuteResult struct {
	// Result is the command's result: any JSON, conventionally
	// CommandResults (a FetchSummary for fetch-incidents). Absent when the
	// command returned nothing (or null).
	Result json.RawMessage `json:"result,omitempty"`
	// EntryID is the war-room entry that recorded the result.
	EntryID string `json:"entryId,omitempty"`
}

// FetchResult is the answer of POST /instances/{name}/fetch.
type FetchResult struct {
	Result FetchSummary `json:"result"`
}

// FetchSummary is what a fetch-incidents run stored.
type FetchSummary struct {
	// Created are the ids of the incidents it created.
	Created []string `json:"created"`
	// Fetched counts the incidents the plugin returned, new or not.
	Fetched int `json:"fetched"`
}

// TestResult is the answer of a passed test-module.
type TestResult struct {
	OK bool `json:"ok"`
}

// Context is an instance's integration context and its version.
type Context struct {
	Context map[string]any `json:"context"`
	// Version is the stored version (0 before the first write); in a PUT's
	// answer, the new version.
	Version int64 `json:"version"`
}

// ContextInput is the body of PUT /instances/{name}/context.
type ContextInput struct {
	// Context replaces the stored context; absent clears it.
	Context map[string]any `json:"context,omitempty"`
	// Version is the version read, or -1 to write unconditionally; a stale
	// version is 409.
	Version *int64 `json:"version" jsonschema:"minimum=-1"`
}

// LongRunningStatus is the supervision state of an instance's
// long-running-execution.
type LongRunningStatus struct {
	// Supervised is false when the instance runs no long-running
	// execution.
	Supervised bool `json:"supervised"`
	// Running is true while a run is in progress.
	Running bool `json:"running"`
	// Restarts counts restarts since the execution started.
	Restarts int `json:"restarts"`
	// LastError says why the last run ended; "" if none ended.
	LastError string `json:"lastError"`
	// Started is the start of the current or last run; absent before one.
	Started time.Time    `json:"started,omitzero"`
	Health  ModuleHealth `json:"health"`
}
