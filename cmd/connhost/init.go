package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/connhost/connhost/internal/scaffold"
)

func initCommand(a *app) *cobra.Command {
	c := leaf("init NAME [--lang go|wat] [--dir DIR] [--module PATH] | --update-sdk DIR", "create a new connector project (Go on the SDK, or WAT)",
		"Creates a connector project in DIR (default ./NAME), which must not exist or be empty: manifest.json,\n"+
			"a Makefile (build, pack, test, validate, run, keygen, sign), a README and, for Go, main.go with every\n"+
			"reserved command stubbed, a test on the SDK's fake host and the SDK modules this binary carries in\n"+
			"third_party/connhost (go.mod points at them with replace: no download). NAME is the plugin name.\n"+
			"--update-sdk DIR rewrites the SDK copy of an existing Go project and nothing else.")
	lang := c.Flags().String("lang", scaffold.LangGo, "project language: `LANG` go (the Go SDK) or wat (hand-written WebAssembly text)")
	dir := c.Flags().String("dir", "", "project directory (default ./NAME)")
	mod := c.Flags().String("module", "", "Go module `PATH` (default NAME)")
	update := c.Flags().String("update-sdk", "", "rewrite the SDK copy of the Go project in `DIR`")
	_ = c.MarkFlagDirname("dir")
	_ = c.MarkFlagDirname("update-sdk")
	_ = c.RegisterFlagCompletionFunc("lang", cobra.FixedCompletions([]cobra.Completion{scaffold.LangGo, scaffold.LangWAT}, cobra.ShellCompDirectiveNoFileComp))
	c.ValidArgsFunction = cobra.NoFileCompletions
	c.RunE = func(c *cobra.Command, args []string) error {
		if *update != "" {
			if len(args) > 0 || c.Flags().Changed("dir") || c.Flags().Changed("lang") || c.Flags().Changed("module") {
				return argsErr("init --update-sdk DIR takes no NAME and no other flags")
			}
			if err := scaffold.UpdateSDK(*update, versionString()); err != nil {
				return initErr(err)
			}
			fmt.Fprintf(a.stdout, "rewrote %s with the SDK of connhost %s\n", filepath.Join(*update, scaffold.SDKDir), versionString())
			return nil
		}
		if len(args) != 1 {
			return argsErr("init: want one NAME, the plugin name")
		}
		return runInit(a, args[0], *lang, *dir, *mod)
	}
	return c
}

func runInit(a *app, name, lang, dir, mod string) error {
	if dir == "" {
		dir = name
	}
	files, err := scaffold.Create(dir, scaffold.Options{Name: name, Lang: lang, Module: mod, Version: versionString()})
	if err != nil {
		return initErr(err)
	}
	fmt.Fprintf(a.stdout, "created %s (%s, %d files)\n\nnext:\n  cd %s\n  make test    # unit tests, vet, validate\n  make run     # build, pack and run test-module locally\n",
		dir, lang, len(files), dir)
	return nil
}

func initErr(err error) error {
	if errors.Is(err, scaffold.ErrInvalid) {
		return usageErr("init: %w", err)
	}
	return fmt.Errorf("init: %w", err)
}
