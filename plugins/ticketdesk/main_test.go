package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/plugins/ticketdesk/tdserver"
	"github.com/connhost/connhost/sdk-guest/sdktest"
)

const apiKey = "td-secret-key-123"

// clock is a settable clock for tdserver.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

type fixture struct {
	srv   *tdserver.Server
	url   string
	clock *clock
	t0    time.Time // an hour ago, whole second: inside first_fetch
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{srv: tdserver.New(apiKey), t0: time.Now().UTC().Add(-time.Hour).Truncate(time.Second)}
	f.clock = &clock{t: f.t0}
	f.srv.SetClock(f.clock.now)
	ts := httptest.NewServer(f.srv)
	t.Cleanup(ts.Close)
	f.url = ts.URL
	return f
}

func (f *fixture) params(extra map[string]any) map[string]any {
	p := map[string]any{
		"url": f.url, "api_key": apiKey, "first_fetch": "3 days", "max_fetch": float64(50),
		"mirror_direction": "Incoming And Outgoing", "close_incident": true, "close_out": true,
		"comment_tag": "comment",
	}
	for k, v := range extra {
		p[k] = v
	}
	return p
}

// host runs the connector natively and checks, when the test ends, that
// the API key never reached the logs.
func (f *fixture) host(t *testing.T, extra map[string]any) *sdktest.Host {
	t.Helper()
	h := sdktest.New(connector, f.params(extra))
	h.Instance = abi.InstanceInfo{ID: "i-1", Name: "td", Brand: "ticketdesk"}
	t.Cleanup(func() {
		for _, l := range h.Logs() {
			if strings.Contains(l.Message, apiKey) {
				t.Errorf("API key logged: %q", l.Message)
			}
		}
	})
	return h
}

func TestTestModule(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		name    string
		params  map[string]any
		limited bool
		kind    abi.ErrorKind
		msg     string
	}{
		{name: "ok"},
		{name: "bad key", params: map[string]any{"api_key": "wrong"}, kind: abi.KindFailed, msg: "check the API key"},
		{name: "rate limited", limited: true, kind: abi.KindRateLimited, msg: "API rate limit"},
		{name: "bad url", params: map[string]any{"url": "ftp://x"}, kind: abi.KindBadRequest, msg: "param url"},
		{name: "bad first_fetch", params: map[string]any{"first_fetch": "soon"}, kind: abi.KindBadRequest, msg: "param first_fetch"},
		{name: "max_fetch too big", params: map[string]any{"max_fetch": float64(500)}, kind: abi.KindBadRequest, msg: "param max_fetch"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f.srv.SetRateLimited(tc.limited)
			defer f.srv.SetRateLimited(false)
			err := f.host(t, tc.params).TestModule(context.Background())
			if abi.KindOf(err) != tc.kind || (err != nil && !strings.Contains(err.Error(), tc.msg)) {
				t.Fatalf("err = %v, want kind %q containing %q", err, tc.kind, tc.msg)
			}
			if err != nil && strings.Contains(err.Error(), apiKey) {
				t.Errorf("error shows the API key: %v", err)
			}
		})
	}
}

func ids(incs []abi.Incident) []string {
	var out []string
	for _, i := range incs {
		out = append(out, i.DbotMirrorID)
	}
	return out
}

func TestFetchIncidentsDedupAtEqualTimestamps(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	old := f.t0.Add(-4 * 24 * time.Hour)
	f.clock.set(old)
	f.srv.CreateTicket(tdserver.Ticket{Title: "too old"}) // TD-1, before first_fetch
	f.clock.set(f.t0)
	for _, title := range []string{"a", "b", "c"} { // TD-2..4 in the same second
		f.srv.CreateTicket(tdserver.Ticket{Title: title, Severity: 3, Assignee: "ann"})
	}
	h := f.host(t, map[string]any{"max_fetch": float64(2)})

	steps := []struct {
		before func()
		want   []string
	}{
		{want: []string{"TD-2", "TD-3"}},
		{want: []string{"TD-4"}},
		{before: func() { f.srv.CreateTicket(tdserver.Ticket{Title: "same second"}) }, want: []string{"TD-5"}},
		{want: nil},
		{before: func() {
			f.clock.set(f.t0.Add(time.Second))
			f.srv.CreateTicket(tdserver.Ticket{Title: "next second"})
		}, want: []string{"TD-6"}},
		{want: nil},
	}
	for i, s := range steps {
		if s.before != nil {
			s.before()
		}
		incs, err := h.FetchIncidents(ctx)
		if err != nil {
			t.Fatalf("fetch %d: %v", i, err)
		}
		if got := ids(incs); !slices.Equal(got, s.want) {
			t.Fatalf("fetch %d = %v, want %v (last run %v)", i, got, s.want, h.LastRun())
		}
	}
	if lr := h.LastRun(); lr["last_fetch"] != f.t0.Add(time.Second).Format(time.RFC3339) {
		t.Errorf("last run = %v", lr)
	}

	first := h.Incidents()[0]
	if first.Name != "TD-2: a" || first.Severity != 3 || first.Occurred != f.t0.Format(time.RFC3339) ||
		first.DbotMirrorDirection != abi.MirrorBoth || !slices.Equal(first.DbotMirrorTags, []string{"comment"}) ||
		first.Type != incidentType || len(first.Labels) != 1 {
		t.Errorf("incident = %+v", first)
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(first.RawJSON), &raw); err != nil || raw["id"] != "TD-2" {
		t.Errorf("rawJSON = %s (%v)", first.RawJSON, err)
	}
}

func TestFetchIncidentsFailureKeepsLastRun(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.srv.CreateTicket(tdserver.Ticket{Title: "a"})
	h := f.host(t, nil)
	if _, err := h.FetchIncidents(ctx); err != nil {
		t.Fatal(err)
	}
	before := h.LastRun()
	f.clock.set(f.t0.Add(time.Minute))
	f.srv.CreateTicket(tdserver.Ticket{Title: "b"})
	f.srv.SetRateLimited(true)
	if _, err := h.FetchIncidents(ctx); abi.KindOf(err) != abi.KindRateLimited {
		t.Fatalf("err = %v, want rate_limited", err)
	}
	if got := h.LastRun(); got["last_fetch"] != before["last_fetch"] || len(h.Incidents()) != 1 {
		t.Fatalf("failed fetch changed state: last run %v, %d incidents", got, len(h.Incidents()))
	}
	f.srv.SetRateLimited(false)
	incs, err := h.FetchIncidents(ctx)
	if err != nil || !slices.Equal(ids(incs), []string{"TD-2"}) {
		t.Fatalf("fetch after rate limit = %v, %v", ids(incs), err)
	}
}

func TestGetModifiedRemoteData(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.srv.CreateTicket(tdserver.Ticket{Title: "a"})
	f.srv.CreateTicket(tdserver.Ticket{Title: "b"})
	f.clock.set(f.t0.Add(time.Minute))
	if _, err := f.srv.AddComment("TD-2", tdserver.Comment{Body: "x"}); err != nil {
		t.Fatal(err)
	}
	since := f.t0.Add(30 * time.Second).Format(time.RFC3339)
	tests := []struct {
		name    string
		params  map[string]any
		limited bool
		want    []string
		kind    abi.ErrorKind
	}{
		{name: "modified", want: []string{"TD-2"}},
		{name: "rate limited", limited: true, kind: abi.KindRateLimited},
		{name: "other error skips the cycle", params: map[string]any{"api_key": "wrong"}, kind: abi.KindSkipUpdate},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f.srv.SetRateLimited(tc.limited)
			defer f.srv.SetRateLimited(false)
			r, err := f.host(t, tc.params).GetModifiedRemoteData(ctx, abi.GetModifiedRemoteDataArgs{LastUpdate: since})
			if abi.KindOf(err) != tc.kind {
				t.Fatalf("err = %v, want kind %q", err, tc.kind)
			}
			if err == nil && !slices.Equal(r.ModifiedIncidentIDs, tc.want) {
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

func TestGetRemoteDataMirrorsCommentsCloseAndReopen(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.srv.CreateTicket(tdserver.Ticket{Title: "a", Comments: []tdserver.Comment{{Body: "old", Author: "bob"}}})
	h := f.host(t, nil)
	lastSync := f.t0.Format(time.RFC3339)

	f.clock.set(f.t0.Add(time.Minute))
	f.srv.AddComment("TD-1", tdserver.Comment{Body: "new remark", Author: "bob"})
	f.srv.AddComment("TD-1", tdserver.Comment{Body: "echo of ours", Author: "connhost", Tags: []string{originTag}})
	f.srv.Close("TD-1", "Resolved", "fixed it")

	r, err := h.GetRemoteData(ctx, abi.GetRemoteDataArgs{RemoteIncidentID: "TD-1", LastUpdate: lastSync})
	if err != nil {
		t.Fatal(err)
	}
	if r.MirroredObject["status"] != "closed" || r.MirroredObject["id"] != "TD-1" {
		t.Errorf("mirrored object = %v", r.MirroredObject)
	}
	if len(r.Entries) != 2 {
		t.Fatalf("entries = %+v, want the new comment and a close", r.Entries)
	}
	note := r.Entries[0]
	if s, _ := note.Contents.(string); !strings.Contains(s, "new remark") || !note.Note ||
		!slices.Equal(note.Tags, []string{fromTicketDeskTag}) || note.Type != abi.EntryNote {
		t.Errorf("note = %+v", note)
	}
	if c := r.Entries[1].Contents.(map[string]any); !isEntry(r.Entries[1], abi.KeyIncidentClose) ||
		c[abi.KeyCloseReason] != "Resolved" || c[abi.KeyCloseNotes] != "fixed it" {
		t.Errorf("close entry = %+v", r.Entries[1])
	}

	lastSync = f.clock.now().Format(time.RFC3339)
	r, err = h.GetRemoteData(ctx, abi.GetRemoteDataArgs{RemoteIncidentID: "TD-1", LastUpdate: lastSync})
	if err != nil || len(r.Entries) != 0 {
		t.Fatalf("second sync: entries %+v, %v; want none", r.Entries, err)
	}

	f.clock.set(f.t0.Add(2 * time.Minute))
	f.srv.Reopen("TD-1")
	r, err = h.GetRemoteData(ctx, abi.GetRemoteDataArgs{RemoteIncidentID: "TD-1", LastUpdate: lastSync})
	if err != nil || len(r.Entries) != 1 || !isEntry(r.Entries[0], abi.KeyIncidentReopen) {
		t.Fatalf("after reopen: entries %+v, %v; want a reopen entry", r.Entries, err)
	}

	// With close_incident off, closing produces no entry.
	f.srv.Close("TD-1", "Duplicate", "")
	off := f.host(t, map[string]any{"close_incident": false})
	r, err = off.GetRemoteData(ctx, abi.GetRemoteDataArgs{RemoteIncidentID: "TD-1", LastUpdate: lastSync})
	if err != nil || len(r.Entries) != 0 {
		t.Fatalf("close_incident off: entries %+v, %v", r.Entries, err)
	}

	_, err = h.GetRemoteData(ctx, abi.GetRemoteDataArgs{RemoteIncidentID: "TD-404", LastUpdate: lastSync})
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("missing ticket: err = %v", err)
	}
	f.srv.SetRateLimited(true)
	_, err = h.GetRemoteData(ctx, abi.GetRemoteDataArgs{RemoteIncidentID: "TD-1", LastUpdate: lastSync})
	if abi.KindOf(err) != abi.KindRateLimited {
		t.Errorf("rate limited: err = %v", err)
	}
}

func TestUpdateRemoteSystem(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.srv.CreateTicket(tdserver.Ticket{Title: "a", Severity: 1})
	h := f.host(t, nil)
	args := abi.UpdateRemoteSystemArgs{
		RemoteIncidentID: "TD-1",
		IncidentChanged:  true,
		Data:             map[string]any{"name": "renamed", "severity": float64(4), "owner": "ann", "closeReason": "Resolved", "closeNotes": "done"},
		Delta:            map[string]any{"name": "renamed", "severity": float64(4), "unmapped": "x"},
		IncStatus:        abi.StatusDone,
		Entries: []abi.ServerEntry{
			{ID: "e1", Type: abi.EntryNote, Contents: "please check", Tags: []string{"comment"}, User: "ann"},
			{ID: "e2", Type: abi.EntryNote, Contents: "internal only"},
			{ID: "e3", Type: abi.EntryNote, Contents: "came from TicketDesk", Tags: []string{"comment", fromTicketDeskTag}},
		},
	}
	id, err := h.UpdateRemoteSystem(ctx, args)
	if err != nil || id != "TD-1" {
		t.Fatalf("update = %q, %v", id, err)
	}
	tk, _ := f.srv.Ticket("TD-1")
	if tk.Title != "renamed" || tk.Severity != 4 || tk.Assignee != "" {
		t.Errorf("patched ticket = %+v (owner is not in the delta, so it stays)", tk)
	}
	if len(tk.Comments) != 1 || tk.Comments[0].Body != "please check" || tk.Comments[0].Author != "ann" ||
		!slices.Equal(tk.Comments[0].Tags, []string{originTag}) {
		t.Errorf("comments = %+v, want only the tagged entry, marked", tk.Comments)
	}
	if tk.Status != tdserver.StatusClosed || tk.CloseReason != "Resolved" || tk.CloseNotes != "done" {
		t.Errorf("ticket not closed: %+v", tk)
	}

	// The comment we posted does not come back in.
	r, err := h.GetRemoteData(ctx, abi.GetRemoteDataArgs{RemoteIncidentID: "TD-1", LastUpdate: f.t0.Add(-time.Minute).Format(time.RFC3339)})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range r.Entries {
		if s, _ := e.Contents.(string); strings.Contains(s, "please check") {
			t.Errorf("own comment mirrored back: %+v", e)
		}
	}

	// close_out off leaves an open ticket open; no remote id creates one.
	f.srv.CreateTicket(tdserver.Ticket{Title: "b"})
	off := f.host(t, map[string]any{"close_out": false})
	if _, err := off.UpdateRemoteSystem(ctx, abi.UpdateRemoteSystemArgs{RemoteIncidentID: "TD-2", IncStatus: abi.StatusDone}); err != nil {
		t.Fatal(err)
	}
	if tk, _ := f.srv.Ticket("TD-2"); tk.Status != tdserver.StatusOpen {
		t.Errorf("close_out off closed the ticket")
	}
	id, err = h.UpdateRemoteSystem(ctx, abi.UpdateRemoteSystemArgs{Data: map[string]any{"name": "from connhost", "details": "d", "severity": float64(2)}})
	if tk, ok := f.srv.Ticket(id); err != nil || !ok || tk.Title != "from connhost" || tk.Severity != 2 {
		t.Errorf("create = %q, %v, %+v", id, err, tk)
	}
}

func TestGetMappingFields(t *testing.T) {
	f := newFixture(t)
	m, err := f.host(t, nil).GetMappingFields(context.Background())
	if err != nil || len(m[incidentType]) == 0 || m[incidentType]["severity"] == "" {
		t.Fatalf("mapping = %v, %v", m, err)
	}
}

func TestCommands(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.srv.CreateTicket(tdserver.Ticket{Title: "a | b", Severity: 2})
	h := f.host(t, nil)
	tests := []struct {
		cmd  string
		args map[string]string
		kind abi.ErrorKind
		want string // substring of the result
	}{
		{cmd: "ticketdesk-get-ticket", args: map[string]string{"id": "TD-1"}, want: `a \\| b`},
		{cmd: "ticketdesk-get-ticket", kind: abi.KindBadRequest},
		{cmd: "ticketdesk-get-ticket", args: map[string]string{"id": "TD-9"}, kind: abi.KindFailed},
		{cmd: "ticketdesk-add-comment", args: map[string]string{"id": "TD-1", "body": "hi"}, want: "added to ticket TD-1"},
		{cmd: "ticketdesk-add-comment", args: map[string]string{"id": "TD-1"}, kind: abi.KindBadRequest},
		{cmd: "ticketdesk-delete", kind: abi.KindNotImplemented},
	}
	for _, tc := range tests {
		res, err := h.Command(ctx, tc.cmd, tc.args)
		if abi.KindOf(err) != tc.kind || (err == nil && !strings.Contains(string(res), tc.want)) {
			t.Errorf("%s %v = %s, %v; want kind %q, result containing %q", tc.cmd, tc.args, res, err, tc.kind, tc.want)
		}
	}
	if tk, _ := f.srv.Ticket("TD-1"); len(tk.Comments) != 1 || tk.Comments[0].Body != "hi" {
		t.Errorf("comments = %+v", tk.Comments)
	}
}

func TestEgressDenied(t *testing.T) {
	f := newFixture(t)
	u, _ := url.Parse(f.url)
	h := f.host(t, nil)
	h.Egress = []string{"tickets.example.com"}
	if err := h.TestModule(context.Background()); err == nil || !strings.Contains(err.Error(), "denied") {
		t.Fatalf("err = %v, want a denied egress", err)
	}
	h = f.host(t, nil)
	h.Egress = []string{u.Host}
	if err := h.TestModule(context.Background()); err != nil {
		t.Fatal(err)
	}
}
