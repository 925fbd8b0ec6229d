package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/internal/api"
	"github.com/connhost/connhost/internal/config"
	"github.com/connhost/connhost/internal/console"
	"github.com/connhost/connhost/internal/engines"
	"github.com/connhost/connhost/internal/mirror"
	"github.com/connhost/connhost/internal/secrets"
	"github.com/connhost/connhost/internal/service"
	"github.com/connhost/connhost/internal/signing"
	"github.com/connhost/connhost/internal/store"
)

// storeOptions are the configuration options of the commands that open
// the data directory (serve takes every option).
var storeOptions = []string{"log", "data_dir", "cache_dir", "limits", "secrets"}

// dataDir is an opened data directory: the store, the secrets key, the
// runtime and the service over them.
type dataDir struct {
	cfg *config.Config
	log zerolog.Logger
	st  *store.Store
	rt  *host.Runtime
	svc *service.Service
	// hub is the engines' NATS server, when engines.enable is set.
	hub *engines.Hub
}

// storeConfig is a validated configuration for opening the data directory.
// Loading it checks everything that can be checked without the store and
// creates nothing, so a command refused for bad input leaves no data
// directory or secret.key behind.
type storeConfig struct {
	cfg    *config.Config
	log    zerolog.Logger
	policy *signing.Policy
	envKey []byte // CONNHOST_SECRET_KEY, when set
}

// loadStoreConfig loads the configuration from fs and the environment and
// validates it, the trust policy and CONNHOST_SECRET_KEY.
func loadStoreConfig(a *app, fs *pflag.FlagSet) (*storeConfig, error) {
	cfg, err := config.Load(fs, a.environ)
	if err != nil {
		return nil, withCode(exitUsage, err)
	}
	policy, err := signing.LoadPolicy(signing.PolicyConfig{TrustedKeys: cfg.Signing.TrustedKeys, RequireSigned: cfg.Signing.RequireSigned})
	if err != nil {
		return nil, withCode(exitUsage, fmt.Errorf("signing.trusted_keys: %w", err))
	}
	sc := &storeConfig{cfg: cfg, log: cfg.Log.Logger(a.stderr), policy: policy}
	if v, ok := lookupEnv(a.environ, config.EnvSecretKey); ok {
		if sc.envKey, err = secrets.ParseKey(v); err != nil {
			return nil, withCode(exitUsage, fmt.Errorf("%s: %w", config.EnvSecretKey, err))
		}
	}
	return sc, nil
}

// openMode says how a command opens the data directory.
type openMode struct {
	// idle leaves the enabled instances stopped (maintenance commands).
	idle bool
	// create makes the data directory, its secret.key and store when they
	// do not exist; without it a missing store is a usage error, so that a
	// mistyped --data-dir is not silently created.
	create bool
	// background starts the enabled instances while the server already
	// answers (/readyz says how many are left).
	background bool
}

// open opens the data directory. The badger lock makes a second process
// fail here with a clear message.
func (sc *storeConfig) open(ctx context.Context, mode openMode) (*dataDir, error) {
	cfg, log := sc.cfg, sc.log
	dbDir := filepath.Join(cfg.DataDir, "db")
	if !mode.create {
		if _, err := os.Stat(dbDir); errors.Is(err, fs.ErrNotExist) {
			return nil, withCode(exitUsage, fmt.Errorf("data dir %s holds no store (wrong --data-dir? nothing has been installed or served there)", cfg.DataDir))
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
	}
	key := sc.envKey
	if key == nil {
		k, created, err := secrets.LoadOrCreateKeyFile(cfg.Secrets.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("secrets.key_file: %w", err)
		}
		if created {
			log.Warn().Str("file", cfg.Secrets.KeyFile).
				Msg("generated a new secret key; back this file up: without it the secret params of every instance are lost")
		}
		key = k
	}
	box, err := secrets.New(key)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, dbDir, store.Options{Logger: &log, MinFreeBytes: int64(cfg.Store.MinFreeMiB) << 20, NoGroupCommit: !cfg.Store.GroupCommit})
	if err != nil {
		if strings.Contains(err.Error(), "Another process is using this Badger database") {
			return nil, fmt.Errorf("data dir %s is in use by another connhost process (a running `connhost serve`?); stop it first", cfg.DataDir)
		}
		return nil, err
	}
	rt, err := host.NewRuntime(ctx, runtimeConfig(cfg, log))
	if err != nil {
		_ = st.Close()
		return nil, fmt.Errorf("starting runtime: %w", err)
	}
	opts := service.Options{Store: st, Runtime: rt, Secrets: box, Logger: log, Limits: hostLimits(cfg.Limits), Idle: mode.idle, StartInBackground: mode.background,
		Policy: sc.policy, WatchDir: cfg.Plugins.WatchDir, LongRunning: longRunningOptions(cfg.LongRunning)}
	var hub *engines.Hub
	if cfg.Engines.Enable && !mode.idle {
		if hub, err = startHub(ctx, cfg.Engines, log); err != nil {
			_ = rt.Close(ctx)
			_ = st.Close()
			return nil, err
		}
		opts.Engines = hub
	}
	svc, err := service.New(ctx, opts)
	if err != nil {
		if hub != nil {
			hub.Close()
		}
		_ = rt.Close(ctx)
		_ = st.Close()
		return nil, err
	}
	if hub != nil {
		hub.Attach(svc)
	}
	return &dataDir{cfg: cfg, log: log, st: st, rt: rt, svc: svc, hub: hub}, nil
}

// startHub starts the engines' embedded NATS server, or connects to the
// external cluster of engines.nats_url (engines.*).
func startHub(ctx context.Context, cfg config.Engines, log zerolog.Logger) (*engines.Hub, error) {
	if cfg.NATSURL != "" {
		seed, err := os.ReadFile(cfg.NATSSeedFile)
		if err != nil {
			return nil, fmt.Errorf("engines.nats_seed_file: %w", err)
		}
		hub, err := engines.StartHub(ctx, engines.HubOptions{URL: cfg.NATSURL, Seed: bytes.TrimSpace(seed), Replicas: cfg.Replicas, Logger: log})
		if err != nil {
			return nil, err
		}
		log.Info().Str("url", cfg.NATSURL).Int("replicas", cfg.Replicas).Msg("engines: connected to the external NATS cluster")
		return hub, nil
	}
	var tc *tls.Config
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("engines.tls_cert: %w", err)
		}
		tc = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if err := os.MkdirAll(cfg.StoreDir, 0o700); err != nil {
		return nil, fmt.Errorf("engines.store_dir %s: %w", cfg.StoreDir, err)
	}
	hub, err := engines.StartHub(ctx, engines.HubOptions{Listen: cfg.Listen, StoreDir: cfg.StoreDir, TLS: tc, Logger: log})
	if err != nil {
		return nil, err
	}
	log.Info().Str("url", hub.ClientURL()).Bool("tls", tc != nil).Msg("engines: NATS server listening")
	return hub, nil
}

// longRunningOptions passes the configured limits of HTTP requests into
// long-running plugins to the service; the supervisor and chat settings
// keep their defaults.
func longRunningOptions(l config.LongRunning) service.LongRunningOptions {
	return service.LongRunningOptions{
		HTTPMaxBodyBytes: int64(l.HTTPMaxBodyBytes), HTTPTimeout: l.HTTPTimeout, HTTPConcurrency: l.HTTPConcurrency,
	}
}

// close stops the service (waiting for in-flight commands until ctx ends),
// then closes the runtime and the store.
func (d *dataDir) close(ctx context.Context) error {
	err := d.svc.Close(ctx)
	if d.hub != nil {
		d.hub.Close()
	}
	return errors.Join(err, d.rt.Close(ctx), d.st.Close())
}

// lookupEnv finds name in environ.
func lookupEnv(environ []string, name string) (string, bool) {
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v, true
		}
	}
	return "", false
}

func serveCommand(a *app) *cobra.Command {
	c := leaf("serve", "run the connhost server: HTTP API, store and connector instances",
		"Serves the HTTP API (under /api/v1) on --listen over the store in --data-dir, running every\n"+
			"enabled connector instance. On first start it creates an API key and prints it once to stdout.\n"+
			"SIGTERM or SIGINT: /readyz turns 503, the listener closes, in-flight requests and commands get\n"+
			"server.shutdown_timeout to finish, then the store is closed. Every configuration option has a\n"+
			"flag here (see the README's configuration table).")
	config.RegisterFlags(c.Flags())
	c.RunE = func(c *cobra.Command, args []string) error {
		if len(args) != 0 {
			return argsErr("serve: unexpected arguments %q", args)
		}
		return runServe(c.Context(), a, c.Flags())
	}
	return c
}

func runServe(ctx context.Context, a *app, fs *pflag.FlagSet) error {
	sc, err := loadStoreConfig(a, fs)
	if err != nil {
		return err
	}
	// The signal context ends the serve loop only; opening and shutting
	// down must not be cut short by it.
	base := context.WithoutCancel(ctx)
	d, err := sc.open(base, openMode{create: true, background: true})
	if err != nil {
		return err
	}
	cfg, log := d.cfg, d.log
	defer func() {
		sctx, cancel := context.WithTimeout(base, cfg.Server.ShutdownTimeout)
		defer cancel()
		if err := d.close(sctx); err != nil {
			log.Warn().Err(err).Msg("closing")
		}
	}()
	key, err := d.svc.APIKeys.Ensure(base)
	if err != nil {
		return fmt.Errorf("creating the first API key: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	reg := api.NewRegistry()
	if d.hub != nil {
		reg.MustRegister(d.hub.Collector())
	}
	engine := mirror.New(mirror.Options{
		Store: d.st, Instances: d.svc.Mirroring, Logger: log, MirrorEnabled: cfg.Mirror.JobEnable,
		MirrorInterval: cfg.MirrorInterval(), Concurrency: cfg.Mirror.Concurrency, Metrics: reg,
	})
	d.svc.Mirroring.SetEngine(engine)
	engine.Start(base)
	defer func() {
		sctx, cancel := context.WithTimeout(base, cfg.Server.ShutdownTimeout)
		defer cancel()
		engine.Stop(sctx)
	}()
	con, err := console.New(d.svc, console.Options{
		Logger: log, MaxBodyBytes: int64(cfg.Server.MaxBodyBytes), MaxPluginBytes: int64(cfg.Server.MaxPluginBytes),
	})
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	srv := api.New(d.svc, api.Options{
		Logger: log, MaxBodyBytes: int64(cfg.Server.MaxBodyBytes), MaxPluginBytes: int64(cfg.Server.MaxPluginBytes),
		MetricsAuth: cfg.MetricsNeedAuth(), Registry: reg,
		RateLimit: float64(cfg.API.RateLimit), RateBurst: cfg.API.RateBurst,
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout, ReadTimeout: cfg.Server.ReadTimeout, IdleTimeout: cfg.Server.IdleTimeout,
		MaxInFlightPerClient: cfg.Server.MaxInFlightPerClient, TrustedProxies: cfg.TrustedProxyPrefixes(),
		Console: con,
		Engines: engineHub(d.hub),
	})
	hs := srv.HTTPServer()
	url := "http://" + ln.Addr().String()
	printBanner(a, url, key)
	log.Info().Str("url", url).Str("data_dir", cfg.DataDir).Bool("metrics_auth", cfg.MetricsNeedAuth()).Msg("serving")

	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve %s: %w", url, err)
	case <-ctx.Done():
	}
	log.Info().Dur("timeout_ms", cfg.Server.ShutdownTimeout).Msg("shutting down: finishing in-flight requests")
	srv.Drain()
	sctx, cancel := context.WithTimeout(base, cfg.Server.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn().Err(err).Msg("shutdown deadline reached; closing remaining connections")
		_ = hs.Close()
	}
	log.Info().Msg("server stopped")
	return nil
}

// engineHub is the hub as the API sees it: nil when engines are off.
func engineHub(h *engines.Hub) api.EngineHub {
	if h == nil {
		return nil
	}
	return h
}

// printBanner writes the URL and, on first start, the API key to stdout:
// the key is shown this once and never logged.
func printBanner(a *app, url, key string) {
	fmt.Fprintf(a.stdout, "connhost serving on %s (console at %s/, API under %s%s)\n", url, url, url, api.Prefix)
	if key == "" {
		fmt.Fprintf(a.stdout, "API keys exist already; to make another, stop the server and run: connhost apikey create --name NAME\n")
		return
	}
	fmt.Fprintf(a.stdout, "API key (shown only once, store it now): %s\n", key)
	fmt.Fprintf(a.stdout, "try: curl -H 'Authorization: Bearer %s' %s%s/plugins\n", key, url, api.Prefix)
}
