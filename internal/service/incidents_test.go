package service_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/service"
	"github.com/connhost/connhost/internal/store"
)

// TestIncidentsCreate: fields are checked before the incident is stored.
func TestIncidentsCreate(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		in   service.IncidentInput
		want error
	}{
		{"no name", service.IncidentInput{Type: ptr("Phishing")}, service.ErrInvalid},
		{"blank name", service.IncidentInput{Name: ptr("  ")}, service.ErrInvalid},
		{"bad severity", service.IncidentInput{Name: ptr("a"), Severity: ptr(2.5)}, service.ErrInvalid},
		{"bad rawJSON", service.IncidentInput{Name: ptr("a"), RawJSON: ptr("{")}, service.ErrInvalid},
		{"empty custom field name", service.IncidentInput{Name: ptr("a"), CustomFields: map[string]any{"": 1}}, service.ErrInvalid},
		{"ok", service.IncidentInput{Name: ptr("a"), Type: ptr("Phishing"), Severity: ptr(float64(abi.SeverityHigh)), Owner: ptr("ann"),
			Labels: &[]abi.Label{{Type: "src", Value: "mail"}}, CustomFields: map[string]any{"phase": "triage"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inc, err := e.svc.Incidents.Create(ctx, tc.in)
			wantErr(t, err, tc.want)
			if err == nil && (inc.ID == "" || inc.Status != abi.StatusActive || inc.Type != "Phishing" || inc.Owner != "ann" ||
				inc.CustomFields["phase"] != "triage" || len(inc.Labels) != 1) {
				t.Errorf("incident %+v", inc)
			}
		})
	}
	if incs, _, err := e.svc.Incidents.Search(ctx, service.IncidentQuery{}); err != nil || len(incs) != 1 {
		t.Errorf("%d incidents stored (%v), want only the valid one", len(incs), err)
	}
}

// TestIncidentsLifecycle: update, close, reopen and delete, with their
// state rules.
func TestIncidentsLifecycle(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	e := newEnv(t, func(o *service.Options) { o.Now = func() time.Time { return now } })
	ctx := context.Background()
	id := e.incident("a").ID
	for _, tc := range []struct {
		name   string
		do     func() (store.Incident, error)
		want   error
		status abi.IncidentStatus // afterwards
	}{
		{"get unknown", func() (store.Incident, error) { return e.svc.Incidents.Get(ctx, "nosuch") }, service.ErrNotFound, abi.StatusActive},
		{"update unknown", func() (store.Incident, error) {
			return e.svc.Incidents.Update(ctx, "nosuch", service.IncidentInput{Owner: ptr("bob")})
		}, service.ErrNotFound, abi.StatusActive},
		{"update with a bad field", func() (store.Incident, error) {
			return e.svc.Incidents.Update(ctx, id, service.IncidentInput{Severity: ptr(9.0)})
		}, service.ErrInvalid, abi.StatusActive},
		{"update", func() (store.Incident, error) {
			return e.svc.Incidents.Update(ctx, id, service.IncidentInput{Owner: ptr("bob"), Details: ptr("d")})
		}, nil, abi.StatusActive},
		{"reopen an open incident", func() (store.Incident, error) { return e.svc.Incidents.Reopen(ctx, id) }, service.ErrConflict, abi.StatusActive},
		{"close", func() (store.Incident, error) { return e.svc.Incidents.Close(ctx, id, "Resolved", "fixed") }, nil, abi.StatusDone},
		{"close twice", func() (store.Incident, error) { return e.svc.Incidents.Close(ctx, id, "Resolved", "") }, service.ErrConflict, abi.StatusDone},
		{"close unknown", func() (store.Incident, error) { return e.svc.Incidents.Close(ctx, "nosuch", "", "") }, service.ErrNotFound, abi.StatusDone},
		{"reopen", func() (store.Incident, error) { return e.svc.Incidents.Reopen(ctx, id) }, nil, abi.StatusActive},
		{"reopen unknown", func() (store.Incident, error) { return e.svc.Incidents.Reopen(ctx, "nosuch") }, service.ErrNotFound, abi.StatusActive},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.do()
			wantErr(t, err, tc.want)
			inc, err := e.svc.Incidents.Get(ctx, id)
			if err != nil || inc.Status != tc.status {
				t.Errorf("status %v (%v), want %v", inc.Status, err, tc.status)
			}
		})
	}
	inc, _ := e.svc.Incidents.Get(ctx, id)
	if inc.Owner != "bob" || inc.Details != "d" || inc.CloseReason != "Resolved" || !inc.Closed.IsZero() {
		t.Errorf("after the lifecycle: %+v", inc)
	}
	wantErr(t, e.svc.Incidents.Delete(ctx, id), nil)
	wantErr(t, e.svc.Incidents.Delete(ctx, id), service.ErrNotFound)
	_, err := e.svc.Incidents.Get(ctx, id)
	wantErr(t, err, service.ErrNotFound)
}

// TestIncidentsDirtyFields: local changes to an incident mirrored out are
// recorded as dirty fields for the next outgoing update; other incidents
// get none.
func TestIncidentsDirtyFields(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	created, err := e.st.CreateIncidents(ctx, []store.Incident{
		{Name: "out", Status: abi.StatusActive, DbotMirrorID: "R1", DbotMirrorInstance: "td", DbotMirrorDirection: abi.MirrorBoth},
		{Name: "in only", Status: abi.StatusActive, DbotMirrorID: "R2", DbotMirrorInstance: "td", DbotMirrorDirection: abi.MirrorIn},
		{Name: "local", Status: abi.StatusActive},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range [][]string{{"severity", "phase", "closeReason", "closeNotes"}, nil, nil} {
		id := created[i].ID
		if _, err := e.svc.Incidents.Update(ctx, id, service.IncidentInput{Severity: ptr(float64(abi.SeverityLow)), Owner: ptr(""),
			CustomFields: map[string]any{"phase": "triage"}}); err != nil {
			t.Fatal(err)
		}
		inc, err := e.svc.Incidents.Close(ctx, id, "Resolved", "")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(inc.DbotDirtyFields, want) || !slices.Equal(inc.DbotCurrentDirtyFields, want) {
			t.Errorf("%s: dirty %v, current dirty %v, want %v", inc.Name, inc.DbotDirtyFields, inc.DbotCurrentDirtyFields, want)
		}
	}
}

// TestIncidentsSearch: filters and pages.
func TestIncidentsSearch(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, n := range []string{"Disk full", "disk slow", "login failed", "cpu hot", "disk gone"} {
		e.incident(n)
	}
	closed := e.incident("closed one")
	if _, err := e.svc.Incidents.Close(ctx, closed.ID, "Resolved", ""); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		q    service.IncidentQuery
		want int
	}{
		{"all", service.IncidentQuery{}, 6},
		{"text ignores case", service.IncidentQuery{Text: "DISK"}, 3},
		{"status", service.IncidentQuery{Status: ptr(abi.StatusDone)}, 1},
		{"source instance", service.IncidentQuery{Instance: "nosuch"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			incs, _, err := e.svc.Incidents.Search(ctx, tc.q)
			if err != nil || len(incs) != tc.want {
				t.Errorf("%d incidents (%v), want %d", len(incs), err, tc.want)
			}
		})
	}
	var names []string
	for q := (service.IncidentQuery{Limit: 4}); ; {
		page, next, err := e.svc.Incidents.Search(ctx, q)
		if err != nil || len(page) > 4 {
			t.Fatalf("page of %d (%v)", len(page), err)
		}
		for _, inc := range page {
			names = append(names, inc.Name)
		}
		if next == "" {
			break
		}
		q.Cursor = next
	}
	if len(names) != 6 || names[0] != "Disk full" || names[5] != "closed one" {
		t.Errorf("paged through %v", names)
	}
}

// TestIncidentsEntries: entries are checked, defaulted and paged.
func TestIncidentsEntries(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := e.incident("a").ID
	for _, tc := range []struct {
		name, incident string
		in             service.EntryInput
		want           error
		format         string
	}{
		{"unknown incident", "nosuch", service.EntryInput{Contents: "x"}, service.ErrNotFound, ""},
		{"bad type", id, service.EntryInput{Type: 99, Contents: "x"}, service.ErrInvalid, ""},
		{"no contents", id, service.EntryInput{}, service.ErrInvalid, ""},
		{"bad format", id, service.EntryInput{Contents: "x", Format: "pdf"}, service.ErrInvalid, ""},
		{"blank tag", id, service.EntryInput{Contents: "x", Tags: []string{" "}}, service.ErrInvalid, ""},
		{"text", id, service.EntryInput{Contents: "x", Tags: []string{"comment"}, User: "ann"}, nil, abi.FormatText},
		{"json", id, service.EntryInput{Contents: map[string]any{"k": 1}}, nil, abi.FormatJSON},
		{"markdown", id, service.EntryInput{Contents: "**x**", Format: abi.FormatMarkdown, Note: true}, nil, abi.FormatMarkdown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			en, err := e.svc.Incidents.AddEntry(ctx, tc.incident, tc.in)
			wantErr(t, err, tc.want)
			if err == nil && (en.Format != tc.format || en.Type != abi.EntryNote || en.Origin != store.OriginUser || en.ID == "") {
				t.Errorf("entry %+v", en)
			}
		})
	}
	first, next, err := e.svc.Incidents.ListEntries(ctx, id, service.EntryQuery{Limit: 2})
	if err != nil || len(first) != 2 || next == "" {
		t.Fatalf("first page %+v, next %q, %v", first, next, err)
	}
	rest, next, err := e.svc.Incidents.ListEntries(ctx, id, service.EntryQuery{Limit: 2, Cursor: next})
	if err != nil || len(rest) != 1 || next != "" || rest[0].Format != abi.FormatMarkdown {
		t.Fatalf("second page %+v, next %q, %v", rest, next, err)
	}
	_, _, err = e.svc.Incidents.ListEntries(ctx, "nosuch", service.EntryQuery{})
	wantErr(t, err, service.ErrNotFound)
}
