// Package wait lets tests wait for an event instead of sleeping a fixed
// time: a condition polled until it holds or a deadline passes. It imports
// only the standard library, so the tests of every package can use it.
package wait

import (
	"testing"
	"time"
)

// interval is how often For polls: short next to any timeout, long enough
// not to load a busy machine.
const interval = 5 * time.Millisecond

// For polls cond until it returns true, failing the test with what if it
// has not after timeout. The timeout is a bound for a stuck test, not a
// measurement: pick it generously.
func For(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		<-tick.C
	}
}
