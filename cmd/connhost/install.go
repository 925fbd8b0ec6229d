package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/connhost/connhost/internal/config"
	"github.com/connhost/connhost/internal/service"
)

func installCommand() *command {
	return &command{name: "install", summary: "install a plugin into the server's data dir (server stopped)", run: runInstall}
}

func rollbackCommand() *command {
	return &command{name: "rollback", summary: "make a plugin's previous version current again (server stopped)", run: runRollback}
}

func runInstall(ctx context.Context, a *app, args []string) error {
	fs := newFlags(a, "connhost plugin install", "FILE.wasm... [flags]",
		"Verifies (trust policy signing.*, with FILE.wasm.minisig when present, and the downgrade check),\n"+
			"compiles and stores plugins in --data-dir, as POST /api/v1/plugins does, and makes each the current\n"+
			"version: instances that follow the latest run it from the next `connhost serve`. Installing an\n"+
			"installed file again makes it current unless it is older than the current version (a downgrade,\n"+
			"refused: use `plugin rollback`); other content under an installed name and version is refused.\n"+apikeyNote)
	force := fs.Bool("force", false, "switch instances whose params do not fit the new manifest")
	verify := fs.Bool("verify-instances", false, "run test-module on every enabled instance that follows the latest; any failure keeps the old version")
	config.RegisterFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageErr("plugin install: want one or more FILE.wasm")
	}
	d, err := openDataDir(ctx, a, fs, true)
	if err != nil {
		return err
	}
	defer d.close(context.WithoutCancel(ctx))
	for _, file := range fs.Args() {
		wasm, err := os.ReadFile(file)
		if err != nil {
			return usageErr("plugin install: %w", err)
		}
		sig, err := os.ReadFile(file + ".minisig")
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("plugin %s: %w", file, err)
		}
		res, err := d.svc.Plugins.Install(ctx, service.InstallRequest{Wasm: wasm, Signature: sig, By: "cli", Force: *force, VerifyInstances: *verify})
		if err != nil {
			return installErr(file, err)
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

func runRollback(ctx context.Context, a *app, args []string) error {
	fs := newFlags(a, "connhost plugin rollback", "NAME [flags]",
		"Makes the version that was current before the current one current again in --data-dir; instances\n"+
			"that follow the latest run it from the next `connhost serve` (POST /api/v1/plugins/NAME/rollback\n"+
			"does the same on a running server, switching them at once).")
	force := fs.Bool("force", false, "switch instances whose params do not fit the previous manifest")
	verify := fs.Bool("verify-instances", false, "run test-module on every enabled instance that follows the latest first")
	config.RegisterFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErr("plugin rollback: want one plugin NAME")
	}
	d, err := openDataDir(ctx, a, fs, true)
	if err != nil {
		return err
	}
	defer d.close(context.WithoutCancel(ctx))
	res, err := d.svc.Plugins.Rollback(ctx, fs.Arg(0), service.SwitchOptions{By: "cli", Force: *force, VerifyInstances: *verify})
	switch {
	case errors.Is(err, service.ErrNotFound), errors.Is(err, service.ErrConflict):
		return withCode(exitUsage, fmt.Errorf("plugin rollback: %w", err))
	case err != nil:
		return fmt.Errorf("plugin rollback: %w", err)
	}
	fmt.Fprintf(a.stdout, "rolled back %s to %s (sha256 %s)\n", res.Name, res.Version, res.SHA256)
	return nil
}
