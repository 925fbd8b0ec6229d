package host

import (
	"testing"

	"github.com/connhost/connhost/abi"
)

// TestDecodeEnvelope covers the compact fast path and the strict fallback:
// an envelope has exactly one member.
func TestDecodeEnvelope(t *testing.T) {
	tests := []struct {
		in     string
		result string
		kind   abi.ErrorKind
		bad    bool
	}{
		{in: `{"result":"ok"}`, result: `"ok"`},
		{in: `{"result":null}`, result: `null`},
		{in: `{"result":{"a":[1,2]}}`, result: `{"a":[1,2]}`},
		{in: ` { "result" : 1 } `, result: `1`},
		{in: `{}`, bad: true},
		{in: `{"result":null,"error":{"kind":"failed"}}`, bad: true},
		{in: `{"error":null}`, bad: true},
		{in: `{"error":{"kind":"failed","message":"x"}}`, kind: abi.KindFailed},
		{in: `{"result":1,"error":{"kind":"failed"}}`, bad: true},
		{in: `{"result":1}x`, bad: true},
		{in: `{"resutl":1}`, bad: true},
		{in: `null`, bad: true},
		{in: `{"error":{"message":"no kind"}}`, bad: true},
		{in: `{not json`, bad: true},
	}
	for _, tt := range tests {
		env, err := decodeEnvelope([]byte(tt.in))
		switch {
		case tt.bad:
			if err == nil {
				t.Errorf("%s: accepted as %+v", tt.in, env)
			}
		case err != nil:
			t.Errorf("%s: %v", tt.in, err)
		case string(env.Result) != tt.result || (tt.kind != "") != (env.Error != nil) || (env.Error != nil && env.Error.Kind != tt.kind):
			t.Errorf("%s: decoded result %s error %v", tt.in, env.Result, env.Error)
		}
	}
}

// TestMemServices covers what the guest-driven tests do not: incident
// deduplication by mirror id, users, health and the records it keeps.
func TestMemServices(t *testing.T) {
	ctx := t.Context()
	s := NewMemServices()
	a := abi.InstanceInfo{ID: "a", Name: "a"}
	ids, err := s.CreateIncidents(ctx, a, abi.CreateIncidentsRequest{
		Incidents: []abi.Incident{{Name: "one", DbotMirrorID: "r1"}, {Name: "two"}},
		LastRun:   map[string]any{"t": "x"},
	})
	if err != nil || len(ids) != 2 {
		t.Fatalf("ids %v err %v", ids, err)
	}
	again, _ := s.CreateIncidents(ctx, a, abi.CreateIncidentsRequest{Incidents: []abi.Incident{{Name: "one again", DbotMirrorID: "r1"}}})
	if again[0] != ids[0] || len(s.Incidents("a")) != 2 {
		t.Errorf("mirror id r1 not deduplicated: %v vs %v", again, ids)
	}
	if lr, _ := s.LastRun(ctx, a); lr["t"] != "x" {
		t.Errorf("last run with incidents not stored: %v", lr)
	}
	s.AddUser(abi.User{ID: "u1", Username: "ann", Email: "ann@example.com"})
	for _, req := range []abi.FindUserRequest{{Username: "ann"}, {Email: "ann@example.com"}} {
		if u, _ := s.FindUser(ctx, a, req); u == nil || u.ID != "u1" {
			t.Errorf("FindUser(%+v) = %v", req, u)
		}
	}
	if u, _ := s.FindUser(ctx, a, abi.FindUserRequest{Username: "bob"}); u != nil {
		t.Errorf("found %v for bob", u)
	}
	_ = s.UpdateModuleHealth(ctx, a, abi.ModuleHealth{Message: "down", IsError: true})
	if h, ok := s.Health("a"); !ok || !h.IsError {
		t.Errorf("health %+v", h)
	}
	if _, err := s.DirectMessage(ctx, a, abi.DirectMessageRequest{Message: "hi"}); abi.KindOf(err) != abi.KindUnavailable {
		t.Errorf("direct message: %v", err)
	}
	v, _ := s.SetIntegrationContext(ctx, a, map[string]any{"k": 1}, -1)
	if _, err := s.SetIntegrationContext(ctx, a, map[string]any{"k": 2}, v-1); abi.KindOf(err) != abi.KindConflict {
		t.Errorf("stale write: %v", err)
	}
	if got, ver := s.Context("a"); ver != 1 || got["k"] != float64(1) {
		t.Errorf("context %v version %d", got, ver)
	}
}
