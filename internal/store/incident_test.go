package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/connhost/connhost/abi"
)

func TestIncidentCRUD(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	s := newStore(t, Options{Now: clk.Now})
	created, err := s.CreateIncidents(ctx, []Incident{{
		Name: "Phish", Type: "Phishing", Severity: abi.SeverityHigh, Labels: []abi.Label{{Type: "Email", Value: "a@b"}},
		CustomFields: map[string]any{"score": 3.0}, Instance: "mail", DbotMirrorID: "R-1", DbotMirrorDirection: abi.MirrorBoth,
	}})
	if err != nil {
		t.Fatal(err)
	}
	inc := created[0]
	if !inc.New || inc.Version != 1 || inc.ID == "" || !inc.Created.Equal(clk.Now()) || !inc.Occurred.Equal(inc.Created) {
		t.Fatalf("created = %+v", inc)
	}
	if inc.DbotMirrorInstance != "mail" {
		t.Errorf("mirror instance = %q, want the source instance", inc.DbotMirrorInstance)
	}
	clk.Advance(time.Minute)

	tests := []struct {
		name    string
		update  func(*Incident) error
		wantErr error
		check   func(t *testing.T, got Incident)
	}{
		{
			name: "close",
			update: func(i *Incident) error {
				i.Status, i.CloseReason, i.Closed = abi.StatusDone, "Resolved", clk.Now()
				return nil
			},
			check: func(t *testing.T, got Incident) {
				if got.Status != abi.StatusDone || got.CloseReason != "Resolved" || got.Version != 2 || !got.Modified.Equal(clk.Now()) {
					t.Errorf("got %+v", got)
				}
			},
		},
		{
			name: "id, created and version are kept",
			update: func(i *Incident) error {
				i.ID, i.Created, i.Version = "other", time.Time{}, 99
				return nil
			},
			check: func(t *testing.T, got Incident) {
				if got.ID != inc.ID || !got.Created.Equal(inc.Created) || got.Version != 3 {
					t.Errorf("got %+v", got)
				}
			},
		},
		{
			name: "change mirror id",
			update: func(i *Incident) error {
				i.DbotMirrorID = "R-2"
				return nil
			},
			check: func(t *testing.T, got Incident) {
				if _, err := s.IncidentByMirrorID(ctx, "mail", "R-1"); !errors.Is(err, ErrNotFound) {
					t.Errorf("old mirror id still found: %v", err)
				}
				if byMirror, err := s.IncidentByMirrorID(ctx, "mail", "R-2"); err != nil || byMirror.ID != inc.ID {
					t.Errorf("IncidentByMirrorID(R-2) = %v, %v", byMirror.ID, err)
				}
			},
		},
		{
			name:    "status out of range",
			update:  func(i *Incident) error { i.Status = 7; return nil },
			wantErr: ErrInvalid,
		},
		{
			name:    "callback error aborts",
			update:  func(i *Incident) error { i.Name = "lost"; return ErrConflict },
			wantErr: ErrConflict,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := s.GetIncident(ctx, inc.ID)
			got, err := s.UpdateIncident(ctx, inc.ID, tc.update)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				after, _ := s.GetIncident(ctx, inc.ID)
				if after.Version != before.Version || after.Name != before.Name {
					t.Errorf("failed update changed the incident: %+v", after)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			stored, err := s.GetIncident(ctx, inc.ID)
			if err != nil || stored.Version != got.Version {
				t.Fatalf("GetIncident = %+v, %v", stored, err)
			}
			tc.check(t, stored)
			checkIndexes(t, s)
		})
	}

	if err := s.DeleteIncident(ctx, inc.ID); err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		func() error { _, err := s.GetIncident(ctx, inc.ID); return err }(),
		s.DeleteIncident(ctx, inc.ID),
		func() error {
			_, err := s.UpdateIncident(ctx, inc.ID, func(*Incident) error { return nil })
			return err
		}(),
	} {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("after delete: %v, want ErrNotFound", err)
		}
	}
	checkIndexes(t, s)
	if left := keysUnder(t, s, "idx/inc/"); len(left) != 0 {
		t.Errorf("index keys left after delete: %v", left)
	}
}

func TestCreateIncidentsDedup(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, Options{})
	first, err := s.CreateIncidents(ctx, []Incident{
		{Name: "src", Instance: "a", SourceID: "S1"},
		{Name: "mir", Instance: "a", DbotMirrorID: "M1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		in      []Incident
		wantNew []bool
		wantIDs []string // "" for a new id
	}{
		{"same source id", []Incident{{Name: "x", Instance: "a", SourceID: "S1"}}, []bool{false}, []string{first[0].ID}},
		{"same mirror id", []Incident{{Name: "x", Instance: "a", DbotMirrorID: "M1"}}, []bool{false}, []string{first[1].ID}},
		{"same mirror id, explicit mirror instance", []Incident{{Name: "x", DbotMirrorInstance: "a", DbotMirrorID: "M1"}}, []bool{false}, []string{first[1].ID}},
		{"other instance", []Incident{{Name: "x", Instance: "b", SourceID: "S1"}, {Name: "y", Instance: "b", DbotMirrorID: "M1"}}, []bool{true, true}, []string{"", ""}},
		{"duplicate within batch", []Incident{{Name: "x", Instance: "c", SourceID: "S9"}, {Name: "y", Instance: "c", SourceID: "S9"}}, []bool{true, false}, []string{"", "=0"}},
		{"no key never dedups", []Incident{{Name: "x", Instance: "a"}, {Name: "x", Instance: "a"}}, []bool{true, true}, []string{"", ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.CreateIncidents(ctx, tc.in)
			if err != nil {
				t.Fatal(err)
			}
			for i, g := range got {
				if g.New != tc.wantNew[i] {
					t.Errorf("[%d] New = %v, want %v", i, g.New, tc.wantNew[i])
				}
				switch w := tc.wantIDs[i]; {
				case w == "=0" && g.ID != got[0].ID:
					t.Errorf("[%d] id %s, want the batch's first %s", i, g.ID, got[0].ID)
				case w != "" && w != "=0" && g.ID != w:
					t.Errorf("[%d] id %s, want existing %s", i, g.ID, w)
				case w == "" && (g.ID == first[0].ID || g.ID == first[1].ID):
					t.Errorf("[%d] got an existing id", i)
				}
			}
		})
	}
	checkIndexes(t, s)

	// A unique key taken by another incident cannot be acquired by update.
	if _, err := s.UpdateIncident(ctx, first[0].ID, func(i *Incident) error { i.DbotMirrorID = "M1"; return nil }); !errors.Is(err, ErrExists) {
		t.Errorf("update onto a taken mirror id: %v, want ErrExists", err)
	}
	checkIndexes(t, s)
}

func TestCreateIncidentsWithLastRun(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, Options{})
	inst, err := s.CreateInstance(ctx, Instance{Name: "jira", Plugin: "jira"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		instID    string
		in        []Incident
		wantErr   error
		wantRun   string
		wantCount int
	}{
		{"stores both", inst.ID, []Incident{{Name: "a"}, {Name: "b"}}, nil, "1", 2},
		{"invalid incident stores neither", inst.ID, []Incident{{Name: "c"}, {Name: "d", Status: 9}}, ErrInvalid, "1", 2},
		{"missing instance stores neither", "nope", []Incident{{Name: "e"}}, ErrNotFound, "1", 2},
		{"empty batch still stores the run", inst.ID, nil, nil, "4", 2},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.CreateIncidentsWithLastRun(ctx, tc.instID, tc.in, map[string]any{"run": fmt.Sprint(i + 1)})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			for _, g := range got {
				if g.Instance != "jira" {
					t.Errorf("instance = %q, want the instance's name", g.Instance)
				}
			}
			run, err := s.LastRun(ctx, inst.ID)
			if err != nil || run["run"] != tc.wantRun {
				t.Errorf("last run = %v, %v; want run %s", run, err, tc.wantRun)
			}
			all, _, err := s.SearchIncidents(ctx, IncidentQuery{})
			if err != nil || len(all) != tc.wantCount {
				t.Errorf("incidents = %d, %v; want %d", len(all), err, tc.wantCount)
			}
		})
	}
}

func TestSearchIncidents(t *testing.T) {
	ctx := context.Background()
	clk := newFakeClock()
	s := newStore(t, Options{Now: clk.Now})
	var all []Incident
	for i := range 30 {
		clk.Advance(time.Second)
		got, err := s.CreateIncidents(ctx, []Incident{{
			Name: fmt.Sprintf("Alert %02d", i), Type: []string{"Phishing", "Malware"}[i%2], Instance: []string{"a", "b", "c"}[i%3],
			Status: abi.IncidentStatus(i % 4), DbotMirrorID: fmt.Sprint("m", i),
		}})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, got[0])
	}
	// Touch three old incidents so they become the most recently modified.
	clk.Advance(time.Hour)
	cut := clk.Now()
	var touched []string
	for _, i := range []int{4, 1, 7} {
		clk.Advance(time.Second)
		got, err := s.UpdateIncident(ctx, all[i].ID, func(inc *Incident) error { inc.Owner = "bob"; return nil })
		if err != nil {
			t.Fatal(err)
		}
		touched = append(touched, got.ID)
	}
	active := abi.StatusActive
	filter := func(keep func(i int, inc Incident) bool) []string {
		var out []string
		for i, inc := range all {
			if keep(i, inc) {
				out = append(out, inc.ID)
			}
		}
		return out
	}
	tests := []struct {
		name string
		q    IncidentQuery
		want []string
	}{
		{"all in creation order", IncidentQuery{}, incIDs(all)},
		{"status", IncidentQuery{Status: &active}, filter(func(i int, _ Incident) bool { return i%4 == 1 })},
		{"instance and type", IncidentQuery{Instance: "a", Type: "Malware"}, filter(func(i int, _ Incident) bool { return i%3 == 0 && i%2 == 1 })},
		{"mirror instance", IncidentQuery{MirrorInstance: "b"}, filter(func(i int, _ Incident) bool { return i%3 == 1 })},
		{"text ignores case", IncidentQuery{Text: "ALERT 1"}, filter(func(i int, _ Incident) bool { return i >= 10 && i < 20 })},
		{"modified after, by modification time", IncidentQuery{ModifiedAfter: cut}, touched},
		{"modified after and status", IncidentQuery{ModifiedAfter: cut, Status: &active}, []string{all[1].ID}},
		{"offset", IncidentQuery{Offset: 25}, incIDs(all[25:])},
	}
	for _, tc := range tests {
		for _, limit := range []int{1, 4, 100} {
			t.Run(fmt.Sprintf("%s/limit %d", tc.name, limit), func(t *testing.T) {
				q := tc.q
				q.Limit = limit
				var got []string
				for pages := 0; ; pages++ {
					if pages > 40 {
						t.Fatal("paging does not end")
					}
					page, next, err := s.SearchIncidents(ctx, q)
					if err != nil {
						t.Fatal(err)
					}
					if len(page) > limit {
						t.Fatalf("page of %d > limit %d", len(page), limit)
					}
					got = append(got, incIDs(page)...)
					if next == "" {
						break
					}
					q.Cursor, q.Offset = next, 0
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("got %d ids %v\nwant %d ids %v", len(got), got, len(tc.want), tc.want)
				}
			})
		}
	}
	if _, _, err := s.SearchIncidents(ctx, IncidentQuery{Status: &active, Cursor: "bm90LWEta2V5"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("foreign cursor: %v, want ErrInvalid", err)
	}
}

// TestUpdateIncidentConcurrent increments a counter from many goroutines:
// conflict retries must lose no update.
func TestUpdateIncidentConcurrent(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, Options{})
	got, err := s.CreateIncidents(ctx, []Incident{{Name: "counter", CustomFields: map[string]any{"n": 0.0}}})
	if err != nil {
		t.Fatal(err)
	}
	id := got[0].ID
	const workers, each = 8, 10
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				_, err := s.UpdateIncident(ctx, id, func(i *Incident) error {
					i.CustomFields["n"] = i.CustomFields["n"].(float64) + 1
					return nil
				})
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	final, err := s.GetIncident(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if n := final.CustomFields["n"].(float64); n != workers*each || final.Version != workers*each+1 {
		t.Errorf("n = %v, version = %d; want %d and %d", n, final.Version, workers*each, workers*each+1)
	}
	checkIndexes(t, s)
}

func TestIncidentFromABI(t *testing.T) {
	tests := []struct {
		occurred string
		want     time.Time
		wantErr  bool
	}{
		{"2024-05-01T10:00:00Z", time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC), false},
		{"2024-05-01T12:00:00.5+02:00", time.Date(2024, 5, 1, 10, 0, 0, 5e8, time.UTC), false},
		{"", time.Time{}, false},
		{"yesterday", time.Time{}, true},
	}
	for _, tc := range tests {
		got, err := IncidentFromABI("inst", abi.Incident{Name: "n", Occurred: tc.occurred, DbotMirrorID: "m"})
		if (err != nil) != tc.wantErr || !got.Occurred.Equal(tc.want) {
			t.Errorf("%q: %v, %v", tc.occurred, got.Occurred, err)
		}
		if err == nil && (got.Instance != "inst" || got.DbotMirrorID != "m") {
			t.Errorf("%q: %+v", tc.occurred, got)
		}
	}
}
