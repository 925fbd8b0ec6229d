package service_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/mirror"
	"github.com/connhost/connhost/internal/service"
	"github.com/connhost/connhost/internal/store"
	"github.com/connhost/connhost/internal/testenv/wasmbuild"
	"github.com/connhost/connhost/plugins/ticketdesk/tdserver"
)

// fakeClock is the clock of the TicketDesk server and the mirroring
// engine, so "changed after last_update" is decided without sleeping.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *fakeClock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// TestTicketDeskReopenKeepsTheUpdate runs plugins/ticketdesk against its
// test server, configured by params only: a ticket closed, then commented,
// retitled and reopened between two cycles arrives whole, and the comment
// is not lost when the connector next asks only for what changed after
// the last sync.
func TestTicketDeskReopenKeepsTheUpdate(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	clk := &fakeClock{t: time.Now().UTC().Add(time.Hour).Truncate(time.Second)}
	td := tdserver.New("k")
	td.SetClock(clk.now)
	srv := httptest.NewServer(td)
	defer srv.Close()
	ticket := td.CreateTicket(tdserver.Ticket{Title: "Phishing", Severity: 2})

	e.install(guest(t, "ticketdesk", wasmbuild.Source{Path: "plugins/ticketdesk"}))
	e.instance(service.InstanceInput{Name: "td", Plugin: "ticketdesk", Enabled: ptr(true), Params: map[string]any{
		"url": srv.URL, "api_key": "k", "mirror_direction": "Incoming And Outgoing", "close_incident": true,
	}})
	ms := e.svc.Mirroring
	ms.SetEngine(mirror.New(mirror.Options{Store: e.st, Instances: ms, Logger: zerolog.Nop(), Now: clk.now}))
	if _, err := e.svc.Commands.Fetch(ctx, "td"); err != nil {
		t.Fatal(err)
	}
	incs, _, err := e.svc.Incidents.Search(ctx, service.IncidentQuery{Instance: "td"})
	if err != nil || len(incs) != 1 || incs[0].DbotMirrorID != ticket.ID || incs[0].DbotMirrorDirection != abi.MirrorBoth {
		t.Fatalf("fetched %+v, %v", incs, err)
	}
	id := incs[0].ID
	get := func() store.Incident {
		t.Helper()
		inc, err := e.svc.Incidents.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return inc
	}
	cycle := func(synced int) {
		t.Helper()
		clk.advance(time.Minute)
		rep, err := ms.RunCycle(ctx, "td")
		if err != nil {
			t.Fatal(err)
		}
		if rep.Synced != synced {
			t.Fatalf("cycle %+v, want %d synced", rep, synced)
		}
	}

	clk.advance(time.Minute)
	if err := td.Close(ticket.ID, "Resolved", "phish blocked"); err != nil {
		t.Fatal(err)
	}
	cycle(1)
	if got := get(); got.Status != abi.StatusDone || got.CloseReason != "Resolved" {
		t.Fatalf("after the ticket closed: status %d reason %q", got.Status, got.CloseReason)
	}

	clk.advance(time.Minute)
	if _, err := td.AddComment(ticket.ID, tdserver.Comment{Body: "it came back", Author: "bob"}); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPatch, srv.URL+"/api/v1/tickets/"+ticket.ID, bytes.NewReader([]byte(`{"title":"Phishing, again","status":"open"}`)))
	req.Header.Set("X-API-Key", "k")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("PATCH ticket: %v %v", resp, err)
	}
	cycle(1)
	got := get()
	if got.Status != abi.StatusActive || got.CustomFields["title"] != "Phishing, again" {
		t.Fatalf("after the reopening update: status %d title %v", got.Status, got.CustomFields["title"])
	}
	comments := func() []string {
		es, _, err := e.svc.Incidents.ListEntries(ctx, id, service.EntryQuery{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, en := range es {
			if s, ok := en.Contents.(string); ok && strings.Contains(s, "it came back") {
				out = append(out, s)
			}
		}
		return out
	}
	if n := len(comments()); n != 1 {
		t.Fatalf("the comment of the reopening update arrived %d times, want 1", n)
	}
	cycle(0)
	if _, err := ms.Debug(ctx, id); err != nil { // get-remote-data since the last sync, now
		t.Fatal(err)
	}
	if c := comments(); len(c) != 1 || !slices.ContainsFunc(c, func(s string) bool { return strings.Contains(s, "bob") }) {
		t.Fatalf("after a quiet cycle: comments %q", c)
	}
}
