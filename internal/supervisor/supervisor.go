// Package supervisor runs the long-running-execution command of connector
// instances, each in a dedicated sandbox, and keeps it running: an execution
// that returns, traps or exceeds its memory limit is restarted with bounded,
// jittered exponential back-off, each restart logged, counted and reported as the
// instance's module health. Stopping asks the guest to return (should_stop,
// sleep) and closes its sandbox at a short deadline if it does not.
package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/internal/backoff"
)

// Health records an instance's module health (XSOAR updateModuleHealth).
type Health interface {
	SetHealth(ctx context.Context, instanceID, message string, isError bool) error
}

// Factory creates the dedicated sandbox of one run of an execution. The
// supervisor owns and closes it. Its call timeout bounds one run, so it
// should be long.
type Factory func(ctx context.Context) (*host.Instance, error)

// Config tunes a Supervisor. Zero fields take the defaults below.
type Config struct {
	// MinBackoff is the wait before the first restart; it doubles per
	// consecutive failure up to MaxBackoff. Each wait is jittered down to as
	// little as half, so instances that fail together (their remote went
	// down) do not restart in lockstep.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// HealthyAfter is how long a run must last for the back-off to start
	// again from MinBackoff.
	HealthyAfter time.Duration
	// StopGrace is how long Stop lets a guest return by itself before its
	// sandbox is closed. It is kept well under a second.
	StopGrace time.Duration
	Logger    zerolog.Logger
	// Observe, when set, is told of each run of long-running-execution
	// once it returns: the instance name, the run's error and how long it
	// ran.
	Observe func(instance string, err error, ran time.Duration)
}

// Defaults of Config.
const (
	DefaultMinBackoff   = time.Second
	DefaultMaxBackoff   = time.Minute
	DefaultHealthyAfter = time.Minute
	DefaultStopGrace    = 400 * time.Millisecond
)

func (c Config) withDefaults() Config {
	if c.MinBackoff <= 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = max(DefaultMaxBackoff, c.MinBackoff)
	}
	if c.HealthyAfter <= 0 {
		c.HealthyAfter = DefaultHealthyAfter
	}
	if c.StopGrace <= 0 {
		c.StopGrace = DefaultStopGrace
	}
	return c
}

// Status describes one supervised execution.
type Status struct {
	Running   bool      `json:"running"`   // a run is in progress now
	Restarts  int       `json:"restarts"`  // restarts since Start
	LastError string    `json:"lastError"` // why the last run ended, "" if none ended
	Started   time.Time `json:"started"`   // start of the current or last run
}

// Supervisor runs supervised executions, at most one per instance id. Its
// methods are safe for concurrent use.
type Supervisor struct {
	cfg    Config
	health Health

	mu     sync.Mutex
	execs  map[string]*execution
	closed bool
}

// New returns a Supervisor reporting health to h.
func New(cfg Config, h Health) *Supervisor {
	return &Supervisor{cfg: cfg.withDefaults(), health: h, execs: map[string]*execution{}}
}

// execution is one supervised instance.
type execution struct {
	info    abi.InstanceInfo
	factory Factory
	log     zerolog.Logger

	stopOnce sync.Once
	stopping chan struct{} // closed by stop
	done     chan struct{} // closed when the loop has exited

	mu     sync.Mutex
	cur    *host.Instance
	cancel context.CancelFunc // cancels the current run
	status Status
}

// Start supervises the long-running execution of an instance, replacing (and
// first stopping) one already running for the same id. plugin
// (name@version) labels its log lines.
func (s *Supervisor) Start(ctx context.Context, info abi.InstanceInfo, plugin string, factory Factory) error {
	if info.ID == "" || factory == nil {
		return fmt.Errorf("supervisor: instance %q: id and factory are required", info.Name)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("supervisor: instance %q: %w", info.Name, errClosed)
	}
	old := s.execs[info.ID]
	e := &execution{
		info: info, factory: factory,
		log:      s.cfg.Logger.With().Str("instance", info.Name).Str("plugin", plugin).Str("command", abi.CommandLongRunningExecution).Logger(),
		stopping: make(chan struct{}), done: make(chan struct{}),
	}
	s.execs[info.ID] = e
	s.mu.Unlock()
	if old != nil {
		s.halt(ctx, old)
	}
	go s.loop(context.WithoutCancel(ctx), e)
	return nil
}

var errClosed = errors.New("supervisor closed")

// Stop stops the execution of instance id and waits until it is gone: the
// guest is asked to stop and its sandbox closed after StopGrace. It reports
// whether an execution was running.
func (s *Supervisor) Stop(ctx context.Context, id string) bool {
	s.mu.Lock()
	e := s.execs[id]
	delete(s.execs, id)
	s.mu.Unlock()
	if e == nil {
		return false
	}
	s.halt(ctx, e)
	return true
}

// Status returns the status of instance id's execution.
func (s *Supervisor) Status(id string) (Status, bool) {
	s.mu.Lock()
	e := s.execs[id]
	s.mu.Unlock()
	if e == nil {
		return Status{}, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.status, true
}

// Close stops every execution, in parallel, and refuses new ones.
func (s *Supervisor) Close(ctx context.Context) {
	s.mu.Lock()
	s.closed = true
	execs := s.execs
	s.execs = map[string]*execution{}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, e := range execs {
		wg.Go(func() { s.halt(ctx, e) })
	}
	wg.Wait()
}

// halt asks e's guest to stop, closes its sandbox after the grace period and
// waits for the loop to exit (bounded by ctx).
func (s *Supervisor) halt(ctx context.Context, e *execution) {
	e.stopOnce.Do(func() { close(e.stopping) })
	e.mu.Lock()
	if e.cur != nil {
		e.cur.Stop()
	}
	e.mu.Unlock()
	grace := time.NewTimer(s.cfg.StopGrace)
	defer grace.Stop()
	select {
	case <-e.done:
		return
	case <-grace.C:
	case <-ctx.Done():
	}
	// The guest ignored the stop request: cancelling the run's context makes
	// wazero close the module at its next function call or loop iteration.
	e.mu.Lock()
	if e.cancel != nil {
		e.cancel()
	}
	e.mu.Unlock()
	e.log.Warn().Dur("grace_ms", s.cfg.StopGrace).Msg("long-running execution ignored the stop request; sandbox closed")
	select {
	case <-e.done:
	case <-ctx.Done():
	}
}

// loop runs e until it is stopped, restarting it with back-off.
func (s *Supervisor) loop(ctx context.Context, e *execution) {
	defer close(e.done)
	failures := 0 // consecutive
	for {
		started := time.Now()
		err := s.runOnce(ctx, e, started)
		if isStopping(e) {
			e.mu.Lock()
			e.status.Running = false
			e.mu.Unlock()
			e.log.Info().Msg("long-running execution stopped")
			return
		}
		failures = s.cfg.consecutive(failures, time.Since(started))
		wait := backoff.Delay(s.cfg.MinBackoff, s.cfg.MaxBackoff, failures)
		if err == nil {
			err = errors.New("long-running-execution returned; it must run until asked to stop")
		}
		e.mu.Lock()
		e.status.Running = false
		e.status.Restarts++
		e.status.LastError = err.Error()
		restarts := e.status.Restarts
		e.mu.Unlock()
		msg := fmt.Sprintf("long-running execution failed, restart %d in %s: %v", restarts, wait.Round(time.Millisecond), err)
		e.log.Error().Str("kind", string(abi.KindOf(err))).Int("restarts", restarts).Dur("backoff_ms", wait).Err(err).
			Msg("long-running execution ended; restarting")
		if herr := s.health.SetHealth(ctx, e.info.ID, msg, true); herr != nil {
			e.log.Warn().Err(herr).Msg("could not record module health")
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-e.stopping:
			t.Stop()
			e.log.Info().Msg("long-running execution stopped")
			return
		}
	}
}

// consecutive counts a failure after a run that lasted ran, given the
// failures before it: a run that lasted HealthyAfter starts the count (and
// so the back-off) again.
func (c Config) consecutive(failures int, ran time.Duration) int {
	if ran >= c.HealthyAfter {
		return 1
	}
	return failures + 1
}

// runOnce creates a fresh sandbox and runs long-running-execution in it
// until it returns, fails or is stopped.
func (s *Supervisor) runOnce(ctx context.Context, e *execution, started time.Time) error {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	inst, err := e.factory(runCtx)
	if err != nil {
		return fmt.Errorf("instance %q: create sandbox: %w", e.info.Name, err)
	}
	e.mu.Lock()
	e.cur, e.cancel = inst, cancel
	e.status.Running, e.status.Started = true, started
	stopping := isStopping(e)
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		e.cur, e.cancel = nil, nil
		e.mu.Unlock()
		// The run has returned, so nothing is in flight: Close is quick.
		_ = inst.Close(context.WithoutCancel(ctx))
	}()
	if stopping {
		return nil
	}
	e.log.Info().Msg("long-running execution started")
	start := time.Now()
	_, err = inst.Execute(runCtx, abi.CommandLongRunningExecution, json.RawMessage(`{}`))
	if s.cfg.Observe != nil {
		s.cfg.Observe(e.info.Name, err, time.Since(start))
	}
	return err
}

func isStopping(e *execution) bool {
	select {
	case <-e.stopping:
		return true
	default:
		return false
	}
}
