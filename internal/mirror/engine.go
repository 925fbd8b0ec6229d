// Package mirror is connhost's fetch scheduler and incident mirroring
// engine: it runs fetch-incidents on schedule, pulls remote changes into
// mirrored incidents (get-modified-remote-data, get-remote-data), and
// delivers local changes out through a durable outbox
// (update-remote-system), following XSOAR's mirroring contract.
package mirror

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/store"
)

// Target is an enabled connector instance and its plugin's manifest.
type Target struct {
	Instance store.Instance
	Manifest *abi.Manifest
}

// Instances is what the engine needs of the server: the enabled instances
// and a way to run commands on them. internal/service implements it.
type Instances interface {
	// Targets returns the enabled instances.
	Targets(ctx context.Context) []Target
	// Target returns the enabled instance called name.
	Target(ctx context.Context, name string) (Target, bool)
	// Call runs a command on an enabled instance. Errors carry an
	// *abi.Error in their chain (abi.KindOf).
	Call(ctx context.Context, instance, command string, args any) (json.RawMessage, error)
	// Fetch runs fetch-incidents on an instance and stores its incidents
	// and last run atomically.
	RunFetch(ctx context.Context, instance string) error
}

// Options configure an Engine. Zero values take the documented defaults.
type Options struct {
	Store     *store.Store
	Instances Instances
	Logger    zerolog.Logger
	// MirrorEnabled turns the incoming mirroring job on (XSOAR
	// sync.mirror.job.enable; the server's default is on).
	MirrorEnabled bool
	// MirrorInterval is the incoming job's period (XSOAR
	// sync.mirror.job.delay / delayAdvanced). Default 1 minute.
	MirrorInterval time.Duration
	// Concurrency bounds the get-remote-data calls in flight per instance.
	// Default 8.
	Concurrency int
	// OutboxPoll is how often the outbox is checked when nothing kicks it.
	// Default 1 s.
	OutboxPoll time.Duration
	// RetryBase and RetryMax bound the outbox's exponential back-off
	// (jittered down to half). Defaults 1 s and 5 min.
	RetryBase, RetryMax time.Duration
	// FetchTick is how often the fetch scheduler looks for due instances.
	// Default 1 s.
	FetchTick time.Duration
	// Metrics, when set, receives the engine's Prometheus metrics.
	Metrics prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Engine runs fetching and mirroring. Its methods are safe for concurrent
// use; Start runs the background loops, the Run*/Deliver* methods run one
// step now (for the API and tests).
type Engine struct {
	st   *store.Store
	ins  Instances
	log  zerolog.Logger
	opts Options
	now  func() time.Time
	m    *metrics

	kick chan struct{}
	push chan pushReq

	mu        sync.Mutex
	stats     map[string]*Stats // by instance name
	cycling   map[string]bool   // instances with an incoming cycle running
	fetching  map[string]bool
	lastFetch map[string]time.Time

	cancel context.CancelFunc
	wg     sync.WaitGroup

	full atomic.Bool // the store refuses writes for lack of space
}

type pushReq struct {
	instance, remoteID string
	done               chan error
}

// New returns an engine; call Start to run its loops.
func New(opts Options) *Engine {
	if opts.MirrorInterval <= 0 {
		opts.MirrorInterval = time.Minute
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 8
	}
	if opts.OutboxPoll <= 0 {
		opts.OutboxPoll = time.Second
	}
	if opts.RetryBase <= 0 {
		opts.RetryBase = time.Second
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = 5 * time.Minute
	}
	if opts.FetchTick <= 0 {
		opts.FetchTick = time.Second
	}
	e := &Engine{
		st: opts.Store, ins: opts.Instances, log: opts.Logger, opts: opts, now: opts.Now,
		kick: make(chan struct{}, 1), push: make(chan pushReq, 1024),
		stats: map[string]*Stats{}, cycling: map[string]bool{}, fetching: map[string]bool{},
		lastFetch: map[string]time.Time{},
		m:         newMetrics(opts.Metrics),
	}
	if e.now == nil {
		e.now = time.Now
	}
	return e
}

// Start runs the fetch scheduler, the incoming job (when enabled), the
// outbox worker and the push worker until Stop.
func (e *Engine) Start(ctx context.Context) {
	ctx, e.cancel = context.WithCancel(ctx)
	loops := []func(context.Context){e.fetchLoop, e.outboxLoop, e.pushLoop}
	if e.opts.MirrorEnabled {
		loops = append(loops, e.incomingLoop)
	}
	for _, loop := range loops {
		e.wg.Add(1)
		go func() { defer e.wg.Done(); loop(ctx) }()
	}
	e.log.Info().Bool("mirror_job", e.opts.MirrorEnabled).Dur("mirror_interval_ms", e.opts.MirrorInterval).Msg("mirroring engine started")
}

// Stop ends the loops and waits for them; work in progress finishes or is
// cut at ctx's deadline.
func (e *Engine) Stop(ctx context.Context) {
	if e.cancel == nil {
		return
	}
	e.cancel()
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// Kick wakes the outbox worker: a local change has something to send.
func (e *Engine) Kick() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// writable reports whether the store accepts writes. While it does not
// (the disk is full), the loops call no plugin: the results could not be
// stored, so a fetch would be lost work and an outgoing update would be
// sent again on every poll. It logs when that starts and ends, not on
// every tick.
func (e *Engine) writable() bool {
	err := e.st.Writable()
	switch was := e.full.Swap(err != nil); {
	case err != nil && !was:
		e.log.Error().Err(err).Msg("fetching and mirroring paused: the store is out of space")
	case err == nil && was:
		e.log.Info().Msg("fetching and mirroring resumed: the store has space again")
	}
	return err == nil
}

func (e *Engine) fetchLoop(ctx context.Context) {
	for sleep(ctx, e.opts.FetchTick) {
		if !e.writable() {
			continue
		}
		now := e.now()
		for _, t := range e.ins.Targets(ctx) {
			cfg := ConfigOf(t.Instance, t.Manifest)
			if !t.Manifest.IsFetch || !cfg.Fetch {
				continue
			}
			name := t.Instance.Name
			interval := cfg.FetchInterval
			e.mu.Lock()
			due := !e.fetching[name] && !now.Before(e.lastFetch[name].Add(interval))
			if due {
				e.fetching[name], e.lastFetch[name] = true, now
			}
			e.mu.Unlock()
			if !due {
				continue
			}
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				defer func() { e.mu.Lock(); e.fetching[name] = false; e.mu.Unlock() }()
				if err := e.ins.RunFetch(ctx, name); err != nil && ctx.Err() == nil {
					e.log.Warn().Err(err).Str("instance", name).Str("command", abi.CommandFetchIncidents).Msg("scheduled fetch failed; last run not advanced")
				}
			}()
		}
	}
}

func (e *Engine) incomingLoop(ctx context.Context) {
	for sleep(ctx, e.opts.MirrorInterval) {
		if !e.writable() {
			continue
		}
		for _, t := range e.ins.Targets(ctx) {
			if !mirrorsIn(t) {
				continue
			}
			if _, err := e.RunIncoming(ctx, t.Instance.Name); err != nil && ctx.Err() == nil && !errors.Is(err, ErrBusy) {
				e.log.Warn().Err(err).Str("instance", t.Instance.Name).Msg("incoming mirroring cycle failed")
			}
		}
	}
}

func (e *Engine) outboxLoop(ctx context.Context) {
	for {
		if e.writable() {
			if _, err := e.DeliverOutbox(ctx); err != nil && ctx.Err() == nil {
				e.log.Warn().Err(err).Msg("outbox delivery failed")
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-e.kick:
		case <-time.After(e.opts.OutboxPoll):
		}
	}
}

func mirrorsIn(t Target) bool {
	ok, _ := ConfigOf(t.Instance, t.Manifest).MirrorsIn(t.Manifest)
	return ok
}

// notMirroringIn is ErrNotMirroring for an instance that is not enabled or
// does not mirror in, saying what to change.
func (e *Engine) notMirroringIn(ctx context.Context, instance string) (Target, error) {
	t, ok := e.ins.Target(ctx, instance)
	if !ok {
		return t, fmt.Errorf("instance %q is not enabled: %w", instance, ErrNotMirroring)
	}
	if ok, why := ConfigOf(t.Instance, t.Manifest).MirrorsIn(t.Manifest); !ok {
		return t, fmt.Errorf("instance %q: %w: %s", instance, ErrNotMirroring, why)
	}
	return t, nil
}
