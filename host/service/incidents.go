package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/store"
)

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

// CreateIncident creates an incident from the API.
func (s *Service) CreateIncident(ctx context.Context, in IncidentInput) (store.Incident, error) {
	if in.Name == nil {
		return store.Incident{}, fmt.Errorf("%w: name is required", ErrInvalid)
	}
	inc := store.Incident{Status: abi.StatusActive}
	if _, err := in.apply(&inc); err != nil {
		return store.Incident{}, err
	}
	out, err := s.st.CreateIncidents(ctx, []store.Incident{inc})
	if err != nil {
		return store.Incident{}, err
	}
	return out[0], nil
}

// GetIncident returns one incident.
func (s *Service) GetIncident(ctx context.Context, id string) (store.Incident, error) {
	inc, err := s.st.GetIncident(ctx, id)
	if err != nil {
		return store.Incident{}, fmt.Errorf("incident %q: %w", id, err)
	}
	return inc, nil
}

// SearchIncidents returns a page of incidents and the cursor of the next.
func (s *Service) SearchIncidents(ctx context.Context, q store.IncidentQuery) ([]store.Incident, string, error) {
	return s.st.SearchIncidents(ctx, q)
}

// UpdateIncident changes an incident's fields.
func (s *Service) UpdateIncident(ctx context.Context, id string, in IncidentInput) (store.Incident, error) {
	inc, err := s.st.UpdateIncident(ctx, id, func(inc *store.Incident) error {
		changed, err := in.apply(inc)
		if err != nil {
			return err
		}
		markDirty(inc, changed)
		return nil
	})
	if err != nil {
		return store.Incident{}, fmt.Errorf("incident %q: %w", id, err)
	}
	s.kick()
	return inc, nil
}

// CloseIncident closes an active or pending incident.
func (s *Service) CloseIncident(ctx context.Context, id, reason, notes string) (store.Incident, error) {
	inc, err := s.st.UpdateIncident(ctx, id, func(inc *store.Incident) error {
		if inc.Status == abi.StatusDone || inc.Status == abi.StatusArchive {
			return fmt.Errorf("%w: incident is already closed", ErrConflict)
		}
		inc.Status, inc.CloseReason, inc.CloseNotes, inc.Closed = abi.StatusDone, reason, notes, s.now().UTC()
		markDirty(inc, []string{"closeReason", "closeNotes"})
		return nil
	})
	if err != nil {
		return store.Incident{}, fmt.Errorf("incident %q: %w", id, err)
	}
	s.kick()
	return inc, nil
}

// ReopenIncident reopens a closed incident.
func (s *Service) ReopenIncident(ctx context.Context, id string) (store.Incident, error) {
	inc, err := s.st.UpdateIncident(ctx, id, func(inc *store.Incident) error {
		if inc.Status != abi.StatusDone && inc.Status != abi.StatusArchive {
			return fmt.Errorf("%w: incident is not closed", ErrConflict)
		}
		inc.Status, inc.Closed = abi.StatusActive, time.Time{}
		return nil
	})
	if err != nil {
		return store.Incident{}, fmt.Errorf("incident %q: %w", id, err)
	}
	return inc, nil
}

// DeleteIncident removes an incident and its entries.
func (s *Service) DeleteIncident(ctx context.Context, id string) error {
	if err := s.st.DeleteIncident(ctx, id); err != nil {
		return fmt.Errorf("incident %q: %w", id, err)
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
func (s *Service) AddEntry(ctx context.Context, incidentID string, in EntryInput) (store.Entry, error) {
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
	out, err := s.st.AddEntries(ctx, []store.Entry{{
		IncidentID: incidentID, Type: in.Type, Contents: in.Contents, Format: in.Format,
		Tags: in.Tags, Note: in.Note, User: in.User, Origin: store.OriginUser,
	}})
	if err != nil {
		return store.Entry{}, fmt.Errorf("incident %q: %w", incidentID, err)
	}
	s.kick()
	return out[0], nil
}

// ListEntries returns a page of an incident's entries in creation order.
func (s *Service) ListEntries(ctx context.Context, incidentID string, q store.EntryQuery) ([]store.Entry, string, error) {
	if _, err := s.st.GetIncident(ctx, incidentID); err != nil {
		return nil, "", fmt.Errorf("incident %q: %w", incidentID, err)
	}
	return s.st.ListEntries(ctx, incidentID, q)
}

// CreateUser adds a user.
func (s *Service) CreateUser(ctx context.Context, u store.User) (store.User, error) {
	if !instanceNameRe.MatchString(u.Username) {
		return store.User{}, fmt.Errorf("%w: username %q: want letters, digits, '.', '_' or '-', at most 64", ErrInvalid, u.Username)
	}
	if u.Email != "" && (!strings.Contains(u.Email, "@") || strings.ContainsAny(u.Email, " \t\n")) {
		return store.User{}, fmt.Errorf("%w: email %q is not an address", ErrInvalid, u.Email)
	}
	u.ID = ""
	return s.st.CreateUser(ctx, u)
}

// GetUser returns a user by id or, failing that, by username.
func (s *Service) GetUser(ctx context.Context, idOrName string) (store.User, error) {
	u, err := s.st.GetUser(ctx, idOrName)
	if errors.Is(err, store.ErrNotFound) {
		u, err = s.st.FindUser(ctx, idOrName, "")
	}
	if err != nil {
		return store.User{}, fmt.Errorf("user %q: %w", idOrName, err)
	}
	return u, nil
}

// ListUsers returns every user.
func (s *Service) ListUsers(ctx context.Context) ([]store.User, error) { return s.st.ListUsers(ctx) }
