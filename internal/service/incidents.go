package service

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/store"
)

// Incidents keeps incidents and their war-room entries as the API changes
// them. Changes to a mirrored incident mark its changed fields dirty and
// wake the mirroring engine's outbox.
type Incidents struct{ c *core }

// IncidentInput creates an incident or changes its fields. Nil fields are
// left as they are.
type IncidentInput struct {
	Name         *string        `json:"name,omitempty"`
	Type         *string        `json:"type,omitempty"`
	Severity     *float64       `json:"severity,omitempty"`
	Owner        *string        `json:"owner,omitempty"`
	Details      *string        `json:"details,omitempty"`
	Occurred     *time.Time     `json:"occurred,omitempty"`
	Labels       *[]abi.Label   `json:"labels,omitempty"`
	RawJSON      *string        `json:"rawJSON,omitempty"`
	CustomFields map[string]any `json:"CustomFields,omitempty"`
}

var severities = []float64{abi.SeverityUnknown, abi.SeverityInfo, abi.SeverityLow, abi.SeverityMedium, abi.SeverityHigh, abi.SeverityCritical}

// apply sets the given fields on inc and returns the names of the fields
// that changed, in XSOAR's field names (custom fields by their own name).
func (in IncidentInput) apply(inc *store.Incident) ([]string, error) {
	var changed []string
	set := func(name string, differs bool) {
		if differs {
			changed = append(changed, name)
		}
	}
	if in.Name != nil {
		if strings.TrimSpace(*in.Name) == "" {
			return nil, fmt.Errorf("%w: name must not be empty", ErrInvalid)
		}
		set("name", inc.Name != *in.Name)
		inc.Name = *in.Name
	}
	if in.Severity != nil {
		if !slices.Contains(severities, *in.Severity) {
			return nil, fmt.Errorf("%w: severity %v: want 0, 0.5, 1, 2, 3 or 4", ErrInvalid, *in.Severity)
		}
		set("severity", inc.Severity != *in.Severity)
		inc.Severity = *in.Severity
	}
	if in.RawJSON != nil && *in.RawJSON != "" && !json.Valid([]byte(*in.RawJSON)) {
		return nil, fmt.Errorf("%w: rawJSON is not valid JSON", ErrInvalid)
	}
	for _, f := range []struct {
		name string
		src  *string
		dst  *string
	}{{"type", in.Type, &inc.Type}, {"owner", in.Owner, &inc.Owner}, {"details", in.Details, &inc.Details}, {"rawJSON", in.RawJSON, &inc.RawJSON}} {
		if f.src != nil {
			set(f.name, *f.dst != *f.src)
			*f.dst = *f.src
		}
	}
	if in.Occurred != nil {
		set("occurred", !inc.Occurred.Equal(*in.Occurred))
		inc.Occurred = in.Occurred.UTC()
	}
	if in.Labels != nil {
		set("labels", !slices.Equal(inc.Labels, *in.Labels))
		inc.Labels = *in.Labels
	}
	if len(in.CustomFields) > 0 && inc.CustomFields == nil {
		inc.CustomFields = map[string]any{}
	}
	for k, v := range in.CustomFields {
		if k == "" {
			return nil, fmt.Errorf("%w: CustomFields: empty field name", ErrInvalid)
		}
		old, had := inc.CustomFields[k]
		a, _ := json.Marshal(old)
		b, _ := json.Marshal(v)
		set(k, !had || string(a) != string(b))
		if v == nil {
			delete(inc.CustomFields, k)
		} else {
			inc.CustomFields[k] = v
		}
	}
	return changed, nil
}

// markDirty records locally changed fields on a mirrored incident whose
// direction sends changes out: dbotDirtyFields keeps incoming mirroring
// from overwriting them, dbotCurrentDirtyFields is the delta of the next
// outgoing update.
func markDirty(inc *store.Incident, fields []string) {
	if inc.DbotMirrorID == "" || (inc.DbotMirrorDirection != abi.MirrorOut && inc.DbotMirrorDirection != abi.MirrorBoth) {
		return
	}
	for _, f := range fields {
		if !slices.Contains(inc.DbotDirtyFields, f) {
			inc.DbotDirtyFields = append(inc.DbotDirtyFields, f)
		}
		if !slices.Contains(inc.DbotCurrentDirtyFields, f) {
			inc.DbotCurrentDirtyFields = append(inc.DbotCurrentDirtyFields, f)
		}
	}
}

// Create creates an active incident; a name is required.
func (is *Incidents) Create(ctx context.Context, in IncidentInput) (store.Incident, error) {
	if in.Name == nil {
		return store.Incident{}, fmt.Errorf("%w: name is required", ErrInvalid)
	}
	inc := store.Incident{Status: abi.StatusActive}
	if _, err := in.apply(&inc); err != nil {
		return store.Incident{}, err
	}
	out, err := is.c.st.CreateIncidents(ctx, []store.Incident{inc})
	if err != nil {
		return store.Incident{}, fromStore(err)
	}
	return out[0], nil
}

// Get returns one incident.
func (is *Incidents) Get(ctx context.Context, id string) (store.Incident, error) {
	inc, err := is.c.st.GetIncident(ctx, id)
	if err != nil {
		return store.Incident{}, fmt.Errorf("incident %q: %w", id, fromStore(err))
	}
	return inc, nil
}

// IncidentQuery selects a page of incidents. Zero fields do not filter.
type IncidentQuery struct {
	Status   *abi.IncidentStatus
	Instance string // the instance that created it
	Type     string
	// Text matches incidents whose name contains it, ignoring case.
	Text string
	// ModifiedAfter keeps incidents modified strictly after it and orders
	// the page by modification time; otherwise pages are in creation
	// order.
	ModifiedAfter time.Time
	// Limit is the page size: 0 means 50, at most 1000.
	Limit int
	// Cursor continues after the previous page (its next cursor), with the
	// same filters.
	Cursor string
}

// Search returns a page of incidents and the cursor of the next ("" after
// the last).
func (is *Incidents) Search(ctx context.Context, q IncidentQuery) ([]store.Incident, string, error) {
	incs, next, err := is.c.st.SearchIncidents(ctx, store.IncidentQuery{
		Status: q.Status, Instance: q.Instance, Type: q.Type, Text: q.Text,
		ModifiedAfter: q.ModifiedAfter, Limit: q.Limit, Cursor: q.Cursor,
	})
	return incs, next, fromStore(err)
}

// Update changes an incident's fields.
func (is *Incidents) Update(ctx context.Context, id string, in IncidentInput) (store.Incident, error) {
	inc, err := is.c.st.UpdateIncident(ctx, id, func(inc *store.Incident) error {
		changed, err := in.apply(inc)
		if err != nil {
			return err
		}
		markDirty(inc, changed)
		return nil
	})
	if err != nil {
		return store.Incident{}, fmt.Errorf("incident %q: %w", id, fromStore(err))
	}
	is.c.kick()
	return inc, nil
}

// Close closes an active or pending incident; a closed one is
// ErrConflict.
func (is *Incidents) Close(ctx context.Context, id, reason, notes string) (store.Incident, error) {
	inc, err := is.c.st.UpdateIncident(ctx, id, func(inc *store.Incident) error {
		if inc.Status == abi.StatusDone || inc.Status == abi.StatusArchive {
			return fmt.Errorf("%w: incident is already closed", ErrConflict)
		}
		inc.Status, inc.CloseReason, inc.CloseNotes, inc.Closed = abi.StatusDone, reason, notes, is.c.now().UTC()
		markDirty(inc, []string{"closeReason", "closeNotes"})
		return nil
	})
	if err != nil {
		return store.Incident{}, fmt.Errorf("incident %q: %w", id, fromStore(err))
	}
	is.c.kick()
	return inc, nil
}

// Reopen reopens a closed incident; an open one is ErrConflict.
func (is *Incidents) Reopen(ctx context.Context, id string) (store.Incident, error) {
	inc, err := is.c.st.UpdateIncident(ctx, id, func(inc *store.Incident) error {
		if inc.Status != abi.StatusDone && inc.Status != abi.StatusArchive {
			return fmt.Errorf("%w: incident is not closed", ErrConflict)
		}
		inc.Status, inc.Closed = abi.StatusActive, time.Time{}
		return nil
	})
	if err != nil {
		return store.Incident{}, fmt.Errorf("incident %q: %w", id, fromStore(err))
	}
	return inc, nil
}

// Delete removes an incident and its entries.
func (is *Incidents) Delete(ctx context.Context, id string) error {
	if err := is.c.st.DeleteIncident(ctx, id); err != nil {
		return fmt.Errorf("incident %q: %w", id, fromStore(err))
	}
	return nil
}

// EntryInput is a war-room entry added through the API.
type EntryInput struct {
	Type     abi.EntryType `json:"type,omitempty"` // default note
	Contents any           `json:"contents"`
	Format   string        `json:"format,omitempty"` // default text, or json for non-string contents
	Tags     []string      `json:"tags,omitempty"`
	Note     bool          `json:"note,omitempty"`
	User     string        `json:"user,omitempty"`
}

var entryTypes = []abi.EntryType{abi.EntryNote, abi.EntryFile, abi.EntryError, abi.EntryImage, abi.EntryInfoFile,
	abi.EntryVideoFile, abi.EntryWarning, abi.EntryStaticVideoFile}

var formats = []string{abi.FormatText, abi.FormatJSON, abi.FormatMarkdown, abi.FormatHTML}

// AddEntry appends an entry to an incident's war room.
func (is *Incidents) AddEntry(ctx context.Context, incidentID string, in EntryInput) (store.Entry, error) {
	if in.Type == 0 {
		in.Type = abi.EntryNote
	}
	if !slices.Contains(entryTypes, in.Type) {
		return store.Entry{}, fmt.Errorf("%w: entry type %d is not an XSOAR entry type", ErrInvalid, in.Type)
	}
	if in.Contents == nil || in.Contents == "" {
		return store.Entry{}, fmt.Errorf("%w: entry contents are required", ErrInvalid)
	}
	if in.Format == "" {
		in.Format = abi.FormatText
		if _, ok := in.Contents.(string); !ok {
			in.Format = abi.FormatJSON
		}
	}
	if !slices.Contains(formats, in.Format) {
		return store.Entry{}, fmt.Errorf("%w: entry format %q: want text, json, markdown or html", ErrInvalid, in.Format)
	}
	for _, t := range in.Tags {
		if strings.TrimSpace(t) == "" {
			return store.Entry{}, fmt.Errorf("%w: entry tags must not be empty", ErrInvalid)
		}
	}
	out, err := is.c.st.AddEntries(ctx, []store.Entry{{
		IncidentID: incidentID, Type: in.Type, Contents: in.Contents, Format: in.Format,
		Tags: in.Tags, Note: in.Note, User: in.User, Origin: store.OriginUser,
	}})
	if err != nil {
		return store.Entry{}, fmt.Errorf("incident %q: %w", incidentID, fromStore(err))
	}
	is.c.kick()
	return out[0], nil
}

// EntryQuery selects a page of an incident's entries.
type EntryQuery struct {
	// Limit is the page size: 0 means 50, at most 1000.
	Limit int
	// Cursor continues after the previous page (its next cursor).
	Cursor string
}

// ListEntries returns a page of an incident's entries in creation order
// and the cursor of the next ("" after the last).
func (is *Incidents) ListEntries(ctx context.Context, incidentID string, q EntryQuery) ([]store.Entry, string, error) {
	if _, err := is.c.st.GetIncident(ctx, incidentID); err != nil {
		return nil, "", fmt.Errorf("incident %q: %w", incidentID, fromStore(err))
	}
	es, next, err := is.c.st.ListEntries(ctx, incidentID, store.EntryQuery{After: q.Cursor, Limit: q.Limit})
	return es, next, fromStore(err)
}
