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
// out, a long-running execution, an HTTP request.
func TestEveryCallIsObserved(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	var (
		mu  sync.Mutex
		got = map[string]int{} // "trigger command" → calls
	)
	e.svc.SetCommandObserver(func(instance, command, trigger string, err error, took time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		got[trigger+" "+command]++
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
	for _, want := range []string{
		"api echo", "api nope", "api fetch-incidents", "fetch fetch-incidents", "mirror_in get-remote-data",
		"mirror_out update-remote-system", "http " + abi.ExportHTTP, "long_running " + abi.CommandLongRunningExecution,
	} {
		if got[want] != 1 {
			keys := make([]string, 0, len(got))
			for k := range got {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			t.Errorf("%q observed %d times, want 1; observed %q", want, got[want], keys)
		}
	}
}
