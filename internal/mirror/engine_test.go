package mirror

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/store"
)

func note(id, text string, tags ...string) abi.Entry {
	return abi.Entry{ID: id, Type: abi.EntryNote, Contents: text, ContentsFormat: abi.FormatText, Tags: tags, Note: true}
}

func TestIncomingFallsBackToGetRemoteDataForAll(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, t.TempDir(), store.Settings{})
	incs := f.mirrored(t, 3, abi.StatusActive)
	f.conn.remote["r2"].entries = []abi.Entry{note("c1", "first comment"), note("", "no remote id")}

	for round := 0; round < 2; round++ {
		rep, err := f.engine.RunIncoming(ctx, "peer")
		if err != nil {
			t.Fatal(err)
		}
		if rep.Mode != "all" || rep.Synced != 3 {
			t.Fatalf("round %d: report %+v, want mode all, 3 synced", round, rep)
		}
	}
	for i, inc := range incs {
		got := f.incident(t, inc.ID)
		if want := "remote r" + string(rune('1'+i)); got.Name != want {
			t.Errorf("incident %d name %q, want %q", i, got.Name, want)
		}
		if got.DbotMirrorLastSync.IsZero() {
			t.Errorf("incident %d: dbotMirrorLastSync not set", i)
		}
	}
	// Re-delivered entries, with and without a remote id, are added once.
	if got := contents(f.entries(t, incs[1].ID)); !slices.Equal(got, []string{"first comment", "no remote id"}) {
		t.Fatalf("entries after two cycles: %q", got)
	}
	if es := f.entries(t, incs[1].ID); es[0].Origin != "mirror:peer" {
		t.Fatalf("mirrored entry origin %q, want mirror:peer", es[0].Origin)
	}
}

func TestIncomingUsesModifiedIDs(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, t.TempDir(), store.Settings{})
	f.conn.modified = true
	incs := f.mirrored(t, 4, abi.StatusActive)
	f.clk.Advance(time.Minute)
	if _, err := f.engine.RunIncoming(ctx, "peer"); err != nil {
		t.Fatal(err)
	}
	f.conn.calls = nil
	f.clk.Advance(time.Minute)
	f.conn.remote["r3"].fields["name"] = "changed"
	f.conn.remote["r3"].modified = f.clk.Now()
	f.clk.Advance(time.Minute)
	rep, err := f.engine.RunIncoming(ctx, "peer")
	if err != nil {
		t.Fatal(err)
	}
	if got := f.conn.callsOf(abi.CommandGetRemoteData); !slices.Equal(got, []string{"get-remote-data r3"}) {
		t.Fatalf("get-remote-data calls %q, want only r3 (report %+v)", got, rep)
	}
	if got := f.incident(t, incs[2].ID).Name; got != "changed" {
		t.Fatalf("name %q, want changed", got)
	}
}

func TestRateLimitResumesFromFailedIncident(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, t.TempDir(), store.Settings{})
	f.engine.opts.Concurrency = 1
	f.mirrored(t, 5, abi.StatusActive)
	f.conn.rateLimit["r3"] = 1

	rep, err := f.engine.RunIncoming(ctx, "peer")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Stopped != abi.KindRateLimited || !slices.Equal(rep.Pending, []string{"r3", "r4", "r5"}) {
		t.Fatalf("report %+v: want stopped by rate_limited with r3, r4, r5 pending", rep)
	}
	f.conn.calls = nil
	f.conn.modified = true // nothing else changed: only the pending ones run
	rep, err = f.engine.RunIncoming(ctx, "peer")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"get-remote-data r3", "get-remote-data r4", "get-remote-data r5"}
	if got := f.conn.callsOf(abi.CommandGetRemoteData); !slices.Equal(got, want) || len(rep.Pending) != 0 {
		t.Fatalf("resumed cycle called %q (pending %v), want %q", got, rep.Pending, want)
	}
	st, err := f.engine.Stats(ctx, "peer")
	if err != nil || st.RateLimited != 1 || st.Mirrored != 5 {
		t.Fatalf("stats %+v, %v: want 1 rate-limited cycle, 5 mirrored", st, err)
	}
}

func TestModifiedErrorsStopTheCycle(t *testing.T) {
	for _, kind := range []abi.ErrorKind{abi.KindSkipUpdate, abi.KindRateLimited} {
		t.Run(string(kind), func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, t.TempDir(), store.Settings{})
			f.mirrored(t, 2, abi.StatusActive)
			f.conn.modifiedErr = kind
			rep, err := f.engine.RunIncoming(ctx, "peer")
			if err != nil || rep.Stopped != kind {
				t.Fatalf("report %+v, %v: want stopped by %s", rep, err, kind)
			}
			if got := f.conn.callsOf(abi.CommandGetRemoteData); len(got) != 0 {
				t.Fatalf("get-remote-data ran after %s: %q", kind, got)
			}
			if run, _ := f.st.LastMirrorRun(ctx, f.inst.ID); run != nil {
				t.Fatalf("last mirror run advanced after %s: %v", kind, run)
			}
		})
	}
}

func TestDirtyFieldsAreNotOverwritten(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, t.TempDir(), store.Settings{})
	inc := f.mirrored(t, 1, abi.StatusActive)[0]
	if _, err := f.st.UpdateIncident(ctx, inc.ID, func(i *store.Incident) error {
		i.Severity, i.Owner = 3, "alice"
		i.DbotDirtyFields = []string{"severity", "team"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	f.conn.remote["r1"].fields = map[string]any{"name": "renamed", "severity": 1.0, "owner": "bob",
		"team": "red", "CustomFields": map[string]any{"region": "eu"}}
	if _, err := f.engine.RunIncoming(ctx, "peer"); err != nil {
		t.Fatal(err)
	}
	got := f.incident(t, inc.ID)
	if got.Name != "renamed" || got.Owner != "bob" || got.CustomFields["region"] != "eu" {
		t.Fatalf("clean fields not applied: %+v", got)
	}
	if got.Severity != 3 || got.CustomFields["team"] != nil {
		t.Fatalf("dirty fields overwritten: severity %v team %v", got.Severity, got.CustomFields["team"])
	}
}

func TestClosedIncidentsTakeOnlyAReopen(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, t.TempDir(), store.Settings{CloseIncident: true})
	inc := f.mirrored(t, 1, abi.StatusDone)[0]
	f.conn.remote["r1"].fields["name"] = "changed while closed"
	f.conn.remote["r1"].entries = []abi.Entry{note("c1", "comment while closed")}
	if _, err := f.engine.RunIncoming(ctx, "peer"); err != nil {
		t.Fatal(err)
	}
	got := f.incident(t, inc.ID)
	if got.Name != inc.Name || len(f.entries(t, inc.ID)) != 0 || got.Status != abi.StatusDone {
		t.Fatalf("closed incident changed: name %q, %d entries, status %d", got.Name, len(f.entries(t, inc.ID)), got.Status)
	}
	f.conn.remote["r1"].entries = append(f.conn.remote["r1"].entries, abi.ReopenEntry())
	if _, err := f.engine.RunIncoming(ctx, "peer"); err != nil {
		t.Fatal(err)
	}
	if got := f.incident(t, inc.ID); got.Status != abi.StatusActive {
		t.Fatalf("reopen entry: status %d, want active", got.Status)
	}
	if _, err := f.engine.RunIncoming(ctx, "peer"); err != nil {
		t.Fatal(err)
	}
	if got := contents(f.entries(t, inc.ID)); !slices.Equal(got, []string{"comment while closed"}) {
		t.Fatalf("after reopen, entries %q", got)
	}
}

func TestCloseEntryFollowsCloseIncident(t *testing.T) {
	for _, on := range []bool{true, false} {
		ctx := context.Background()
		f := newFixture(t, t.TempDir(), store.Settings{CloseIncident: on})
		inc := f.mirrored(t, 1, abi.StatusActive)[0]
		f.conn.remote["r1"].entries = []abi.Entry{note("c1", "last words"), abi.CloseEntry("Resolved", "fixed upstream")}
		if _, err := f.engine.RunIncoming(ctx, "peer"); err != nil {
			t.Fatal(err)
		}
		got := f.incident(t, inc.ID)
		closed := got.Status == abi.StatusDone
		if closed != on || (on && (got.CloseReason != "Resolved" || got.CloseNotes != "fixed upstream")) {
			t.Fatalf("close_incident=%v: status %d reason %q notes %q", on, got.Status, got.CloseReason, got.CloseNotes)
		}
		if got := contents(f.entries(t, inc.ID)); !slices.Equal(got, []string{"last words"}) {
			t.Fatalf("close_incident=%v: entries %q", on, got)
		}
	}
}

func TestEmptyMirroredObjectKeepsEntries(t *testing.T) {
	for name, obj := range map[string]map[string]any{"empty": {}, "null": nil} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, t.TempDir(), store.Settings{})
			inc := f.mirrored(t, 1, abi.StatusActive)[0]
			f.conn.remote["r1"].fields = obj
			f.conn.remote["r1"].entries = []abi.Entry{note("c1", "only an entry")}
			if _, err := f.engine.RunIncoming(ctx, "peer"); err != nil {
				t.Fatal(err)
			}
			if got := contents(f.entries(t, inc.ID)); !slices.Equal(got, []string{"only an entry"}) {
				t.Fatalf("entries %q: an empty mirrored object dropped them", got)
			}
			if got := f.incident(t, inc.ID).Name; got != inc.Name {
				t.Fatalf("name changed to %q by an empty object", got)
			}
		})
	}
}

// dirty makes a local change the way the service does.
func dirty(t *testing.T, st *store.Store, id string, fn func(*store.Incident), fields ...string) {
	t.Helper()
	if _, err := st.UpdateIncident(context.Background(), id, func(i *store.Incident) error {
		fn(i)
		for _, f := range fields {
			if !slices.Contains(i.DbotCurrentDirtyFields, f) {
				i.DbotCurrentDirtyFields = append(i.DbotCurrentDirtyFields, f)
				i.DbotDirtyFields = append(i.DbotDirtyFields, f)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func TestOutboxRetriesUntilTheRemoteRecovers(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, t.TempDir(), store.Settings{})
	inc := f.mirrored(t, 1, abi.StatusActive)[0]
	dirty(t, f.st, inc.ID, func(i *store.Incident) { i.Severity = 4 }, "severity")
	dirty(t, f.st, inc.ID, func(i *store.Incident) { i.Owner = "carol" }, "owner")
	_, err := f.st.AddEntries(ctx, []store.Entry{
		{IncidentID: inc.ID, Type: abi.EntryNote, Contents: "tagged", Tags: []string{"comment"}, Origin: store.OriginUser},
		{IncidentID: inc.ID, Type: abi.EntryNote, Contents: "untagged", Origin: store.OriginUser},
		{IncidentID: inc.ID, Type: abi.EntryNote, Contents: "came from the remote", Tags: []string{"comment"}, Origin: "mirror:peer"},
	})
	if err != nil {
		t.Fatal(err)
	}
	f.conn.failUpdates = 2
	for attempt := 1; attempt <= 2; attempt++ {
		if n, err := f.engine.DeliverOutbox(ctx); err != nil || n != 0 {
			t.Fatalf("attempt %d: delivered %d, %v; want a failure", attempt, n, err)
		}
		got := f.incident(t, inc.ID)
		if got.MirrorOut == nil || got.MirrorOut.Attempts != attempt || !got.MirrorOut.NextAttempt.After(f.clk.Now()) {
			t.Fatalf("attempt %d: outbox state %+v", attempt, got.MirrorOut)
		}
		// Not due yet: nothing is sent before the back-off ends.
		if n, _ := f.engine.DeliverOutbox(ctx); n != 0 || len(f.conn.callsOf(abi.CommandUpdateRemoteSystem)) != attempt {
			t.Fatalf("attempt %d: a retry ran before its back-off", attempt)
		}
		f.clk.Advance(time.Minute)
	}
	if n, err := f.engine.DeliverOutbox(ctx); err != nil || n != 1 {
		t.Fatalf("after recovery: delivered %d, %v", n, err)
	}
	if len(f.conn.updates) != 1 {
		t.Fatalf("%d updates delivered, want 1 coalesced", len(f.conn.updates))
	}
	u := f.conn.updates[0]
	if !u.IncidentChanged || u.Delta["severity"] != 4.0 || u.Delta["owner"] != "carol" || u.RemoteIncidentID != "r1" || len(u.Delta) != 2 {
		t.Fatalf("update %+v", u)
	}
	if len(u.Entries) != 1 || u.Entries[0].Contents != "tagged" {
		t.Fatalf("entries sent %+v, want only the tagged local one", u.Entries)
	}
	got := f.incident(t, inc.ID)
	if got.OutboxPending() || len(got.DbotCurrentDirtyFields) != 0 || len(got.DbotDirtyFields) != 0 {
		t.Fatalf("after delivery: pending %v, current dirty %v, dirty %v", got.OutboxPending(), got.DbotCurrentDirtyFields, got.DbotDirtyFields)
	}
	if n, _ := f.engine.DeliverOutbox(ctx); n != 0 {
		t.Fatalf("a delivered update was sent again")
	}
	// A later entry goes out alone; entries already sent do not repeat.
	if _, err := f.st.AddEntries(ctx, []store.Entry{{IncidentID: inc.ID, Type: abi.EntryNote, Contents: "second", Tags: []string{"comment"}, Origin: store.OriginUser}}); err != nil {
		t.Fatal(err)
	}
	if n, err := f.engine.DeliverOutbox(ctx); err != nil || n != 1 {
		t.Fatalf("second delivery: %d, %v", n, err)
	}
	u = f.conn.updates[1]
	if u.IncidentChanged || len(u.Entries) != 1 || u.Entries[0].Contents != "second" {
		t.Fatalf("second update %+v", u)
	}
}

func TestLocalCloseGoesOutOnlyWithCloseOut(t *testing.T) {
	for _, on := range []bool{true, false} {
		ctx := context.Background()
		f := newFixture(t, t.TempDir(), store.Settings{CloseOut: on})
		inc := f.mirrored(t, 1, abi.StatusActive)[0]
		dirty(t, f.st, inc.ID, func(i *store.Incident) {
			i.Status, i.CloseReason, i.CloseNotes, i.Closed = abi.StatusDone, "Duplicate", "seen before", f.clk.Now()
		}, "closeReason", "closeNotes")
		if _, err := f.engine.DeliverOutbox(ctx); err != nil {
			t.Fatal(err)
		}
		sent := len(f.conn.updates) == 1 && f.conn.updates[0].IncStatus == abi.StatusDone
		if sent != on {
			t.Fatalf("close_out=%v: updates %+v", on, f.conn.updates)
		}
		if after := f.incident(t, inc.ID); after.OutboxPending() {
			t.Fatalf("close_out=%v: still pending", on)
		}
	}
}

func TestPushAppliesWithinASecond(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newFixture(t, t.TempDir(), store.Settings{})
	inc := f.mirrored(t, 1, abi.StatusActive)[0]
	f.engine.now = time.Now
	f.engine.Start(ctx)
	defer f.engine.Stop(context.Background())
	f.conn.mu.Lock()
	f.conn.remote["r1"].fields["name"] = "pushed"
	f.conn.mu.Unlock()
	if err := f.engine.Push(ctx, "peer", "r1"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	for f.incident(t, inc.ID).Name != "pushed" {
		if time.Now().After(deadline) {
			t.Fatal("pushed change not applied within 1 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := f.engine.Push(ctx, "nope", "r1"); !errors.Is(err, ErrNotMirroring) {
		t.Fatalf("push to an unknown instance: %v", err)
	}
}

func TestPurgeAndDebug(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, t.TempDir(), store.Settings{})
	incs := f.mirrored(t, 2, abi.StatusActive)
	if _, err := f.st.UpdateIncident(ctx, incs[0].ID, func(i *store.Incident) error {
		i.Status, i.Closed = abi.StatusDone, f.clk.Now()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n, err := f.engine.PurgeClosed(ctx, "peer", 24*time.Hour); err != nil || n != 0 {
		t.Fatalf("purge of a fresh close: %d, %v", n, err)
	}
	f.clk.Advance(48 * time.Hour)
	if n, err := f.engine.PurgeClosed(ctx, "peer", 24*time.Hour); err != nil || n != 1 {
		t.Fatalf("purge: %d, %v; want 1", n, err)
	}
	f.conn.remote["r1"].entries = []abi.Entry{abi.ReopenEntry()}
	if _, err := f.engine.RunIncoming(ctx, "peer"); err != nil {
		t.Fatal(err)
	}
	if got := f.incident(t, incs[0].ID); got.Status != abi.StatusDone {
		t.Fatalf("a purged incident was reopened")
	}
	steps, err := f.engine.Debug(ctx, incs[1].ID)
	if err != nil || len(steps) < 3 {
		t.Fatalf("debug: %v, %q", err, steps)
	}
	if _, err := f.engine.Debug(ctx, "missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("debug of a missing incident: %v", err)
	}
}
