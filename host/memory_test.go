package host

import (
	"context"
	"testing"
	"time"

	"github.com/connhost/connhost/abi"
)

// TestPluginClosedDuringCall: closing a plugin (as hot swap and shutdown
// do) while a guest writes its memory must neither free that memory under
// it nor leave the call running past its deadline.
func TestPluginClosedDuringCall(t *testing.T) {
	e := newEnv(t)
	const deadline = 500 * time.Millisecond
	inst := e.instance(t, "memspin", NewMemServices(), InstanceSpec{Limits: Limits{CallTimeout: deadline}})
	ctx := context.Background()
	if err := inst.Warm(ctx, 1); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := inst.Execute(ctx, "spin", nil)
		done <- err
	}()
	for inst.Stats().Busy == 0 {
		time.Sleep(time.Millisecond)
	}
	if err := inst.Plugin().Close(ctx); err != nil {
		t.Fatal(err)
	}
	err := <-done
	if took := time.Since(start); took > deadline+100*time.Millisecond {
		t.Errorf("call ended %v after it started, deadline %v", took, deadline)
	}
	if k := abi.KindOf(err); k != abi.KindTimeout {
		t.Fatalf("error %v, want timeout", err)
	}
}
