package main

import (
	"context"
	"fmt"
	"os"

	"github.com/rs/zerolog"
	"github.com/spf13/pflag"

	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/internal/config"
)

// openRuntime loads the configuration (flags of fs over environment over
// file over defaults) and starts a host runtime with its compilation cache.
func openRuntime(ctx context.Context, a *app, fs *pflag.FlagSet) (*config.Config, zerolog.Logger, *host.Runtime, error) {
	cfg, err := config.Load(fs, a.environ)
	if err != nil {
		return nil, zerolog.Nop(), nil, withCode(exitUsage, err)
	}
	log := cfg.Log.Logger(a.stderr)
	if err := os.MkdirAll(cfg.CacheDir, 0o700); err != nil {
		return nil, log, nil, fmt.Errorf("compilation cache %s: %w", cfg.CacheDir, err)
	}
	rt, err := host.NewRuntime(ctx, host.Config{CacheDir: cfg.CacheDir, Logger: log})
	if err != nil {
		return nil, log, nil, fmt.Errorf("starting runtime: %w", err)
	}
	return cfg, log, rt, nil
}

// hostLimits turns the configured default limits into host limits.
func hostLimits(l config.Limits) host.Limits {
	return host.Limits{
		MemoryBytes: uint64(l.MemoryMiB) << 20,
		CallTimeout: l.CallTimeout,
		OutputBytes: l.OutputBytes,
		PoolSize:    l.PoolSize,
	}
}
