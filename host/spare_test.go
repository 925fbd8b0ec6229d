package host

import (
	"context"
	"testing"
	"time"

	"github.com/connhost/connhost/abi"
)

// TestProbeSpare: the module instance Load probed serves the first
// instance with the same memory limit (no second instantiation); an
// instance with another limit does not get it; an untaken spare is closed
// after spareTTL.
func TestProbeSpare(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		limits Limits
		taken  bool
	}{
		{"same memory limit takes it", Limits{}, true},
		{"other memory limit does not", Limits{MemoryBytes: 64 << 20}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			p := e.load(t, "probe")
			if p.spare.mi == nil {
				t.Fatal("Load kept no spare")
			}
			spare := p.spare.mi
			inst, err := e.rt.NewInstance(ctx, p, InstanceSpec{Info: abi.InstanceInfo{ID: "id-p", Name: "p"},
				Services: NewMemServices(), Limits: tc.limits})
			if err != nil {
				t.Fatal(err)
			}
			defer inst.Close(ctx)
			if got := mustExec[map[string]int](t, inst, "echo", map[string]int{"n": 7}); got["n"] != 7 {
				t.Errorf("echo = %v", got)
			}
			inst.mu.Lock()
			used := len(inst.idle) == 1 && inst.idle[0] == spare
			inst.mu.Unlock()
			if used != tc.taken {
				t.Errorf("spare used = %v, want %v", used, tc.taken)
			}
			if left := p.takeSpare(p.spare.limit); (left != nil) == tc.taken {
				t.Errorf("spare left after the call: %v", left != nil)
			}
		})
	}
	t.Run("untaken spare is closed", func(t *testing.T) {
		old := spareTTL
		spareTTL = 50 * time.Millisecond
		defer func() { spareTTL = old }()
		e := newEnv(t)
		p := e.load(t, "noop")
		time.Sleep(200 * time.Millisecond)
		p.spare.mu.Lock()
		left := p.spare.mi
		p.spare.mu.Unlock()
		if left != nil {
			t.Error("spare kept past spareTTL")
		}
	})
}
