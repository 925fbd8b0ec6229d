package engines

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/rs/zerolog"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/internal/signing"
)

// EngineOptions configure a `connhost engine` process.
type EngineOptions struct {
	// URL is the server's NATS endpoint (nats:// or tls://).
	URL string
	// Name and Group are the engine's, as enrolled.
	Name, Group string
	// Seed is the engine's NKey seed from enrollment.
	Seed []byte
	// TLS, when set, is used to connect (server verification).
	TLS *tls.Config
	// Version is announced in heartbeats.
	Version string
	// Capacity bounds the commands the engine runs at once.
	Capacity int
	// Runtime runs the sandboxes, with the limits each instance's spec
	// carries from the server.
	Runtime *host.Runtime
	// Policy is the engine's own trust policy for plugin files.
	Policy *signing.Policy
	// Logger gets the engine's messages.
	Logger zerolog.Logger
	// LeaseTTL must equal the server's (DefaultLeaseTTL).
	LeaseTTL time.Duration
	// IdleTimeout closes an instance's sandbox pool unused for that long,
	// so instances moved to another group or deleted do not hold memory
	// (and their params) on the engine; default DefaultIdleTimeout.
	IdleTimeout time.Duration
}

// DefaultIdleTimeout is EngineOptions.IdleTimeout's default.
const DefaultIdleTimeout = 10 * time.Minute

// Engine is a connected engine.
type Engine struct {
	opts     EngineOptions
	log      zerolog.Logger
	nc       *nats.Conn
	js       jetstream.JetStream
	leases   jetstream.KeyValue
	slots    chan struct{}
	inflight atomic.Int64

	mu        sync.Mutex
	objs      jetstream.ObjectStore   // the plugin files (getObject)
	plugins   map[string]*host.Plugin // compiled, by SHA-256
	loading   map[string]*loadCall    // compilations under way, by SHA-256
	instances map[string]*runner      // by instance id
	lr        map[string]*lrRun       // long-running executions, by instance id
	specs     []Spec                  // the group's long-running instances

	stop chan struct{}
	done sync.WaitGroup
}

// runner is an instance's sandbox pool on the engine, for one spec.
type runner struct {
	name string // the instance's
	hash string
	inst *host.Instance
	used atomic.Int64 // unix nanoseconds of the last call
}

// ErrRefused is returned when the server does not accept the engine's
// credentials.
var ErrRefused = errors.New("the server refused the engine's credentials")

// Connect connects an engine to the server and starts serving its group.
func Connect(ctx context.Context, opts EngineOptions) (*Engine, error) {
	if err := errors.Join(ValidName("engine", opts.Name), ValidName("group", opts.Group)); err != nil {
		return nil, err
	}
	if opts.Capacity <= 0 {
		opts.Capacity = 16
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = DefaultLeaseTTL
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.Policy == nil {
		opts.Policy = signing.NewPolicy(nil, false)
	}
	kp, err := nkeys.FromSeed(opts.Seed)
	if err != nil {
		return nil, fmt.Errorf("engine %q: seed: %w", opts.Name, err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, err
	}
	e := &Engine{opts: opts, log: opts.Logger.With().Str("engine", opts.Name).Str("group", opts.Group).Logger(),
		slots: make(chan struct{}, opts.Capacity), plugins: map[string]*host.Plugin{}, loading: map[string]*loadCall{},
		instances: map[string]*runner{}, lr: map[string]*lrRun{}, stop: make(chan struct{})}
	no := []nats.Option{
		nats.Name("engine:" + opts.Name), nats.Nkey(pub, kp.Sign), nats.CustomInboxPrefix(inboxPrefix(opts.Name)),
		nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond), nats.Timeout(5 * time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { e.log.Warn().Err(err).Msg("disconnected from the server") }),
		nats.ReconnectHandler(func(*nats.Conn) { e.log.Info().Msg("reconnected to the server") }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			e.log.Warn().Err(err).Msg("NATS error")
		}),
	}
	if opts.TLS != nil {
		no = append(no, nats.Secure(opts.TLS))
	}
	nc, err := nats.Connect(opts.URL, no...)
	if err != nil {
		if errors.Is(err, nats.ErrAuthorization) {
			return nil, fmt.Errorf("engine %q at %s: %w", opts.Name, opts.URL, ErrRefused)
		}
		return nil, fmt.Errorf("engine %q: connecting to %s: %w", opts.Name, opts.URL, err)
	}
	e.nc = nc
	if err := e.open(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	e.log.Info().Str("url", opts.URL).Int("capacity", opts.Capacity).Msg("engine connected")
	return e, nil
}

// open binds the buckets and subscribes to the group's commands.
func (e *Engine) open(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var err error
	if e.js, err = jetstream.New(e.nc); err != nil {
		return err
	}
	if e.leases, err = e.js.KeyValue(ctx, BucketLeases); err != nil {
		return fmt.Errorf("engine %q: bucket %s: %w", e.opts.Name, BucketLeases, err)
	}
	if e.objs, err = e.js.ObjectStore(ctx, BucketPlugins); err != nil {
		return fmt.Errorf("engine %q: bucket %s: %w", e.opts.Name, BucketPlugins, err)
	}
	if _, err := e.nc.QueueSubscribe(execPrefix+e.opts.Group, queueName, e.onExec); err != nil {
		return err
	}
	if _, err := e.nc.Subscribe(httpPrefix+e.opts.Group+".*", e.onHTTP); err != nil {
		return err
	}
	if err := e.nc.FlushWithContext(ctx); err != nil {
		return err
	}
	if err := e.nc.LastError(); err != nil {
		return fmt.Errorf("engine %q: %w", e.opts.Name, err)
	}
	e.done.Add(3)
	go e.every(e.beat)
	go e.every(e.evict)
	go e.every(e.keepLeases)
	return nil
}

// Close stops the long-running executions (releasing their leases), then
// the sandboxes, and disconnects.
func (e *Engine) Close(ctx context.Context) error {
	select {
	case <-e.stop:
		return nil
	default:
	}
	close(e.stop)
	e.done.Wait()
	e.mu.Lock()
	lrs := e.lr
	e.lr = map[string]*lrRun{}
	e.mu.Unlock()
	for _, r := range lrs {
		r.end(ctx, e, true)
	}
	_ = e.nc.Drain()
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	for _, r := range e.instances {
		errs = append(errs, r.inst.Close(ctx))
	}
	for _, p := range e.plugins {
		errs = append(errs, p.Close(ctx))
	}
	return errors.Join(errs...)
}

// every runs fn now and then every heartbeatInterval until Close. Beats
// and leases run apart, so a heartbeat waiting on an unreachable server
// does not delay a lease's renewal or its deadline.
func (e *Engine) every(fn func()) {
	defer e.done.Done()
	t := time.NewTicker(heartbeatInterval)
	defer t.Stop()
	for {
		fn()
		select {
		case <-e.stop:
			return
		case <-t.C:
		}
	}
}

// evict closes the sandbox pools unused for IdleTimeout (no call has
// started on them for that long).
func (e *Engine) evict() {
	cutoff := time.Now().Add(-e.opts.IdleTimeout).UnixNano()
	e.mu.Lock()
	var idle []*runner
	for id, r := range e.instances {
		if r.used.Load() < cutoff {
			idle = append(idle, r)
			delete(e.instances, id)
		}
	}
	e.mu.Unlock()
	for _, r := range idle {
		e.log.Info().Str("instance", r.name).Str("plugin", r.inst.Plugin().Label()).Msg("idle instance closed on engine")
		_ = r.inst.Close(context.Background())
	}
}

// beat announces the engine and learns its group's long-running instances.
func (e *Engine) beat() {
	e.mu.Lock()
	b := Beat{Name: e.opts.Name, Group: e.opts.Group, Version: e.opts.Version, Capacity: e.opts.Capacity,
		InFlight: int(e.inflight.Load())}
	for _, r := range e.instances {
		b.Instances = append(b.Instances, r.name+" ("+r.inst.Plugin().Label()+")")
	}
	for id := range e.lr {
		b.LongRunning = append(b.LongRunning, id)
	}
	e.mu.Unlock()
	sort.Strings(b.Instances)
	sort.Strings(b.LongRunning)
	raw, _ := json.Marshal(b)
	msg, err := e.nc.Request(hostPrefix+e.opts.Group+"."+e.opts.Name+"."+opBeat, raw, heartbeatInterval)
	if err != nil {
		e.log.Debug().Err(err).Msg("heartbeat not answered")
		return
	}
	var rep reply
	if json.Unmarshal(msg.Data, &rep) != nil || rep.Error != nil {
		return
	}
	var br beatReply
	if json.Unmarshal(rep.Result, &br) == nil {
		e.mu.Lock()
		e.specs = br.LongRunning
		e.mu.Unlock()
	}
}

// onExec runs a command for the server.
func (e *Engine) onExec(m *nats.Msg) {
	e.inflight.Add(1)
	go func() {
		defer e.inflight.Add(-1)
		e.slots <- struct{}{}
		defer func() { <-e.slots }()
		var req execRequest
		rep := reply{Engine: e.opts.Name}
		if err := json.Unmarshal(m.Data, &req); err != nil {
			rep.Error = toWire(abi.Errorf(abi.KindBadRequest, "engine %q: request: %v", e.opts.Name, err))
		} else {
			rep.Result, rep.Error = e.execute(req)
		}
		raw, _ := json.Marshal(rep)
		_ = m.Respond(raw)
	}()
}

// execute runs one command on the instance's pool.
func (e *Engine) execute(req execRequest) (json.RawMessage, *wireError) {
	lim := req.Spec.Limits.CallTimeout
	if lim <= 0 {
		lim = host.DefaultCallTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), lim+2*time.Second)
	defer cancel()
	r, err := e.runnerFor(ctx, req.Spec)
	if err != nil {
		return nil, toWire(err)
	}
	res, err := r.inst.Execute(ctx, req.Command, req.Args)
	if err != nil {
		e.log.Debug().Err(err).Str("instance", req.Spec.Info.Name).Str("plugin", req.Spec.Plugin).Str("command", req.Command).Msg("command failed")
	}
	return res, toWire(err)
}

// onHTTP passes an HTTP request into a long-running HTTP instance this
// engine runs; others ignore it.
func (e *Engine) onHTTP(m *nats.Msg) {
	var req execRequest
	if json.Unmarshal(m.Data, &req) != nil || req.HTTP == nil {
		return
	}
	e.mu.Lock()
	_, mine := e.lr[req.Spec.Info.ID]
	e.mu.Unlock()
	if !mine {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		rep := reply{Engine: e.opts.Name}
		r, err := e.runnerFor(ctx, req.Spec)
		if err == nil {
			var resp abi.HTTPResponse
			if resp, err = r.inst.HandleHTTP(ctx, *req.HTTP); err == nil {
				rep.HTTP = &resp
			}
		}
		rep.Error = toWire(err)
		raw, _ := json.Marshal(rep)
		_ = m.Respond(raw)
	}()
}

// specHash identifies a spec's content: a changed plugin, params or
// limits make a new pool.
func specHash(s Spec) string {
	if s.Hash != "" {
		return s.Hash
	}
	return s.WithHash().Hash
}

// runnerFor returns the pool of a spec, creating it (and fetching and
// compiling its plugin) on first use. A pool of an older spec is closed
// once its calls finish.
func (e *Engine) runnerFor(ctx context.Context, s Spec) (*runner, error) {
	h := specHash(s)
	e.mu.Lock()
	r := e.instances[s.Info.ID]
	if r != nil && r.hash == h {
		// Marked used under the lock, so evict does not close it now.
		r.used.Store(time.Now().UnixNano())
		e.mu.Unlock()
		return r, nil
	}
	e.mu.Unlock()
	inst, err := e.newInstance(ctx, s, s.Limits, 0)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	if cur := e.instances[s.Info.ID]; cur != nil && cur.hash == h {
		e.mu.Unlock()
		_ = inst.Close(ctx)
		return cur, nil
	}
	old := e.instances[s.Info.ID]
	r = &runner{name: s.Info.Name, hash: h, inst: inst}
	r.used.Store(time.Now().UnixNano())
	e.instances[s.Info.ID] = r
	e.mu.Unlock()
	if old != nil {
		go func() { _ = old.inst.Close(context.Background()) }()
	}
	e.log.Info().Str("instance", s.Info.Name).Str("plugin", s.Plugin).Msg("instance ready on engine")
	return r, nil
}

// newInstance builds a sandbox pool of a spec under lim; token is the
// lease's fencing token for a long-running execution.
func (e *Engine) newInstance(ctx context.Context, s Spec, lim host.Limits, token uint64) (*host.Instance, error) {
	p, err := e.plugin(ctx, s)
	if err != nil {
		return nil, err
	}
	inst, err := e.opts.Runtime.NewInstance(ctx, p, host.InstanceSpec{
		Info: s.Info, Params: s.Params, Egress: s.Egress, Limits: lim,
		Services: &remoteServices{e: e, token: token},
	})
	if err != nil {
		return nil, fmt.Errorf("engine %q instance %q plugin %s: %w", e.opts.Name, s.Info.Name, s.Plugin, err)
	}
	return inst, nil
}

// loadCall is one fetch and compilation of a plugin that concurrent first
// calls wait for, instead of each compiling it.
type loadCall struct {
	done chan struct{}
	p    *host.Plugin
	err  error
}

// plugin returns the compiled plugin of a spec: fetched from the object
// store by hash, checked against it and the engine's trust policy, and
// compiled once however many calls need it at the same time.
func (e *Engine) plugin(ctx context.Context, s Spec) (*host.Plugin, error) {
	e.mu.Lock()
	if p := e.plugins[s.SHA256]; p != nil {
		e.mu.Unlock()
		return p, nil
	}
	lc := e.loading[s.SHA256]
	if lc == nil {
		lc = &loadCall{done: make(chan struct{})}
		e.loading[s.SHA256] = lc
		e.mu.Unlock()
		lc.p, lc.err = e.load(context.WithoutCancel(ctx), s)
		e.mu.Lock()
		if lc.err == nil {
			e.plugins[s.SHA256] = lc.p
		}
		delete(e.loading, s.SHA256)
		e.mu.Unlock()
		close(lc.done)
		return lc.p, lc.err
	}
	e.mu.Unlock()
	select {
	case <-lc.done:
		return lc.p, lc.err
	case <-ctx.Done():
		return nil, abi.Errorf(abi.KindTimeout, "engine %q: plugin %s still compiling: %v", e.opts.Name, s.Plugin, ctx.Err())
	}
}

// objectRetry bounds how long getObject retries a read that failed
// transiently.
const objectRetry = 5 * time.Second

// getObject reads an object of the plugin bucket. On a replicated cluster
// a read right after the hub published the object can fail for a moment:
// its chunks are read through a consumer that a lagging replica may serve,
// or a second server publishing the same file replaces it while it is read
// ("digests do not match"), and a plugin file the hub named may not be
// visible yet (mustExist: "not found" is then transient too). Such reads
// are retried with backoff for up to objectRetry; what is read is checked
// against its SHA-256 by the caller either way.
func (e *Engine) getObject(ctx context.Context, name string, mustExist bool) ([]byte, error) {
	delay := 50 * time.Millisecond
	deadline := time.Now().Add(objectRetry)
	for {
		b, err := e.readObject(ctx, name)
		transient := errors.Is(err, jetstream.ErrDigestMismatch) || (mustExist && errors.Is(err, jetstream.ErrObjectNotFound))
		if !transient || time.Now().Add(delay).After(deadline) {
			return b, err
		}
		e.log.Debug().Err(err).Str("object", name).Dur("retry_in_ms", delay).Msg("plugin bucket read failed; retrying")
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(delay):
		}
		delay = min(2*delay, time.Second)
	}
}

// readObject reads an object once. A handle keeps the bucket's settings
// it was bound with: once the hub has turned direct gets off
// (Hub.leaderReads) after this engine bound it, nothing answers the
// handle's reads, so the bucket is bound again and the read retried.
func (e *Engine) readObject(ctx context.Context, name string) ([]byte, error) {
	e.mu.Lock()
	objs := e.objs
	e.mu.Unlock()
	b, err := objs.GetBytes(ctx, name)
	if !errors.Is(err, nats.ErrNoResponders) {
		return b, err
	}
	fresh, berr := e.js.ObjectStore(ctx, BucketPlugins)
	if berr != nil {
		return nil, errors.Join(err, berr)
	}
	e.mu.Lock()
	e.objs = fresh
	e.mu.Unlock()
	return fresh.GetBytes(ctx, name)
}

// load fetches, checks and compiles a plugin file. The file must pass the
// engine's own trust policy with the signature published beside it (none
// published: unsigned), so an engine trusts only the keys its operator
// gave it, whatever the server admitted; a refusal is KindDenied naming
// the plugin, the engine and the policy's reason.
func (e *Engine) load(ctx context.Context, s Spec) (*host.Plugin, error) {
	blob, err := e.getObject(ctx, s.SHA256, true)
	if err != nil {
		return nil, abi.Errorf(abi.KindUnavailable, "engine %q: plugin %s (sha256 %s): %v", e.opts.Name, s.Plugin, s.SHA256, err)
	}
	if got := sha256Hex(blob); got != s.SHA256 {
		return nil, abi.Errorf(abi.KindDenied, "engine %q: plugin %s: file hash %s is not %s", e.opts.Name, s.Plugin, got, s.SHA256)
	}
	sig, err := e.getObject(ctx, SigObject(s.SHA256), false)
	switch {
	case errors.Is(err, jetstream.ErrObjectNotFound):
		sig = nil
	case err != nil:
		return nil, abi.Errorf(abi.KindUnavailable, "engine %q: plugin %s (sha256 %s): signature: %v", e.opts.Name, s.Plugin, s.SHA256, err)
	}
	v, err := e.opts.Policy.Verify(blob, sig)
	if err != nil {
		e.log.Warn().Err(err).Str("plugin", s.Plugin).Str("instance", s.Info.Name).Msg("plugin refused by the engine's trust policy")
		return nil, abi.Errorf(abi.KindDenied, "engine %q refused plugin %s (sha256 %s) of instance %q by its trust policy: %v",
			e.opts.Name, s.Plugin, s.SHA256, s.Info.Name, err)
	}
	if v.Warning != "" {
		e.log.Warn().Str("plugin", s.Plugin).Msg(v.Warning)
	}
	p, err := e.opts.Runtime.Load(ctx, blob)
	if err != nil {
		return nil, fmt.Errorf("engine %q: plugin %s: %w", e.opts.Name, s.Plugin, err)
	}
	return p, nil
}
