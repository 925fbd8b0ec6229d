package service_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/connhost/connhost/internal/service"
	"github.com/connhost/connhost/internal/testenv/wait"
)

// TestStartInParallel: at start-up the enabled instances start several at
// a time, never more than StartConcurrency, and in the background the
// service is not ready, says how many are left, and a command for an
// instance still starting waits for it rather than failing.
func TestStartInParallel(t *testing.T) {
	const n = 12
	bound := service.StartConcurrency()
	if bound < 2 {
		t.Fatalf("StartConcurrency() = %d: starts would not overlap", bound)
	}
	var (
		mu        sync.Mutex
		now, peak int
		gate      = make(chan struct{})
		gateOpen  bool
	)
	hook := func(string) func() {
		mu.Lock()
		now++
		peak = max(peak, now)
		mu.Unlock()
		<-gate // held until the test has looked at the starting service
		time.Sleep(20 * time.Millisecond)
		return func() {
			mu.Lock()
			now--
			mu.Unlock()
		}
	}
	e := newEnv(t)
	e.install(echo(t, "1.0.0"))
	for i := range n {
		e.instance(service.InstanceInput{Name: fmt.Sprint("echo", i), Plugin: "goecho", Enabled: ptr(true)})
	}
	if err := e.svc.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.opts.StartInBackground = true
	service.SetStartHook(&e.opts, hook)
	defer func() {
		if !gateOpen {
			close(gate)
		}
	}()
	e.open()
	wait.For(t, 20*time.Second, "the first starts to begin", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return now == bound
	})
	if e.svc.Ready() {
		t.Error("ready while instances are starting")
	}
	if left, total := e.svc.Starting(); left != n || total != n {
		t.Errorf("Starting() = %d, %d; want %d, %d", left, total, n, n)
	}
	// A command for the last instance waits for the starts.
	res := make(chan error, 1)
	go func() {
		_, err := e.svc.Commands.Execute(context.Background(), fmt.Sprint("echo", n-1), service.ExecuteRequest{Command: "echo"})
		res <- err
	}()
	time.Sleep(50 * time.Millisecond) // let it reach the wait
	close(gate)
	gateOpen = true
	if err := <-res; err != nil {
		t.Errorf("echo on an instance that was starting: %v", err)
	}
	wait.For(t, 20*time.Second, "the service to be ready", e.svc.Ready)
	if left, _ := e.svc.Starting(); left != 0 {
		t.Errorf("%d instances left starting once ready", left)
	}
	if peak != bound {
		t.Errorf("%d instances started at once, want %d (StartConcurrency)", peak, bound)
	}
	for i := range n {
		if got := e.run(fmt.Sprint("echo", i), "echo", nil); got != "{}" {
			t.Errorf("echo%d = %s", i, got)
		}
	}
}
