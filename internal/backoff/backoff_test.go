package backoff

import (
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	const base, limit = time.Second, time.Minute
	tests := []struct {
		attempt int
		full    time.Duration // the wait before jitter
	}{
		{1, time.Second},
		{2, 2 * time.Second},
		{4, 8 * time.Second},
		{6, 32 * time.Second},
		{7, time.Minute}, // 64 s, capped
		{1000, time.Minute},
	}
	for _, tt := range tests {
		seen := map[time.Duration]bool{}
		for range 200 {
			d := Delay(base, limit, tt.attempt)
			if d < tt.full/2 || d > tt.full {
				t.Fatalf("Delay(attempt %d) = %s, want within [%s, %s]", tt.attempt, d, tt.full/2, tt.full)
			}
			seen[d] = true
		}
		// Jittered: 200 draws from a range of ≥ 500 ms in nanoseconds are
		// all but certain to differ.
		if len(seen) < 100 {
			t.Errorf("Delay(attempt %d): only %d distinct waits in 200 draws, want jitter", tt.attempt, len(seen))
		}
	}
	if d := Delay(0, limit, 3); d != 0 {
		t.Errorf("Delay with a zero base = %s, want 0", d)
	}
}
