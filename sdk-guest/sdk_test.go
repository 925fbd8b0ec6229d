package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/connhost/connhost/abi"
	sdk "github.com/connhost/connhost/sdk-guest"
	"github.com/connhost/connhost/sdk-guest/sdktest"
)

var ctx = context.Background()

func TestDispatchUnimplemented(t *testing.T) {
	h := sdktest.New(sdk.Connector{}, nil)
	h.Instance.Brand = "empty"
	if err := h.TestModule(ctx); err != nil {
		t.Fatalf("test-module without handler: %v", err)
	}
	for _, cmd := range []string{
		abi.CommandFetchIncidents, abi.CommandGetRemoteData, abi.CommandGetModifiedRemoteData,
		abi.CommandUpdateRemoteSystem, abi.CommandGetMappingFields, abi.CommandLongRunningExecution,
		abi.CommandSendNotification, "my-command",
	} {
		_, err := h.Call(ctx, cmd, nil)
		if abi.KindOf(err) != abi.KindNotImplemented || !strings.Contains(err.Error(), cmd) || !strings.Contains(err.Error(), "empty") {
			t.Errorf("%s: err = %v, want not_implemented naming command and plugin", cmd, err)
		}
	}
}

func TestCallBeforeConfigure(t *testing.T) {
	m := sdk.NewModule(sdk.Connector{}, sdktest.New(sdk.Connector{}, nil))
	env, err := abi.DecodeEnvelope(m.Call(ctx, abi.CommandTestModule, []byte("{}")))
	if err != nil || env.Error == nil || env.Error.Kind != abi.KindFailed {
		t.Fatalf("envelope = %+v, %v; want a failed error", env, err)
	}
}

func TestErrorKinds(t *testing.T) {
	tests := []struct {
		name string
		err  error
		kind abi.ErrorKind
		msg  string
	}{
		{"plain", errors.New("boom"), abi.KindFailed, "boom"},
		{"rate limited", sdk.RateLimited("slow down"), abi.KindRateLimited, "slow down"},
		{"wrapped keeps kind and context", fmt.Errorf("ticket 7: %w", sdk.RateLimited("slow")), abi.KindRateLimited, "ticket 7: rate_limited: slow"},
		{"skip update", sdk.SkipUpdate("later"), abi.KindSkipUpdate, "later"},
		{"bad request", sdk.BadRequest("arg %q", "x"), abi.KindBadRequest, `arg "x"`},
		{"not implemented", sdk.NotImplemented(), abi.KindNotImplemented, ""},
		{"errorf", sdk.Errorf(abi.KindSkipUpdate, "n=%d", 1), abi.KindSkipUpdate, "n=1"},
		{"sentinel rate limit", errors.New("got API rate limit from remote"), abi.KindRateLimited, "API rate limit"},
		{"sentinel skip update", errors.New("skip update. error: x"), abi.KindSkipUpdate, "skip update"},
		{"host kind becomes failed", fmt.Errorf("call: %w", &abi.Error{Kind: abi.KindDenied, Message: "host x"}), abi.KindFailed, "denied: host x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := sdktest.New(sdk.Connector{Commands: map[string]sdk.CommandFunc{
				"fail": func(context.Context, *sdk.Host, sdk.Args) (any, error) { return nil, tc.err },
			}}, nil)
			_, err := h.Command(ctx, "fail", nil)
			var e *abi.Error
			if !errors.As(err, &e) || e.Kind != tc.kind || !strings.Contains(e.Message, tc.msg) {
				t.Fatalf("err = %v, want kind %s with %q", err, tc.kind, tc.msg)
			}
		})
	}
}

func TestResultCodec(t *testing.T) {
	h := sdktest.New(sdk.Connector{Commands: map[string]sdk.CommandFunc{
		"html":  func(context.Context, *sdk.Host, sdk.Args) (any, error) { return "<b>&</b>", nil },
		"nil":   func(context.Context, *sdk.Host, sdk.Args) (any, error) { return nil, nil },
		"chan":  func(context.Context, *sdk.Host, sdk.Args) (any, error) { return make(chan int), nil },
		"large": func(context.Context, *sdk.Host, sdk.Args) (any, error) { return strings.Repeat("x", 1<<20), nil },
		"small": func(context.Context, *sdk.Host, sdk.Args) (any, error) { return []int{1, 2}, nil },
	}}, nil)
	tests := []struct {
		cmd, want string
		kind      abi.ErrorKind
	}{
		{cmd: "html", want: `"<b>&</b>"`},
		{cmd: "nil", want: `null`},
		{cmd: "chan", kind: abi.KindFailed},
		{cmd: "large", want: `"` + strings.Repeat("x", 1<<20) + `"`},
		{cmd: "small", want: `[1,2]`}, // after a large result the buffer is dropped, not corrupted
	}
	for _, tc := range tests {
		res, err := h.Command(ctx, tc.cmd, nil)
		if abi.KindOf(err) != tc.kind || strings.TrimSpace(string(res)) != tc.want {
			t.Errorf("%s = %.40s, %v; want %.40s, kind %q", tc.cmd, res, err, tc.want, tc.kind)
		}
	}
}

func TestRegisterRejectsReservedCommand(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "reserved") {
			t.Fatalf("recover() = %v, want a reserved-name panic", r)
		}
	}()
	sdk.NewModule(sdk.Connector{Commands: map[string]sdk.CommandFunc{
		abi.CommandTestModule: func(context.Context, *sdk.Host, sdk.Args) (any, error) { return nil, nil },
	}}, nil)
}

func TestConfigureParamsAndInstance(t *testing.T) {
	var got string
	c := sdk.Connector{
		Configure: func(_ context.Context, h *sdk.Host) error {
			p := h.Params()
			got = fmt.Sprintf("%s %s %v %v %d %v %s", p.String("url"), p.Secret("key"), p.Bool("on"), p.Number("n"), p.Int("n"), p, h.Instance().Name)
			if p.Number("n") > 5 {
				return sdk.BadRequest("param n: too big")
			}
			return nil
		},
	}
	h := sdktest.New(c, map[string]any{"url": "http://x", "key": "s3cret", "on": true, "n": 2.5})
	if err := h.Configure(ctx); err != nil {
		t.Fatal(err)
	}
	if want := "http://x s3cret true 2.5 2 sdk.Params[key n on url] test"; got != want {
		t.Errorf("configure saw %q, want %q", got, want)
	}
	bad := sdktest.New(c, map[string]any{"n": 9.0})
	if err := bad.TestModule(ctx); abi.KindOf(err) != abi.KindBadRequest {
		t.Errorf("bad params: err = %v, want bad_request from configure", err)
	}
}

func TestConfigureLimits(t *testing.T) {
	var got abi.Limits
	h := sdktest.New(sdk.Connector{Configure: func(_ context.Context, h *sdk.Host) error {
		got = h.Limits()
		return nil
	}}, nil)
	h.Limits = abi.Limits{MemoryBytes: 64 << 20, CallTimeoutMS: 5000, OutputBytes: 1 << 20}
	if err := h.Configure(ctx); err != nil {
		t.Fatal(err)
	}
	if got != h.Limits {
		t.Fatalf("configure saw limits %+v, want %+v", got, h.Limits)
	}
}

func TestIntegrationContextVersioning(t *testing.T) {
	attempts := 0
	var fake *sdktest.Host
	c := sdk.Connector{Commands: map[string]sdk.CommandFunc{
		"race": func(ctx context.Context, h *sdk.Host, _ sdk.Args) (any, error) {
			v, ver, err := h.IntegrationContext(ctx)
			if err != nil {
				return nil, err
			}
			fake.SetIntegrationContext(map[string]any{"other": "writer"}) // another instance wins
			if _, err := h.SetIntegrationContext(ctx, v, ver); !errors.Is(err, sdk.ErrConflict) {
				return nil, fmt.Errorf("stale write: err = %v, want ErrConflict", err)
			}
			if _, err := h.SetIntegrationContext(ctx, map[string]any{"forced": true}, -1); err != nil {
				return nil, err
			}
			return nil, h.UpdateIntegrationContext(ctx, func(v map[string]any) error {
				attempts++
				if attempts == 1 {
					fake.SetIntegrationContext(map[string]any{"forced": true, "n": 1.0})
				}
				v["mine"] = true
				return nil
			})
		},
	}}
	fake = sdktest.New(c, nil)
	if _, err := fake.Command(ctx, "race", nil); err != nil {
		t.Fatal(err)
	}
	v, ver := fake.IntegrationContext()
	if attempts != 2 || ver != 4 || v["mine"] != true || v["n"] != 1.0 || v["forced"] != true {
		t.Fatalf("context = %v version %d after %d attempts", v, ver, attempts)
	}
}

func TestCacheTTL(t *testing.T) {
	now := time.Unix(1000, 0)
	c := sdk.Connector{Commands: map[string]sdk.CommandFunc{
		"set": func(ctx context.Context, h *sdk.Host, a sdk.Args) (any, error) {
			return nil, h.CacheSet(ctx, a.String("k"), map[string]int{"v": 7}, 10*time.Second)
		},
		"get": func(ctx context.Context, h *sdk.Host, a sdk.Args) (any, error) {
			var v map[string]int
			found, err := h.CacheGet(ctx, a.String("k"), &v)
			return map[string]any{"found": found, "v": v["v"]}, err
		},
		"del": func(ctx context.Context, h *sdk.Host, a sdk.Args) (any, error) {
			return nil, h.CacheDelete(ctx, a.String("k"))
		},
	}}
	h := sdktest.New(c, nil)
	h.Now = func() time.Time { return now }
	steps := []struct {
		cmd     string
		advance time.Duration
		want    string
	}{
		{cmd: "get", want: `{"found":false,"v":0}`},
		{cmd: "set", want: `null`},
		{cmd: "get", advance: 9 * time.Second, want: `{"found":true,"v":7}`},
		{cmd: "get", advance: time.Second, want: `{"found":false,"v":0}`},
		{cmd: "set", want: `null`},
		{cmd: "del", want: `null`},
		{cmd: "get", want: `{"found":false,"v":0}`},
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		res, err := h.Command(ctx, s.cmd, map[string]string{"k": "token"})
		if err != nil || strings.TrimSpace(string(res)) != s.want {
			t.Fatalf("step %d %s = %s, %v; want %s", i, s.cmd, res, err, s.want)
		}
	}
	res, err := h.Command(ctx, "get", map[string]string{"k": ""})
	if abi.KindOf(err) != abi.KindBadRequest || !strings.Contains(err.Error(), "connhost cache_get") {
		t.Errorf("empty key: %s, %v; want the host's bad_request naming the function", res, err)
	}
}

func TestLastRunStagedDuringFetch(t *testing.T) {
	fail := false
	c := sdk.Connector{
		FetchIncidents: func(ctx context.Context, h *sdk.Host, last map[string]any) ([]abi.Incident, map[string]any, error) {
			n, _ := last["n"].(float64)
			if err := h.SetLastRun(ctx, map[string]any{"n": n + 1}); err != nil {
				return nil, nil, err
			}
			if fail {
				return nil, nil, errors.New("remote down")
			}
			return []abi.Incident{{Name: fmt.Sprint("inc ", n)}}, nil, nil
		},
		Commands: map[string]sdk.CommandFunc{
			"mirror": func(ctx context.Context, h *sdk.Host, _ sdk.Args) (any, error) {
				if err := h.SetLastMirrorRun(ctx, map[string]any{"at": "t"}); err != nil {
					return nil, err
				}
				return h.LastMirrorRun(ctx)
			},
		},
	}
	h := sdktest.New(c, nil)
	if _, err := h.FetchIncidents(ctx); err != nil {
		t.Fatal(err)
	}
	fail = true
	if _, err := h.FetchIncidents(ctx); err == nil {
		t.Fatal("failing fetch succeeded")
	}
	if lr := h.LastRun(); lr["n"] != 1.0 || len(h.Incidents()) != 1 {
		t.Fatalf("after a failed fetch: last run %v, %d incidents; want n=1 and 1", lr, len(h.Incidents()))
	}
	if res, err := h.Command(ctx, "mirror", nil); err != nil || strings.TrimSpace(string(res)) != `{"at":"t"}` {
		t.Fatalf("mirror run = %s, %v", res, err)
	}
}

func TestServerFunctions(t *testing.T) {
	c := sdk.Connector{Commands: map[string]sdk.CommandFunc{
		"all": func(ctx context.Context, h *sdk.Host, _ sdk.Args) (any, error) {
			var out []any
			id, err := h.AddEntry(ctx, abi.AddEntryRequest{IncidentID: "7", Entry: abi.Entry{Type: abi.EntryNote, Contents: "hi"}})
			out = append(out, id, err)
			ids, err := h.CreateIncidents(ctx, abi.CreateIncidentsRequest{Incidents: []abi.Incident{{Name: "a"}, {Name: "b"}}})
			out = append(out, ids, err)
			u, err := h.FindUser(ctx, abi.FindUserRequest{Email: "ann@x"})
			out = append(out, u.ID, err)
			u, err = h.FindUser(ctx, abi.FindUserRequest{Username: "nobody"})
			out = append(out, u == nil, err)
			out = append(out, h.HandleEntitlementForUser(ctx, abi.EntitlementRequest{IncidentID: "7", GUID: "g", Content: "yes"}))
			out = append(out, h.UpdateModuleHealth(ctx, "degraded", true))
			out = append(out, h.MirrorInvestigation(ctx, abi.MirrorInvestigationRequest{IncidentID: "7", MirrorType: "all:both"}))
			_, err = h.DirectMessage(ctx, abi.DirectMessageRequest{Message: "hello"})
			out = append(out, errors.Is(err, sdk.ErrUnavailable))
			_, err = h.AddEntry(ctx, abi.AddEntryRequest{})
			out = append(out, abi.KindOf(err))
			h.Warnf("done %d", 1)
			return strings.TrimSpace(fmt.Sprintln(out...)), nil
		},
	}}
	h := sdktest.New(c, nil)
	h.AddUser(abi.User{ID: "u1", Username: "ann", Email: "ann@x"})
	res, err := h.Command(ctx, "all", nil)
	if err != nil {
		t.Fatal(err)
	}
	var got string
	json.Unmarshal(res, &got)
	if want := "entry-1 <nil> [incident-2 incident-3] <nil> u1 <nil> true <nil> <nil> <nil> <nil> true bad_request"; got != want {
		t.Errorf("results = %q\nwant      %q", got, want)
	}
	if len(h.Entries()) != 1 || len(h.Incidents()) != 2 || len(h.Entitlements()) != 1 || len(h.Mirrors()) != 1 ||
		h.Health() != (abi.ModuleHealth{Message: "degraded", IsError: true}) {
		t.Errorf("state: %d entries, %d incidents, %d entitlements, %d mirrors, health %+v",
			len(h.Entries()), len(h.Incidents()), len(h.Entitlements()), len(h.Mirrors()), h.Health())
	}
	if l := h.Logs(); len(l) != 1 || l[0] != (sdktest.LogLine{Level: abi.LogWarn, Message: "done 1"}) {
		t.Errorf("logs = %+v", l)
	}
}

func TestHostHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Seen", r.Header.Get("X-Token"))
		w.WriteHeader(http.StatusTeapot)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.RequestURI(), body)
	}))
	defer srv.Close()
	c := sdk.Connector{Commands: map[string]sdk.CommandFunc{
		"get": func(ctx context.Context, h *sdk.Host, a sdk.Args) (any, error) {
			resp, err := h.HTTP(ctx, abi.HTTPRequest{
				Method: "POST", URL: a.String("url"), Body: []byte("payload"),
				Headers: sdk.Header{"X-Token": {"t"}},
			})
			if err != nil {
				return nil, err
			}
			return fmt.Sprintf("%d %s %s", resp.Status, sdk.Header(resp.Headers).Get("x-seen"), resp.Body), nil
		},
	}}
	h := sdktest.New(c, nil)
	res, err := h.Command(ctx, "get", map[string]string{"url": srv.URL + "/p?q=1"})
	if err != nil || string(res) != `"418 t POST /p?q=1 payload"` {
		t.Fatalf("result = %s, %v", res, err)
	}
	h.Egress = []string{"example.com"}
	_, err = h.Command(ctx, "get", map[string]string{"url": srv.URL})
	if err == nil || !strings.Contains(err.Error(), "denied") || !strings.Contains(err.Error(), "egress") {
		t.Fatalf("egress: err = %v, want a denied error", err)
	}
}

func TestLongRunningStopAndSleep(t *testing.T) {
	ticks := 0
	sleeping := make(chan struct{})
	c := sdk.Connector{LongRunningExecution: func(ctx context.Context, h *sdk.Host) error {
		for !h.ShouldStop() {
			ticks++
			close(sleeping)
			if !h.Sleep(ctx, time.Hour) {
				return nil
			}
		}
		return errors.New("stopped without interrupting sleep")
	}}
	h := sdktest.New(c, nil)
	done := make(chan error)
	go func() { done <- h.LongRunningExecution(ctx) }()
	<-sleeping
	h.Stop()
	if err := <-done; err != nil || ticks != 1 {
		t.Fatalf("long-running = %v after %d ticks", err, ticks)
	}
}

func TestHTTPHandler(t *testing.T) {
	hook := func(ctx context.Context, h *sdk.Host, r *abi.HTTPRequest) (*abi.HTTPResponse, error) {
		switch {
		case r.Path == "/empty":
			return nil, nil
		case r.Path == "/fail":
			return nil, sdk.RateLimited("slow down")
		case r.Path != "/hook" || r.Method != "POST":
			return sdk.TextResponse(http.StatusNotFound, "no route"), nil
		}
		user, pass, ok := sdk.BasicAuth(r)
		if !ok || user != "siem" || pass != "pw:1" {
			return sdk.JSONResponse(http.StatusUnauthorized, map[string]string{"error": "who are you"})
		}
		ids, err := h.CreateIncidents(ctx, abi.CreateIncidentsRequest{Incidents: []abi.Incident{{Name: string(r.Body)}}})
		if err != nil {
			return nil, err
		}
		q, _ := url.ParseQuery(r.Query)
		return sdk.JSONResponse(http.StatusCreated, map[string]string{
			"id": ids[0], "src": q.Get("src"), "ct": sdk.Header(r.Headers).Get("content-type"),
		})
	}
	h := sdktest.New(sdk.Connector{HTTP: hook}, nil)
	srv := httptest.NewServer(h)
	defer srv.Close()
	tests := []struct {
		name, method, path, user, pass string
		wantStatus                     int
		wantBody, wantType             string
	}{
		{"created", "POST", "/hook?src=siem", "siem", "pw:1", http.StatusCreated, `{"ct":"text/plain","id":"incident-1","src":"siem"}` + "\n", "application/json"},
		{"bad password", "POST", "/hook", "siem", "guess", http.StatusUnauthorized, `{"error":"who are you"}` + "\n", "application/json"},
		{"unrouted", "GET", "/nope", "", "", http.StatusNotFound, "no route", "text/plain; charset=utf-8"},
		{"nil response", "GET", "/empty", "", "", http.StatusNoContent, "", ""},
		{"error", "GET", "/fail", "", "", http.StatusBadGateway, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader("alert"))
			req.Header.Set("Content-Type", "text/plain")
			req.SetBasicAuth(tt.user, tt.pass)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus || tt.wantStatus != http.StatusBadGateway && (string(b) != tt.wantBody || resp.Header.Get("Content-Type") != tt.wantType) {
				t.Fatalf("response %d %q (%s), want %d %q (%s)", resp.StatusCode, b, resp.Header.Get("Content-Type"), tt.wantStatus, tt.wantBody, tt.wantType)
			}
		})
	}
	if inc := h.Incidents(); len(inc) != 1 || inc[0].Name != "alert" {
		t.Errorf("incidents %+v", inc)
	}
}

func TestHeader(t *testing.T) {
	h := sdk.Header{"x-lower": {"a"}}
	h.Add("content-type", "text/plain")
	h.Set("X-LOWER", "b")
	tests := []struct{ key, want string }{
		{"Content-Type", "text/plain"},
		{"CONTENT-TYPE", "text/plain"},
		{"x-lower", "b"},
		{"missing", ""},
	}
	for _, tt := range tests {
		if got := h.Get(tt.key); got != tt.want {
			t.Errorf("Get(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
	if len(h) != 2 || h["X-Lower"] == nil || h["Content-Type"] == nil {
		t.Errorf("keys not canonical: %v", h)
	}
	c := h.Clone()
	c["X-Lower"][0] = "changed"
	h.Del("X-LOWER")
	if h.Get("x-lower") != "" || c.Get("x-lower") != "changed" || len(h) != 1 {
		t.Errorf("after Del/Clone: %v, clone %v", h, c)
	}
}
