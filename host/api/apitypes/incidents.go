package apitypes

import (
	"time"

	"github.com/connhost/connhost/abi"
)

// Label is an incident label.
type Label struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

// IncidentInput creates (POST, which needs name) or changes (PATCH, only
// the fields given) an incident.
type IncidentInput struct {
	Name *string `json:"name,omitempty" jsonschema:"minLength=1"`
	Type *string `json:"type,omitempty"`
	// Severity is 0 (unknown), 0.5 (info), 1 (low), 2 (medium), 3 (high)
	// or 4 (critical).
	Severity *float64   `json:"severity,omitempty" jsonschema:"enum=0,enum=0.5,enum=1,enum=2,enum=3,enum=4"`
	Owner    *string    `json:"owner,omitempty"`
	Details  *string    `json:"details,omitempty"`
	Occurred *time.Time `json:"occurred,omitempty"`
	Labels   *[]Label   `json:"labels,omitempty"`
	// RawJSON is a JSON document as a string.
	RawJSON *string `json:"rawJSON,omitempty"`
	// CustomFields are set by name; null removes one.
	CustomFields map[string]any `json:"CustomFields,omitempty"`
}

// Incident is an incident with its mirroring fields (XSOAR's dbot*).
type Incident struct {
	ID       string  `json:"id"`
	Name     string  `json:"name"`
	Type     string  `json:"type,omitempty"`
	Severity float64 `json:"severity"`
	// Status is 0 pending, 1 active, 2 done, 3 archive.
	Status abi.IncidentStatus `json:"status"`
	// Occurred is when it happened at the source; absent when unknown.
	Occurred     time.Time      `json:"occurred,omitzero"`
	Created      time.Time      `json:"created"`
	Modified     time.Time      `json:"modified"`
	Owner        string         `json:"owner,omitempty"`
	Labels       []Label        `json:"labels,omitempty"`
	Details      string         `json:"details,omitempty"`
	RawJSON      string         `json:"rawJSON,omitempty"`
	CustomFields map[string]any `json:"CustomFields,omitempty"`
	CloseReason  string         `json:"closeReason,omitempty"`
	CloseNotes   string         `json:"closeNotes,omitempty"`
	// Closed is when it was closed; absent while open.
	Closed time.Time `json:"closed,omitzero"`
	// SourceInstance is the instance that fetched it.
	SourceInstance string `json:"sourceInstance,omitempty"`
	// SourceID is its id at the source.
	SourceID               string   `json:"sourceId,omitempty"`
	DbotMirrorID           string   `json:"dbotMirrorId,omitempty"`
	DbotMirrorDirection    string   `json:"dbotMirrorDirection,omitempty"`
	DbotMirrorInstance     string   `json:"dbotMirrorInstance,omitempty"`
	DbotMirrorTags         []string `json:"dbotMirrorTags,omitempty"`
	DbotDirtyFields        []string `json:"dbotDirtyFields,omitempty"`
	DbotCurrentDirtyFields []string `json:"dbotCurrentDirtyFields,omitempty"`
	// DbotMirrorLastSync is the last incoming sync; absent before one.
	DbotMirrorLastSync time.Time `json:"dbotMirrorLastSync,omitzero"`
	// Version grows with every change.
	Version int64 `json:"version"`
}

// IncidentPage is a page of incidents.
type IncidentPage struct {
	Incidents []Incident `json:"incidents"`
	// Next is the cursor of the next page; absent on the last page.
	Next string `json:"next,omitempty"`
}

// CloseRequest is the optional body of POST /incidents/{id}/close.
type CloseRequest struct {
	CloseReason string `json:"closeReason,omitempty"`
	CloseNotes  string `json:"closeNotes,omitempty"`
}

// EntryInput is a war-room entry to add.
type EntryInput struct {
	// Type is the XSOAR entry type; 1 (note) when absent.
	Type abi.EntryType `json:"type,omitempty"`
	// Contents is text, or any JSON.
	Contents any `json:"contents"`
	// Format is text (for string contents) or json when absent.
	Format string   `json:"format,omitempty" jsonschema:"enum=text,enum=json,enum=markdown,enum=html"`
	Tags   []string `json:"tags,omitempty"`
	Note   bool     `json:"note,omitempty"`
	User   string   `json:"user,omitempty"`
}

// Entry is a war-room entry.
type Entry struct {
	ID string `json:"id"`
	// IncidentID is the incident the entry belongs to (XSOAR's
	// investigation).
	IncidentID string        `json:"investigationId"`
	Type       abi.EntryType `json:"type"`
	// Contents is text, or any JSON.
	Contents any       `json:"contents"`
	Format   string    `json:"format,omitempty"`
	Tags     []string  `json:"tags,omitempty"`
	Note     bool      `json:"note,omitempty"`
	User     string    `json:"user,omitempty"`
	Created  time.Time `json:"created"`
	// Origin is who wrote it: user, api, a plugin or mirroring.
	Origin string `json:"origin,omitempty"`
	// ExternalID is the entry's id in a mirrored remote system.
	ExternalID string `json:"externalId,omitempty"`
	Footer     string `json:"footer,omitempty"`
}

// EntryPage is a page of an incident's entries in creation order.
type EntryPage struct {
	Entries []Entry `json:"entries"`
	// Next is the cursor of the next page; absent on the last page.
	Next string `json:"next,omitempty"`
}

// UserInput is the body of POST /users.
type UserInput struct {
	Username string   `json:"username"`
	Email    string   `json:"email,omitempty"`
	Name     string   `json:"name,omitempty"`
	Roles    []string `json:"roles,omitempty"`
}

// User is a user of the server's war rooms.
type User struct {
	ID       string    `json:"id"`
	Username string    `json:"username"`
	Email    string    `json:"email,omitempty"`
	Name     string    `json:"name,omitempty"`
	Roles    []string  `json:"roles,omitempty"`
	Created  time.Time `json:"created"`
}

// UserList is every user.
type UserList struct {
	Users []User `json:"users"`
}
