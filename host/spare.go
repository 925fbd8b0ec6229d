package host

import (
	"context"
	"sync"
	"time"
)

// The module instance Load instantiates to probe a plugin (run
// _initialize, check connhost_abi_version) is kept for a short while as a
// spare: the first Instance that needs a module instance under the same
// memory limit takes it rather than instantiating another, which saves a Go
// guest's start-up (~16 ms of CPU) between installing a version and its
// first call. A spare has run nothing but _initialize and the version
// export, as a fresh module instance has; it was never configured.

// spareTTL is how long an untaken spare is kept before it is closed.
var spareTTL = 10 * time.Second

// spareSlot holds a plugin's spare module instance.
type spareSlot struct {
	mu    sync.Mutex
	mi    *modInst
	limit uint64 // the memory limit it was instantiated under
	timer *time.Timer
}

// keepSpare keeps mi as p's spare until it is taken, spareTTL passes or
// p closes.
func (p *Plugin) keepSpare(mi *modInst, limit uint64) {
	s := &p.spare
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mi, s.limit = mi, limit
	s.timer = time.AfterFunc(spareTTL, p.dropSpare)
}

// takeSpare returns p's spare if it was instantiated under memory limit
// limit, or nil.
func (p *Plugin) takeSpare(limit uint64) *modInst {
	s := &p.spare
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mi == nil || s.limit != limit {
		return nil
	}
	mi := s.mi
	s.mi = nil
	s.timer.Stop()
	return mi
}

// dropSpare closes p's spare, if any.
func (p *Plugin) dropSpare() {
	s := &p.spare
	s.mu.Lock()
	mi := s.mi
	s.mi = nil
	if s.timer != nil {
		s.timer.Stop()
	}
	s.mu.Unlock()
	if mi != nil {
		_ = mi.mod.Close(context.Background())
	}
}
