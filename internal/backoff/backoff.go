// Package backoff computes the wait before a retry: exponential, capped,
// and jittered so that clients that failed together (every instance of a
// plugin whose remote went down, every incident queued for it) do not retry
// in lockstep.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Delay returns the wait before retry number attempt (1 for the first):
// base doubled attempt-1 times and capped at limit, then drawn uniformly
// from [d/2, d] ("equal jitter"). Never less than half the exponential
// wait, so it still grows; never more, so limit still bounds it.
func Delay(base, limit time.Duration, attempt int) time.Duration {
	d := base
	for i := 1; i < attempt && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	if d <= 0 {
		return 0
	}
	half := d / 2
	return half + rand.N(d-half+1)
}
