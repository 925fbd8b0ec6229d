package service_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/service"
	"github.com/connhost/connhost/internal/store"
	"github.com/connhost/connhost/internal/testenv/wasmbuild"
)

// commandsEnv has probe instances "p" (enabled) and "off" (disabled),
// goecho instance "e" (enabled, no fetch), and "a" (enabled), whose plugin
// declares arguments with options and a default.
func commandsEnv(t *testing.T) *env {
	e := newEnv(t)
	e.install(probe(t, "1.0.0"))
	e.install(echo(t, "1.0.0"))
	e.install(probeArgs(t))
	e.instance(service.InstanceInput{Name: "p", Plugin: "probe", Enabled: ptr(true)})
	e.instance(service.InstanceInput{Name: "off", Plugin: "probe"})
	e.instance(service.InstanceInput{Name: "e", Plugin: "goecho", Enabled: ptr(true)})
	e.instance(service.InstanceInput{Name: "a", Plugin: "probe-args", Enabled: ptr(true)})
	return e
}

// probeArgs is the probe guest under a manifest whose echo declares an
// argument with options and one with a default.
func probeArgs(t testing.TB) []byte {
	t.Helper()
	m := abi.Manifest{Name: "probe-args", Version: "1.0.0", ABIVersion: abi.Version,
		Params: []abi.Param{paramURL, paramAPIKey},
		Commands: []abi.Command{{Name: "echo", Arguments: []abi.Argument{
			{Name: "msg"}, {Name: "tone", Options: []string{"calm", "loud"}}, {Name: "lang", Default: "en"},
		}}},
	}
	return guest(t, "probe-args@1.0.0", wasmbuild.Source{Path: "host/testdata/guests/probe", Manifest: &m})
}

// TestCommandsExecute: the server refuses what it can tell is wrong
// before the plugin runs; the plugin's own failures keep their kind.
func TestCommandsExecute(t *testing.T) {
	e := commandsEnv(t)
	ctx := context.Background()
	inc := e.incident("war room")
	for _, tc := range []struct {
		name, instance string
		req            service.ExecuteRequest
		want           error
		kind           abi.ErrorKind // of a plugin failure
		result         string
	}{
		{"unknown instance", "nosuch", service.ExecuteRequest{Command: "echo"}, service.ErrNotFound, "", ""},
		{"disabled instance", "off", service.ExecuteRequest{Command: "echo"}, service.ErrConflict, "", ""},
		{"command not served", "p", service.ExecuteRequest{Command: "nosuch"}, service.ErrInvalid, "", ""},
		{"server command", "p", service.ExecuteRequest{Command: abi.CommandLongRunningExecution}, service.ErrInvalid, "", ""},
		{"missing required argument", "p", service.ExecuteRequest{Command: "fail"}, service.ErrInvalidArguments, "", ""},
		{"undeclared argument", "p", service.ExecuteRequest{Command: "echo", Args: map[string]any{"bogus": 1}}, service.ErrInvalidArguments, "", ""},
		{"unknown incident", "p", service.ExecuteRequest{Command: "echo", IncidentID: "nosuch"}, service.ErrNotFound, "", ""},
		{"ok", "p", service.ExecuteRequest{Command: "echo", Args: map[string]any{"msg": "hi"}}, nil, "", `{"msg":"hi"}`},
		{"default filled in", "a", service.ExecuteRequest{Command: "echo", Args: map[string]any{"msg": "hi"}}, nil, "", `{"lang":"en","msg":"hi"}`},
		{"empty argument takes its default", "a", service.ExecuteRequest{Command: "echo", Args: map[string]any{"lang": ""}}, nil, "", `{"lang":"en"}`},
		{"argument one of its options", "a", service.ExecuteRequest{Command: "echo", Args: map[string]any{"tone": "loud", "lang": "fr"}}, nil, "", `{"lang":"fr","tone":"loud"}`},
		{"argument not one of its options", "a", service.ExecuteRequest{Command: "echo", Args: map[string]any{"tone": "shouty"}}, service.ErrInvalidArguments, "", ""},
		{"plugin failure", "p", service.ExecuteRequest{Command: "fail", Args: map[string]any{"msg": "boom"}}, nil, abi.KindFailed, ""},
		{"undeclared command of a plugin without declarations", "e", service.ExecuteRequest{Command: "nosuch"}, service.ErrInvalid, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := e.svc.Commands.Execute(ctx, tc.instance, tc.req)
			if tc.kind != "" {
				if got := abi.KindOf(err); got != tc.kind {
					t.Fatalf("error %v of kind %q, want kind %q", err, got, tc.kind)
				}
				for _, s := range []error{service.ErrInvalid, service.ErrConflict, service.ErrNotFound} {
					if errors.Is(err, s) {
						t.Errorf("a plugin failure matches %v", s)
					}
				}
				return
			}
			wantErr(t, err, tc.want)
			if got := strings.TrimSpace(string(res.Result)); err == nil && got != tc.result {
				t.Errorf("result %s, want %s", got, tc.result)
			}
		})
	}

	// With an incident, the result or the failure is an entry.
	res, err := e.svc.Commands.Execute(ctx, "p", service.ExecuteRequest{Command: "echo", Args: map[string]any{"msg": "hi"}, IncidentID: inc.ID})
	if err != nil || res.EntryID == "" {
		t.Fatalf("echo into the war room: %+v, %v", res, err)
	}
	res, err = e.svc.Commands.Execute(ctx, "p", service.ExecuteRequest{Command: "fail", Args: map[string]any{"msg": "boom"}, IncidentID: inc.ID})
	if err == nil || res.EntryID == "" {
		t.Fatalf("failure into the war room: %+v, %v", res, err)
	}
	es, _, err := e.svc.Incidents.ListEntries(ctx, inc.ID, service.EntryQuery{})
	if err != nil || len(es) != 2 {
		t.Fatalf("entries %+v, %v", es, err)
	}
	if es[0].Type != abi.EntryNote || es[0].Format != abi.FormatJSON || es[0].User != "!echo" || es[0].Origin != store.OriginAPI {
		t.Errorf("result entry %+v", es[0])
	}
	if msg, _ := es[1].Contents.(string); es[1].Type != abi.EntryError || !strings.Contains(msg, "boom") {
		t.Errorf("failure entry %+v", es[1])
	}
}

// TestCommandsFetch: fetch-incidents stores what the plugin returns, by
// Fetch or by Execute; a plugin that does not fetch is ErrInvalid.
func TestCommandsFetch(t *testing.T) {
	e := commandsEnv(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name, instance string
		want           error
	}{
		{"unknown instance", "nosuch", service.ErrNotFound},
		{"disabled instance", "off", service.ErrConflict},
		{"plugin without fetch", "e", service.ErrInvalid},
		{"fetch", "p", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sum, err := e.svc.Commands.Fetch(ctx, tc.instance)
			wantErr(t, err, tc.want)
			if err == nil && (sum.Fetched != 1 || len(sum.Created) != 1) {
				t.Errorf("summary %+v", sum)
			}
		})
	}
	res, err := e.svc.Commands.Execute(ctx, "p", service.ExecuteRequest{Command: abi.CommandFetchIncidents})
	if err != nil {
		t.Fatal(err)
	}
	var sum service.FetchSummary
	if err := json.Unmarshal(res.Result, &sum); err != nil || sum.Fetched != 1 || len(sum.Created) != 1 {
		t.Fatalf("fetch by execute: %s, %v", res.Result, err)
	}
	incs, _, err := e.svc.Incidents.Search(ctx, service.IncidentQuery{Instance: "p"})
	if err != nil || len(incs) != 2 {
		t.Fatalf("fetched incidents %+v, %v", incs, err)
	}
	if inc := incs[0]; inc.Name != "incident" || inc.Status != abi.StatusActive || inc.Severity != abi.SeverityHigh {
		t.Errorf("fetched incident %+v", inc)
	}
}

// TestCommandsTest: test-module runs on the live pool, or on a temporary
// sandbox for a disabled instance.
func TestCommandsTest(t *testing.T) {
	e := commandsEnv(t)
	ctx := context.Background()
	for _, tc := range []struct {
		instance string
		want     error
	}{{"p", nil}, {"off", nil}, {"nosuch", service.ErrNotFound}} {
		t.Run(tc.instance, func(t *testing.T) { wantErr(t, e.svc.Commands.Test(ctx, tc.instance), tc.want) })
	}
}

// TestHostServices: what a guest does through the host functions lands in
// the store, and the store's refusals reach it as ABI error kinds (which
// the probe reports back as its own failure).
func TestHostServices(t *testing.T) {
	e := commandsEnv(t)
	ctx := context.Background()
	if _, err := e.svc.Users.Create(ctx, service.UserInput{Username: "ann", Email: "ann@example.com"}); err != nil {
		t.Fatal(err)
	}
	inc := e.incident("target")
	dm := func(msg, user string) abi.DirectMessageRequest {
		return abi.DirectMessageRequest{Message: msg, Username: user}
	}
	for _, tc := range []struct {
		name, fn string
		req      any
		kind     abi.ErrorKind // the guest saw
		result   string        // a substring of the result
	}{
		{"add entry", abi.ImportAddEntry, abi.AddEntryRequest{IncidentID: inc.ID, Entry: abi.Entry{Contents: "note"}}, "", `"id"`},
		{"add entry to an unknown incident", abi.ImportAddEntry, abi.AddEntryRequest{IncidentID: "nosuch", Entry: abi.Entry{Contents: "note"}}, abi.KindNotFound, ""},
		{"add entry without an incident", abi.ImportAddEntry, abi.AddEntryRequest{Entry: abi.Entry{Contents: "note"}}, abi.KindBadRequest, ""},
		{"stale context version", abi.ImportIntegrationContextSet, abi.ContextSetRequest{Context: map[string]any{}, Version: 42}, abi.KindConflict, ""},
		{"direct message: new incident", abi.ImportDirectMessage, dm(`new incident name="disk full" severity=3`, "ann"), "", "created: disk full"},
		{"direct message: a stranger", abi.ImportDirectMessage, dm("new incident name=x", "bob"), "", "not allowed"},
		{"direct message: list", abi.ImportDirectMessage, dm("list incidents", "ann"), "", "disk full"},
		{"direct message: help", abi.ImportDirectMessage, dm("hello", "ann"), "", "I understand"},
		{"direct message without a user", abi.ImportDirectMessage, dm("hello", ""), abi.KindBadRequest, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := e.svc.Commands.Execute(ctx, "p", service.ExecuteRequest{Command: "rpc", Args: map[string]any{"name": tc.fn, "req": tc.req}})
			if tc.kind != "" {
				// A bad request fails the call itself; other kinds the
				// probe reports as its own failure.
				if abi.KindOf(err) != tc.kind && (err == nil || !strings.Contains(err.Error(), "guest reported kind "+string(tc.kind))) {
					t.Fatalf("error %v, want the guest to have seen kind %q", err, tc.kind)
				}
				return
			}
			if got := string(res.Result); err != nil || !strings.Contains(got, tc.result) {
				t.Fatalf("result %s (%v), want it to contain %s", got, err, tc.result)
			}
		})
	}
	incs, _, err := e.svc.Incidents.Search(ctx, service.IncidentQuery{Text: "disk full"})
	if err != nil || len(incs) != 1 || incs[0].Owner != "ann" || incs[0].Severity != 3 {
		t.Errorf("incident opened by direct message: %+v, %v", incs, err)
	}
	es, _, err := e.svc.Incidents.ListEntries(ctx, inc.ID, service.EntryQuery{})
	if err != nil || len(es) != 1 || es[0].Origin != store.OriginPluginPrefix+"p" {
		t.Errorf("entry added by the guest: %+v, %v", es, err)
	}
}

// TestCommandsRecentFailures: plugin failures are kept for the console's
// overview, newest first and at most 20; requests refused before the
// plugin ran, and successes, are not failures of a command.
func TestCommandsRecentFailures(t *testing.T) {
	e := commandsEnv(t)
	ctx := context.Background()
	if _, err := e.svc.Commands.Execute(ctx, "p", service.ExecuteRequest{Command: "nosuch"}); err == nil {
		t.Fatal("an unknown command ran")
	}
	if _, err := e.svc.Commands.Execute(ctx, "p", service.ExecuteRequest{Command: "echo", Args: map[string]any{"msg": "hi"}}); err != nil {
		t.Fatal(err)
	}
	if got := e.svc.Commands.RecentFailures(); len(got) != 0 {
		t.Fatalf("failures after a refusal and a success: %+v", got)
	}
	for i := range 25 {
		msg := "boom-" + string(rune('a'+i))
		if _, err := e.svc.Commands.Execute(ctx, "p", service.ExecuteRequest{Command: "fail", Args: map[string]any{"msg": msg}}); err == nil {
			t.Fatal("fail did not fail")
		}
	}
	got := e.svc.Commands.RecentFailures()
	if len(got) != 20 {
		t.Fatalf("%d failures kept, want 20", len(got))
	}
	if f := got[0]; f.Instance != "p" || f.Command != "fail" || f.Kind != string(abi.KindFailed) || !strings.Contains(f.Error, "boom-y") ||
		!strings.HasPrefix(f.Plugin, "probe@") || f.At.IsZero() {
		t.Errorf("newest failure %+v", f)
	}
	if !strings.Contains(got[19].Error, "boom-f") {
		t.Errorf("oldest kept failure %+v, want boom-f", got[19])
	}
	long := strings.Repeat("x", 10_000)
	if _, err := e.svc.Commands.Execute(ctx, "p", service.ExecuteRequest{Command: "fail", Args: map[string]any{"msg": long}}); err == nil {
		t.Fatal("fail did not fail")
	}
	if f := e.svc.Commands.RecentFailures()[0]; len(f.Error) > 2100 || !strings.HasSuffix(f.Error, "…") {
		t.Errorf("a 10 KB error is kept as %d bytes", len(f.Error))
	}
}
