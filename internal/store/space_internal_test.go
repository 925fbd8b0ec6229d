package store

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
)

// TestNoSpaceMapping: badger's own ENOSPC and EDQUOT failures, wrapped or
// only in the message, become ErrNoSpace naming the store; others pass.
func TestNoSpaceMapping(t *testing.T) {
	s := &Store{dir: "/data/db"}
	other := errors.New("boom")
	tests := []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("while syncing: %w", syscall.ENOSPC), true},
		{fmt.Errorf("write vlog: %w", syscall.EDQUOT), true},
		{errors.New("unable to write to value log: write /data/db/000001.vlog: no space left on device"), true},
		{other, false},
		{nil, false},
	}
	for _, tt := range tests {
		got := s.noSpace(tt.err)
		if errors.Is(got, ErrNoSpace) != tt.want {
			t.Errorf("noSpace(%v) = %v, want ErrNoSpace: %v", tt.err, got, tt.want)
		}
		if tt.want && (!errors.Is(got, tt.err) || !strings.Contains(got.Error(), "/data/db")) {
			t.Errorf("noSpace(%v) = %v: want the cause kept and the store named", tt.err, got)
		}
		if !tt.want && got != tt.err {
			t.Errorf("noSpace(%v) = %v, want it unchanged", tt.err, got)
		}
	}
}
