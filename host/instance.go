package host

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/connhost/connhost/abi"
)

// Instance is a connector instance of a plugin: a pool of warm module
// instances configured with the instance's parameters. Its methods are safe
// for concurrent use; a module instance serves one call at a time.
type Instance struct {
	rt     *Runtime
	p      *Plugin
	spec   InstanceSpec
	lim    Limits
	egress []egressRule
	// transport is the instance's own: its dialer checks addresses against
	// this instance's allow-list, so connections are not shared with
	// instances allowed other addresses.
	transport *http.Transport
	client    *http.Client
	log       zerolog.Logger
	logw      *logWindow // log budget per minute
	// configure is the ConfigureRequest JSON. It holds secrets in clear and
	// is never logged.
	configure []byte

	// tokens bounds the module instances in use or idle to PoolSize.
	tokens chan struct{}
	done   chan struct{} // closed by Close
	stop   chan struct{} // closed by Stop
	stopMu sync.Once

	stopped atomic.Bool

	mu       sync.Mutex
	idle     []*modInst // oldest first: release appends, acquire takes the newest
	closed   bool
	inflight sync.WaitGroup
	// reaper closes module instances idle for lim.PoolIdle; reapArmed
	// says it is due (both under mu).
	reaper    *time.Timer
	reapArmed bool

	busy, created, discarded, reaped atomic.Int64
}

// NewInstance creates a connector instance of p. Module instances are
// created on demand (or by Warm), each configured with spec.Params.
func (r *Runtime) NewInstance(_ context.Context, p *Plugin, spec InstanceSpec) (*Instance, error) {
	rules, outside, err := narrowEgress(p.Manifest, spec.Params, spec.Egress)
	if err != nil {
		return nil, abi.Errorf(abi.KindBadRequest, "instance %q plugin %q: %v", spec.Info.Name, p.Label(), err)
	}
	params := spec.Params
	if params == nil {
		params = map[string]any{}
	}
	lim := spec.Limits.withDefaults()
	conf, err := json.Marshal(abi.ConfigureRequest{
		ABIVersion: abi.Version, Instance: spec.Info, PluginVersion: p.Manifest.Version, Params: params,
		Limits: abi.Limits{
			MemoryBytes: lim.MemoryBytes, CallTimeoutMS: lim.CallTimeout.Milliseconds(), OutputBytes: lim.OutputBytes,
			LogBytes: lim.LogBytes, LogRecords: lim.LogRecords, StackBytes: int(r.cfg.StackBytes), HTTPBodyBytes: lim.HTTPBodyBytes,
		},
	})
	if err != nil {
		return nil, abi.Errorf(abi.KindBadRequest, "instance %q plugin %q: encode params: %v", spec.Info.Name, p.Label(), err)
	}
	log := r.cfg.Logger.With().Str("instance", spec.Info.Name).Str("plugin", p.Label()).Logger()
	for _, e := range outside {
		log.Warn().Str("egress", e).Msg("operator egress entry allows nothing: the plugin's manifest does not allow it")
	}
	tr := r.transport.Clone()
	tr.DialContext = (&egressDialer{dialer: r.dialer, resolver: r.cfg.Resolver, rules: rules, allowPrivate: r.cfg.AllowPrivateEgress}).DialContext
	i := &Instance{
		rt: r, p: p, spec: spec, lim: lim, egress: rules, transport: tr,
		client:    newHTTPClient(tr, rules),
		log:       log,
		logw:      newLogWindow(lim, log),
		configure: conf,
		tokens:    make(chan struct{}, lim.PoolSize),
		done:      make(chan struct{}),
		stop:      make(chan struct{}),
	}
	return i, nil
}

// Plugin returns the plugin i runs.
func (i *Instance) Plugin() *Plugin { return i.p }

// Stats counts i's module instances.
func (i *Instance) Stats() InstanceStats {
	i.mu.Lock()
	idle := len(i.idle)
	i.mu.Unlock()
	return InstanceStats{
		Idle: idle, Busy: int(i.busy.Load()),
		Created: int(i.created.Load()), Discarded: int(i.discarded.Load()), Reaped: int(i.reaped.Load()),
	}
}

// Stop asks in-flight and future calls to return: should_stop returns 1 and
// sleep returns 1 at once.
func (i *Instance) Stop() {
	i.stopMu.Do(func() {
		i.stopped.Store(true)
		close(i.stop)
	})
}

// Close stops accepting calls, calls Stop so cooperative long-running calls
// return, waits for in-flight calls (bounded by ctx) and closes the module
// instances. Calls still running when ctx ends close their module instance
// when they return.
func (i *Instance) Close(ctx context.Context) error {
	i.mu.Lock()
	if i.closed {
		i.mu.Unlock()
		return nil
	}
	i.closed = true
	close(i.done)
	i.mu.Unlock()
	i.Stop()

	waited := make(chan struct{})
	go func() {
		i.inflight.Wait()
		close(waited)
	}()
	var err error
	select {
	case <-waited:
	case <-ctx.Done():
		err = i.callErr("close", abi.Errorf(abi.KindTimeout, "in-flight calls still running: %v", ctx.Err()))
	}
	i.mu.Lock()
	idle := i.idle
	i.idle = nil
	if i.reaper != nil {
		i.reaper.Stop()
	}
	i.mu.Unlock()
	for _, mi := range idle {
		i.discard(ctx, mi)
	}
	i.transport.CloseIdleConnections()
	i.logw.close()
	return err
}

func (i *Instance) callErr(command string, e *abi.Error) *CallError {
	return &CallError{Instance: i.spec.Info.Name, Plugin: i.p.Label(), Command: command, Err: e}
}

// Execute runs one command on a warm module instance and returns the
// envelope's result. Errors are *CallError.
func (i *Instance) Execute(ctx context.Context, command string, args json.RawMessage) (json.RawMessage, error) {
	if command == "" {
		return nil, i.callErr(command, abi.Errorf(abi.KindBadRequest, "empty command name"))
	}
	if len(args) == 0 || string(args) == "null" {
		args = json.RawMessage("{}")
	}
	res, e := i.run(ctx, command, func(ctx context.Context, cs *callState) (json.RawMessage, *abi.Error, bool) {
		mi := cs.mi
		if cap(mi.callBuf) > maxReusedBuf {
			mi.callBuf = nil
		}
		mi.callBuf = append(append(mi.callBuf[:0], command...), args...)
		mi.staged = mi.callBuf
		res, e, discard := cs.invoke(ctx, cs.mi.fnCall, abi.ExportCall, uint64(len(command)), uint64(len(args)))
		if e == nil && cs.fetch && cs.lastRunStaged {
			res, e = withLastRun(res, cs.lastRun)
		}
		return res, e, discard
	})
	if e != nil {
		return nil, i.callErr(command, e)
	}
	return res, nil
}

// withLastRun puts the last run staged during fetch-incidents into the
// result, unless the guest's result carries one itself.
func withLastRun(res json.RawMessage, lastRun map[string]any) (json.RawMessage, *abi.Error) {
	obj := map[string]json.RawMessage{}
	if len(res) > 0 && string(res) != "null" {
		if err := json.Unmarshal(res, &obj); err != nil {
			return nil, abi.Errorf(abi.KindBadRequest, "fetch-incidents result is not an object: %v", err)
		}
	}
	if lr, ok := obj["last_run"]; ok && string(lr) != "null" {
		return res, nil
	}
	if _, ok := obj["incidents"]; !ok {
		obj["incidents"] = json.RawMessage("[]")
	}
	lr, err := json.Marshal(lastRun)
	if err != nil {
		return nil, abi.Errorf(abi.KindInternalError, "encode staged last run: %v", err)
	}
	obj["last_run"] = lr
	out, err := json.Marshal(obj)
	if err != nil {
		return nil, abi.Errorf(abi.KindInternalError, "encode fetch-incidents result: %v", err)
	}
	return out, nil
}

// HandleHTTP passes an HTTP request to the guest's connhost_http export
// (long-running HTTP integrations).
func (i *Instance) HandleHTTP(ctx context.Context, req abi.HTTPRequest) (abi.HTTPResponse, error) {
	const command = abi.ExportHTTP
	if !i.p.hasHTTP {
		return abi.HTTPResponse{}, i.callErr(command, abi.Errorf(abi.KindIncompatible, "plugin does not export %s", abi.ExportHTTP))
	}
	body, err := req.AppendJSON(nil, false)
	if err != nil {
		return abi.HTTPResponse{}, i.callErr(command, abi.Errorf(abi.KindBadRequest, "encode request: %v", err))
	}
	res, e := i.run(ctx, command, func(ctx context.Context, cs *callState) (json.RawMessage, *abi.Error, bool) {
		cs.mi.staged = body
		return cs.invoke(ctx, cs.mi.fnHTTP, abi.ExportHTTP, uint64(len(body)))
	})
	if e != nil {
		return abi.HTTPResponse{}, i.callErr(command, e)
	}
	var resp abi.HTTPResponse
	if err := resp.DecodeJSON(res); err != nil {
		return abi.HTTPResponse{}, i.callErr(command, abi.Errorf(abi.KindABIViolation, "%s result is not an HTTPResponse: %v", abi.ExportHTTP, err))
	}
	return resp, nil
}

// Warm pre-instantiates module instances until n (at most PoolSize) are
// idle or busy.
func (i *Instance) Warm(ctx context.Context, n int) error {
	i.mu.Lock()
	closed := i.closed
	i.mu.Unlock()
	if closed {
		return i.callErr("warm", abi.Errorf(abi.KindUnavailable, "instance closed"))
	}
	n = min(n, i.lim.PoolSize)
	for int(i.created.Load()-i.discarded.Load()) < n {
		select {
		case i.tokens <- struct{}{}:
		default:
			return nil // pool at capacity
		}
		cctx, cancel := context.WithTimeout(ctx, i.lim.CallTimeout)
		cs := i.newCall("warm")
		mi, e := i.newModule(cctx, cs)
		cs.finish()
		cancel()
		if e != nil {
			<-i.tokens
			return i.callErr("warm", e)
		}
		i.release(ctx, mi, false)
	}
	return nil
}

// maxReusedBuf bounds the staging buffer a module instance keeps between
// calls, so one large call does not pin memory.
const maxReusedBuf = 64 << 10

func (i *Instance) newCall(command string) *callState {
	return &callState{
		inst: i, lim: i.lim, command: command, log: i.log,
		fetch: command == abi.CommandFetchIncidents,
	}
}

// newModule instantiates and configures a module instance.
func (i *Instance) newModule(ctx context.Context, cs *callState) (*modInst, *abi.Error) {
	mi := i.p.takeSpare(i.lim.MemoryBytes)
	if mi != nil {
		cs.mi = mi
	} else {
		var e *abi.Error
		if mi, e = i.p.instantiate(ctx, cs); e != nil {
			return nil, e
		}
	}
	i.created.Add(1)
	mi.staged = i.configure
	_, e, _ := cs.invoke(ctx, mi.fnConfigure, abi.ExportConfigure, uint64(len(i.configure)))
	mi.staged = nil
	if e != nil {
		i.discard(ctx, mi)
		return nil, abi.Errorf(e.Kind, "configure: %s", e.Message)
	}
	return mi, nil
}

// acquire takes a pool slot and returns an idle module instance, or nil
// when the caller must create one.
func (i *Instance) acquire(ctx context.Context) (*modInst, *abi.Error) {
	select {
	case i.tokens <- struct{}{}:
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, abi.Errorf(abi.KindTimeout, "deadline exceeded waiting for a free module instance (pool size %d)", i.lim.PoolSize)
		}
		return nil, abi.Errorf(abi.KindCanceled, "canceled waiting for a free module instance")
	case <-i.done:
		return nil, abi.Errorf(abi.KindUnavailable, "instance closed")
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if n := len(i.idle); n > 0 {
		mi := i.idle[n-1]
		i.idle = i.idle[:n-1]
		return mi, nil
	}
	return nil, nil
}

// release returns a module instance to the pool, or closes it after a
// fault or once the Instance is closed, and frees its slot.
func (i *Instance) release(ctx context.Context, mi *modInst, discard bool) {
	if mi != nil {
		mi.staged = nil
		i.mu.Lock()
		if discard || i.closed {
			i.mu.Unlock()
			i.discard(ctx, mi)
		} else {
			mi.idleSince = time.Now()
			i.idle = append(i.idle, mi)
			i.armReaper(i.lim.PoolIdle)
			i.mu.Unlock()
		}
	}
	<-i.tokens
}

// armReaper makes sure the reaper runs within d, if pools idle out at all.
// A reaper already due is due sooner (it was armed for an older module
// instance) and is left alone. Called with mu held.
func (i *Instance) armReaper(d time.Duration) {
	if i.lim.PoolIdle <= 0 || i.closed || i.reapArmed {
		return
	}
	i.reapArmed = true
	if i.reaper == nil {
		i.reaper = time.AfterFunc(d, i.reap)
		return
	}
	i.reaper.Reset(d)
}

// reap closes the module instances idle for PoolIdle or longer and re-arms
// for the oldest one left. Calls keep taking the newest, so the oldest are
// the ones a quiet pool does not need.
func (i *Instance) reap() {
	now := time.Now()
	i.mu.Lock()
	n := 0
	for n < len(i.idle) && now.Sub(i.idle[n].idleSince) >= i.lim.PoolIdle {
		n++
	}
	old := append([]*modInst(nil), i.idle[:n]...)
	i.idle = append(i.idle[:0], i.idle[n:]...)
	clear(i.idle[len(i.idle):cap(i.idle)])
	i.reapArmed = false
	if len(i.idle) > 0 {
		i.armReaper(i.lim.PoolIdle - now.Sub(i.idle[0].idleSince))
	}
	i.mu.Unlock()
	for _, mi := range old {
		i.reaped.Add(1)
		i.discard(context.Background(), mi)
	}
	if n > 0 {
		i.log.Debug().Int("closed", n).Dur("idle_ms", i.lim.PoolIdle).Msg("idle module instances closed")
	}
}

func (i *Instance) discard(ctx context.Context, mi *modInst) {
	i.discarded.Add(1)
	// The call context may be done (timeout); closing must still happen.
	_ = mi.mod.Close(context.WithoutCancel(ctx))
}

// run serves one export call on a pooled module instance.
func (i *Instance) run(ctx context.Context, command string, call func(context.Context, *callState) (json.RawMessage, *abi.Error, bool)) (json.RawMessage, *abi.Error) {
	i.mu.Lock()
	if i.closed {
		i.mu.Unlock()
		return nil, abi.Errorf(abi.KindUnavailable, "instance closed")
	}
	i.inflight.Add(1)
	i.mu.Unlock()
	defer i.inflight.Done()

	ctx, cancel := context.WithTimeout(ctx, i.lim.CallTimeout)
	defer cancel()
	mi, e := i.acquire(ctx)
	if e != nil {
		return nil, e
	}
	i.busy.Add(1)
	defer i.busy.Add(-1)
	cs := i.newCall(command)
	defer cs.finish()
	if mi == nil {
		if mi, e = i.newModule(ctx, cs); e != nil {
			i.release(ctx, nil, true)
			return nil, e
		}
	}
	cs.mi = mi
	res, e, discard := call(ctx, cs)
	if discard {
		i.log.Warn().Str("command", command).Str("kind", string(e.Kind)).Str("error", e.Message).
			Msg("module instance discarded after fault")
	}
	i.release(ctx, mi, discard)
	return res, e
}
