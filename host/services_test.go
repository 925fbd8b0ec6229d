package host

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/connhost/connhost/abi"
)

// barrierServices holds every integration-context reader until n readers
// have read, so that concurrent writers provably read the same version.
type barrierServices struct {
	*MemServices
	readers sync.WaitGroup
}

func (b *barrierServices) IntegrationContext(ctx context.Context, inst abi.InstanceInfo) (map[string]any, int64, error) {
	v, ver, err := b.MemServices.IntegrationContext(ctx, inst)
	b.readers.Done()
	b.readers.Wait()
	return v, ver, err
}

// TestContextConflictThroughGuest: two guests read the same context version
// and write it back; exactly one write wins, the other gets conflict.
func TestContextConflictThroughGuest(t *testing.T) {
	e := newEnv(t)
	svc := &barrierServices{MemServices: NewMemServices()}
	svc.readers.Add(2)
	inst := e.instance(t, "probe", svc, InstanceSpec{Limits: Limits{PoolSize: 2}})
	if err := inst.Warm(context.Background(), 2); err != nil {
		t.Fatal(err)
	}
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for k := range errs {
		wg.Go(func() { _, errs[k] = exec1(t, inst, "ctx-incr", nil) })
	}
	wg.Wait()
	wins, conflicts := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case abi.KindOf(err) == abi.KindFailed && strings.Contains(err.Error(), "guest reported kind conflict: "):
			conflicts++
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if wins != 1 || conflicts != 1 {
		t.Fatalf("wins %d conflicts %d (errors %v), want exactly one of each", wins, conflicts, errs)
	}
	got, ver := svc.Context(inst.spec.Info.ID)
	if ver != 1 || got["n"] != float64(1) {
		t.Errorf("stored context %v version %d, want n=1 version 1", got, ver)
	}
}

// rpcCall calls one RPC host function through the probe guest.
func rpcCall(t *testing.T, inst *Instance, name string, req any) (json.RawMessage, error) {
	t.Helper()
	raw, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return exec1(t, inst, "rpc", map[string]any{"name": name, "req": json.RawMessage(raw)})
}

// wantRelayed checks err is the failure of a guest that passed on the error
// envelope of a host function: a kind only the host produces arrives as
// failed, naming the kind the host gave (SPEC §5.1).
func wantRelayed(t *testing.T, err error, kind abi.ErrorKind, want string) *CallError {
	t.Helper()
	if kind.FromGuest() {
		return wantCallError(t, err, kind, want)
	}
	ce := wantCallError(t, err, abi.KindFailed, want)
	if !strings.Contains(ce.Err.Message, "guest reported kind "+string(kind)+": ") {
		t.Fatalf("error %q does not name the relayed kind %s", ce.Err.Message, kind)
	}
	return ce
}

// TestCacheTTLThroughGuest: a cache entry is found until its TTL passes.
func TestCacheTTLThroughGuest(t *testing.T) {
	e := newEnv(t)
	svc := NewMemServices()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	svc.Now = func() time.Time { return now }
	inst := e.instance(t, "probe", svc, InstanceSpec{})
	if _, err := rpcCall(t, inst, abi.ImportCacheSet, abi.CacheSetRequest{Key: "token", Value: json.RawMessage(`"abc"`), TTLSeconds: 60}); err != nil {
		t.Fatal(err)
	}
	if _, err := rpcCall(t, inst, abi.ImportCacheSet, abi.CacheSetRequest{Key: "forever", Value: json.RawMessage(`1`)}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		at          time.Duration
		key         string
		found       bool
		valueIfSeen string
	}{
		{59 * time.Second, "token", true, `"abc"`},
		{60 * time.Second, "token", false, ""},
		{24 * time.Hour, "forever", true, `1`},
	}
	start := now
	for _, tt := range tests {
		now = start.Add(tt.at)
		res, err := rpcCall(t, inst, abi.ImportCacheGet, abi.CacheGetRequest{Key: tt.key})
		if err != nil {
			t.Fatal(err)
		}
		var got abi.CacheGetResult
		if err := json.Unmarshal(res, &got); err != nil {
			t.Fatal(err)
		}
		if got.Found != tt.found || (tt.found && string(got.Value) != tt.valueIfSeen) {
			t.Errorf("%s at +%s: %s, want found=%v value %s", tt.key, tt.at, res, tt.found, tt.valueIfSeen)
		}
	}
}

// TestRPCErrorsThroughGuest: typed errors of services and request checks
// reach the guest with their kind; the guest passing them on cannot report
// a host kind as its own.
func TestRPCErrorsThroughGuest(t *testing.T) {
	e := newEnv(t)
	inst := e.instance(t, "probe", NewMemServices(), InstanceSpec{})
	tests := []struct {
		name string
		req  any
		kind abi.ErrorKind
		want string
	}{
		{abi.ImportDirectMessage, abi.DirectMessageRequest{Message: "hi"}, abi.KindUnavailable, "no chat server"},
		{abi.ImportCacheGet, map[string]any{}, abi.KindBadRequest, "cache_get: missing key"},
		{abi.ImportIntegrationContextSet, map[string]any{"version": "x"}, abi.KindBadRequest, "integration_context_set"},
		{abi.ImportIntegrationContextSet, abi.ContextSetRequest{Context: map[string]any{}, Version: 7}, abi.KindConflict, "version 7 is stale"},
		{abi.ImportAddEntry, abi.AddEntryRequest{}, abi.KindBadRequest, "missing incident_id"},
	}
	for _, tt := range tests {
		_, err := rpcCall(t, inst, tt.name, tt.req)
		wantRelayed(t, err, tt.kind, tt.want)
	}
	if st := inst.Stats(); st.Discarded != 0 {
		t.Errorf("guest-visible errors discarded module instances: %+v", st)
	}
	res, err := rpcCall(t, inst, abi.ImportAddEntry, abi.AddEntryRequest{IncidentID: "7", Entry: abi.Entry{Type: abi.EntryNote, Contents: "hello"}})
	if err != nil {
		t.Fatal(err)
	}
	var added abi.AddEntryResult
	if err := json.Unmarshal(res, &added); err != nil || added.ID == "" {
		t.Fatalf("add_entry result %s: %v", res, err)
	}
	svc := inst.spec.Services.(*MemServices)
	if got := svc.Entries(inst.spec.Info.ID); len(got) != 1 || got[0].ID != added.ID || got[0].IncidentID != "7" {
		t.Errorf("entries %+v", got)
	}
}

// TestFetchLastRun: last_run_set during fetch-incidents is staged and put
// into the result, not written; a failed fetch loses it; outside fetch it is
// written through.
func TestFetchLastRun(t *testing.T) {
	e := newEnv(t)
	svc := NewMemServices()
	inst := e.instance(t, "probe", svc, InstanceSpec{})
	id := inst.spec.Info

	res := mustExec[abi.FetchIncidentsResult](t, inst, abi.CommandFetchIncidents, map[string]any{"cursor": 4})
	if len(res.Incidents) != 1 || res.LastRun["cursor"] != float64(5) {
		t.Errorf("fetch result %+v, want one incident and the staged last run", res)
	}
	if lr, _ := svc.LastRun(context.Background(), id); lr != nil {
		t.Errorf("last run written during fetch: %v", lr)
	}

	res = mustExec[abi.FetchIncidentsResult](t, inst, abi.CommandFetchIncidents, map[string]any{"cursor": 4, "last_run": map[string]any{"own": true}})
	if res.LastRun["own"] != true || res.LastRun["cursor"] != nil {
		t.Errorf("guest's own last_run replaced: %+v", res.LastRun)
	}

	_, err := exec1(t, inst, abi.CommandFetchIncidents, map[string]any{"cursor": 9, "fail": true})
	wantCallError(t, err, abi.KindFailed, "fetch failed after last_run_set")
	if lr, _ := svc.LastRun(context.Background(), id); lr != nil {
		t.Errorf("failed fetch stored last run %v", lr)
	}

	if _, err := rpcCall(t, inst, abi.ImportLastRunSet, abi.RunValue{Value: map[string]any{"outside": 1}}); err != nil {
		t.Fatal(err)
	}
	if lr, _ := svc.LastRun(context.Background(), id); lr["outside"] != float64(1) {
		t.Errorf("last run outside fetch not written: %v", lr)
	}
}

// TestSecretsNotLogged: a secret parameter reaches the guest in clear but
// appears nowhere in the host log, across configure, calls, faults and guest
// logging.
func TestSecretsNotLogged(t *testing.T) {
	const secret = "s3cr3t-Value-9f2c"
	e := newEnv(t)
	inst := e.instance(t, "probe", NewMemServices(), InstanceSpec{Params: map[string]any{"api_key": secret, "url": "https://api.example.com"}})
	if !mustExec[bool](t, inst, "param-is", map[string]string{"param": "api_key", "msg": secret}) {
		t.Fatal("guest did not receive the secret parameter")
	}
	mustExec[any](t, inst, "log", map[string]any{"n": 2, "msg": "working"})
	_, err := exec1(t, inst, "fail", map[string]string{"msg": "remote said no"})
	wantCallError(t, err, abi.KindFailed, "remote said no")
	_, err = rpcCall(t, inst, abi.ImportHTTPRequest, abi.HTTPRequest{Method: "GET", URL: "https://denied.example.org/?key=" + secret, Headers: map[string][]string{"Authorization": {secret}}})
	ce := wantRelayed(t, err, abi.KindDenied, `host "denied.example.org" is not on the egress allow-list`)
	if strings.Contains(ce.Error(), secret) {
		t.Errorf("error carries the secret: %v", ce)
	}
	log := e.log.String()
	if !strings.Contains(log, "working") {
		t.Fatalf("guest log not captured: %s", log)
	}
	if strings.Contains(log, secret) {
		t.Errorf("secret found in log:\n%s", log)
	}
}

// TestLogAndOutputCaps: guest logging past LogBytes is truncated with a
// marker; an output past OutputBytes fails the call with output_limit.
func TestLogAndOutputCaps(t *testing.T) {
	e := newEnv(t)
	inst := e.instance(t, "probe", NewMemServices(), InstanceSpec{Limits: Limits{LogBytes: 100, OutputBytes: 2048}})
	msg := strings.Repeat("a", 30)
	mustExec[any](t, inst, "log", map[string]any{"n": 10, "msg": msg})
	log := e.log.String()
	if n := strings.Count(log, msg); n != 3 {
		t.Errorf("%d whole messages of 30 bytes logged under a 100-byte cap, want 3", n)
	}
	if !strings.Contains(log, truncMarker) || !strings.Contains(log, "guest log truncated") {
		t.Errorf("no truncation marker in log:\n%s", log)
	}
	if strings.Contains(log, "stdout: "+msg) {
		t.Errorf("stdout logged past the cap")
	}

	if got := mustExec[string](t, inst, "big", map[string]int{"n": 1000}); len(got) != 1000 {
		t.Errorf("big result of %d bytes", len(got))
	}
	_, err := exec1(t, inst, "big", map[string]int{"n": 4000})
	wantCallError(t, err, abi.KindOutputLimit, "exceeds the limit of 2048")
	_, err = rpcCall(t, inst, abi.ImportCacheSet, abi.CacheSetRequest{Key: "k", Value: json.RawMessage(`"` + strings.Repeat("b", 3000) + `"`)})
	wantCallError(t, err, abi.KindOutputLimit, "cache_set request of")
}

// TestGuestSeesItsLimits: the configure request carries the limits the
// instance runs with (SPEC §8).
func TestGuestSeesItsLimits(t *testing.T) {
	e := newEnv(t)
	lim := Limits{MemoryBytes: 48 << 20, CallTimeout: 7 * time.Second, OutputBytes: 1 << 20, LogBytes: 4096, HTTPBodyBytes: 1 << 22}
	inst := e.instance(t, "probe", NewMemServices(), InstanceSpec{Limits: lim})
	got := mustExec[abi.Limits](t, inst, "limits", nil)
	want := abi.Limits{MemoryBytes: 48 << 20, CallTimeoutMS: 7000, OutputBytes: 1 << 20, LogBytes: 4096, LogRecords: DefaultLogRecords, StackBytes: DefaultStackBytes, HTTPBodyBytes: 1 << 22}
	if got != want {
		t.Fatalf("guest limits %+v, want %+v", got, want)
	}
}
