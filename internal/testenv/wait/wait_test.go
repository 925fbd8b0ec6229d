package wait

import (
	"sync/atomic"
	"testing"
	"time"
)

// fakeT records Fatalf instead of stopping the goroutine for good.
type fakeT struct {
	testing.TB
	failed atomic.Bool
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(string, ...any) {
	f.failed.Store(true)
	panic(f)
}

func TestFor(t *testing.T) {
	tests := []struct {
		name     string
		holdsAt  int // the poll at which cond first holds; 0: never
		wantFail bool
	}{
		{"holds at once", 1, false},
		{"holds later", 5, false},
		{"never holds", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ft := &fakeT{TB: t}
			polls := 0
			func() {
				defer func() {
					if r := recover(); r != nil && r != ft {
						panic(r)
					}
				}()
				For(ft, 200*time.Millisecond, "the condition", func() bool {
					polls++
					return tt.holdsAt != 0 && polls >= tt.holdsAt
				})
			}()
			if ft.failed.Load() != tt.wantFail {
				t.Fatalf("failed = %v, want %v", ft.failed.Load(), tt.wantFail)
			}
			if !tt.wantFail && polls != tt.holdsAt {
				t.Errorf("polled %d times, want %d (stop as soon as it holds)", polls, tt.holdsAt)
			}
		})
	}
}
