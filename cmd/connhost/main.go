// Command connhost hosts security-automation connectors as sandboxed
// WebAssembly plugins. This binary carries the server (serve, apikey,
// plugin install), the plugin tooling (pack, inspect) and the local runner
// that plugin authors use in their inner loop.
//
// Help (--help, -h, `connhost help [command]`) goes to stdout and exits 0;
// errors go to stderr. Exit codes: 0 success, 1 the command failed (the
// plugin returned an error or faulted), 2 usage or bad input (flags,
// params, args), 3 the plugin is incompatible with this host (malformed
// file, bad manifest, wrong ABI).
//
// The command tree is spf13/cobra's: a command is a function returning a
// *cobra.Command, registered with one line in newRoot (or in its group's
// constructor). It declares its own flags, and the configuration options
// it uses with serverFlags, so that --help and shell completion show only
// what applies to it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/connhost/connhost/internal/config"
)

// Exit codes, documented in the package comment and the README.
const (
	exitOK           = 0
	exitFailed       = 1
	exitUsage        = 2
	exitIncompatible = 3
)

// exitError carries the exit code an error should produce; hint adds a
// pointer to the command's --help (flag and argument mistakes).
type exitError struct {
	code int
	err  error
	hint bool
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// argsErr is a usage error in the command line itself: the report adds
// where to find the command's usage.
func argsErr(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...), hint: true}
}

func withCode(code int, err error) error { return &exitError{code: code, err: err} }

// app holds what commands write to and read from, so tests and main share
// one path.
type app struct {
	stdout, stderr io.Writer
	environ        []string
	// userCacheDir finds the user cache directory; nil means
	// os.UserCacheDir.
	userCacheDir func() (string, error)
}

// newRoot builds the command tree. A new subcommand is one more entry in
// the AddCommand list here or in its group's constructor.
func newRoot(a *app) *cobra.Command {
	root := &cobra.Command{
		Use:   "connhost",
		Short: "host security-automation connectors as sandboxed WebAssembly plugins",
		Long: "connhost hosts security-automation connectors as sandboxed WebAssembly plugins: a server\n" +
			"(serve, apikey, plugin install), plugin tooling (pack, inspect, sign) and a local runner (run).\n\n" +
			"Exit codes: 0 success, 1 the command failed, 2 usage or bad input, 3 plugin incompatible.",
		Version: versionLine(),
	}
	root.AddCommand(
		group(a, "plugin", "build, examine and install plugin files",
			packCommand(a),
			inspectCommand(a),
			installCommand(a),
			rollbackCommand(a),
			keygenCommand(a),
			signCommand(a),
			verifyCommand(a),
			validateCommand(a),
		),
		initCommand(a),
		bundleCommand(a),
		runCommand(a),
		serveCommand(a),
		engineCommand(a),
		apikeyCommand(a),
		versionCommand(a),
		completionCommand(a),
	)
	prepare(a, root)
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetUsageFunc(usage)
	root.SetHelpCommand(helpCommand(a, root))
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	// Every error is printed once, by execute, with its exit code.
	root.SilenceErrors = true
	root.SilenceUsage = true
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return argsErr("%v", err) })
	return root
}

// prepare applies what every command shares: a group answers a missing or
// unknown subcommand with a usage error, and help lists flags in the order
// they were declared.
func prepare(a *app, c *cobra.Command) {
	if c.HasSubCommands() {
		c.Args = unknownSubcommand
		c.RunE = func(c *cobra.Command, _ []string) error {
			fmt.Fprint(a.stderr, c.UsageString())
			return usageErr("%s: want a command", c.CommandPath())
		}
	}
	c.Flags().SortFlags = false
	for _, sub := range c.Commands() {
		prepare(a, sub)
	}
}

// usage is cobra's usage text with the configuration options listed apart
// from the command's own flags.
func usage(c *cobra.Command) error {
	var b strings.Builder
	b.WriteString("Usage:\n")
	if !c.HasSubCommands() {
		fmt.Fprintf(&b, "  %s\n", c.UseLine())
	}
	if c.HasAvailableSubCommands() {
		fmt.Fprintf(&b, "  %s [command]\n\nCommands:\n", c.CommandPath())
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() || sub.Name() == "help" {
				fmt.Fprintf(&b, "  %-*s %s\n", sub.NamePadding(), sub.Name(), sub.Short)
			}
		}
	}
	own := pflag.NewFlagSet(c.Name(), pflag.ContinueOnError)
	own.SortFlags = false
	cfg := pflag.NewFlagSet(c.Name(), pflag.ContinueOnError)
	cfg.SortFlags = false
	c.LocalFlags().VisitAll(func(f *pflag.Flag) {
		if configFlags[f.Name] {
			cfg.AddFlag(f)
		} else {
			own.AddFlag(f)
		}
	})
	if own.HasAvailableFlags() {
		fmt.Fprintf(&b, "\nFlags:\n%s", own.FlagUsages())
	}
	if cfg.HasAvailableFlags() {
		fmt.Fprintf(&b, "\nConfiguration flags (each option also comes from %s<KEY> or the --config file; see README.md):\n%s",
			config.EnvPrefix, cfg.FlagUsages())
	}
	if c.HasAvailableSubCommands() {
		fmt.Fprintf(&b, "\nUse \"%s [command] --help\" for more information about a command.\n", c.CommandPath())
	}
	_, err := io.WriteString(c.OutOrStderr(), b.String())
	return err
}

// configFlags names the flags of configuration options.
var configFlags = func() map[string]bool {
	m := map[string]bool{config.FlagConfigFile: true}
	for _, o := range config.Options() {
		m[o.Flag] = true
	}
	return m
}()

// group is a command that only holds subcommands.
func group(a *app, name, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{Use: name, Short: short}
	c.AddCommand(subs...)
	return c
}

// unknownSubcommand refuses arguments to a group: they can only be a
// misspelt command.
func unknownSubcommand(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
	if s := c.SuggestionsFor(args[0]); len(s) > 0 {
		msg += " (did you mean " + strings.Join(s, ", ") + "?)"
	}
	return argsErr("%s", msg)
}

// helpCommand replaces cobra's, which answers an unknown topic with exit 0.
func helpCommand(a *app, root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "help about any command",
		Args:  cobra.ArbitraryArgs,
		ValidArgsFunction: func(c *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			cmd, _, err := root.Find(args)
			if err != nil {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var out []cobra.Completion
			for _, sub := range cmd.Commands() {
				if sub.IsAvailableCommand() && strings.HasPrefix(sub.Name(), toComplete) {
					out = append(out, cobra.CompletionWithDesc(sub.Name(), sub.Short))
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(c *cobra.Command, args []string) error {
			cmd, rest, err := root.Find(args)
			if err != nil || len(rest) > 0 {
				return argsErr("help: unknown command %q", strings.Join(args, " "))
			}
			return cmd.Help()
		},
	}
}

// leaf is a command that runs: use is its synopsis ("run FILE.wasm
// COMMAND"), long its description.
func leaf(use, short, long string) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Long: long, Args: cobra.ArbitraryArgs}
}

// aliasFlag registers old as a hidden, deprecated spelling of the flag
// canonical, kept for one release: each use sets canonical and warns on
// stderr.
func aliasFlag(a *app, fs *pflag.FlagSet, old, canonical string) {
	target := fs.Lookup(canonical)
	if target == nil {
		panic("aliasFlag: no flag --" + canonical)
	}
	fs.Var(&alias{a: a, fs: fs, old: old, canonical: canonical, typ: target.Value.Type()}, old, "deprecated: use --"+canonical)
	if target.NoOptDefVal != "" {
		fs.Lookup(old).NoOptDefVal = target.NoOptDefVal
	}
	_ = fs.MarkHidden(old)
}

// alias is the value of a deprecated flag spelling.
type alias struct {
	a              *app
	fs             *pflag.FlagSet
	old, canonical string
	typ            string
	warned         bool
}

func (v *alias) String() string { return "" }
func (v *alias) Type() string   { return v.typ }
func (v *alias) Set(s string) error {
	if !v.warned {
		fmt.Fprintf(v.a.stderr, "warning: --%s is deprecated and will be removed in the next release; use --%s\n", v.old, v.canonical)
		v.warned = true
	}
	return v.fs.Set(v.canonical, s)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := execute(ctx, &app{stdout: os.Stdout, stderr: os.Stderr, environ: os.Environ(), userCacheDir: os.UserCacheDir}, os.Args[1:])
	stop()
	os.Exit(code)
}

// execute runs the command args name and turns its error into an exit
// code, printing "error: ..." to stderr.
func execute(ctx context.Context, a *app, args []string) int {
	if a.userCacheDir == nil {
		a.userCacheDir = os.UserCacheDir
	}
	root := newRoot(a)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(a.stderr, "error: %v\n", err)
	var ee *exitError
	if !errors.As(err, &ee) {
		return exitFailed
	}
	if ee.hint && cmd != nil {
		fmt.Fprintf(a.stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return ee.code
}
