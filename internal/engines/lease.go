package engines

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/connhost/connhost/abi"
)

// longRunCallTimeout is the call timeout of a long-running execution: it
// is meant to run until stopped.
const longRunCallTimeout = 100 * 365 * 24 * time.Hour

// lrRestartDelay is the pause before a returned or failed execution runs
// again while the lease is held.
const lrRestartDelay = time.Second

// lrRun is a long-running execution this engine runs under a lease.
type lrRun struct {
	spec    Spec
	hash    string
	rev     uint64    // the lease entry's last revision
	token   uint64    // fencing token: the revision that created the lease
	renewed time.Time // when the last successful renewal was sent
	cancel  context.CancelFunc
	stopped chan struct{}
}

// keepLeases renews held leases, stops executions whose lease is lost or
// about to expire unrenewed, releases those no longer wanted, and tries
// to take the free ones.
func (e *Engine) keepLeases() {
	ctx := context.Background()
	e.mu.Lock()
	specs := e.specs
	held := make(map[string]*lrRun, len(e.lr))
	for id, r := range e.lr {
		held[id] = r
	}
	e.mu.Unlock()
	want := map[string]Spec{}
	for _, s := range specs {
		want[s.Info.ID] = s
	}
	for id, r := range held {
		select {
		case <-r.stopped:
			e.drop(ctx, id, r, true, "execution stopped: its lease went unrenewed too long")
			continue
		default:
		}
		s, ok := want[id]
		if !ok || specHash(s) != r.hash {
			e.drop(ctx, id, r, true, "instance no longer runs long on this group, or changed")
			continue
		}
		if err := e.renew(ctx, r); err != nil {
			e.drop(ctx, id, r, false, "lease lost: "+err.Error())
			continue
		}
	}
	for id, s := range want {
		e.mu.Lock()
		_, have := e.lr[id]
		e.mu.Unlock()
		if !have {
			e.acquire(ctx, s)
		}
	}
}

// renew updates a held lease, fenced by its last revision.
func (e *Engine) renew(ctx context.Context, r *lrRun) error {
	ctx, cancel := context.WithTimeout(ctx, heartbeatInterval)
	defer cancel()
	sent := time.Now()
	raw, _ := json.Marshal(lease{Engine: e.opts.Name, Token: r.token})
	rev, err := e.leases.Update(ctx, leaseKey(e.opts.Group, r.spec.Info.ID), raw, r.rev)
	if err != nil {
		return err
	}
	e.mu.Lock()
	r.rev, r.renewed = rev, sent
	e.mu.Unlock()
	return nil
}

// acquire tries to take a free lease and, on success, starts the
// execution.
func (e *Engine) acquire(ctx context.Context, s Spec) {
	ctx, cancel := context.WithTimeout(ctx, heartbeatInterval)
	defer cancel()
	key := leaseKey(e.opts.Group, s.Info.ID)
	sent := time.Now()
	rev, err := e.leases.Create(ctx, key, []byte(`{}`))
	if err != nil {
		return // held by another engine (or the server is not reachable)
	}
	raw, _ := json.Marshal(lease{Engine: e.opts.Name, Token: rev})
	rev2, err := e.leases.Update(ctx, key, raw, rev)
	if err != nil {
		return
	}
	runCtx, cancel := context.WithCancel(context.Background())
	r := &lrRun{spec: s, hash: specHash(s), rev: rev2, token: rev, renewed: sent, cancel: cancel, stopped: make(chan struct{})}
	e.mu.Lock()
	e.lr[s.Info.ID] = r
	e.mu.Unlock()
	e.log.Info().Str("instance", s.Info.Name).Str("plugin", s.Plugin).Uint64("token", rev).Msg("long-running lease taken; execution starting")
	go e.watchdog(runCtx, r)
	go e.runLong(runCtx, r)
}

// leaseMargin is how long before the lease could expire on the server a
// holder that has not renewed stops its execution.
const leaseMargin = 2 * heartbeatInterval

// watchdog stops an execution whose lease went unrenewed for LeaseTTL -
// leaseMargin: a cut-off engine cannot renew, and it must stop before the
// lease expires on the server and another engine takes it, so that no two
// engines ever run the instance at once. The renewal time is taken before
// the renewal is sent, so the server's expiry is never earlier than it.
func (e *Engine) watchdog(ctx context.Context, r *lrRun) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		e.mu.Lock()
		late := time.Since(r.renewed) > e.opts.LeaseTTL-leaseMargin
		e.mu.Unlock()
		if late {
			e.log.Warn().Str("instance", r.spec.Info.Name).Str("plugin", r.spec.Plugin).Msg("long-running lease not renewed in time; execution stopping")
			r.cancel()
			return
		}
	}
}

// drop stops an execution and forgets it; release also deletes the lease
// so another engine may take it at once.
func (e *Engine) drop(ctx context.Context, id string, r *lrRun, release bool, why string) {
	e.mu.Lock()
	if e.lr[id] == r {
		delete(e.lr, id)
	}
	e.mu.Unlock()
	e.log.Warn().Str("instance", r.spec.Info.Name).Str("plugin", r.spec.Plugin).Str("reason", why).Msg("long-running execution stopping")
	r.end(ctx, e, release)
}

// end cancels the execution, waits for it and optionally releases the
// lease.
func (r *lrRun) end(ctx context.Context, e *Engine, release bool) {
	r.cancel()
	select {
	case <-r.stopped:
	case <-time.After(5 * time.Second):
	}
	if release {
		ctx, cancel := context.WithTimeout(ctx, heartbeatInterval)
		defer cancel()
		_ = e.leases.Delete(ctx, leaseKey(e.opts.Group, r.spec.Info.ID), jetstream.LastRevision(r.rev))
	}
}

// runLong runs long-running-execution in a sandbox of its own until ctx
// ends, restarting it after lrRestartDelay when it returns or fails.
func (e *Engine) runLong(ctx context.Context, r *lrRun) {
	defer close(r.stopped)
	lim := r.spec.Limits
	lim.CallTimeout, lim.PoolSize = longRunCallTimeout, 1
	for ctx.Err() == nil {
		inst, err := e.newInstance(ctx, r.spec, lim, r.token)
		if err == nil {
			stop := context.AfterFunc(ctx, inst.Stop)
			_, err = inst.Execute(ctx, abi.CommandLongRunningExecution, json.RawMessage(`{}`))
			stop()
			_ = inst.Close(context.Background())
		}
		if err != nil && ctx.Err() == nil {
			e.log.Warn().Err(err).Str("instance", r.spec.Info.Name).Str("plugin", r.spec.Plugin).Msg("long-running execution ended; restarting")
		}
		select {
		case <-ctx.Done():
		case <-time.After(lrRestartDelay):
		}
	}
}
