package service

import (
	"testing"
	"time"

	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/internal/store"
)

// TestLimitsForPoolIdle: long-running instances keep their warm pool
// whatever limits.pool_idle says; others get it.
func TestLimitsForPoolIdle(t *testing.T) {
	c := &core{limits: host.Limits{PoolIdle: 5 * time.Minute}}
	tests := []struct {
		name     string
		settings store.Settings
		want     time.Duration
	}{
		{"command instance", store.Settings{}, 5 * time.Minute},
		{"long-running instance", store.Settings{LongRunning: true}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := c.limitsFor(tc.settings).PoolIdle; got != tc.want {
				t.Errorf("PoolIdle = %v, want %v", got, tc.want)
			}
		})
	}
}
