// Command connhost hosts security-automation connectors as sandboxed
// WebAssembly plugins. This binary carries the server (serve, apikey,
// plugin install), the plugin tooling (pack, inspect) and the local runner
// that plugin authors use in their inner loop.
//
// Exit codes: 0 success, 1 the command failed (the plugin returned an error
// or faulted), 2 usage or bad input (flags, params, args), 3 the plugin is
// incompatible with this host (malformed file, bad manifest, wrong ABI).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/spf13/pflag"
)

// Exit codes, documented in the package comment and the README.
const (
	exitOK           = 0
	exitFailed       = 1
	exitUsage        = 2
	exitIncompatible = 3
)

// exitError carries the exit code an error should produce.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &exitError{exitUsage, fmt.Errorf(format, args...)}
}

func withCode(code int, err error) error { return &exitError{code, err} }

// app holds what commands write to and read from, so tests and main share
// one path.
type app struct {
	stdout, stderr io.Writer
	environ        []string
}

// command is one node of the subcommand tree: a leaf has run, a group has
// sub.
type command struct {
	name    string
	summary string
	sub     []*command
	run     func(ctx context.Context, a *app, args []string) error
}

func commands() *command {
	return &command{name: "connhost", sub: []*command{
		{name: "plugin", summary: "build, examine and install plugin files", sub: []*command{
			packCommand(),
			inspectCommand(),
			validateCommand(),
			installCommand(),
			rollbackCommand(),
			keygenCommand(),
			signCommand(),
			verifyCommand(),
		}},
		bundleCommand(),
		initCommand(),
		runCommand(),
		serveCommand(),
		apikeyCommand(),
		{name: "version", summary: "print the version", run: runVersion},
	}}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := execute(ctx, &app{stdout: os.Stdout, stderr: os.Stderr, environ: os.Environ()}, os.Args[1:])
	stop()
	os.Exit(code)
}

// execute dispatches args to a subcommand and turns its error into an exit
// code, printing "error: ..." to stderr.
func execute(ctx context.Context, a *app, args []string) int {
	cmd, rest, path := commands(), args, "connhost"
	for cmd.run == nil {
		if len(rest) == 0 || rest[0] == "-h" || rest[0] == "--help" || rest[0] == "help" {
			printGroupUsage(a.stderr, path, cmd)
			if len(rest) == 0 {
				return exitUsage
			}
			return exitOK
		}
		next := find(cmd.sub, rest[0])
		if next == nil {
			fmt.Fprintf(a.stderr, "error: unknown command %q for %s\n", rest[0], path)
			printGroupUsage(a.stderr, path, cmd)
			return exitUsage
		}
		cmd, rest, path = next, rest[1:], path+" "+next.name
	}
	err := cmd.run(ctx, a, rest)
	if err == nil {
		return exitOK
	}
	if errors.Is(err, pflag.ErrHelp) {
		return exitOK
	}
	fmt.Fprintf(a.stderr, "error: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return exitFailed
}

func find(cmds []*command, name string) *command {
	for _, c := range cmds {
		if c.name == name {
			return c
		}
	}
	return nil
}

func printGroupUsage(w io.Writer, path string, cmd *command) {
	fmt.Fprintf(w, "usage: %s <command> [flags]\n\ncommands:\n", path)
	subs := append([]*command(nil), cmd.sub...)
	sort.Slice(subs, func(i, j int) bool { return subs[i].name < subs[j].name })
	for _, c := range subs {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun '%s <command> --help' for details.\n", path)
}

// newFlags returns a flag set for a leaf command whose usage names the
// command and its synopsis.
func newFlags(a *app, path, synopsis, summary string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(path, pflag.ContinueOnError)
	fs.SetOutput(a.stderr)
	fs.SortFlags = false
	fs.Usage = func() {
		fmt.Fprintf(a.stderr, "usage: %s %s\n\n%s\n\nflags:\n%s", path, synopsis, summary, fs.FlagUsages())
	}
	return fs
}

// parse parses args, mapping flag errors to usage errors.
func parse(fs *pflag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return usageErr("%v", err)
	}
	return nil
}

// keyValues parses repeated k=v flag values.
func keyValues(flag string, items []string) (map[string]string, error) {
	out := make(map[string]string, len(items))
	for _, it := range items {
		k, v, ok := strings.Cut(it, "=")
		if !ok || k == "" {
			return nil, usageErr("--%s %q: want NAME=VALUE", flag, it)
		}
		out[k] = v
	}
	return out, nil
}
