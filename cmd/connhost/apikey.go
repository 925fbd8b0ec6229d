package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/connhost/connhost/internal/config"
	"github.com/connhost/connhost/internal/service"
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
	"(a running server holds the store's lock and this command fails with \"data dir in use\");\n" +
	"while it runs, an admin key manages keys over the API: GET, POST /api/v1/apikeys, DELETE /api/v1/apikeys/{id}."

func runAPIKeyCreate(ctx context.Context, a *app, args []string) error {
	fs := newFlags(a, "connhost apikey create", "--name NAME [--role ROLE] [--expires WHEN] [flags]",
		"Creates an API key and prints it to stdout, the only time it is shown.\n"+
			"Roles: read (GET requests only), operator (also commands, fetches, incidents, entries, mirroring),\n"+
			"admin (everything: plugins, instances, users, API keys).\n"+apikeyNote)
	name := fs.String("name", "", "name of the key, e.g. the client that uses it (required)")
	role := fs.String("role", string(service.RoleAdmin), "what the key may do: read, operator or admin")
	expires := fs.String("expires", "", "when the key stops working: a duration from now (720h) or an RFC 3339 time; empty means never")
	config.RegisterFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *name == "" || fs.NArg() != 0 {
		return usageErr("apikey create: want --name NAME and no arguments")
	}
	spec := service.APIKeySpec{Name: *name, Role: service.Role(*role)}
	if *expires != "" {
		at, err := parseExpiry(*expires, time.Now())
		if err != nil {
			return usageErr("apikey create: --expires %q: %v", *expires, err)
		}
		spec.Expires = at
	}
	d, err := openDataDir(ctx, a, fs, true)
	if err != nil {
		return err
	}
	defer d.close(context.WithoutCancel(ctx))
	key, v, err := d.svc.APIKeys.Issue(ctx, spec)
	if err != nil {
		return withCode(exitUsage, fmt.Errorf("apikey create: %w", err))
	}
	fmt.Fprintln(a.stdout, key)
	until := "never expires"
	if !v.Expires.IsZero() {
		until = "expires " + v.Expires.Format(time.RFC3339)
	}
	fmt.Fprintf(a.stderr, "created API key %q (id %s, role %s, %s); it is shown only this once\n", v.Name, v.ID, v.Role, until)
	return nil
}

// parseExpiry reads --expires: a positive duration from now, or an RFC
// 3339 time.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("want a positive duration")
		}
		return now.Add(d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("want a duration (720h) or an RFC 3339 time (2027-01-31T00:00:00Z)")
	}
	return t, nil
}

func runAPIKeyList(ctx context.Context, a *app, args []string) error {
	fs := newFlags(a, "connhost apikey list", "[flags]", "Lists API keys: id, name, prefix, role, dates, revoked.\n"+apikeyNote)
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
	fmt.Fprintln(tw, "ID\tNAME\tPREFIX\tROLE\tCREATED\tEXPIRES\tLAST USED\tREVOKED")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t%s…\t%s\t%s\t%s\t%s\t%v\n", k.ID, k.Name, k.Prefix, k.Role, k.Created.Format(time.RFC3339),
			orDash(k.Expires), orDash(k.LastUsed), k.Revoked)
	}
	return tw.Flush()
}

// orDash formats t, or "-" for the zero time.
func orDash(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.RFC3339)
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
