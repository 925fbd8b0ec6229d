package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/service"
	"github.com/connhost/connhost/internal/store"
	"github.com/connhost/connhost/internal/testenv"
)

func TestTestModule(t *testing.T) {
	p := newPeer(t)
	tests := []struct {
		name    string
		params  map[string]any
		limited bool
		kind    abi.ErrorKind
		msg     string
	}{
		{name: "ok"},
		{name: "bad key", params: map[string]any{"api_key": "wrong-key"}, kind: abi.KindFailed, msg: "check the API key"},
		{name: "rate limited", limited: true, kind: abi.KindRateLimited, msg: "API rate limit"},
		{name: "bad url", params: map[string]any{"url": "ftp://x"}, kind: abi.KindBadRequest, msg: "param url"},
		{name: "bad first_fetch", params: map[string]any{"first_fetch": "soon"}, kind: abi.KindBadRequest, msg: "param first_fetch"},
		{name: "max_fetch too big", params: map[string]any{"max_fetch": float64(500)}, kind: abi.KindBadRequest, msg: "param max_fetch"},
		{name: "bad direction", params: map[string]any{"mirror_direction": "Sideways"}, kind: abi.KindBadRequest, msg: "param mirror_direction"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p.limited.Store(tc.limited)
			defer p.limited.Store(false)
			err := p.host(t, tc.params).TestModule(context.Background())
			if abi.KindOf(err) != tc.kind || (err != nil && !strings.Contains(err.Error(), tc.msg)) {
				t.Fatalf("err = %v, want kind %q containing %q", err, tc.kind, tc.msg)
			}
			if err != nil && strings.Contains(err.Error(), p.key) {
				t.Errorf("error shows the API key: %v", err)
			}
		})
	}
}

func mirrorIDs(incs []abi.Incident) []string {
	out := []string{}
	for _, i := range incs {
		out = append(out, i.DbotMirrorID)
	}
	return out
}

func TestFetchIncidentsDedupAtEqualTimestamps(t *testing.T) {
	p := newPeer(t)
	ctx := context.Background()
	p.clock.set(p.t0.Add(-4 * 24 * time.Hour))
	p.incident(t, service.IncidentInput{Name: ptr("too old")})
	p.clock.set(p.t0)
	var ids []string // a, b, c created in the same instant
	for _, n := range []string{"a", "b", "c"} {
		inc := p.incident(t, service.IncidentInput{Name: ptr(n), Type: ptr("Phishing"), Severity: ptr(3.0), Owner: ptr("ann"),
			Details: ptr("d-" + n), Labels: &[]abi.Label{{Type: "src", Value: "mail"}}, CustomFields: map[string]any{"phase": "triage"}})
		ids = append(ids, inc.ID)
	}
	h := p.host(t, map[string]any{"max_fetch": float64(2)})
	var later []string
	steps := []struct {
		before func()
		want   func() []string
	}{
		{want: func() []string { return ids[:2] }},
		{want: func() []string { return ids[2:] }},
		{before: func() { later = append(later, p.incident(t, service.IncidentInput{Name: ptr("same instant")}).ID) },
			want: func() []string { return later[:1] }},
		{want: func() []string { return []string{} }},
		{before: func() {
			p.clock.set(p.t0.Add(time.Second))
			later = append(later, p.incident(t, service.IncidentInput{Name: ptr("next second")}).ID)
		}, want: func() []string { return later[1:] }},
		{want: func() []string { return []string{} }},
	}
	for i, s := range steps {
		if s.before != nil {
			s.before()
		}
		incs, err := h.FetchIncidents(ctx)
		if err != nil {
			t.Fatalf("fetch %d: %v", i, err)
		}
		if got := mirrorIDs(incs); !slices.Equal(got, s.want()) {
			t.Fatalf("fetch %d = %v, want %v (last run %v)", i, got, s.want(), h.LastRun())
		}
	}
	if lr := h.LastRun(); lr["last_fetch"] != p.t0.Add(time.Second).Format(time.RFC3339Nano) {
		t.Errorf("last run = %v", lr)
	}

	first := h.Incidents()[0]
	if first.Name != "a" || first.Severity != 3 || first.Type != "Phishing" || first.Details != "d-a" || first.Owner != "ann" ||
		first.DbotMirrorDirection != abi.MirrorBoth || !slices.Equal(first.DbotMirrorTags, []string{"comment", "note"}) ||
		len(first.Labels) != 1 || first.CustomFields["phase"] != "triage" || first.Occurred != p.t0.Format(time.RFC3339Nano) {
		t.Errorf("incident = %+v", first)
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(first.RawJSON), &raw); err != nil || raw["id"] != ids[0] {
		t.Errorf("rawJSON = %s (%v)", first.RawJSON, err)
	}
}

// TestFetchIncidentsPagesAndQuery crosses the peer's page size: the cursor
// in the last run carries the next fetch on, and nothing is fetched twice.
func TestFetchIncidentsPagesAndQuery(t *testing.T) {
	p := newPeer(t)
	ctx := context.Background()
	const n = 520
	batch := make([]store.Incident, n)
	for i := range batch {
		name := fmt.Sprintf("alert %03d", i)
		if i%10 == 0 {
			name = fmt.Sprintf("phish %03d", i)
		}
		batch[i] = store.Incident{Name: name, Status: abi.StatusActive}
	}
	if _, err := p.st.CreateIncidents(ctx, batch); err != nil {
		t.Fatal(err)
	}
	h := p.host(t, map[string]any{"max_fetch": float64(200)})
	seen := map[string]bool{}
	var sizes []int
	for range 4 {
		incs, err := h.FetchIncidents(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(incs))
		for _, inc := range incs {
			if seen[inc.DbotMirrorID] {
				t.Fatalf("incident %s fetched twice", inc.DbotMirrorID)
			}
			seen[inc.DbotMirrorID] = true
		}
	}
	if !slices.Equal(sizes, []int{200, 200, 120, 0}) {
		t.Errorf("fetch sizes = %v, want [200 200 120 0]", sizes)
	}
	if c, _ := h.LastRun()["cursor"].(string); c == "" {
		t.Errorf("last run %v: want a cursor past the first page", h.LastRun())
	}

	q := p.host(t, map[string]any{"incidents_fetch_query": "phish", "max_fetch": float64(200)})
	incs, err := q.FetchIncidents(ctx)
	if err != nil || len(incs) != n/10 || !strings.HasPrefix(incs[0].Name, "phish") {
		t.Fatalf("query fetch: %d incidents, %v", len(incs), err)
	}
}

// TestFetchIncidentsLoopGuard: copies made by a connhost-peer instance on
// the peer, incidents we created there and marked ones are not fetched;
// incidents of other connectors are.
func TestFetchIncidentsLoopGuard(t *testing.T) {
	p := newPeer(t)
	ctx := context.Background()
	if _, err := p.svc.Plugins.Install(ctx, service.InstallRequest{Wasm: testenv.Plugin(t, "connhost-peer"), By: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.svc.Instances.Create(ctx, service.InstanceInput{Name: "peer-a", Plugin: peerPlugin,
		Params: map[string]any{"url": "http://tenant-a.example", "api_key": "k"}}); err != nil {
		t.Fatal(err)
	}
	original := p.incident(t, service.IncidentInput{Name: ptr("original")})
	copies, err := p.st.CreateIncidents(ctx, []store.Incident{
		{Name: "copy of ours", Status: abi.StatusActive, Instance: "peer-a", DbotMirrorID: "x1", DbotMirrorInstance: "peer-a"},
		{Name: "from a ticket system", Status: abi.StatusActive, Instance: "td", DbotMirrorID: "TD-1", DbotMirrorInstance: "td"},
		{Name: "marked", Status: abi.StatusActive, CustomFields: map[string]any{markerField: "elsewhere"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	h := p.host(t, nil)
	created, err := h.UpdateRemoteSystem(ctx, abi.UpdateRemoteSystemArgs{Data: map[string]any{"id": "local-1", "name": "pushed from here"}})
	if err != nil {
		t.Fatal(err)
	}
	incs, err := h.FetchIncidents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := mirrorIDs(incs), []string{original.ID, copies[1].ID}; !slices.Equal(got, want) {
		t.Fatalf("fetched %v, want %v (not the peer copy %s, the marked %s or ours %s)", got, want, copies[0].ID, copies[2].ID, created)
	}
}

func TestGetModifiedRemoteData(t *testing.T) {
	p := newPeer(t)
	ctx := context.Background()
	a := p.incident(t, service.IncidentInput{Name: ptr("a")})
	b := p.incident(t, service.IncidentInput{Name: ptr("b")})
	p.incident(t, service.IncidentInput{Name: ptr("c")})
	p.clock.set(p.t0.Add(time.Minute))
	if _, err := p.svc.Incidents.Update(ctx, b.ID, service.IncidentInput{Severity: ptr(2.0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.svc.Incidents.Close(ctx, a.ID, "Resolved", ""); err != nil {
		t.Fatal(err)
	}
	since := p.t0.Add(30 * time.Second).Format(time.RFC3339Nano)
	tests := []struct {
		name    string
		params  map[string]any
		limited bool
		want    []string
		kind    abi.ErrorKind
	}{
		{name: "modified", want: []string{b.ID, a.ID}},
		{name: "rate limited", limited: true, kind: abi.KindRateLimited},
		{name: "other error skips the cycle", params: map[string]any{"api_key": "wrong"}, kind: abi.KindSkipUpdate},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p.limited.Store(tc.limited)
			defer p.limited.Store(false)
			r, err := p.host(t, tc.params).GetModifiedRemoteData(ctx, abi.GetModifiedRemoteDataArgs{LastUpdate: since})
			if abi.KindOf(err) != tc.kind {
				t.Fatalf("err = %v, want kind %q", err, tc.kind)
			}
			slices.Sort(tc.want) // modified in the same instant: any order
			if err == nil && !slices.Equal(slices.Sorted(slices.Values(r.ModifiedIncidentIDs)), tc.want) {
				t.Fatalf("ids = %v, want %v", r.ModifiedIncidentIDs, tc.want)
			}
		})
	}
}

// isEntry reports whether e is a special entry whose Contents set key.
func isEntry(e abi.Entry, key string) bool {
	m, ok := e.Contents.(map[string]any)
	return ok && m[key] == true
}

func TestGetRemoteDataEntriesCloseAndReopen(t *testing.T) {
	p := newPeer(t)
	ctx := context.Background()
	inc := p.incident(t, service.IncidentInput{Name: ptr("a"), Severity: ptr(2.0), Owner: ptr("bob"), CustomFields: map[string]any{"phase": "triage"}})
	if _, err := p.svc.Incidents.AddEntry(ctx, inc.ID, service.EntryInput{Contents: "before the last sync"}); err != nil {
		t.Fatal(err)
	}
	h := p.host(t, nil)
	lastSync := p.t0.Add(time.Second).Format(time.RFC3339Nano)

	p.clock.set(p.t0.Add(time.Minute))
	remark, err := p.svc.Incidents.AddEntry(ctx, inc.ID, service.EntryInput{Contents: "new remark", Tags: []string{"comment"}, User: "bob", Note: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.st.AddEntries(ctx, []store.Entry{{IncidentID: inc.ID, Type: abi.EntryNote, Contents: "mirrored in from elsewhere",
		Origin: store.OriginMirrorPrefix + "other"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.UpdateRemoteSystem(ctx, abi.UpdateRemoteSystemArgs{RemoteIncidentID: inc.ID, Entries: []abi.ServerEntry{
		{ID: "L1", Type: abi.EntryNote, Contents: "posted by us", Tags: []string{"comment"}, User: "ann"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.svc.Incidents.Close(ctx, inc.ID, "Resolved", "fixed it"); err != nil {
		t.Fatal(err)
	}

	r, err := h.GetRemoteData(ctx, abi.GetRemoteDataArgs{RemoteIncidentID: inc.ID, LastUpdate: lastSync})
	if err != nil {
		t.Fatal(err)
	}
	mo := r.MirroredObject
	if mo["name"] != "a" || mo["severity"] != 2.0 || mo["owner"] != "bob" || mo["status"] != float64(abi.StatusDone) ||
		mo["closeReason"] != "Resolved" || mo["CustomFields"].(map[string]any)["phase"] != "triage" {
		t.Errorf("mirrored object = %v", mo)
	}
	if len(r.Entries) != 2 {
		t.Fatalf("entries = %+v, want the new remark and a close", r.Entries)
	}
	note := r.Entries[0]
	if note.Contents != "new remark" || !note.Note || !slices.Equal(note.Tags, []string{"comment"}) ||
		note.ID != remark.ID || note.EntryContext[ctxRemoteUser] != "bob" {
		t.Errorf("note = %+v", note)
	}
	if c := r.Entries[1].Contents.(map[string]any); !isEntry(r.Entries[1], abi.KeyIncidentClose) ||
		c[abi.KeyCloseReason] != "Resolved" || c[abi.KeyCloseNotes] != "fixed it" {
		t.Errorf("close entry = %+v", r.Entries[1])
	}

	lastSync = p.clock.now().Add(time.Second).Format(time.RFC3339Nano)
	r, err = h.GetRemoteData(ctx, abi.GetRemoteDataArgs{RemoteIncidentID: inc.ID, LastUpdate: lastSync})
	if err != nil || len(r.Entries) != 0 {
		t.Fatalf("second sync: entries %+v, %v; want none", r.Entries, err)
	}

	p.clock.set(p.t0.Add(2 * time.Minute))
	if _, err := p.svc.Incidents.Reopen(ctx, inc.ID); err != nil {
		t.Fatal(err)
	}
	r, err = h.GetRemoteData(ctx, abi.GetRemoteDataArgs{RemoteIncidentID: inc.ID, LastUpdate: lastSync})
	if err != nil || len(r.Entries) != 1 || !isEntry(r.Entries[0], abi.KeyIncidentReopen) {
		t.Fatalf("after reopen: entries %+v, %v; want a reopen entry", r.Entries, err)
	}

	if _, err := p.svc.Incidents.Close(ctx, inc.ID, "Duplicate", ""); err != nil {
		t.Fatal(err)
	}
	off := p.host(t, map[string]any{"close_incident": false})
	r, err = off.GetRemoteData(ctx, abi.GetRemoteDataArgs{RemoteIncidentID: inc.ID, LastUpdate: lastSync})
	if err != nil || len(r.Entries) != 0 {
		t.Fatalf("close_incident off: entries %+v, %v", r.Entries, err)
	}

	if _, err = h.GetRemoteData(ctx, abi.GetRemoteDataArgs{RemoteIncidentID: "nope", LastUpdate: lastSync}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("missing incident: err = %v", err)
	}
	p.limited.Store(true)
	defer p.limited.Store(false)
	if _, err = h.GetRemoteData(ctx, abi.GetRemoteDataArgs{RemoteIncidentID: inc.ID, LastUpdate: lastSync}); abi.KindOf(err) != abi.KindRateLimited {
		t.Errorf("rate limited: err = %v", err)
	}
}

func entryContents(t *testing.T, p *peer, id string) []string {
	t.Helper()
	es, _, err := p.svc.Incidents.ListEntries(context.Background(), id, service.EntryQuery{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, fmt.Sprintf("%v by %s", e.Contents, e.User))
	}
	return out
}

func TestUpdateRemoteSystem(t *testing.T) {
	p := newPeer(t)
	ctx := context.Background()
	inc := p.incident(t, service.IncidentInput{Name: ptr("a"), Severity: ptr(1.0), Owner: ptr("bob"), CustomFields: map[string]any{"phase": "triage", "old": "x"}})
	h := p.host(t, nil)
	args := abi.UpdateRemoteSystemArgs{
		RemoteIncidentID: inc.ID,
		IncidentChanged:  true,
		Data: map[string]any{"id": "L-1", "name": "renamed", "severity": 4.0, "owner": "ann", "closeReason": "Resolved",
			"closeNotes": "done", "phase": "contain", "dbotMirrorId": inc.ID}, // custom fields flat, as the engine sends them
		Delta:     map[string]any{"name": "renamed", "severity": 4.0, "phase": "contain", "old": nil, "dbotMirrorLastSync": "x"},
		IncStatus: abi.StatusDone,
		Entries: []abi.ServerEntry{
			{ID: "e1", Type: abi.EntryNote, Contents: "please check", Tags: []string{"comment"}, User: "ann"},
			{ID: "e2", Type: abi.EntryNote, Contents: map[string]any{"k": "v"}, Format: abi.FormatJSON, Tags: []string{"note"}},
			{ID: "e3", Type: abi.EntryNote, Contents: "  "},
		},
	}
	for i := range 2 { // the second delivery is a retry: nothing doubles
		id, err := h.UpdateRemoteSystem(ctx, args)
		if err != nil || id != inc.ID {
			t.Fatalf("update %d = %q, %v", i, id, err)
		}
	}
	got, err := p.svc.Incidents.Get(ctx, inc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "renamed" || got.Severity != 4 || got.Owner != "bob" || got.CustomFields["phase"] != "contain" || got.CustomFields["old"] != nil {
		t.Errorf("patched incident = %+v (owner is not in the delta, so it stays)", got)
	}
	if got.Status != abi.StatusDone || got.CloseReason != "Resolved" || got.CloseNotes != "done" {
		t.Errorf("incident not closed: %+v", got)
	}
	if es := entryContents(t, p, inc.ID); !slices.Equal(es, []string{"please check by (peer) ann", "map[k:v] by (peer)"}) {
		t.Errorf("peer entries = %q", es)
	}

	// close_out off leaves an open incident open.
	open := p.incident(t, service.IncidentInput{Name: ptr("b")})
	off := p.host(t, map[string]any{"close_out": false})
	if _, err := off.UpdateRemoteSystem(ctx, abi.UpdateRemoteSystemArgs{RemoteIncidentID: open.ID, IncStatus: abi.StatusDone}); err != nil {
		t.Fatal(err)
	}
	if got, _ := p.svc.Incidents.Get(ctx, open.ID); got.Status != abi.StatusActive {
		t.Errorf("close_out off closed the peer incident")
	}

	// No remote id creates the peer incident, marked as a copy, once.
	create := abi.UpdateRemoteSystemArgs{Data: map[string]any{"id": "L-2", "name": "from here", "details": "d", "severity": 2.0,
		"type": "Malware", "CustomFields": map[string]any{"phase": "new"}}}
	id, err := h.UpdateRemoteSystem(ctx, create)
	if err != nil {
		t.Fatal(err)
	}
	again, err := h.UpdateRemoteSystem(ctx, create)
	if err != nil || again != id {
		t.Fatalf("retried create = %q, %v; want %q", again, err, id)
	}
	got, err = p.svc.Incidents.Get(ctx, id)
	if err != nil || got.Name != "from here" || got.Severity != 2 || got.Type != "Malware" ||
		got.CustomFields["phase"] != "new" || got.CustomFields[markerField] != "peer-b" {
		t.Errorf("created = %+v, %v", got, err)
	}
	if _, err := h.UpdateRemoteSystem(ctx, abi.UpdateRemoteSystemArgs{Data: map[string]any{"details": "no name"}}); abi.KindOf(err) != abi.KindBadRequest {
		t.Errorf("create without a name: err = %v, want bad_request", err)
	}
	p.limited.Store(true)
	defer p.limited.Store(false)
	if _, err := h.UpdateRemoteSystem(ctx, args); abi.KindOf(err) != abi.KindRateLimited {
		t.Errorf("rate limited: err = %v", err)
	}
}

func TestGetMappingFields(t *testing.T) {
	p := newPeer(t)
	m, err := p.host(t, nil).GetMappingFields(context.Background())
	if err != nil || m[incidentType]["severity"] == "" || m[incidentType]["owner"] == "" {
		t.Fatalf("mapping = %v, %v", m, err)
	}
}

// TestGetRemoteDataSkipsPostsInFlight: a post is recorded in the ledger
// before it is sent, so an incoming cycle that sees the peer entry before
// the answer naming it is recorded does not bring it back; and a post
// recorded but never answered is sent again.
func TestGetRemoteDataSkipsPostsInFlight(t *testing.T) {
	p := newPeer(t)
	ctx := context.Background()
	inc := p.incident(t, service.IncidentInput{Name: ptr("a")})
	h := p.host(t, nil)
	lastSync := p.t0.Add(time.Second).Format(time.RFC3339Nano)
	p.clock.set(p.t0.Add(time.Minute))
	// The post of local entry L1 is in flight: recorded, then made on the
	// peer, with the answer not yet recorded.
	h.SetIntegrationContext(map[string]any{ledgerKey: map[string]any{"posted": map[string]any{
		inc.ID: map[string]any{"L1": map[string]any{"at": p.t0, "sum": contentsSum("note from us")}}}}})
	if _, err := p.svc.Incidents.AddEntry(ctx, inc.ID, service.EntryInput{Contents: "note from us", User: "(peer) ann"}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.svc.Incidents.AddEntry(ctx, inc.ID, service.EntryInput{Contents: "their note", User: "bob"}); err != nil {
		t.Fatal(err)
	}
	r, err := h.GetRemoteData(ctx, abi.GetRemoteDataArgs{RemoteIncidentID: inc.ID, LastUpdate: lastSync})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Entries) != 1 || r.Entries[0].Contents != "their note" {
		t.Fatalf("entries = %+v, want only the peer's own note", r.Entries)
	}
	// L1 has no remote id: the update that carries it again posts it.
	if _, err := h.UpdateRemoteSystem(ctx, abi.UpdateRemoteSystemArgs{RemoteIncidentID: inc.ID, Entries: []abi.ServerEntry{
		{ID: "L1", Type: abi.EntryNote, Contents: "note from us", User: "ann"}}}); err != nil {
		t.Fatal(err)
	}
	es, _, err := p.svc.Incidents.ListEntries(ctx, inc.ID, service.EntryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range es {
		if e.Contents == "note from us" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("the unanswered post was sent %d more times, want 1", n-1)
	}
}
