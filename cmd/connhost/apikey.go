package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/connhost/connhost/internal/config"
)

func apikeyCommand() *command {
	return &command{name: "apikey", summary: "create, list and revoke API keys (server stopped)", sub: []*command{
		{name: "create", summary: "create an API key and print it once", run: runAPIKeyCreate},
		{name: "list", summary: "list API keys (never the keys themselves)", run: runAPIKeyList},
		{name: "revoke", summary: "revoke an API key by id", run: runAPIKeyRevoke},
	}}
}

// apikeyNote explains why these commands need the server stopped.
const apikeyNote = "Opens the store in --data-dir directly, so it runs while `connhost serve` is stopped\n" +
	"(a running server holds the store's lock and this command fails with \"data dir in use\")."

func runAPIKeyCreate(ctx context.Context, a *app, args []string) error {
	fs := newFlags(a, "connhost apikey create", "--name NAME [flags]",
		"Creates an API key and prints it to stdout, the only time it is shown.\n"+apikeyNote)
	name := fs.String("name", "", "name of the key, e.g. the client that uses it (required)")
	config.RegisterFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *name == "" || fs.NArg() != 0 {
		return usageErr("apikey create: want --name NAME and no arguments")
	}
	d, err := openDataDir(ctx, a, fs, true)
	if err != nil {
		return err
	}
	defer d.close(context.WithoutCancel(ctx))
	key, v, err := d.svc.APIKeys.Create(ctx, *name)
	if err != nil {
		return withCode(exitUsage, fmt.Errorf("apikey create: %w", err))
	}
	fmt.Fprintln(a.stdout, key)
	fmt.Fprintf(a.stderr, "created API key %q (id %s); it is shown only this once\n", v.Name, v.ID)
	return nil
}

func runAPIKeyList(ctx context.Context, a *app, args []string) error {
	fs := newFlags(a, "connhost apikey list", "[flags]", "Lists API keys: id, name, prefix, dates, revoked.\n"+apikeyNote)
	asJSON := fs.Bool("json", false, "print JSON")
	config.RegisterFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageErr("apikey list: unexpected arguments %q", fs.Args())
	}
	d, err := openDataDir(ctx, a, fs, true)
	if err != nil {
		return err
	}
	defer d.close(context.WithoutCancel(ctx))
	keys, err := d.svc.APIKeys.List(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
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

func runAPIKeyRevoke(ctx context.Context, a *app, args []string) error {
	fs := newFlags(a, "connhost apikey revoke", "ID [flags]", "Revokes an API key; it stays listed.\n"+apikeyNote)
	config.RegisterFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErr("apikey revoke: want the key ID (see connhost apikey list)")
	}
	d, err := openDataDir(ctx, a, fs, true)
	if err != nil {
		return err
	}
	defer d.close(context.WithoutCancel(ctx))
	if err := d.svc.APIKeys.Revoke(ctx, fs.Arg(0)); err != nil {
		return withCode(exitUsage, err)
	}
	fmt.Fprintf(a.stderr, "revoked API key %s\n", fs.Arg(0))
	return nil
}
