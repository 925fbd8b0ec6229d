// Package service is the connhost server's application layer: it owns the
// store, the plugin runtime and the running connector instances, and is the
// only way the HTTP API and the CLI change state (API → service → store).
package service

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/host/mirror"
	"github.com/connhost/connhost/host/secrets"
	"github.com/connhost/connhost/host/signing"
	"github.com/connhost/connhost/store"
)

// Errors callers map to responses. They are the store's sentinels, so an
// error from either layer matches with errors.Is.
var (
	ErrNotFound = store.ErrNotFound
	ErrExists   = store.ErrExists
	ErrInvalid  = store.ErrInvalid
	ErrConflict = store.ErrConflict
)

// ErrShuttingDown is returned for work refused because Close has begun.
var ErrShuttingDown = errors.New("server is shutting down")

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
	// Policy is the trust policy of Install; nil admits unsigned plugins
	// (with a warning) and trusts no key.
	Policy *signing.Policy
	// WatchDir, when set and not Idle, is watched for plugin files to
	// install and swap in (plugins.watch_dir).
	WatchDir string
}

// Service is the connhost server's state and operations. Its methods are
// safe for concurrent use.
type Service struct {
	st     *store.Store
	rt     *host.Runtime
	box    *secrets.Box
	log    zerolog.Logger
	limits host.Limits
	now    func() time.Time
	policy *signing.Policy

	// lifecycle serialises what starts, stops or switches instances:
	// installs, rollbacks, pins and instance changes.
	lifecycle sync.Mutex
	// drains counts retired sandboxes still finishing their calls.
	drains sync.WaitGroup
	watch  *watcher

	mu      sync.Mutex
	plugins map[string]*host.Plugin // by SHA-256
	mirror  *mirror.Engine
	live    map[string]*liveInstance
	lr      *longRunning

	ready   atomic.Bool
	closing atomic.Bool
	// gate orders enter's check of closing and its inflight.Add before
	// Close's inflight.Wait (a WaitGroup must not grow from zero while
	// waited on).
	gate     sync.RWMutex
	inflight sync.WaitGroup
}

// liveInstance is an enabled connector instance with its warm sandbox pool.
// calls counts the callers using it (see hold), so a swap closes the pool
// only once they are done.
type liveInstance struct {
	rec    store.Instance
	plugin *host.Plugin
	inst   *host.Instance
	calls  sync.WaitGroup
}

// New opens the service: it compiles every installed plugin version that an
// instance uses and starts the enabled instances. Errors starting one
// instance are logged and recorded as its health; they do not stop the
// server.
func New(ctx context.Context, opts Options) (*Service, error) {
	if opts.Store == nil || opts.Runtime == nil || opts.Secrets == nil {
		return nil, errors.New("service: store, runtime and secrets are required")
	}
	s := &Service{
		st: opts.Store, rt: opts.Runtime, box: opts.Secrets, log: opts.Logger,
		limits: opts.Limits, now: opts.Now, policy: opts.Policy,
		plugins: map[string]*host.Plugin{}, live: map[string]*liveInstance{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.policy == nil {
		s.policy = signing.NewPolicy(nil, false)
	}
	s.lr = newLongRunning(s, opts.LongRunning)
	insts, err := s.st.ListInstances(ctx)
	if err != nil {
		return nil, err
	}
	for _, rec := range insts {
		if !rec.Enabled || opts.Idle {
			continue
		}
		if err := s.start(ctx, rec); err != nil {
			s.log.Error().Err(err).Str("instance", rec.Name).Str("plugin", rec.Plugin).Msg("instance did not start")
			_ = s.st.SetHealth(ctx, rec.ID, "instance did not start: "+err.Error(), true)
		}
	}
	if opts.WatchDir != "" && !opts.Idle {
		w, err := s.watchDir(ctx, opts.WatchDir)
		if err != nil {
			_ = s.Close(ctx)
			return nil, err
		}
		s.watch = w
	}
	s.ready.Store(true)
	return s, nil
}

// Ready reports whether the service has loaded its plugins and instances and
// is not shutting down.
func (s *Service) Ready() bool { return s.ready.Load() && !s.closing.Load() }

// Close stops accepting work, waits for in-flight commands (bounded by ctx),
// and drains every instance's sandbox pool. The store and runtime stay open:
// their owner closes them.
func (s *Service) Close(ctx context.Context) error {
	s.gate.Lock()
	s.closing.Store(true)
	s.gate.Unlock()
	if s.watch != nil {
		s.watch.close()
	}
	s.lr.close(ctx)
	done := make(chan struct{})
	go func() { s.inflight.Wait(); s.drains.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn().Msg("shutdown deadline reached with commands still running")
	}
	s.mu.Lock()
	live := s.live
	s.live = map[string]*liveInstance{}
	plugins := s.plugins
	s.plugins = map[string]*host.Plugin{}
	s.mu.Unlock()
	var errs []error
	for _, li := range live {
		errs = append(errs, li.inst.Close(ctx))
	}
	for _, p := range plugins {
		errs = append(errs, p.Close(ctx))
	}
	return errors.Join(errs...)
}

// enter registers an in-flight operation that Close waits for.
func (s *Service) enter() (func(), error) {
	s.gate.RLock()
	defer s.gate.RUnlock()
	if s.closing.Load() {
		return nil, ErrShuttingDown
	}
	s.inflight.Add(1)
	return s.inflight.Done, nil
}

// HashAPIKey returns the stored form of an API key.
func HashAPIKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// apiKeyPrefix starts every API key, so a leaked key is recognisable by
// secret scanners.
const apiKeyPrefix = "chk_"

func newAPIKey() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return apiKeyPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}
