package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/connhost/connhost/internal/bundle"
	"github.com/connhost/connhost/internal/config"
	"github.com/connhost/connhost/internal/service"
	"github.com/connhost/connhost/internal/signing"
)

func bundleCommand(a *app) *cobra.Command {
	return group(a, "bundle", "pack and install plugins for air-gapped servers",
		bundleCreateCommand(a),
		bundleInstallCommand(a),
	)
}

func bundleCreateCommand(a *app) *cobra.Command {
	c := leaf("create -o FILE.chb [--key PRIV] PLUGIN.wasm...", "pack plugins and their signatures into one file",
		"Packs each PLUGIN.wasm and its PLUGIN.wasm.minisig (when present) into FILE.chb, with an index\n"+
			"of their SHA-256 hashes, signed with --key when given. No precompiled code is included.")
	out := c.Flags().StringP("output", "o", "", "bundle `FILE` to write (required)")
	keyPath := c.Flags().String("key", "", "minisign secret key `FILE` that signs the index")
	pwFile := passwordFlag(c.Flags())
	_ = c.MarkFlagFilename("output", "chb")
	c.ValidArgsFunction = wasmFiles
	c.RunE = func(_ *cobra.Command, args []string) error {
		if *out == "" || len(args) == 0 {
			return argsErr("bundle create: want -o FILE.chb and one or more PLUGIN.wasm")
		}
		return runBundleCreate(a, *out, *keyPath, *pwFile, args)
	}
	return c
}

func runBundleCreate(a *app, out, keyPath, pwFile string, files []string) error {
	var key *signing.PrivateKey
	if keyPath != "" {
		k, err := loadSecretKey(a, keyPath, pwFile)
		if err != nil {
			return err
		}
		key = &k
	}
	inputs := make([]bundle.Input, 0, len(files))
	for _, file := range files {
		wasm, err := os.ReadFile(file)
		if err != nil {
			return usageErr("bundle create: %w", err)
		}
		sig, err := os.ReadFile(file + ".minisig")
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("bundle create: %w", err)
		}
		if sig == nil {
			fmt.Fprintf(a.stderr, "warning: %s has no %s.minisig; it will only install where unsigned plugins are allowed\n", file, filepath.Base(file))
		}
		inputs = append(inputs, bundle.Input{Wasm: wasm, Signature: sig})
	}
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("bundle create: %w", err)
	}
	if err := bundle.Create(f, inputs, key, time.Now()); err != nil {
		f.Close()
		os.Remove(tmp)
		return usageErr("bundle create: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("bundle create: %w", err)
	}
	if err := os.Rename(tmp, out); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("bundle create: %w", err)
	}
	signedBy := "unsigned index"
	if key != nil {
		signedBy = "index signed by key ID " + key.ID.String()
	}
	fmt.Fprintf(a.stdout, "wrote %s: %d plugins, %s\n", out, len(inputs), signedBy)
	return nil
}

func bundleInstallCommand(a *app) *cobra.Command {
	c := leaf("install FILE.chb", "verify a bundle and install its plugins offline (server stopped)",
		"Verifies the bundle (index signature, member hashes, each plugin against the trusted keys of\n"+
			"signing.trusted_keys and the downgrade check) before touching the data dir, then installs every\n"+
			"plugin into --data-dir as `connhost plugin install` does, compiling it here. Needs no network.\n"+apikeyNote)
	config.RegisterFlags(c.Flags(), installOptions...)
	// --trusted-key and --require-signed set the same policy as the
	// signing.* options, which every other install path uses.
	aliasFlag(a, c.Flags(), "trusted-key", "signing-trusted-keys")
	aliasFlag(a, c.Flags(), "require-signed", "signing-require-signed")
	_ = c.MarkFlagFilename("signing-trusted-keys", "pub")
	c.ValidArgsFunction = func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return []cobra.Completion{"chb"}, cobra.ShellCompDirectiveFilterFileExt
	}
	c.RunE = func(c *cobra.Command, args []string) error {
		if len(args) != 1 {
			return argsErr("bundle install: want one FILE.chb")
		}
		return runBundleInstall(c.Context(), a, c.Flags(), args[0])
	}
	return c
}

func runBundleInstall(ctx context.Context, a *app, fs *pflag.FlagSet, file string) error {
	sc, err := loadStoreConfig(a, fs)
	if err != nil {
		return err
	}
	b, err := bundle.Open(file, sc.policy)
	if err != nil {
		return fmt.Errorf("bundle install: %w", err)
	}
	d, err := sc.open(ctx, openMode{idle: true, create: true})
	if err != nil {
		return err
	}
	defer d.close(context.WithoutCancel(ctx))
	for _, w := range b.Warnings {
		d.log.Warn().Str("bundle", file).Msg(w)
	}
	// Every downgrade check passes before anything is installed.
	for _, p := range b.Plugins {
		if err := d.svc.Plugins.CheckDowngrade(ctx, p.Name, p.Version); err != nil {
			return fmt.Errorf("bundle install: %w", err)
		}
	}
	by := "bundle " + filepath.Base(file)
	// The bundle is read again, one plugin in memory at a time.
	err = b.Each(func(p bundle.Plugin) error {
		pi, err := d.svc.Plugins.InstallVerified(ctx, p.Wasm, p.SignatureBytes, by)
		switch {
		case errors.Is(err, service.ErrInvalid):
			return withCode(exitIncompatible, fmt.Errorf("plugin %s@%s: %w", p.Name, p.Version, err))
		case err != nil:
			return fmt.Errorf("plugin %s@%s: %w", p.Name, p.Version, err)
		}
		how := "unsigned"
		if p.Verified.Signed {
			how = "signed by key ID " + p.Verified.KeyID.String()
		}
		fmt.Fprintf(a.stdout, "installed %s@%s sha256 %s (%s)\n", pi.Name, pi.Version, pi.SHA256, how)
		return nil
	})
	if err != nil {
		return fmt.Errorf("bundle install: %w", err)
	}
	return nil
}
