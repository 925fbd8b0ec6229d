package service

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestClaimTouchOnce: of many concurrent requests of one key whose stored
// LastUsed is stale, exactly one writes it; within the next minute none
// does, after it one does again.
func TestClaimTouchOnce(t *testing.T) {
	ks := &APIKeys{}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	stale := now.Add(-2 * time.Minute)
	var claims atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			if ks.claimTouch("k1", stale, now) {
				claims.Add(1)
			}
		})
	}
	wg.Wait()
	if claims.Load() != 1 {
		t.Fatalf("%d of 64 concurrent requests claimed the write, want 1", claims.Load())
	}
	tests := []struct {
		id     string
		stored time.Time
		at     time.Time
		want   bool
	}{
		{"k1", stale, now.Add(59 * time.Second), false}, // claimed a moment ago
		{"k1", stale, now.Add(time.Minute), true},       // a minute on
		{"k2", now, now.Add(30 * time.Second), false},   // stored time fresh
		{"k2", now, now.Add(time.Minute), true},
	}
	for i, tc := range tests {
		if got := ks.claimTouch(tc.id, tc.stored, tc.at); got != tc.want {
			t.Errorf("case %d: claimTouch(%s) = %v, want %v", i, tc.id, got, tc.want)
		}
	}
	if len(ks.touched) > 2 {
		t.Errorf("touched holds %d keys, want at most the 2 used", len(ks.touched))
	}
}
