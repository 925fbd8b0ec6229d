package abi

import "encoding/json"

// IncidentStatus is XSOAR's incident status.
type IncidentStatus int

// Incident statuses.
const (
	StatusPending IncidentStatus = 0
	StatusActive  IncidentStatus = 1
	StatusDone    IncidentStatus = 2
	StatusArchive IncidentStatus = 3
)

// Incident severities (XSOAR IncidentSeverity).
const (
	SeverityUnknown  = 0
	SeverityInfo     = 0.5
	SeverityLow      = 1
	SeverityMedium   = 2
	SeverityHigh     = 3
	SeverityCritical = 4
)

// EntryType is XSOAR's war-room entry type.
type EntryType int

// Entry types.
const (
	EntryNote            EntryType = 1
	EntryFile            EntryType = 3
	EntryError           EntryType = 4
	EntryImage           EntryType = 7
	EntryInfoFile        EntryType = 9
	EntryVideoFile       EntryType = 10
	EntryWarning         EntryType = 11
	EntryStaticVideoFile EntryType = 12
)

// Entry content formats.
const (
	FormatText     = "text"
	FormatJSON     = "json"
	FormatMarkdown = "markdown"
	FormatHTML     = "html"
)

// Mirror directions as stored on an incident's dbotMirrorDirection.
const (
	MirrorNone = "None"
	MirrorIn   = "In"
	MirrorOut  = "Out"
	MirrorBoth = "Both"
)

// Keys of the special Contents of close and reopen entries.
const (
	KeyIncidentClose  = "dbotIncidentClose"
	KeyCloseReason    = "closeReason"
	KeyCloseNotes     = "closeNotes"
	KeyIncidentReopen = "dbotIncidentReopen"
)

// Label is an incident label.
type Label struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// Incident is an incident as a connector hands it to the host, from
// fetch-incidents or createIncidents. Field names are XSOAR's.
type Incident struct {
	Name                string         `json:"name"`
	Type                string         `json:"type,omitempty"`
	Severity            float64        `json:"severity,omitempty"`
	Occurred            string         `json:"occurred,omitempty"` // RFC 3339
	Details             string         `json:"details,omitempty"`
	Owner               string         `json:"owner,omitempty"`
	Labels              []Label        `json:"labels,omitempty"`
	RawJSON             string         `json:"rawJSON,omitempty"`
	CustomFields        map[string]any `json:"CustomFields,omitempty"`
	DbotMirrorID        string         `json:"dbotMirrorId,omitempty"`
	DbotMirrorDirection string         `json:"dbotMirrorDirection,omitempty"`
	DbotMirrorTags      []string       `json:"dbotMirrorTags,omitempty"`
}

// Entry is a war-room entry produced by a connector (get-remote-data,
// add_entry). Names are XSOAR's capitalised result-entry keys.
type Entry struct {
	// ID is the remote system's id of the entry, if it has one. The host adds
	// an entry with a given ID to an incident at most once, so a re-delivered
	// entry is not duplicated; without an ID the host derives one from the
	// entry's type, format, tags and contents.
	ID             string         `json:"ID,omitempty"`
	Type           EntryType      `json:"Type"`
	Contents       any            `json:"Contents"`
	ContentsFormat string         `json:"ContentsFormat,omitempty"`
	Tags           []string       `json:"Tags,omitempty"`
	Note           bool           `json:"Note,omitempty"`
	EntryContext   map[string]any `json:"EntryContext,omitempty"`
}

// CloseEntry returns the entry that closes a mirrored incident.
func CloseEntry(reason, notes string) Entry {
	return Entry{Type: EntryNote, ContentsFormat: FormatJSON, Contents: map[string]any{
		KeyIncidentClose: true, KeyCloseReason: reason, KeyCloseNotes: notes,
	}}
}

// ReopenEntry returns the entry that reopens a mirrored incident.
func ReopenEntry() Entry {
	return Entry{Type: EntryNote, ContentsFormat: FormatJSON, Contents: map[string]any{KeyIncidentReopen: true}}
}

// ServerEntry is a war-room entry as the host hands it to a connector
// (update-remote-system). Names are XSOAR's lower-case server entry keys.
type ServerEntry struct {
	ID       string    `json:"id"`
	Type     EntryType `json:"type"`
	Contents any       `json:"contents"`
	Format   string    `json:"format,omitempty"`
	Tags     []string  `json:"tags,omitempty"`
	User     string    `json:"user,omitempty"`
	Note     bool      `json:"note,omitempty"`
	Date     string    `json:"date,omitempty"` // RFC 3339
}

// FetchIncidentsArgs are the arguments of fetch-incidents.
type FetchIncidentsArgs struct {
	LastRun map[string]any `json:"last_run"`
}

// FetchIncidentsResult is the result of fetch-incidents. The host stores the
// incidents and LastRun atomically; a failed fetch stores neither.
type FetchIncidentsResult struct {
	Incidents []Incident     `json:"incidents"`
	LastRun   map[string]any `json:"last_run,omitempty"`
}

// GetRemoteDataArgs are the arguments of get-remote-data.
type GetRemoteDataArgs struct {
	RemoteIncidentID string `json:"remote_incident_id"`
	LastUpdate       string `json:"last_update"`
}

// GetRemoteDataResponse is the result of get-remote-data. Unlike XSOAR, an
// empty or null MirroredObject does not drop Entries.
type GetRemoteDataResponse struct {
	MirroredObject map[string]any `json:"mirrored_object"`
	Entries        []Entry        `json:"entries"`
}

// GetModifiedRemoteDataArgs are the arguments of get-modified-remote-data.
type GetModifiedRemoteDataArgs struct {
	LastUpdate string `json:"last_update"`
}

// GetModifiedRemoteDataResponse is the result of get-modified-remote-data.
type GetModifiedRemoteDataResponse struct {
	ModifiedIncidentIDs []string `json:"modified_incident_ids"`
}

// UpdateRemoteSystemArgs are the arguments of update-remote-system. Its
// result is the remote incident id as a JSON string.
type UpdateRemoteSystemArgs struct {
	Data             map[string]any `json:"data"`
	Entries          []ServerEntry  `json:"entries"`
	IncidentChanged  bool           `json:"incident_changed"`
	RemoteIncidentID string         `json:"remote_incident_id"`
	IncStatus        IncidentStatus `json:"inc_status"`
	Delta            map[string]any `json:"delta"`
}

// GetMappingFieldsResponse is the result of get-mapping-fields: incident type
// name → field name → description.
type GetMappingFieldsResponse map[string]map[string]string

// CommandResults is the conventional result of a custom command, after
// XSOAR's CommandResults. A command may return any JSON instead.
type CommandResults struct {
	ReadableOutput  string `json:"readable_output,omitempty"`
	OutputsPrefix   string `json:"outputs_prefix,omitempty"`
	OutputsKeyField string `json:"outputs_key_field,omitempty"`
	Outputs         any    `json:"outputs,omitempty"`
	RawResponse     any    `json:"raw_response,omitempty"`
}

// InstanceInfo identifies the connector instance a module instance serves.
type InstanceInfo struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Brand string `json:"brand"` // the plugin name
}

// ConfigureRequest is the input of connhost_configure: who the guest serves
// and the instance's parameter values (secrets included, in clear).
type ConfigureRequest struct {
	ABIVersion    int            `json:"abi_version"`
	Instance      InstanceInfo   `json:"instance"`
	PluginVersion string         `json:"plugin_version"`
	Params        map[string]any `json:"params"`
	Limits        Limits         `json:"limits"`
}

// Limits are the sandbox limits an instance runs with (SPEC §8), so that a
// guest can size its work to them: e.g. page a fetch to stay under the
// output limit and the deadline.
type Limits struct {
	MemoryBytes   uint64 `json:"memory_bytes"`
	CallTimeoutMS int64  `json:"call_timeout_ms"`
	OutputBytes   int    `json:"output_bytes"`
	LogBytes      int    `json:"log_bytes"`
	LogRecords    int    `json:"log_records"`
	StackBytes    int    `json:"stack_bytes"`
	HTTPBodyBytes int    `json:"http_body_bytes"`
}

// ContextGetResult is the result of integration_context_get.
type ContextGetResult struct {
	Context map[string]any `json:"context"`
	Version int64          `json:"version"`
}

// ContextSetRequest is the request of integration_context_set. Version is the
// version read; -1 writes unconditionally. A stale version fails with kind
// conflict. The result is a ContextGetResult with the new version.
type ContextSetRequest struct {
	Context map[string]any `json:"context"`
	Version int64          `json:"version"`
}

// CacheGetRequest is the request of cache_get.
type CacheGetRequest struct {
	Key string `json:"key"`
}

// CacheGetResult is the result of cache_get. An expired entry is not found.
type CacheGetResult struct {
	Found bool            `json:"found"`
	Value json.RawMessage `json:"value,omitempty"`
}

// CacheSetRequest is the request of cache_set. TTLSeconds ≤ 0 keeps the
// entry until deleted.
type CacheSetRequest struct {
	Key        string          `json:"key"`
	Value      json.RawMessage `json:"value"`
	TTLSeconds float64         `json:"ttl_seconds,omitempty"`
}

// CacheDeleteRequest is the request of cache_delete.
type CacheDeleteRequest struct {
	Key string `json:"key"`
}

// RunValue is the request of last_run_set and last_mirror_run_set, and the
// result of their get counterparts.
type RunValue struct {
	Value map[string]any `json:"value"`
}

// AddEntryRequest is the request of add_entry (XSOAR addEntry).
type AddEntryRequest struct {
	IncidentID string `json:"incident_id"`
	Entry      Entry  `json:"entry"`
	Username   string `json:"username,omitempty"`
	Email      string `json:"email,omitempty"`
	Footer     string `json:"footer,omitempty"`
}

// AddEntryResult is the result of add_entry.
type AddEntryResult struct {
	ID string `json:"id"`
}

// CreateIncidentsRequest is the request of create_incidents.
type CreateIncidentsRequest struct {
	Incidents []Incident     `json:"incidents"`
	LastRun   map[string]any `json:"last_run,omitempty"`
	UserID    string         `json:"user_id,omitempty"`
}

// CreateIncidentsResult is the result of create_incidents: one id per
// incident, in order (the existing id where the host deduplicated).
type CreateIncidentsResult struct {
	IDs []string `json:"ids"`
}

// FindUserRequest is the request of find_user; one field suffices.
type FindUserRequest struct {
	Username string `json:"username,omitempty"`
	Email    string `json:"email,omitempty"`
}

// User is a connhost user. find_user returns null when nobody matches.
type User struct {
	ID       string   `json:"id"`
	Username string   `json:"username"`
	Email    string   `json:"email,omitempty"`
	Name     string   `json:"name,omitempty"`
	Roles    []string `json:"roles,omitempty"`
}

// EntitlementRequest is the request of handle_entitlement_for_user.
type EntitlementRequest struct {
	IncidentID string `json:"incident_id"`
	GUID       string `json:"guid"`
	Email      string `json:"email,omitempty"`
	Content    string `json:"content"`
	TaskID     string `json:"task_id,omitempty"`
}

// ModuleHealth is the request of update_module_health. An empty message with
// IsError false clears the health state.
type ModuleHealth struct {
	Message string `json:"message"`
	IsError bool   `json:"is_error"`
}

// MirrorInvestigationRequest is the request of mirror_investigation.
// MirrorType is "all", "chat" or "none", optionally followed by
// ":direction" (both, FromDemisto, ToDemisto).
type MirrorInvestigationRequest struct {
	IncidentID string `json:"incident_id"`
	MirrorType string `json:"mirror_type"`
	AutoClose  bool   `json:"auto_close,omitempty"`
}

// DirectMessageRequest is the request of direct_message.
type DirectMessageRequest struct {
	Message                string `json:"message"`
	Username               string `json:"username,omitempty"`
	Email                  string `json:"email,omitempty"`
	AnyoneCanOpenIncidents bool   `json:"anyone_can_open_incidents,omitempty"`
}

// DirectMessageResult is the result of direct_message.
type DirectMessageResult struct {
	Reply string `json:"reply"`
}

// HTTPRequest is the request of http_request, and the input of connhost_http.
// For http_request URL is absolute; for connhost_http Path and Query are set
// instead. Body is base64 in JSON.
type HTTPRequest struct {
	Method    string              `json:"method"`
	URL       string              `json:"url,omitempty"`
	Path      string              `json:"path,omitempty"`
	Query     string              `json:"query,omitempty"`
	Headers   map[string][]string `json:"headers,omitempty"`
	Body      []byte              `json:"body,omitempty"`
	TimeoutMS int64               `json:"timeout_ms,omitempty"`
}

// HTTPResponse is the result of http_request, and of connhost_http.
type HTTPResponse struct {
	Status  int                 `json:"status"`
	Headers map[string][]string `json:"headers,omitempty"`
	Body    []byte              `json:"body,omitempty"`
}
