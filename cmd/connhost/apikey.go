package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/connhost/connhost/internal/config"
	"github.com/connhost/connhost/internal/service"
)

func apikeyCommand(a *app) *cobra.Command {
	return group(a, "apikey", "create, list and revoke API keys (server stopped)",
		apikeyCreateCommand(a),
		apikeyListCommand(a),
		apikeyRevokeCommand(a),
	)
}

// apikeyOptions are the configuration options of the apikey commands: the
// store and its secrets key.
var apikeyOptions = []string{"log", "data_dir", "secrets"}

// apikeyNote explains why these commands need the server stopped.
const apikeyNote = "Opens the store in --data-dir directly, so it runs while `connhost serve` is stopped\n" +
	"(a running server holds the store's lock and this command fails with \"data dir in use\")."

func apikeyCreateCommand(a *app) *cobra.Command {
	c := leaf("create --name NAME", "create an API key and print it once",
		"Creates an API key and prints it to stdout, the only time it is shown.\n"+apikeyNote)
	name := c.Flags().String("name", "", "name of the key, e.g. the client that uses it (required)")
	config.RegisterFlags(c.Flags(), apikeyOptions...)
	c.ValidArgsFunction = cobra.NoFileCompletions
	c.RunE = func(c *cobra.Command, args []string) error {
		if *name == "" || len(args) != 0 {
			return argsErr("apikey create: want --name NAME and no arguments")
		}
		return runAPIKeyCreate(c.Context(), a, c.Flags(), *name)
	}
	return c
}

func runAPIKeyCreate(ctx context.Context, a *app, fs *pflag.FlagSet, name string) error {
	if err := service.CheckAPIKeyName(name); err != nil {
		return withCode(exitUsage, fmt.Errorf("apikey create: %w", err))
	}
	sc, err := loadStoreConfig(a, fs)
	if err != nil {
		return err
	}
	d, err := sc.open(ctx, openMode{idle: true, create: true})
	if err != nil {
		return err
	}
	defer d.close(context.WithoutCancel(ctx))
	key, v, err := d.svc.APIKeys.Create(ctx, name)
	if err != nil {
		return withCode(exitUsage, fmt.Errorf("apikey create: %w", err))
	}
	fmt.Fprintln(a.stdout, key)
	fmt.Fprintf(a.stderr, "created API key %q (id %s); it is shown only this once\n", v.Name, v.ID)
	return nil
}

func apikeyListCommand(a *app) *cobra.Command {
	c := leaf("list", "list API keys (never the keys themselves)", "Lists API keys: id, name, prefix, dates, revoked.\n"+apikeyNote)
	asJSON := c.Flags().Bool("json", false, "print JSON")
	config.RegisterFlags(c.Flags(), apikeyOptions...)
	c.ValidArgsFunction = cobra.NoFileCompletions
	c.RunE = func(c *cobra.Command, args []string) error {
		if len(args) != 0 {
			return argsErr("apikey list: unexpected arguments %q", args)
		}
		return runAPIKeyList(c.Context(), a, c.Flags(), *asJSON)
	}
	return c
}

func runAPIKeyList(ctx context.Context, a *app, fs *pflag.FlagSet, asJSON bool) error {
	sc, err := loadStoreConfig(a, fs)
	if err != nil {
		return err
	}
	d, err := sc.open(ctx, openMode{idle: true})
	if err != nil {
		return err
	}
	defer d.close(context.WithoutCancel(ctx))
	keys, err := d.svc.APIKeys.List(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(keys)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tPREFIX\tCREATED\tLAST USED\tREVOKED")
	for _, k := range keys {
		last := "-"
		if !k.LastUsed.IsZero() {
			last = k.LastUsed.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s…\t%s\t%s\t%v\n", k.ID, k.Name, k.Prefix, k.Created.Format(time.RFC3339), last, k.Revoked)
	}
	return tw.Flush()
}

func apikeyRevokeCommand(a *app) *cobra.Command {
	c := leaf("revoke ID", "revoke an API key by id", "Revokes an API key; it stays listed.\n"+apikeyNote)
	config.RegisterFlags(c.Flags(), apikeyOptions...)
	c.ValidArgsFunction = cobra.NoFileCompletions
	c.RunE = func(c *cobra.Command, args []string) error {
		if len(args) != 1 {
			return argsErr("apikey revoke: want the key ID (see connhost apikey list)")
		}
		return runAPIKeyRevoke(c.Context(), a, c.Flags(), args[0])
	}
	return c
}

func runAPIKeyRevoke(ctx context.Context, a *app, fs *pflag.FlagSet, id string) error {
	sc, err := loadStoreConfig(a, fs)
	if err != nil {
		return err
	}
	d, err := sc.open(ctx, openMode{idle: true})
	if err != nil {
		return err
	}
	defer d.close(context.WithoutCancel(ctx))
	if err := d.svc.APIKeys.Revoke(ctx, id); err != nil {
		return withCode(exitUsage, err)
	}
	fmt.Fprintf(a.stderr, "revoked API key %s\n", id)
	return nil
}
