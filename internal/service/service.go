// Package service is the connhost server's application layer: it owns the
// store, the plugin runtime and the running connector instances, and is the
// only way the HTTP API and the CLI change state (API → service → store).
//
// It is split by concern: Plugins (versions, hot swap, the watched
// directory), Instances (configuration and secrets), Commands (running
// commands on instances), Incidents and Users (the incident records),
// APIKeys, Mirroring (the mirroring engine's view of instances and its
// operations) and LongRunning (supervised executions, HTTP into plugins,
// chat delivery). New wires them over one shared state; they return the
// sentinel errors of this package, never the store's.
package service

import (
	"context"
	"errors"
	"time"

	"github.com/rs/zerolog"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/internal/secrets"
	"github.com/connhost/connhost/internal/signing"
	"github.com/connhost/connhost/internal/store"
	"github.com/connhost/connhost/internal/supervisor"
)

// Options configure a Service.
type Options struct {
	Store   *store.Store
	Runtime *host.Runtime
	Secrets *secrets.Box
	Logger  zerolog.Logger
	// Limits are the sandbox limits of instances that do not set their own.
	Limits host.Limits
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// LongRunning configures long-running executions, HTTP into plugins
	// and chat delivery.
	LongRunning LongRunningOptions
	// Idle skips starting the enabled instances, for CLI maintenance
	// commands (API keys, plugin install) that run with the server stopped.
	Idle bool
	// StartInBackground makes New return once the enabled instances'
	// starts are under way rather than done, so a server can answer
	// /readyz (503, with Starting's count) meanwhile. Ready turns true when
	// every start has finished; a command for an instance not started yet
	// waits for the starts.
	StartInBackground bool

	// onStart, if set, is called as each start-up start begins, and what
	// it returns as it ends (tests watch the starts with it).
	onStart func(instance string) (done func())
	// Policy is the trust policy of Plugins.Install; nil admits unsigned
	// plugins (with a warning) and trusts no key.
	Policy *signing.Policy
	// Engines, when set, runs the instances whose settings name an engine
	// group; without it such instances do not start.
	Engines Remote
	// WatchDir, when set and not Idle, is watched for plugin files to
	// install and swap in (plugins.watch_dir).
	WatchDir string
}

// Service is the connhost server's state and operations, one field per
// concern. Every method of every concern is safe for concurrent use.
type Service struct {
	Plugins     *Plugins
	Instances   *Instances
	Commands    *Commands
	Incidents   *Incidents
	Users       *Users
	APIKeys     *APIKeys
	Mirroring   *Mirroring
	LongRunning *LongRunning

	c *core
}

// New opens the service: it compiles every installed plugin version that an
// instance uses and starts the enabled instances. Errors starting one
// instance are logged and recorded as its health; they do not stop the
// server.
func New(ctx context.Context, opts Options) (*Service, error) {
	if opts.Store == nil || opts.Runtime == nil || opts.Secrets == nil {
		return nil, errors.New("service: store, runtime and secrets are required")
	}
	c := &core{
		st: opts.Store, rt: opts.Runtime, box: opts.Secrets, log: opts.Logger,
		limits: opts.Limits, now: opts.Now, remote: opts.Engines,
		plugins: map[string]*host.Plugin{}, live: map[string]*liveInstance{}, names: map[string]string{},
		loading: map[string]*pluginLoad{}, started: make(chan struct{}), onStart: opts.onStart,
	}
	if c.now == nil {
		c.now = time.Now
	}
	policy := opts.Policy
	if policy == nil {
		policy = signing.NewPolicy(nil, false)
	}
	lro := opts.LongRunning.withDefaults()
	sup := lro.Supervisor
	sup.Logger = c.log
	sup.Observe = func(instance string, err error, ran time.Duration) {
		c.observe(instance, abi.CommandLongRunningExecution, TriggerLongRunning, time.Now().Add(-ran), err)
	}
	c.sup = supervisor.New(sup, c.st)
	cmds := &Commands{c: c}
	s := &Service{
		Plugins:     &Plugins{c: c, policy: policy},
		Instances:   &Instances{c: c},
		Commands:    cmds,
		Incidents:   &Incidents{c: c},
		Users:       &Users{c: c},
		APIKeys:     &APIKeys{c: c},
		Mirroring:   &Mirroring{c: c, cmds: cmds},
		LongRunning: newLongRunning(c, lro),
		c:           c,
	}
	insts, err := c.st.ListInstances(ctx)
	if err != nil {
		close(c.started)
		return nil, errors.Join(fromStore(err), s.Close(ctx))
	}
	if !opts.Idle {
		c.startAll(ctx, insts)
		if !opts.StartInBackground {
			<-c.started
		}
	} else {
		close(c.started)
	}
	if opts.WatchDir != "" && !opts.Idle {
		if err := s.Plugins.watchDir(ctx, opts.WatchDir); err != nil {
			return nil, errors.Join(err, s.Close(ctx))
		}
	}
	c.opened.Store(true)
	return s, nil
}

// Ready reports whether the service has loaded its plugins, started its
// instances and is not shutting down.
func (s *Service) Ready() bool {
	select {
	case <-s.c.started:
	default:
		return false
	}
	return s.c.opened.Load() && !s.c.closing.Load()
}

// Starting reports how many of the enabled instances found at start-up
// are still starting, and how many there are.
func (s *Service) Starting() (left, total int) {
	return int(s.c.startLeft.Load()), s.c.startTotal
}

// Close stops accepting work, waits for in-flight commands (bounded by ctx),
// and drains every instance's sandbox pool. The store and runtime stay open:
// their owner closes them.
func (s *Service) Close(ctx context.Context) error {
	s.c.refuse()
	<-s.c.started // starts in progress see closing and end soon
	s.Plugins.stopWatching()
	s.LongRunning.close(ctx)
	return s.c.drain(ctx)
}
