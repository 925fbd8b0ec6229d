package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/rs/zerolog"
	"github.com/spf13/pflag"

	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/internal/config"
)

// runtimeOptions are the configuration options of the commands that load
// plugins without a data directory (run, plugin inspect).
var runtimeOptions = []string{"log", "cache_dir", "limits"}

// loadRuntimeConfig loads the configuration (flags of fs over environment
// over file over defaults) of a command without a data directory: an empty
// cache_dir means connhost/ in the user's cache directory, never ./data.
func loadRuntimeConfig(a *app, fs *pflag.FlagSet) (*config.Config, error) {
	cfg, err := config.LoadWith(fs, a.environ, config.LoadOptions{
		CacheDir: func() (string, error) {
			dir, err := a.userCacheDir()
			if err != nil {
				return "", fmt.Errorf("no user cache directory (%w); set --cache-dir", err)
			}
			return filepath.Join(dir, "connhost"), nil
		},
	})
	if err != nil {
		return nil, withCode(exitUsage, err)
	}
	return cfg, nil
}

// openRuntime starts a host runtime with its compilation cache, creating
// the cache directory.
func openRuntime(ctx context.Context, a *app, cfg *config.Config) (zerolog.Logger, *host.Runtime, error) {
	log := cfg.Log.Logger(a.stderr)
	if err := os.MkdirAll(cfg.CacheDir, 0o700); err != nil {
		return log, nil, fmt.Errorf("compilation cache %s: %w", cfg.CacheDir, err)
	}
	rt, err := host.NewRuntime(ctx, runtimeConfig(cfg, log))
	if err != nil {
		return log, nil, fmt.Errorf("starting runtime: %w", err)
	}
	return log, rt, nil
}

// runtimeConfig turns the configuration into the host runtime's.
func runtimeConfig(cfg *config.Config, log zerolog.Logger) host.Config {
	m := cfg.Limits.Module
	return host.Config{
		CacheDir: cfg.CacheDir, Logger: log, Limits: hostLimits(cfg.Limits),
		StackBytes: uint32(cfg.Limits.StackKiB) << 10, CompileTimeout: cfg.Limits.CompileTimeout,
		AllowPrivateEgress: cfg.Egress.AllowPrivate,
		Module: host.ModuleLimits{
			ModuleBytes: m.Bytes, Types: m.Types, Imports: m.Imports, Functions: m.Functions,
			FunctionBodyBytes: m.FunctionBodyBytes, CodeBytes: m.CodeBytes, Locals: m.Locals,
			BlockDepth: m.BlockDepth, Labels: m.Labels, Globals: m.Globals, Tables: m.Tables,
			TableElements: uint32(m.TableElements), Exports: m.Exports,
			ElementSegments: m.ElementSegments, ElementEntries: m.ElementEntries,
			DataSegments: m.DataSegments, DataBytes: m.DataBytes,
			CustomSections: m.CustomSections, CustomBytes: m.CustomBytes, NameBytes: m.NameBytes,
		},
	}
}

// hostLimits turns the configured default limits into host limits.
func hostLimits(l config.Limits) host.Limits {
	return host.Limits{
		MemoryBytes: uint64(l.MemoryMiB) << 20,
		CallTimeout: l.CallTimeout,
		OutputBytes: l.OutputBytes,
		PoolSize:    l.PoolSize,
		PoolIdle:    l.PoolIdle,
		LogBytes:    l.LogBytes, LogRecords: l.LogRecords,
		LogRecordsPerMinute: l.LogRecordsPerMinute, LogBytesPerMinute: l.LogBytesPerMinute,
	}
}
