package service_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/service"
	"github.com/connhost/connhost/internal/store"
)

// TestLongRunningHTTP: requests reach only enabled, exposed HTTP plugins,
// past their credentials, which the plugin never sees.
func TestLongRunningHTTP(t *testing.T) {
	e := newEnv(t, func(o *service.Options) { o.LongRunning.HTTPMaxBodyBytes = 4096 })
	ctx := context.Background()
	e.install(probe(t, "1.0.0"))
	e.install(echo(t, "1.0.0"))
	exposed := &store.Settings{ExternalHTTP: true}
	for _, in := range []service.InstanceInput{
		{Name: "open", Plugin: "probe", Enabled: ptr(true), Settings: exposed},
		{Name: "basic", Plugin: "probe", Enabled: ptr(true), Settings: exposed,
			Params: map[string]any{service.ParamCredentialsIdentifier: "user", service.ParamCredentialsPassword: "pw"}},
		{Name: "header", Plugin: "probe", Enabled: ptr(true), Settings: exposed,
			Params: map[string]any{service.ParamCredentialsIdentifier: "_header:X-Token", service.ParamCredentialsPassword: "tok"}},
		{Name: "hidden", Plugin: "probe", Enabled: ptr(true)},
		{Name: "off", Plugin: "probe", Settings: exposed},
		{Name: "nohttp", Plugin: "goecho", Enabled: ptr(true), Settings: exposed},
	} {
		e.instance(in)
	}
	basic := func(user, pass string) []string {
		return []string{"Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}
	}
	for _, tc := range []struct {
		name, instance string
		headers        map[string][]string
		want           error
		stripped       string // a header that must be gone afterwards
	}{
		{"unknown instance", "nosuch", nil, service.ErrNotFound, ""},
		{"not exposed", "hidden", nil, service.ErrNotFound, ""},
		{"not an HTTP plugin", "nohttp", nil, service.ErrNotFound, ""},
		{"disabled", "off", nil, service.ErrConflict, ""},
		{"no credentials needed", "open", nil, nil, ""},
		{"basic auth missing", "basic", nil, service.ErrUnauthenticated, ""},
		{"basic auth wrong", "basic", map[string][]string{"Authorization": basic("user", "nope")}, service.ErrUnauthenticated, ""},
		{"basic auth", "basic", map[string][]string{"authorization": basic("user", "pw")}, nil, "authorization"},
		{"header missing", "header", nil, service.ErrUnauthenticated, ""},
		{"header", "header", map[string][]string{"X-Token": {"tok"}}, nil, "X-Token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			headers := map[string][]string{"Accept": {"*/*"}}
			for k, v := range tc.headers {
				headers[k] = v
			}
			resp, err := e.svc.LongRunning.HandleHTTP(ctx, tc.instance, abi.HTTPRequest{Method: "POST", Path: "/hook", Headers: headers, Body: []byte("ping")}, nil)
			wantErr(t, err, tc.want)
			if err != nil {
				return
			}
			if resp.Status != 200 || string(resp.Body) != "echo:ping" || !slices.Equal(resp.Headers["X-Path"], []string{"/hook"}) {
				t.Errorf("response %d %v %q", resp.Status, resp.Headers, resp.Body)
			}
			if _, ok := headers[tc.stripped]; tc.stripped != "" && ok {
				t.Errorf("header %s reached the plugin", tc.stripped)
			}
		})
	}
	if n := e.svc.LongRunning.MaxBodyBytes(); n != 4096 {
		t.Errorf("max body bytes %d, want the configured 4096", n)
	}
}

// TestLongRunningHTTPFollowsChanges: a webhook finds its live instance by
// name without reading the store, so every change to the instance must
// reach that lookup at once: a new password, no longer exposed, disabled,
// deleted, and created again under the same name.
func TestLongRunningHTTPFollowsChanges(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.install(probe(t, "1.0.0"))
	creds := func(pw string) map[string]any {
		return map[string]any{service.ParamCredentialsIdentifier: "user", service.ParamCredentialsPassword: pw}
	}
	e.instance(service.InstanceInput{Name: "hook", Plugin: "probe", Enabled: ptr(true),
		Settings: &store.Settings{ExternalHTTP: true}, Params: creds("old")})
	call := func(pw string) error {
		auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("user:"+pw))
		_, err := e.svc.LongRunning.HandleHTTP(ctx, "hook", abi.HTTPRequest{Method: "POST", Path: "/",
			Headers: map[string][]string{"Authorization": {auth}}}, nil)
		return err
	}
	update := func(in service.InstanceInput) {
		t.Helper()
		if _, err := e.svc.Instances.Update(ctx, "hook", in); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name   string
		change func()
		pw     string
		want   error
	}{
		{"as created", func() {}, "old", nil},
		{"password changed: old one", func() { update(service.InstanceInput{Params: creds("new")}) }, "old", service.ErrUnauthenticated},
		{"password changed: new one", func() {}, "new", nil},
		{"no longer exposed", func() { update(service.InstanceInput{Settings: &store.Settings{}}) }, "new", service.ErrNotFound},
		{"exposed again", func() { update(service.InstanceInput{Settings: &store.Settings{ExternalHTTP: true}}) }, "new", nil},
		{"disabled", func() { update(service.InstanceInput{Enabled: ptr(false)}) }, "new", service.ErrConflict},
		{"enabled", func() { update(service.InstanceInput{Enabled: ptr(true)}) }, "new", nil},
		{"deleted", func() {
			if err := e.svc.Instances.Delete(ctx, "hook"); err != nil {
				t.Fatal(err)
			}
		}, "new", service.ErrNotFound},
		{"created again", func() {
			e.instance(service.InstanceInput{Name: "hook", Plugin: "probe", Enabled: ptr(true),
				Settings: &store.Settings{ExternalHTTP: true}, Params: creds("third")})
		}, "third", nil},
		{"created again: earlier password", func() {}, "new", service.ErrUnauthenticated},
	}
	for _, st := range steps {
		st.change()
		if err := call(st.pw); (err == nil) != (st.want == nil) || (st.want != nil && !errors.Is(err, st.want)) {
			t.Errorf("%s: err = %v, want %v", st.name, err, st.want)
		}
	}
}

// TestLongRunningStatus: an instance whose plugin declares long-running
// and whose setting turns it on runs supervised until disabled.
func TestLongRunningStatus(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.install(chatbot(t))
	e.instance(service.InstanceInput{Name: "lr", Plugin: "chatbot", Enabled: ptr(true), Settings: &store.Settings{LongRunning: true}})
	e.instance(service.InstanceInput{Name: "plain", Plugin: "chatbot", Enabled: ptr(true)})
	waitFor(t, "the execution runs", func() bool {
		st, err := e.svc.LongRunning.Status(ctx, "lr")
		return err == nil && st.Supervised && st.Running
	})
	if st, err := e.svc.LongRunning.Status(ctx, "plain"); err != nil || st.Supervised {
		t.Errorf("instance without the setting: %+v, %v", st, err)
	}
	_, err := e.svc.LongRunning.Status(ctx, "nosuch")
	wantErr(t, err, service.ErrNotFound)
	if _, err := e.svc.Instances.SetEnabled(ctx, "lr", false); err != nil {
		t.Fatal(err)
	}
	if st, err := e.svc.LongRunning.Status(ctx, "lr"); err != nil || st.Supervised {
		t.Errorf("disabled instance: %+v, %v", st, err)
	}
}

// TestChatDelivery: entries of incidents mirrored to a chat instance are
// delivered by send-notification as the mirror's type says, never the
// instance's own; questions are answered as entitlement entries; an
// auto-closing mirror reports the close and ends; a disabled instance
// gets its entries once enabled again.
func TestChatDelivery(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.svc.Users.Create(ctx, service.UserInput{Username: "ann", Email: "ann@example.com"}); err != nil {
		t.Fatal(err)
	}
	e.install(chatbot(t))
	e.instance(service.InstanceInput{Name: "bot", Plugin: "chatbot", Enabled: ptr(true), Params: map[string]any{"user_email": "ann@example.com"}})
	all, chat, closing := e.incident("all"), e.incident("chat"), e.incident("closing")
	for _, m := range []map[string]any{
		{"incident_id": all.ID},
		{"incident_id": chat.ID, "mirror_type": "chat"},
		{"incident_id": closing.ID, "auto_close": "true"},
	} {
		e.run("bot", "chatbot-mirror", m)
	}
	// received returns what the bot was sent since the last call.
	seen := 0
	received := func() []map[string]any {
		t.Helper()
		var got []map[string]any
		if err := json.Unmarshal([]byte(e.run("bot", "chatbot-received", nil)), &got); err != nil {
			t.Fatal(err)
		}
		got, seen = got[seen:], len(got)
		return got
	}
	deliver := func() {
		t.Helper()
		if err := e.svc.LongRunning.DeliverChat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	add := func(id, text string, tags ...string) {
		t.Helper()
		if _, err := e.svc.Incidents.AddEntry(ctx, id, service.EntryInput{Contents: text, Tags: tags}); err != nil {
			t.Fatal(err)
		}
	}
	messages := func(ns []map[string]any) []string {
		var out []string
		for _, n := range ns {
			out = append(out, n["messageType"].(string)+":"+n["message"].(string))
		}
		return out
	}

	for _, tc := range []struct {
		name string
		do   func()
		want []string
	}{
		{"type all delivers every entry", func() { add(all.ID, "hello") }, []string{"mirrorEntry:hello"}},
		{"type chat delivers tagged entries only", func() { add(chat.ID, "untagged"); add(chat.ID, "tagged", service.ChatTag) }, []string{"mirrorEntry:tagged"}},
		{"nothing new, nothing sent", func() {}, nil},
		// The bot answers in the war room; its own entry is not sent back.
		{"a question is answered", func() { add(all.ID, "approve? guid=q1") }, []string{"mirrorEntry:approve? guid=q1"}},
		{"auto-close reports the close", func() {
			if _, err := e.svc.Incidents.Close(ctx, closing.ID, "Resolved", ""); err != nil {
				t.Fatal(err)
			}
		}, []string{"incidentClosed:Incident " + closing.ID + " was closed: Resolved"}},
		{"a disabled instance waits", func() {
			if _, err := e.svc.Instances.SetEnabled(ctx, "bot", false); err != nil {
				t.Fatal(err)
			}
			add(all.ID, "while away")
			deliver()
			if _, err := e.svc.Instances.SetEnabled(ctx, "bot", true); err != nil {
				t.Fatal(err)
			}
		}, []string{"mirrorEntry:while away"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.do()
			deliver()
			if got := messages(received()); !slices.Equal(got, tc.want) {
				t.Errorf("delivered %q, want %q", got, tc.want)
			}
		})
	}
	es, _, err := e.svc.Incidents.ListEntries(ctx, all.ID, service.EntryQuery{})
	if err != nil {
		t.Fatal(err)
	}
	answered := slices.IndexFunc(es, func(en store.Entry) bool { return slices.Contains(en.Tags, "q1") })
	if answered < 0 || es[answered].User != "ann" || es[answered].Contents != "approved" || es[answered].Origin != store.OriginPluginPrefix+"bot" {
		t.Errorf("no entitlement answer by ann among %+v", es)
	}
	mirrors, err := e.st.ListChatMirrors(ctx)
	if err != nil || len(mirrors) != 2 {
		t.Errorf("%d chat mirrors (%v), want 2 after the auto-close", len(mirrors), err)
	}
	if err := e.svc.Instances.Delete(ctx, "bot"); err != nil {
		t.Fatal(err)
	}
	if mirrors, err := e.st.ListChatMirrors(ctx); err != nil || len(mirrors) != 0 {
		t.Errorf("%d chat mirrors (%v) after the instance was deleted", len(mirrors), err)
	}
}
