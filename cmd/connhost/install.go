package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/connhost/connhost/internal/config"
	"github.com/connhost/connhost/internal/service"
)

// installOptions are the configuration options of the commands that
// install plugins into the data directory: storeOptions and the trust
// policy.
var installOptions = append(append([]string(nil), storeOptions...), "signing")

func installCommand(a *app) *cobra.Command {
	c := leaf("install FILE.wasm...", "install a plugin into the server's data dir (server stopped)",
		"Verifies (trust policy signing.*, with FILE.wasm.minisig when present, and the downgrade check),\n"+
			"compiles and stores plugins in --data-dir, as POST /api/v1/plugins does, and makes each the current\n"+
			"version: instances that follow the latest run it from the next `connhost serve`. Installing an\n"+
			"installed file again makes it current unless it is older than the current version (a downgrade,\n"+
			"refused: use `plugin rollback`); other content under an installed name and version is refused.\n"+apikeyNote)
	force := c.Flags().Bool("force", false, "switch instances whose params do not fit the new manifest")
	verify := c.Flags().Bool("verify-instances", false, "run test-module on every enabled instance that follows the latest; any failure keeps the old version")
	config.RegisterFlags(c.Flags(), installOptions...)
	c.ValidArgsFunction = wasmFiles
	c.RunE = func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return argsErr("plugin install: want one or more FILE.wasm")
		}
		return runInstall(c.Context(), a, c.Flags(), args, *force, *verify)
	}
	return c
}

func rollbackCommand(a *app) *cobra.Command {
	c := leaf("rollback NAME", "make a plugin's previous version current again (server stopped)",
		"Makes the version that was current before the current one current again in --data-dir; instances\n"+
			"that follow the latest run it from the next `connhost serve` (POST /api/v1/plugins/NAME/rollback\n"+
			"does the same on a running server, switching them at once).")
	force := c.Flags().Bool("force", false, "switch instances whose params do not fit the previous manifest")
	verify := c.Flags().Bool("verify-instances", false, "run test-module on every enabled instance that follows the latest first")
	config.RegisterFlags(c.Flags(), storeOptions...)
	c.ValidArgsFunction = cobra.NoFileCompletions
	c.RunE = func(c *cobra.Command, args []string) error {
		if len(args) != 1 {
			return argsErr("plugin rollback: want one plugin NAME")
		}
		return runRollback(c.Context(), a, c.Flags(), args[0], *force, *verify)
	}
	return c
}

// pluginFile is a plugin file read for install, with its signature.
type pluginFile struct {
	path      string
	wasm, sig []byte
}

// readPlugins reads every file and signature and checks each plugin as
// the runtime will (precheck), before anything is opened or created.
func readPlugins(ctx context.Context, cfg *config.Config, files []string) ([]pluginFile, error) {
	out := make([]pluginFile, 0, len(files))
	for _, file := range files {
		wasm, err := os.ReadFile(file)
		if err != nil {
			return nil, usageErr("plugin install: %w", err)
		}
		if _, err := precheck(ctx, cfg, file, wasm); err != nil {
			return nil, err
		}
		sig, err := os.ReadFile(file + ".minisig")
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("plugin %s: %w", file, err)
		}
		out = append(out, pluginFile{path: file, wasm: wasm, sig: sig})
	}
	return out, nil
}

func runInstall(ctx context.Context, a *app, fs *pflag.FlagSet, files []string, force, verify bool) error {
	sc, err := loadStoreConfig(a, fs)
	if err != nil {
		return err
	}
	plugins, err := readPlugins(ctx, sc.cfg, files)
	if err != nil {
		return err
	}
	d, err := sc.open(ctx, openMode{idle: true, create: true})
	if err != nil {
		return err
	}
	defer d.close(context.WithoutCancel(ctx))
	for _, pf := range plugins {
		res, err := d.svc.Plugins.Install(ctx, service.InstallRequest{Wasm: pf.wasm, Signature: pf.sig, By: "cli", Force: force, VerifyInstances: verify})
		if err != nil {
			return installErr(pf.path, err)
		}
		how := "unsigned"
		if res.Signed {
			how = "signed by key ID " + res.KeyID
		}
		fmt.Fprintf(a.stdout, "installed %s@%s sha256 %s (%s), current from the next start\n", res.Name, res.Version, res.SHA256, how)
	}
	return nil
}

// installErr gives a refused install its exit code: 3 for a file that is
// not a valid plugin, 2 for one refused by policy or state.
func installErr(file string, err error) error {
	switch {
	case errors.Is(err, service.ErrInvalid):
		return withCode(exitIncompatible, fmt.Errorf("plugin %s: %w", file, err))
	case errors.Is(err, service.ErrUntrusted), errors.Is(err, service.ErrExists), errors.Is(err, service.ErrConflict):
		return withCode(exitUsage, fmt.Errorf("plugin %s: %w", file, err))
	}
	return fmt.Errorf("plugin %s: %w", file, err)
}

func runRollback(ctx context.Context, a *app, fs *pflag.FlagSet, name string, force, verify bool) error {
	sc, err := loadStoreConfig(a, fs)
	if err != nil {
		return err
	}
	d, err := sc.open(ctx, openMode{idle: true})
	if err != nil {
		return err
	}
	defer d.close(context.WithoutCancel(ctx))
	res, err := d.svc.Plugins.Rollback(ctx, name, service.SwitchOptions{By: "cli", Force: force, VerifyInstances: verify})
	switch {
	case errors.Is(err, service.ErrNotFound), errors.Is(err, service.ErrConflict):
		return withCode(exitUsage, fmt.Errorf("plugin rollback: %w", err))
	case err != nil:
		return fmt.Errorf("plugin rollback: %w", err)
	}
	fmt.Fprintf(a.stdout, "rolled back %s to %s (sha256 %s)\n", res.Name, res.Version, res.SHA256)
	return nil
}
