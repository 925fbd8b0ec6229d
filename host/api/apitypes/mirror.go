package apitypes

import (
	"time"

	"github.com/connhost/connhost/abi"
)

// MirrorStats are an instance's mirroring statistics (XSOAR
// getMirrorStatistics).
type MirrorStats struct {
	Instance string `json:"instance"`
	// Mirrored counts the incidents the instance mirrors.
	Mirrored      int `json:"mirrored"`
	ClosedRecords int `json:"closedRecords"`
	PurgedRecords int `json:"purgedRecords"`
	Cycles        int `json:"cycles"`
	RateLimited   int `json:"rateLimited"`
	SkipUpdate    int `json:"skipUpdate"`
	Errors        int `json:"errors"`
	// LastRun is the end of the last cycle; absent before one.
	LastRun time.Time `json:"lastRun,omitzero"`
	// LastDuration is the last cycle's duration in nanoseconds.
	LastDuration int64        `json:"lastDuration"`
	LastError    string       `json:"lastError,omitempty"`
	LastReport   *CycleReport `json:"lastReport,omitempty"`
	// OutboxPending counts incidents with changes waiting to go out.
	OutboxPending int `json:"outboxPending"`
}

// CycleReport is one incoming mirroring cycle.
type CycleReport struct {
	Instance string `json:"instance"`
	// Mode is modified (get-modified-remote-data) or all (the fallback
	// when that is not implemented).
	Mode       string `json:"mode" jsonschema:"enum=modified,enum=all"`
	Candidates int    `json:"candidates"`
	Synced     int    `json:"synced"`
	Skipped    int    `json:"skipped"`
	Failed     int    `json:"failed"`
	Entries    int    `json:"entries"`
	// StoppedBy is the error kind that ended the cycle early.
	StoppedBy abi.ErrorKind `json:"stoppedBy,omitempty" jsonschema:"enum=rate_limited,enum=skip_update"`
	// Pending are the remote ids to resume from.
	Pending []string `json:"pending,omitempty"`
	// Duration is in nanoseconds.
	Duration int64 `json:"duration"`
}

// SyncRecord is one mirrored incident's sync state (XSOAR
// getSyncMirrorRecords).
type SyncRecord struct {
	IncidentID string `json:"incidentId"`
	Instance   string `json:"instance"`
	RemoteID   string `json:"remoteId"`
	// Direction is None, In, Out or Both.
	Direction string             `json:"direction"`
	Status    abi.IncidentStatus `json:"status"`
	// LastSync is the last incoming sync; absent before one.
	LastSync    time.Time `json:"lastSync,omitzero"`
	DirtyFields []string  `json:"dirtyFields,omitempty"`
	// Outgoing is the outbox state; absent when nothing was ever due.
	Outgoing *MirrorOut `json:"outgoing,omitempty"`
	// Purged is set once the record was purged after the incident closed.
	Purged bool `json:"purged,omitempty"`
}

// MirrorOut is an incident's outgoing-mirroring state.
type MirrorOut struct {
	// Pending is set when local entries are due to be sent.
	Pending bool `json:"pending,omitempty"`
	// EntryCursor is the last entry a successful push considered.
	EntryCursor string `json:"entryCursor,omitempty"`
	// Attempts counts failed deliveries since the last success.
	Attempts    int       `json:"attempts,omitempty"`
	NextAttempt time.Time `json:"nextAttempt,omitzero"`
	LastError   string    `json:"lastError,omitempty"`
	LastPush    time.Time `json:"lastPush,omitzero"`
}

// SyncRecordList is a page of an instance's sync records.
type SyncRecordList struct {
	Records []SyncRecord `json:"records"`
}

// PurgeRequest is the body of POST /instances/{name}/mirror/purge.
type PurgeRequest struct {
	// OlderThan is in days since the incident was closed, as XSOAR's
	// purgeClosedSyncMirrorRecords.
	OlderThan *float64 `json:"olderThan" jsonschema:"minimum=0"`
}

// PurgeResult counts the sync records purged.
type PurgeResult struct {
	Purged int `json:"purged"`
}

// PushRequest is the body of POST /instances/{name}/mirror/push.
type PushRequest struct {
	RemoteIncidentID string `json:"remoteIncidentId" jsonschema:"minLength=1"`
}

// RemoteSchema is a plugin's get-mapping-fields answer: the remote
// incident types, each with its fields and their descriptions.
type RemoteSchema map[string]map[string]string

// MirrorDebug is the log of a one-incident mirroring run, step by step.
type MirrorDebug struct {
	Steps []string `json:"steps"`
}
