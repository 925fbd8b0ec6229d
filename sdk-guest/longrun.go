package sdk

import (
	"context"
	"time"
)

// Helpers for Connector.LongRunningExecution. A long-running execution must
// not return while the instance is enabled: the host restarts one that does
// (with back-off) and reports it in the module health. It should instead wait
// with Host.Sleep, or these helpers built on it, which return as soon as the
// host asks the execution to stop.

// idleSleep is how long WaitForStop sleeps per host call; any length works,
// since a stop request interrupts the sleep at once.
const idleSleep = time.Hour

// WaitForStop blocks until the host asks the execution to stop or ctx is
// done: the body of a long-running execution whose work happens elsewhere
// (an HTTP handler, for example).
func (h *Host) WaitForStop(ctx context.Context) {
	for !h.ShouldStop() && ctx.Err() == nil {
		h.Sleep(ctx, idleSleep)
	}
}

// Ticker paces a long-running loop on the host's interruptible sleep. It
// does not drift: ticks are every interval from the first Next, and ticks
// missed by slow work are skipped, not bunched.
type Ticker struct {
	h        *Host
	interval time.Duration
	next     time.Time
}

// NewTicker returns a Ticker with the given interval (at least 1 ms).
func (h *Host) NewTicker(interval time.Duration) *Ticker {
	return &Ticker{h: h, interval: max(interval, time.Millisecond)}
}

// Next returns true at once the first time, then waits for the next tick and
// returns true; it returns false, without waiting further, when the host
// asks the execution to stop or ctx is done.
func (t *Ticker) Next(ctx context.Context) bool {
	if t.h.ShouldStop() || ctx.Err() != nil {
		return false
	}
	now := time.Now()
	if t.next.IsZero() {
		t.next = now.Add(t.interval)
		return true
	}
	for !t.next.After(now) {
		t.next = t.next.Add(t.interval)
	}
	if !t.h.Sleep(ctx, t.next.Sub(now)) {
		return false
	}
	t.next = t.next.Add(t.interval)
	return true
}

// Every runs fn once per interval until the host asks the execution to stop,
// then returns nil. An error from fn is reported as the module health (an
// error) and the loop goes on, as XSOAR long-running integrations catch
// everything; the first success after an error clears the health. Use it as
// the whole body of LongRunningExecution.
func (h *Host) Every(ctx context.Context, interval time.Duration, fn func(ctx context.Context, h *Host) error) error {
	t := h.NewTicker(interval)
	failing := false
	for t.Next(ctx) {
		if err := fn(ctx, h); err != nil {
			failing = true
			h.Errorf("long-running iteration failed: %v", err)
			_ = h.SetUnhealthy(ctx, err)
			continue
		}
		if failing {
			failing = false
			_ = h.SetHealthy(ctx)
		}
	}
	return nil
}

// SetHealthy clears the instance's module health (XSOAR
// updateModuleHealth("")).
func (h *Host) SetHealthy(ctx context.Context) error {
	return h.UpdateModuleHealth(ctx, "", false)
}

// SetUnhealthy reports err as the instance's module health, as an error.
// Never put secrets in err.
func (h *Host) SetUnhealthy(ctx context.Context, err error) error {
	return h.UpdateModuleHealth(ctx, err.Error(), true)
}
