package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/connhost/connhost/host/service"
	"github.com/connhost/connhost/internal/config"
)

func installCommand() *command {
	return &command{name: "install", summary: "install a plugin into the server's data dir (server stopped)", run: runInstall}
}

func runInstall(ctx context.Context, a *app, args []string) error {
	fs := newFlags(a, "connhost plugin install", "FILE.wasm... [flags]",
		"Verifies, compiles and stores plugins in --data-dir, as POST /api/v1/plugins does. Installing the\n"+
			"same file again is a no-op; other content under an installed name and version is refused.\n"+apikeyNote)
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
		pi, err := d.svc.InstallPlugin(ctx, wasm, "cli")
		switch {
		case errors.Is(err, service.ErrInvalid):
			// The file failed verification: not a module, bad manifest or ABI.
			return withCode(exitIncompatible, fmt.Errorf("plugin %s: %w", file, err))
		case errors.Is(err, service.ErrExists):
			return withCode(exitUsage, fmt.Errorf("plugin %s: %w", file, err))
		case err != nil:
			return fmt.Errorf("plugin %s: %w", file, err)
		}
		fmt.Fprintf(a.stdout, "installed %s@%s sha256 %s\n", pi.Name, pi.Version, pi.SHA256)
	}
	return nil
}
