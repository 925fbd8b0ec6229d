package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/pflag"

	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/internal/api"
	"github.com/connhost/connhost/internal/config"
	"github.com/connhost/connhost/internal/console"
	"github.com/connhost/connhost/internal/mirror"
	"github.com/connhost/connhost/internal/secrets"
	"github.com/connhost/connhost/internal/service"
	"github.com/connhost/connhost/internal/signing"
	"github.com/connhost/connhost/internal/store"
)

func serveCommand() *command {
	return &command{
		name:    "serve",
		summary: "run the connhost server: HTTP API, store and connector instances",
		run:     runServe,
	}
}

// dataDir is an opened data directory: the store, the secrets key, the
// runtime and the service over them.
type dataDir struct {
	cfg *config.Config
	log zerolog.Logger
	st  *store.Store
	rt  *host.Runtime
	svc *service.Service
}

// openDataDir loads the configuration from fs and opens the data directory.
// idle leaves the enabled instances stopped (maintenance commands). The
// badger lock makes a second process fail here with a clear message.
func openDataDir(ctx context.Context, a *app, fs *pflag.FlagSet, idle bool) (*dataDir, error) {
	cfg, err := config.Load(fs, a.environ)
	if err != nil {
		return nil, withCode(exitUsage, err)
	}
	log := cfg.Log.Logger(a.stderr)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir %s: %w", cfg.DataDir, err)
	}
	key, err := secretKey(cfg, a.environ, log)
	if err != nil {
		return nil, err
	}
	box, err := secrets.New(key)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, filepath.Join(cfg.DataDir, "db"), store.Options{Logger: &log})
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
	policy, err := signing.LoadPolicy(signing.PolicyConfig{TrustedKeys: cfg.Signing.TrustedKeys, RequireSigned: cfg.Signing.RequireSigned})
	if err != nil {
		_ = rt.Close(ctx)
		_ = st.Close()
		return nil, withCode(exitUsage, fmt.Errorf("signing.trusted_keys: %w", err))
	}
	svc, err := service.New(ctx, service.Options{Store: st, Runtime: rt, Secrets: box, Logger: log, Limits: hostLimits(cfg.Limits), Idle: idle,
		Policy: policy, WatchDir: cfg.Plugins.WatchDir, LongRunning: longRunningOptions(cfg.LongRunning)})
	if err != nil {
		_ = rt.Close(ctx)
		_ = st.Close()
		return nil, err
	}
	return &dataDir{cfg: cfg, log: log, st: st, rt: rt, svc: svc}, nil
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
	return errors.Join(d.svc.Close(ctx), d.rt.Close(ctx), d.st.Close())
}

// secretKey returns the key of secret params: CONNHOST_SECRET_KEY (hex) if
// set, else the key file, created with a new key on first start.
func secretKey(cfg *config.Config, environ []string, log zerolog.Logger) ([]byte, error) {
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, config.EnvSecretKey+"="); ok {
			k, err := secrets.ParseKey(v)
			if err != nil {
				return nil, withCode(exitUsage, fmt.Errorf("%s: %w", config.EnvSecretKey, err))
			}
			return k, nil
		}
	}
	k, created, err := secrets.LoadOrCreateKeyFile(cfg.Secrets.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("secrets.key_file: %w", err)
	}
	if created {
		log.Warn().Str("file", cfg.Secrets.KeyFile).
			Msg("generated a new secret key; back this file up: without it the secret params of every instance are lost")
	}
	return k, nil
}

func runServe(ctx context.Context, a *app, args []string) error {
	fs := newFlags(a, "connhost serve", "[flags]",
		"Serves the HTTP API (under /api/v1) on --listen over the store in --data-dir, running every\n"+
			"enabled connector instance. On first start it creates an API key and prints it once to stdout.\n"+
			"SIGTERM or SIGINT: /readyz turns 503, the listener closes, in-flight requests and commands get\n"+
			"server.shutdown_timeout to finish, then the store is closed.")
	config.RegisterFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageErr("serve: unexpected arguments %q", fs.Args())
	}
	// The signal context ends the serve loop only; opening and shutting
	// down must not be cut short by it.
	base := context.WithoutCancel(ctx)
	d, err := openDataDir(base, a, fs, false)
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
		RateLimit: float64(cfg.API.RateLimit), RateBurst: cfg.API.RateBurst, Console: con,
	})
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
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
	log.Info().Dur("timeout", cfg.Server.ShutdownTimeout).Msg("shutting down: finishing in-flight requests")
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
