package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/config"
)

// inspectReport is what inspect prints; --json prints it as is.
type inspectReport struct {
	File       string        `json:"file"`
	Size       int           `json:"size"`
	SHA256     string        `json:"sha256"`
	Manifest   *abi.Manifest `json:"manifest,omitempty"`
	Compatible bool          `json:"compatible"`
	ABIVersion int           `json:"host_abi_version"`
	Problem    string        `json:"problem,omitempty"`
}

func inspectCommand(a *app) *cobra.Command {
	c := leaf("inspect FILE.wasm", "print a plugin's manifest, hash and ABI compatibility",
		"Prints the plugin's manifest, SHA-256 and size, and loads it through the host runtime to\n"+
			"check ABI compatibility (exports, imports, version). Exits 3 when it is incompatible.\n"+
			"Compiled plugins are cached as by `connhost run`.")
	asJSON := c.Flags().Bool("json", false, "print a JSON report")
	config.RegisterFlags(c.Flags(), runtimeOptions...)
	c.ValidArgsFunction = wasmFiles
	c.RunE = func(c *cobra.Command, args []string) error {
		if len(args) != 1 {
			return argsErr("plugin inspect: want one plugin file")
		}
		return runInspect(c.Context(), a, c.Flags(), args[0], *asJSON)
	}
	return c
}

// wasmFiles completes plugin files.
func wasmFiles(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return []cobra.Completion{"wasm"}, cobra.ShellCompDirectiveFilterFileExt
}

func runInspect(ctx context.Context, a *app, fs *pflag.FlagSet, path string, asJSON bool) error {
	cfg, err := loadRuntimeConfig(a, fs)
	if err != nil {
		return err
	}
	wasm, err := os.ReadFile(path)
	if err != nil {
		return usageErr("plugin inspect: %w", err)
	}
	sum := sha256.Sum256(wasm)
	rep := inspectReport{File: path, Size: len(wasm), SHA256: hex.EncodeToString(sum[:]), ABIVersion: abi.Version}
	if m, err := abi.ReadManifest(wasm); err == nil {
		rep.Manifest = m
	}

	_, rt, err := openRuntime(ctx, a, cfg)
	if err != nil {
		return err
	}
	defer rt.Close(ctx)
	p, loadErr := rt.Load(ctx, wasm)
	if loadErr == nil {
		rep.Compatible = true
		p.Close(ctx)
	} else {
		rep.Problem = loadErr.Error()
	}

	if asJSON {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printReport(a.stdout, rep)
	}
	if loadErr != nil {
		return withCode(exitIncompatible, fmt.Errorf("plugin %s: %w", path, loadErr))
	}
	return nil
}

func printReport(w io.Writer, r inspectReport) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "file:\t%s\n", r.File)
	fmt.Fprintf(tw, "size:\t%d bytes\n", r.Size)
	fmt.Fprintf(tw, "sha256:\t%s\n", r.SHA256)
	if m := r.Manifest; m != nil {
		fmt.Fprintf(tw, "name:\t%s\n", m.Name)
		if m.Display != "" {
			fmt.Fprintf(tw, "display:\t%s\n", m.Display)
		}
		fmt.Fprintf(tw, "version:\t%s\n", m.Version)
		fmt.Fprintf(tw, "abi_version:\t%d\n", m.ABIVersion)
		if m.Description != "" {
			fmt.Fprintf(tw, "description:\t%s\n", m.Description)
		}
		fmt.Fprintf(tw, "capabilities:\t%s\n", orNone(capabilities(m)))
		fmt.Fprintf(tw, "egress:\t%s\n", orNone(m.Egress))
	}
	if r.Compatible {
		fmt.Fprintf(tw, "compatible:\tyes (host ABI v%d)\n", r.ABIVersion)
	} else {
		fmt.Fprintf(tw, "compatible:\tNO: %s\n", r.Problem)
	}
	tw.Flush()
	if r.Manifest == nil {
		return
	}
	if len(r.Manifest.Params) > 0 {
		fmt.Fprintln(w, "\nparams:")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  NAME\tTYPE\tREQUIRED\tDEFAULT\tDISPLAY")
		for _, p := range r.Manifest.Params {
			def := ""
			if p.Default != nil && p.Type != abi.ParamSecret {
				def = fmt.Sprint(p.Default)
			}
			typ := string(p.Type)
			if p.Type == abi.ParamSelect {
				typ += " (" + strings.Join(p.Options, "|") + ")"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%v\t%s\t%s\n", p.Name, typ, p.Required, def, p.Display)
		}
		tw.Flush()
	}
	fmt.Fprintln(w, "\ncommands:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  NAME\tARGUMENTS\tDESCRIPTION")
	for _, c := range reservedCommands(r.Manifest) {
		fmt.Fprintf(tw, "  %s\t\t(reserved)\n", c)
	}
	for _, c := range r.Manifest.Commands {
		var args []string
		for _, arg := range c.Arguments {
			if arg.Required {
				args = append(args, arg.Name+"*")
			} else {
				args = append(args, arg.Name)
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", c.Name, strings.Join(args, " "), c.Description)
	}
	tw.Flush()
}

func capabilities(m *abi.Manifest) []string {
	var out []string
	for _, f := range []struct {
		on   bool
		name string
	}{
		{m.IsFetch, "isfetch"}, {m.IsMappable, "ismappable"}, {m.IsRemoteSyncIn, "isremotesyncin"},
		{m.IsRemoteSyncOut, "isremotesyncout"}, {m.LongRunning, "longRunning"}, {m.LongRunningHTTP, "longRunningHTTP"},
	} {
		if f.on {
			out = append(out, f.name)
		}
	}
	return out
}

// reservedCommands lists the reserved commands the manifest's flags imply.
func reservedCommands(m *abi.Manifest) []string {
	var out []string
	for _, c := range []string{
		abi.CommandTestModule, abi.CommandFetchIncidents, abi.CommandGetRemoteData,
		abi.CommandGetModifiedRemoteData, abi.CommandUpdateRemoteSystem,
		abi.CommandGetMappingFields, abi.CommandLongRunningExecution,
	} {
		if m.Supports(c) {
			out = append(out, c)
		}
	}
	return out
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ", ")
}
