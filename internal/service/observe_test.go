package service_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/service"
	"github.com/connhost/connhost/internal/store"
)

// TestEveryCallIsObserved: command calls are reported with their trigger
// whatever started them: the API, the fetch scheduler, mirroring in and
// out, a long-running execution, an HTTP request. Names a client made up
// (a command the plugin does not serve, an instance that does not exist)
// are reported as UnknownLabel, so they cannot grow the metrics.
func TestEveryCallIsObserved(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var (
		mu  sync.Mutex
		got = map[string]int{} // "trigger instance command" → calls
	)
	e.svc.SetCommandObserver(func(instance, command, trigger string, err error, took time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		got[trigger+" "+instance+" "+command]++
	})
	e.install(probe(t, "1.0.0"))
	e.install(chatbot(t))
	e.instance(service.InstanceInput{Name: "p", Plugin: "probe", Enabled: ptr(true), Settings: &store.Settings{ExternalHTTP: true}})
	e.instance(service.InstanceInput{Name: "lr", Plugin: "chatbot", Enabled: ptr(true), Settings: &store.Settings{LongRunning: true}})
	waitFor(t, "the execution runs", func() bool {
		st, err := e.svc.LongRunning.Status(ctx, "lr")
		return err == nil && st.Running
	})
	if _, err := e.svc.Instances.SetEnabled(ctx, "lr", false); err != nil {
		t.Fatal(err)
	}
	e.run("p", "echo", map[string]any{"msg": "hi"})
	_, _ = e.svc.Commands.Execute(ctx, "p", service.ExecuteRequest{Command: "nope"})
	_, _ = e.svc.Commands.Execute(ctx, "made-up", service.ExecuteRequest{Command: "echo"})
	_ = e.svc.Commands.Test(ctx, "made-up")
	if _, err := e.svc.Commands.Fetch(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Mirroring.RunFetch(ctx, "p"); err != nil {
		t.Fatal(err)
	}
	_, _ = e.svc.Mirroring.Call(ctx, "p", abi.CommandGetRemoteData, abi.GetRemoteDataArgs{RemoteIncidentID: "R1"})
	_, _ = e.svc.Mirroring.Call(ctx, "p", abi.CommandUpdateRemoteSystem, abi.UpdateRemoteSystemArgs{RemoteIncidentID: "R1"})
	if _, err := e.svc.LongRunning.HandleHTTP(ctx, "p", abi.HTTPRequest{Method: "GET", Path: "/"}, nil); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for want, n := range map[string]int{
		"api p echo": 1, "api unknown unknown": 2, "api unknown " + abi.CommandTestModule: 1, "api p fetch-incidents": 1,
		"fetch p fetch-incidents": 1, "mirror_in p get-remote-data": 1, "mirror_out p update-remote-system": 1,
		"http p " + abi.ExportHTTP: 1, "long_running lr " + abi.CommandLongRunningExecution: 1,
	} {
		if got[want] != n {
			keys := make([]string, 0, len(got))
			for k := range got {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			t.Errorf("%q observed %d times, want %d; observed %q", want, got[want], n, keys)
		}
	}
}
