package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/connhost/connhost/internal/bundle"
	"github.com/connhost/connhost/internal/config"
	"github.com/connhost/connhost/internal/service"
	"github.com/connhost/connhost/internal/signing"
)

func bundleCommand() *command {
	return &command{name: "bundle", summary: "pack and install plugins for air-gapped servers", sub: []*command{
		{name: "create", summary: "pack plugins and their signatures into one file", run: runBundleCreate},
		{name: "install", summary: "verify a bundle and install its plugins offline (server stopped)", run: runBundleInstall},
	}}
}

func runBundleCreate(_ context.Context, a *app, args []string) error {
	fs := newFlags(a, "connhost bundle create", "-o FILE.chb [--key PRIV] PLUGIN.wasm...",
		"Packs each PLUGIN.wasm and its PLUGIN.wasm.minisig (when present) into FILE.chb, with an index\n"+
			"of their SHA-256 hashes, signed with --key when given. No precompiled code is included.")
	out := fs.StringP("output", "o", "", "bundle `FILE` to write (required)")
	keyPath := fs.String("key", "", "minisign secret key `FILE` that signs the index")
	pwFile := passwordFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() == 0 {
		fs.Usage()
		return usageErr("bundle create: want -o FILE.chb and one or more PLUGIN.wasm")
	}
	var key *signing.PrivateKey
	if *keyPath != "" {
		k, err := loadSecretKey(a, *keyPath, *pwFile)
		if err != nil {
			return err
		}
		key = &k
	}
	inputs := make([]bundle.Input, 0, fs.NArg())
	for _, file := range fs.Args() {
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
	tmp := *out + ".tmp"
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
	if err := os.Rename(tmp, *out); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("bundle create: %w", err)
	}
	signedBy := "unsigned index"
	if key != nil {
		signedBy = "index signed by key ID " + key.ID.String()
	}
	fmt.Fprintf(a.stdout, "wrote %s: %d plugins, %s\n", *out, len(inputs), signedBy)
	return nil
}

func runBundleInstall(ctx context.Context, a *app, args []string) error {
	fs := newFlags(a, "connhost bundle install", "FILE.chb [flags]",
		"Verifies the bundle (index signature, member hashes, each plugin against the trusted keys and\n"+
			"the downgrade check) before touching the data dir, then installs every plugin into --data-dir as\n"+
			"`connhost plugin install` does, compiling it here. Needs no network.")
	trusted := fs.StringArray("trusted-key", nil, "trusted minisign public key: a .pub `FILE` or the bare base64 key (repeatable)")
	requireSigned := fs.Bool("require-signed", false, "refuse unsigned plugins (otherwise they install with a warning)")
	config.RegisterFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return usageErr("bundle install: want one FILE.chb")
	}
	policy, err := signing.LoadPolicy(signing.PolicyConfig{TrustedKeys: *trusted, RequireSigned: *requireSigned})
	if err != nil {
		return usageErr("bundle install: --trusted-key: %w", err)
	}
	b, err := bundle.Open(fs.Arg(0), policy)
	if err != nil {
		return fmt.Errorf("bundle install: %w", err)
	}
	d, err := openDataDir(ctx, a, fs, true)
	if err != nil {
		return err
	}
	defer d.close(context.WithoutCancel(ctx))
	for _, w := range b.Warnings {
		d.log.Warn().Str("bundle", fs.Arg(0)).Msg(w)
	}
	// Every downgrade check passes before anything is installed.
	for _, p := range b.Plugins {
		if err := d.svc.Plugins.CheckDowngrade(ctx, p.Name, p.Version); err != nil {
			return fmt.Errorf("bundle install: %w", err)
		}
	}
	by := "bundle " + filepath.Base(fs.Arg(0))
	for _, p := range b.Plugins {
		pi, err := d.svc.Plugins.InstallVerified(ctx, p.Wasm, by)
		switch {
		case errors.Is(err, service.ErrInvalid):
			return withCode(exitIncompatible, fmt.Errorf("bundle install: plugin %s@%s: %w", p.Name, p.Version, err))
		case err != nil:
			return fmt.Errorf("bundle install: plugin %s@%s: %w", p.Name, p.Version, err)
		}
		how := "unsigned"
		if p.Verified.Signed {
			how = "signed by key ID " + p.Verified.KeyID.String()
		}
		fmt.Fprintf(a.stdout, "installed %s@%s sha256 %s (%s)\n", pi.Name, pi.Version, pi.SHA256, how)
	}
	return nil
}
