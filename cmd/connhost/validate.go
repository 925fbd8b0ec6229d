package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/internal/pluginlint"
)

func validateCommand(a *app) *cobra.Command {
	c := leaf("validate FILE.wasm | DIR | manifest.json", "check a plugin or a project's manifest for errors and likely mistakes",
		"Checks a packed plugin (its manifest, and its module against the default limits and the ABI v1\n"+
			"imports, as install does), or the manifest.json of a project directory, and lints the manifest:\n"+
			"XSOAR's conventional params (names, types, options), params and commands that need a capability\n"+
			"flag (isfetch, isremotesyncin, ...), undocumented commands, arguments and params. Prints one\n"+
			"line per finding, \"error: LOCATION: ...\" or \"warning: LOCATION: ...\". Exits 3 when the host\n"+
			"would refuse the plugin, 1 for other errors, 0 with warnings only.")
	c.RunE = func(c *cobra.Command, args []string) error {
		if len(args) != 1 {
			return argsErr("plugin validate: want one FILE.wasm, DIR or manifest.json")
		}
		return runValidate(c.Context(), a, args[0])
	}
	return c
}

func runValidate(ctx context.Context, a *app, target string) error {
	findings, refused, err := validateTarget(ctx, target)
	if err != nil {
		return usageErr("plugin validate: %w", err)
	}
	var errs, warns int
	for _, f := range findings {
		fmt.Fprintln(a.stdout, f)
		if f.Severity == pluginlint.Error {
			errs++
		} else {
			warns++
		}
	}
	fmt.Fprintf(a.stdout, "%s: %d errors, %d warnings\n", target, errs, warns)
	switch {
	case refused:
		return withCode(exitIncompatible, fmt.Errorf("plugin validate: %s: the host would refuse it", target))
	case errs > 0:
		return withCode(exitFailed, fmt.Errorf("plugin validate: %s: %d errors", target, errs))
	}
	return nil
}

// validateTarget returns the findings for a packed plugin, a project
// directory or a manifest file, each located by file and field path;
// refused reports findings the host itself would refuse the plugin for. err
// is for a target that cannot be read at all.
func validateTarget(ctx context.Context, target string) (findings []pluginlint.Finding, refused bool, err error) {
	st, err := os.Stat(target)
	if err != nil {
		return nil, false, err
	}
	file := target
	if st.IsDir() {
		file = filepath.Join(target, "manifest.json")
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, false, err
	}
	fail := func(path string, err error) {
		findings = append(findings, pluginlint.Finding{Severity: pluginlint.Error, Path: path, Message: err.Error()})
		refused = true
	}
	var m *abi.Manifest
	if strings.HasSuffix(file, ".wasm") {
		loc := file + " (manifest)"
		if m, err = abi.ReadManifest(b); err != nil {
			fail(file, err)
		}
		if err := host.CheckModule(ctx, b, host.ModuleLimits{}); err != nil {
			fail(file+" (module)", err)
		}
		file = loc
	} else if m, err = abi.DecodeManifest(b); err != nil {
		fail(file, err)
	}
	if m == nil {
		return findings, refused, nil
	}
	if err := m.Validate(); err != nil {
		for _, e := range splitErrors(err) {
			fail(file, e)
		}
	}
	for _, f := range pluginlint.Lint(m) {
		f.Path = strings.TrimSuffix(file+": "+f.Path, ": ")
		findings = append(findings, f)
	}
	return findings, refused, nil
}

// splitErrors undoes errors.Join, so each of Validate's problems is a line.
func splitErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
