package store

import (
	"fmt"
	"time"

	"github.com/connhost/connhost/abi"
)

// IncidentFromABI converts an incident a connector of instance (by name)
// returned into a record for CreateIncidents. Occurred must be RFC 3339 or
// empty (then it defaults to the creation time).
func IncidentFromABI(instance string, in abi.Incident) (Incident, error) {
	inc := Incident{
		Name: in.Name, Type: in.Type, Severity: in.Severity, Details: in.Details, Owner: in.Owner,
		Labels: in.Labels, RawJSON: in.RawJSON, CustomFields: in.CustomFields, Instance: instance,
		DbotMirrorID: in.DbotMirrorID, DbotMirrorDirection: in.DbotMirrorDirection, DbotMirrorTags: in.DbotMirrorTags,
	}
	if in.Occurred != "" {
		t, err := time.Parse(time.RFC3339Nano, in.Occurred)
		if err != nil {
			return Incident{}, fmt.Errorf("incident %q of instance %q: occurred %q: %w", in.Name, instance, in.Occurred, ErrInvalid)
		}
		inc.Occurred = t.UTC()
	}
	return inc, nil
}

// EntryFromABI converts an entry a connector produced for incidentID into a
// record for AddEntries. EntryContext is not stored.
func EntryFromABI(incidentID, origin string, in abi.Entry) Entry {
	return Entry{
		IncidentID: incidentID, Type: in.Type, Contents: in.Contents, Format: in.ContentsFormat,
		Tags: in.Tags, Note: in.Note, Origin: origin,
	}
}

// ServerEntry returns the entry as update-remote-system hands it to a
// connector.
func (e Entry) ServerEntry() abi.ServerEntry {
	return abi.ServerEntry{
		ID: e.ID, Type: e.Type, Contents: e.Contents, Format: e.Format, Tags: e.Tags,
		User: e.User, Note: e.Note, Date: e.Created.UTC().Format(time.RFC3339Nano),
	}
}
