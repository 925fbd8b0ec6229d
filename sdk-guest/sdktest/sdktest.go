// Package sdktest runs connectors natively against an in-memory connhost
// host, so that handlers are unit-tested with plain go test.
//
// A Host implements every connhost_v1 host function (sdk.Imports) over
// in-memory state with the host's semantics: a versioned integration context
// that rejects stale writes with kind conflict, a cache with TTLs on a
// settable clock, last run staged during fetch-incidents and kept only when
// the fetch succeeds, entries, incidents, users, health, and http_request
// over a real http.Client (so tests can call an httptest server), with an
// optional egress allow-list. Calls go through sdk.Module, the same dispatch
// and codec as the wasm exports, and errors come back as the host would see
// them: an *abi.Error, after the XSOAR sentinel rule.
//
// The same Host also serves a real .wasm build: see package
// github.com/connhost/connhost/host/wasmrun, in the server's module
// because it needs wazero.
package sdktest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/connhost/connhost/abi"
	sdk "github.com/connhost/connhost/sdk-guest"
)

// Guest is a module instance as the host drives it: the three ABI entry
// points, each returning the envelope the guest output. An error means the
// guest broke down (a trap); it is reported as such.
type Guest interface {
	Configure(ctx context.Context, req []byte) ([]byte, error)
	Call(ctx context.Context, cmd string, args []byte) ([]byte, error)
	HTTP(ctx context.Context, req []byte) ([]byte, error)
}

// LogLine is one message the guest logged.
type LogLine struct {
	Level   int32 // abi.LogDebug … abi.LogError
	Message string
}

// MaxHTTPBody caps response bodies of http_request, as the host does.
const MaxHTTPBody = 10 << 20

// Host is an in-memory connhost host for one connector instance with one
// module instance. Set the exported fields before the first call. Calls are
// serialized, as the host never enters a module instance concurrently; the
// state accessors are safe to use from other goroutines.
type Host struct {
	// Instance identifies the connector instance (defaults: id "test-1",
	// name "test", brand "test").
	Instance abi.InstanceInfo
	// PluginVersion is passed to configure (default "0.0.0").
	PluginVersion string
	// Params are the instance parameters, passed to configure as given.
	Params map[string]any
	// Limits are passed to configure as the instance's limits.
	Limits abi.Limits
	// HTTPClient performs http_request (default: a client with a 30 s
	// timeout).
	HTTPClient *http.Client
	// Egress, when non-nil, is the allow-list for http_request: "host",
	// "host:port" or "*.domain". Other hosts fail with kind denied.
	Egress []string
	// Now is the clock for cache TTLs (default time.Now).
	Now func() time.Time
	// DirectMessage answers direct_message; nil makes it unavailable.
	DirectMessage func(abi.DirectMessageRequest) (string, error)

	guest      Guest
	callMu     sync.Mutex
	configured bool
	stopOnce   sync.Once
	stop       chan struct{}

	mu            sync.Mutex
	ctxValue      map[string]any
	ctxVersion    int64
	cache         map[string]cacheEntry
	lastRun       map[string]any
	staged        map[string]any // last_run_set during fetch-incidents
	inFetch       bool
	lastMirrorRun map[string]any
	entries       []abi.AddEntryRequest
	incidents     []abi.Incident
	users         []abi.User
	entitlements  []abi.EntitlementRequest
	health        abi.ModuleHealth
	mirrors       []abi.MirrorInvestigationRequest
	logs          []LogLine
	nextID        int
}

type cacheEntry struct {
	value   json.RawMessage
	expires time.Time // zero: never
}

// New returns a Host running c natively with the given parameters.
func New(c sdk.Connector, params map[string]any) *Host {
	h := newHost(params)
	h.guest = moduleGuest{sdk.NewModule(c, h)}
	return h
}

// NewWithGuest returns a Host driving the guest that start builds over the
// Host's imports; package wasmrun uses it to run a .wasm module.
func NewWithGuest(params map[string]any, start func(imp sdk.Imports) (Guest, error)) (*Host, error) {
	h := newHost(params)
	g, err := start(h)
	if err != nil {
		return nil, err
	}
	h.guest = g
	return h, nil
}

func newHost(params map[string]any) *Host {
	return &Host{
		Instance:      abi.InstanceInfo{ID: "test-1", Name: "test", Brand: "test"},
		PluginVersion: "0.0.0",
		Params:        params,
		stop:          make(chan struct{}),
		cache:         map[string]cacheEntry{},
	}
}

// moduleGuest adapts sdk.Module, whose entry points cannot fail.
type moduleGuest struct{ m *sdk.Module }

func (g moduleGuest) Configure(ctx context.Context, req []byte) ([]byte, error) {
	return g.m.Configure(ctx, req), nil
}

func (g moduleGuest) Call(ctx context.Context, cmd string, args []byte) ([]byte, error) {
	return g.m.Call(ctx, cmd, args), nil
}

func (g moduleGuest) HTTP(ctx context.Context, req []byte) ([]byte, error) {
	return g.m.HTTP(ctx, req), nil
}

func (h *Host) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

// envelope decodes what the guest output the way the host does.
func envelope(out []byte, err error) (json.RawMessage, *abi.Error) {
	if err != nil {
		return nil, &abi.Error{Kind: abi.KindTrap, Message: err.Error()}
	}
	env, err := abi.DecodeEnvelope(out)
	if err != nil {
		return nil, &abi.Error{Kind: abi.KindABIViolation, Message: err.Error()}
	}
	if env.Error != nil {
		return nil, abi.NormalizeGuest(env.Error)
	}
	return env.Result, nil
}

// Configure calls connhost_configure with Instance and Params. Calls
// configure by themselves on first use, so tests call this only to test
// configuration.
func (h *Host) Configure(ctx context.Context) error {
	h.callMu.Lock()
	defer h.callMu.Unlock()
	return h.configure(ctx)
}

func (h *Host) configure(ctx context.Context) error {
	if h.configured {
		return nil
	}
	req, err := json.Marshal(abi.ConfigureRequest{
		ABIVersion: abi.Version, Instance: h.Instance, PluginVersion: h.PluginVersion, Params: h.Params, Limits: h.Limits,
	})
	if err != nil {
		return fmt.Errorf("sdktest: configure instance %s: %w", h.Instance.Name, err)
	}
	if _, e := envelope(h.guest.Configure(ctx, req)); e != nil {
		return fmt.Errorf("sdktest: configure instance %s: %w", h.Instance.Name, e)
	}
	h.configured = true
	return nil
}

// Call runs a command with args (any JSON-encodable value; nil for none)
// and returns its result. A failure is an error wrapping the *abi.Error
// the host would see; use abi.KindOf to get its kind.
func (h *Host) Call(ctx context.Context, cmd string, args any) (json.RawMessage, error) {
	h.callMu.Lock()
	defer h.callMu.Unlock()
	if err := h.configure(ctx); err != nil {
		return nil, err
	}
	var raw []byte
	switch a := args.(type) {
	case nil:
		raw = []byte("{}")
	case json.RawMessage:
		raw = a
	default:
		b, err := json.Marshal(args)
		if err != nil {
			return nil, fmt.Errorf("sdktest: command %s: encode arguments: %w", cmd, err)
		}
		raw = b
	}
	fetch := cmd == abi.CommandFetchIncidents
	if fetch {
		h.mu.Lock()
		h.inFetch, h.staged = true, nil
		h.mu.Unlock()
	}
	res, e := envelope(h.guest.Call(ctx, cmd, raw))
	if fetch {
		h.finishFetch(res, e)
	}
	if e != nil {
		return nil, fmt.Errorf("sdktest: command %s: %w", cmd, e)
	}
	return res, nil
}

// finishFetch stores the incidents and last run of a successful fetch, and
// drops a last run staged by a failed one.
func (h *Host) finishFetch(res json.RawMessage, e *abi.Error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	staged := h.staged
	h.inFetch, h.staged = false, nil
	if e != nil {
		return
	}
	var r abi.FetchIncidentsResult
	if json.Unmarshal(res, &r) != nil {
		return
	}
	h.incidents = append(h.incidents, r.Incidents...)
	switch {
	case r.LastRun != nil:
		h.lastRun = r.LastRun
	case staged != nil:
		h.lastRun = staged
	}
}

func decodeInto[T any](res json.RawMessage, err error) (T, error) {
	var v T
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(res, &v); err != nil {
		return v, fmt.Errorf("sdktest: decode result: %w", err)
	}
	return v, nil
}

// TestModule runs test-module; a result other than "ok" is an error.
func (h *Host) TestModule(ctx context.Context) error {
	s, err := decodeInto[string](h.Call(ctx, abi.CommandTestModule, nil))
	if err == nil && s != "ok" {
		err = fmt.Errorf("sdktest: test-module answered %q, want \"ok\"", s)
	}
	return err
}

// FetchIncidents runs fetch-incidents with the stored last run, as the host
// scheduler does, and on success stores the incidents and the new last run.
func (h *Host) FetchIncidents(ctx context.Context) ([]abi.Incident, error) {
	args := abi.FetchIncidentsArgs{LastRun: h.LastRun()}
	r, err := decodeInto[abi.FetchIncidentsResult](h.Call(ctx, abi.CommandFetchIncidents, args))
	return r.Incidents, err
}

// GetRemoteData runs get-remote-data.
func (h *Host) GetRemoteData(ctx context.Context, args abi.GetRemoteDataArgs) (abi.GetRemoteDataResponse, error) {
	return decodeInto[abi.GetRemoteDataResponse](h.Call(ctx, abi.CommandGetRemoteData, args))
}

// GetModifiedRemoteData runs get-modified-remote-data.
func (h *Host) GetModifiedRemoteData(ctx context.Context, args abi.GetModifiedRemoteDataArgs) (abi.GetModifiedRemoteDataResponse, error) {
	return decodeInto[abi.GetModifiedRemoteDataResponse](h.Call(ctx, abi.CommandGetModifiedRemoteData, args))
}

// UpdateRemoteSystem runs update-remote-system and returns the remote id.
func (h *Host) UpdateRemoteSystem(ctx context.Context, args abi.UpdateRemoteSystemArgs) (string, error) {
	return decodeInto[string](h.Call(ctx, abi.CommandUpdateRemoteSystem, args))
}

// GetMappingFields runs get-mapping-fields.
func (h *Host) GetMappingFields(ctx context.Context) (abi.GetMappingFieldsResponse, error) {
	return decodeInto[abi.GetMappingFieldsResponse](h.Call(ctx, abi.CommandGetMappingFields, nil))
}

// LongRunningExecution runs long-running-execution until it returns; call
// Stop from another goroutine to ask it to.
func (h *Host) LongRunningExecution(ctx context.Context) error {
	_, err := h.Call(ctx, abi.CommandLongRunningExecution, nil)
	return err
}

// Command runs a custom command with string arguments.
func (h *Host) Command(ctx context.Context, name string, args map[string]string) (json.RawMessage, error) {
	if args == nil {
		return h.Call(ctx, name, nil)
	}
	return h.Call(ctx, name, args)
}

// Stop makes should_stop answer 1 and interrupts sleeps, for good.
func (h *Host) Stop() { h.stopOnce.Do(func() { close(h.stop) }) }

// ServeHTTP passes r to the guest's connhost_http, so a test can put the
// connector behind httptest.NewServer(h).
func (h *Host) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req, _ := json.Marshal(abi.HTTPRequest{ // a request of strings and bytes always marshals
		Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Headers: r.Header, Body: body,
	})
	h.callMu.Lock()
	var res json.RawMessage
	e := abi.Error{}
	if err := h.configure(r.Context()); err != nil {
		e = abi.Error{Kind: abi.KindFailed, Message: err.Error()}
	} else if out, ae := envelope(h.guest.HTTP(r.Context(), req)); ae != nil {
		e = *ae
	} else {
		res = out
	}
	h.callMu.Unlock()
	var resp abi.HTTPResponse
	if e.Kind == "" {
		if err := json.Unmarshal(res, &resp); err != nil {
			e = abi.Error{Kind: abi.KindABIViolation, Message: err.Error()}
		}
	}
	if e.Kind != "" {
		http.Error(w, e.Error(), http.StatusBadGateway)
		return
	}
	for k, v := range resp.Headers {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.Status)
	w.Write(resp.Body)
}

// Log implements sdk.Imports.
func (h *Host) Log(level int32, msg []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.logs = append(h.logs, LogLine{Level: level, Message: string(msg)})
}

// Sleep implements sdk.Imports: it returns early, interrupted, on Stop or
// when ctx is done. A huge ms is clamped rather than overflowing into an
// immediate return.
func (h *Host) Sleep(ctx context.Context, ms int64) int32 {
	t := time.NewTimer(time.Duration(min(ms, int64(math.MaxInt64/time.Millisecond))) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return abi.SleepCompleted
	case <-h.stop:
	case <-ctx.Done():
	}
	return abi.SleepInterrupted
}

// ShouldStop implements sdk.Imports.
func (h *Host) ShouldStop() bool {
	select {
	case <-h.stop:
		return true
	default:
		return false
	}
}

// allowed reports whether rawURL's host is on the egress allow-list.
func (h *Host) allowed(u *url.URL) bool {
	if h.Egress == nil {
		return true
	}
	host := strings.ToLower(u.Hostname())
	hostPort := strings.ToLower(u.Host)
	for _, e := range h.Egress {
		e = strings.ToLower(e)
		switch {
		case e == hostPort, e == host && !strings.Contains(e, ":"):
			return true
		case strings.HasPrefix(e, "*.") && strings.HasSuffix(host, e[1:]):
			return true
		}
	}
	return false
}

func (h *Host) httpRequest(ctx context.Context, r abi.HTTPRequest) (abi.HTTPResponse, error) {
	u, err := url.Parse(r.URL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return abi.HTTPResponse{}, abi.Errorf(abi.KindBadRequest, "url %q: want an absolute http(s) URL", r.URL)
	}
	if !h.allowed(u) {
		return abi.HTTPResponse{}, abi.Errorf(abi.KindDenied, "host %s is not on the egress allow-list", u.Host)
	}
	if r.TimeoutMS > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(r.TimeoutMS)*time.Millisecond)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		return abi.HTTPResponse{}, abi.Errorf(abi.KindBadRequest, "http request: %v", err)
	}
	for k, v := range r.Headers {
		if strings.EqualFold(k, "Host") && len(v) > 0 {
			req.Host = v[0]
			continue
		}
		req.Header[k] = v
	}
	client := *h.client()
	client.CheckRedirect = func(next *http.Request, via []*http.Request) error {
		if !h.allowed(next.URL) {
			return abi.Errorf(abi.KindDenied, "redirect to host %s is not on the egress allow-list", next.URL.Host)
		}
		if len(via) >= 10 {
			return fmt.Errorf("stopped after 10 redirects")
		}
		return nil
	}
	resp, err := client.Do(req)
	if err != nil {
		var ae *abi.Error
		if errors.As(err, &ae) {
			return abi.HTTPResponse{}, ae
		}
		if ctx.Err() != nil {
			return abi.HTTPResponse{}, abi.Errorf(abi.KindTimeout, "http %s %s: %v", r.Method, u.Redacted(), err)
		}
		return abi.HTTPResponse{}, abi.Errorf(abi.KindFailed, "http %s %s: %v", r.Method, u.Redacted(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxHTTPBody))
	if err != nil {
		return abi.HTTPResponse{}, abi.Errorf(abi.KindFailed, "http %s %s: read body: %v", r.Method, u.Redacted(), err)
	}
	return abi.HTTPResponse{Status: resp.StatusCode, Headers: resp.Header, Body: body}, nil
}

func (h *Host) client() *http.Client {
	if h.HTTPClient != nil {
		return h.HTTPClient
	}
	return defaultClient
}

var defaultClient = &http.Client{Timeout: 30 * time.Second}
