package engines

import (
	"testing"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/testenv/wait"
	"github.com/connhost/connhost/internal/testenv/wasmbuild"
)

// TestLongRunningHTTPAndCutOff: HTTP into a long-running HTTP plugin on a
// group reaches the engine holding the lease; an engine cut off from the
// server stops its execution before another takes the lease over, and
// HTTP then reaches the new holder.
func TestLongRunningHTTPAndCutOff(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a lease to expire")
	}
	f := newFixture(t)
	ctx := t.Context()
	wasm, err := wasmbuild.Build(ctx, wasmbuild.Source{Path: "plugins/webhook"})
	if err != nil {
		t.Fatal(err)
	}
	sha := sha256Hex(wasm)
	if err := f.hub.Publish(ctx, sha, wasm, nil); err != nil {
		t.Fatal(err)
	}
	f.be.mu.Lock()
	f.be.groups["wh"] = "dmz"
	sp := Spec{Info: abi.InstanceInfo{ID: "wh", Name: "hooks", Brand: "webhook"}, Plugin: "webhook@1.1.0", SHA256: sha, LongRunning: true}
	f.be.lr = []Spec{sp}
	f.be.mu.Unlock()
	engs := []*Engine{f.engine(t, "e1", "dmz"), f.engine(t, "e2", "dmz")}
	holders := func() []*Engine {
		var out []*Engine
		for _, e := range engs {
			e.mu.Lock()
			if e.lr["wh"] != nil {
				out = append(out, e)
			}
			e.mu.Unlock()
		}
		return out
	}
	var first *Engine
	wait.For(t, 10*time.Second, "an engine holds the lease", func() bool {
		if h := holders(); len(h) == 1 {
			first = h[0]
			return true
		}
		return false
	})
	post := func(name string) {
		t.Helper()
		resp, err := f.hub.HandleHTTP(ctx, "dmz", sp, abi.HTTPRequest{Method: "POST", Path: "/", Body: []byte(`{"name":"` + name + `"}`),
			Headers: map[string][]string{"Content-Type": {"application/json"}}})
		if err != nil || resp.Status >= 300 {
			t.Fatalf("POST %s: %+v %v", name, resp, err)
		}
	}
	post("alert one")

	// Cut the holder off: its connection drops, renewals fail.
	first.nc.Close()
	var stopped, taken time.Time
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) && taken.IsZero() {
		h := holders()
		if len(h) > 1 {
			t.Fatal("two engines run the execution at once")
		}
		first.mu.Lock()
		gone := first.lr["wh"] == nil
		first.mu.Unlock()
		if gone && stopped.IsZero() {
			stopped = time.Now()
		}
		if len(h) == 1 && h[0] != first {
			taken = time.Now()
		}
		time.Sleep(10 * time.Millisecond)
	}
	if stopped.IsZero() || taken.IsZero() || !stopped.Before(taken) {
		t.Fatalf("cut-off holder stopped at %v, lease taken at %v: want stop before takeover", stopped, taken)
	}
	post("alert two")
	if got := f.be.svc.Incidents("wh"); len(got) != 2 || got[0].Incident.Name != "alert one" || got[1].Incident.Name != "alert two" {
		t.Fatalf("incidents %+v", got)
	}
}
