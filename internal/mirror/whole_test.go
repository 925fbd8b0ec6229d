package mirror

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/store"
)

// TestReopenAppliesTheWholeUpdate: an update of a closed incident that
// reopens it also brings its entries and fields, in the same write, and
// the sync time covers them; a connector that then sends only what changed
// after last_update loses nothing.
func TestReopenAppliesTheWholeUpdate(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, t.TempDir(), store.Settings{CloseIncident: true})
	f.conn.modified = true
	inc := f.mirrored(t, 1, abi.StatusDone)[0]
	f.clk.Advance(time.Minute)
	r := f.conn.remote["r1"]
	r.fields = map[string]any{"name": "reopened upstream", "severity": 3.0, "CustomFields": map[string]any{"ticketstate": "open"}}
	r.entries = []abi.Entry{note("c1", "why we reopened"), abi.ReopenEntry(), note("c2", "more detail")}
	r.modified = f.clk.Now()
	f.clk.Advance(time.Second)
	before := f.clk.Now()
	rep, err := f.engine.RunIncoming(ctx, "peer")
	if err != nil || rep.Synced != 1 || rep.Entries != 2 {
		t.Fatalf("cycle: %+v, %v; want 1 synced with 2 entries", rep, err)
	}
	got := f.incident(t, inc.ID)
	if got.Status != abi.StatusActive || !got.Closed.IsZero() {
		t.Fatalf("status %d closed %v: not reopened", got.Status, got.Closed)
	}
	if got.Name != "reopened upstream" || got.Severity != 3 || got.CustomFields["ticketstate"] != "open" {
		t.Fatalf("fields of the reopening update dropped: name %q severity %v custom %v", got.Name, got.Severity, got.CustomFields)
	}
	if es := contents(f.entries(t, inc.ID)); !slices.Equal(es, []string{"more detail", "why we reopened"}) {
		t.Fatalf("entries of the reopening update: %q", es)
	}
	if got.DbotMirrorLastSync.Before(before) {
		t.Fatalf("dbotMirrorLastSync %v not advanced", got.DbotMirrorLastSync)
	}
	// The remote now reports only what changed since: nothing.
	r.fields, r.entries = map[string]any{}, nil
	f.clk.Advance(time.Minute)
	if _, err := f.engine.RunIncoming(ctx, "peer"); err != nil {
		t.Fatal(err)
	}
	if es := f.entries(t, inc.ID); len(es) != 2 || f.incident(t, inc.ID).Name != "reopened upstream" {
		t.Fatalf("after a quiet cycle: %d entries, name %q", len(es), f.incident(t, inc.ID).Name)
	}
}

// TestFailedCallsStayPending: a get-remote-data failure keeps the incident
// in the cycle's pending list, so moving last_update past it does not lose
// its change with a connector that lists only incidents modified since.
func TestFailedCallsStayPending(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, t.TempDir(), store.Settings{})
	f.conn.modified = true
	incs := f.mirrored(t, 2, abi.StatusActive)
	f.clk.Advance(time.Minute)
	f.conn.remote["r2"].fields["name"] = "changed"
	f.conn.remote["r2"].modified = f.clk.Now()
	f.clk.Advance(time.Second)
	f.conn.failGet = map[string]bool{"r2": true}
	rep, err := f.engine.RunIncoming(ctx, "peer")
	if err != nil || rep.Failed != 1 || !slices.Equal(rep.Pending, []string{"r2"}) {
		t.Fatalf("cycle with a failure: %+v, %v; want r2 pending", rep, err)
	}
	f.conn.failGet = nil
	f.clk.Advance(time.Minute)
	if _, err := f.engine.RunIncoming(ctx, "peer"); err != nil {
		t.Fatal(err)
	}
	if got := f.incident(t, incs[1].ID).Name; got != "changed" {
		t.Fatalf("the failed incident's change was lost: name %q", got)
	}
}

// TestDebugGivesAReasonForEverythingNotApplied runs mirror/debug over
// updates that leave entries and fields out, one reason per item.
func TestDebugGivesAReasonForEverythingNotApplied(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		settings store.Settings
		status   abi.IncidentStatus
		fields   map[string]any
		entries  []abi.Entry
		prepare  func(f *fixture, inc store.Incident)
		want     []string
	}{
		{name: "duplicate entry", status: abi.StatusActive, entries: []abi.Entry{note("c1", "once")},
			prepare: func(f *fixture, inc store.Incident) {
				if _, err := f.engine.RunIncoming(ctx, "peer"); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{`not applied: entry "c1": duplicate: already mirrored in as entry`}},
		{name: "dirty field", status: abi.StatusActive, fields: map[string]any{"owner": "remote-bob", "details": "new"},
			prepare: func(f *fixture, inc store.Incident) {
				dirty(t, f.st, inc.ID, func(i *store.Incident) { i.Owner = "alice" }, "owner")
			},
			want: []string{"not applied: field owner: dirty", "fields [details]"}},
		{name: "closed incident", status: abi.StatusDone, fields: map[string]any{"name": "x"}, entries: []abi.Entry{note("c1", "late")},
			want: []string{"not applied: 1 entries: the incident is closed and the update does not reopen it",
				"not applied: fields [name]: the incident is closed"}},
		{name: "host fields and bad values", status: abi.StatusActive, fields: map[string]any{"status": 2.0, "severity": "high"},
			want: []string{"not applied: field status: set by the host", "not applied: field severity: want a number, got a string"}},
		{name: "close without close_incident", status: abi.StatusActive, entries: []abi.Entry{abi.CloseEntry("Resolved", "")},
			want: []string{"not applied: close entry: settings.close_incident is off"}},
		{name: "reopen of an active incident", status: abi.StatusActive, entries: []abi.Entry{abi.ReopenEntry()},
			want: []string{"not applied: reopen entry: the incident is not closed"}},
		{name: "pending incident", status: abi.StatusPending, entries: []abi.Entry{note("c1", "x")},
			want: []string{"not applied: entry 0: the incident is pending"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, t.TempDir(), tc.settings)
			inc := f.mirrored(t, 1, tc.status)[0]
			r := f.conn.remote["r1"]
			r.fields, r.entries = tc.fields, tc.entries
			if tc.prepare != nil {
				tc.prepare(f, inc)
			}
			steps, err := f.engine.Debug(ctx, inc.ID)
			if err != nil {
				t.Fatal(err)
			}
			all := strings.Join(steps, "\n")
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("debug steps lack %q:\n%s", w, all)
				}
			}
		})
	}
}

// TestParamsDriveMirroring: with XSOAR's conventional params declared,
// their values decide direction, close, tags and the fetch schedule;
// settings are not needed, and an instance that does not mirror in says
// which param to set.
func TestParamsDriveMirroring(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, t.TempDir(), store.Settings{})
	declare := func(ps ...abi.Param) {
		f.conn.target.Manifest.Params = ps
	}
	declare(
		abi.Param{Name: ParamIsFetch, Type: abi.ParamBool},
		abi.Param{Name: ParamFetchInterval, Type: abi.ParamInterval, Default: 1.0},
		abi.Param{Name: ParamMirrorDirection, Type: abi.ParamSelect, Default: "None", Options: []string{"None", "Incoming", "Outgoing", "Incoming And Outgoing"}},
		abi.Param{Name: ParamCloseIncident, Type: abi.ParamBool},
		abi.Param{Name: ParamCloseOut, Type: abi.ParamBool},
		abi.Param{Name: ParamCommentTag, Type: abi.ParamString},
	)
	f.conn.target.Instance.Settings = store.Settings{}
	f.conn.target.Instance.Params = map[string]any{ParamMirrorDirection: "None"}

	_, err := f.engine.RunIncoming(ctx, "peer")
	if !errors.Is(err, ErrNotMirroring) || !strings.Contains(err.Error(), `param mirror_direction is "None": set it to "Incoming" or "Incoming And Outgoing"`) {
		t.Fatalf("run with mirror_direction None: %v", err)
	}

	f.conn.target.Instance.Params = map[string]any{
		ParamMirrorDirection: "Incoming And Outgoing", ParamCloseIncident: true, ParamCloseOut: true, ParamCommentTag: "to-remote",
	}
	inc := f.mirrored(t, 1, abi.StatusActive)[0]
	f.conn.remote["r1"].entries = []abi.Entry{abi.CloseEntry("Resolved", "upstream")}
	if _, err := f.engine.RunIncoming(ctx, "peer"); err != nil {
		t.Fatal(err)
	}
	if got := f.incident(t, inc.ID); got.Status != abi.StatusDone {
		t.Fatalf("close_incident param: status %d", got.Status)
	}
	if _, err := f.st.AddEntries(ctx, []store.Entry{{IncidentID: inc.ID, Type: abi.EntryNote, Contents: "tagged", Tags: []string{"to-remote"}, Origin: store.OriginUser}}); err != nil {
		t.Fatal(err)
	}
	dirty(t, f.st, inc.ID, func(i *store.Incident) { i.CloseNotes = "and locally" }, "closeNotes")
	if n, err := f.engine.DeliverOutbox(ctx); err != nil || n != 1 {
		t.Fatalf("outbox: %d, %v", n, err)
	}
	u := f.conn.updates[0]
	if len(u.Entries) != 1 || u.Entries[0].Contents != "tagged" || u.IncStatus != abi.StatusDone {
		t.Fatalf("update %+v: want the entry tagged by param comment_tag and the close (close_out)", u)
	}

	// isFetch from the param schedules fetches; false stops them.
	run := func(params map[string]any) int {
		f.conn.mu.Lock()
		f.conn.target.Instance.Params = params
		f.conn.fetches = 0
		f.conn.mu.Unlock()
		e := New(Options{Store: f.st, Instances: f.conn, FetchTick: 5 * time.Millisecond})
		cctx, cancel := context.WithCancel(ctx)
		e.Start(cctx)
		time.Sleep(100 * time.Millisecond)
		cancel()
		e.Stop(ctx)
		f.conn.mu.Lock()
		defer f.conn.mu.Unlock()
		return f.conn.fetches
	}
	if n := run(map[string]any{ParamIsFetch: true, ParamFetchInterval: 1.0}); n != 1 {
		t.Fatalf("isFetch true: %d fetches in 100 ms, want 1 (then every minute)", n)
	}
	if n := run(map[string]any{ParamIsFetch: false}); n != 0 {
		t.Fatalf("isFetch false: %d fetches", n)
	}
}

func TestConfigOf(t *testing.T) {
	declared := &abi.Manifest{Name: "p", Version: "1.0.0", Params: []abi.Param{
		{Name: ParamIsFetch, Type: abi.ParamBool, Default: true},
		{Name: ParamFetchInterval, Type: abi.ParamInterval},
		{Name: ParamMirrorDirection, Type: abi.ParamSelect, Default: "Incoming"},
		{Name: ParamCommentTag, Type: abi.ParamString},
	}}
	bare := &abi.Manifest{Name: "p", Version: "1.0.0"}
	tests := []struct {
		name     string
		m        *abi.Manifest
		params   map[string]any
		settings store.Settings
		check    func(c Config) bool
	}{
		{"param values", declared, map[string]any{ParamIsFetch: false, ParamFetchInterval: 5.0, ParamMirrorDirection: "Incoming And Outgoing", ParamCommentTag: "c"}, store.Settings{},
			func(c Config) bool {
				return !c.Fetch && c.FetchInterval == 5*time.Minute && c.Direction == abi.MirrorBoth && c.CommentTag == "c" && c.Source[ParamMirrorDirection] == "param mirror_direction"
			}},
		{"param defaults", declared, nil, store.Settings{},
			func(c Config) bool { return c.Fetch && c.FetchInterval == time.Minute && c.Direction == abi.MirrorIn }},
		{"settings where no param is declared", bare, map[string]any{}, store.Settings{FetchEnabled: true, FetchIntervalMinutes: 3, MirrorDirection: abi.MirrorOut, CloseOut: true},
			func(c Config) bool {
				return c.Fetch && c.FetchInterval == 3*time.Minute && c.Direction == abi.MirrorOut && c.CloseOut && c.Source[ParamMirrorDirection] == "settings.mirror_direction"
			}},
		{"a setting stored before the param model counts until migrated", declared, map[string]any{ParamMirrorDirection: "None"}, store.Settings{MirrorDirection: abi.MirrorBoth},
			func(c Config) bool { return c.Direction == abi.MirrorBoth }},
		{"a value of the wrong type counts as unset", declared, map[string]any{ParamMirrorDirection: "Sideways"}, store.Settings{},
			func(c Config) bool { return c.Direction == abi.MirrorNone }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ConfigOf(store.Instance{Params: tc.params, Settings: tc.settings}, tc.m)
			if !tc.check(c) {
				t.Fatalf("config %+v", c)
			}
		})
	}
}

// TestHeldOutboxSaysWhy: a local change of an instance that does not
// mirror out stays in the outbox, and the log says which param to set.
func TestHeldOutboxSaysWhy(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, t.TempDir(), store.Settings{})
	var logs bytes.Buffer
	f.engine.log = zerolog.New(&logs)
	f.conn.target.Manifest.Params = []abi.Param{{Name: ParamMirrorDirection, Type: abi.ParamSelect, Default: "None"}}
	f.conn.target.Instance.Settings = store.Settings{}
	f.conn.target.Instance.Params = map[string]any{ParamMirrorDirection: "Incoming"}
	inc := f.mirrored(t, 1, abi.StatusActive)[0]
	dirty(t, f.st, inc.ID, func(i *store.Incident) { i.Owner = "carol" }, "owner")
	if n, err := f.engine.DeliverOutbox(ctx); err != nil || n != 0 || len(f.conn.updates) != 0 {
		t.Fatalf("delivered %d (%v) with direction Incoming", n, err)
	}
	if held := f.incident(t, inc.ID); !held.OutboxPending() {
		t.Fatal("the held change left the outbox")
	}
	if !strings.Contains(logs.String(), `outgoing mirror update held`) || !strings.Contains(logs.String(), `param mirror_direction is \"Incoming\"`) {
		t.Fatalf("log %s", logs.String())
	}
}
