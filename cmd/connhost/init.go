package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/connhost/connhost/internal/scaffold"
)

func initCommand() *command {
	return &command{name: "init", summary: "create a new connector project (Go on the SDK, or WAT)", run: runInit}
}

func runInit(_ context.Context, a *app, args []string) error {
	fs := newFlags(a, "connhost init", "NAME [--lang go|wat] [--dir DIR] [--module PATH] | --update-sdk DIR",
		"Creates a connector project in DIR (default ./NAME), which must not exist or be empty: manifest.json,\n"+
			"a Makefile (build, pack, test, validate, run, keygen, sign), a README and, for Go, main.go with every\n"+
			"reserved command stubbed, a test on the SDK's fake host and the SDK modules this binary carries in\n"+
			"third_party/connhost (go.mod points at them with replace: no download). NAME is the plugin name.\n"+
			"--update-sdk DIR rewrites the SDK copy of an existing Go project and nothing else.")
	lang := fs.String("lang", scaffold.LangGo, "project language: `LANG` go (the Go SDK) or wat (hand-written WebAssembly text)")
	dir := fs.String("dir", "", "project directory (default ./NAME)")
	mod := fs.String("module", "", "Go module `PATH` (default NAME)")
	update := fs.String("update-sdk", "", "rewrite the SDK copy of the Go project in `DIR`")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *update != "" {
		if fs.NArg() > 0 || fs.Changed("dir") || fs.Changed("lang") || fs.Changed("module") {
			return usageErr("init --update-sdk DIR takes no NAME and no other flags")
		}
		if err := scaffold.UpdateSDK(*update, versionString()); err != nil {
			return initErr(err)
		}
		fmt.Fprintf(a.stdout, "rewrote %s with the SDK of connhost %s\n", filepath.Join(*update, scaffold.SDKDir), versionString())
		return nil
	}
	if fs.NArg() != 1 {
		return usageErr("init: want one NAME, the plugin name")
	}
	name := fs.Arg(0)
	if *dir == "" {
		*dir = name
	}
	files, err := scaffold.Create(*dir, scaffold.Options{Name: name, Lang: *lang, Module: *mod, Version: versionString()})
	if err != nil {
		return initErr(err)
	}
	fmt.Fprintf(a.stdout, "created %s (%s, %d files)\n\nnext:\n  cd %s\n  make test    # unit tests, vet, validate\n  make run     # build, pack and run test-module locally\n",
		*dir, *lang, len(files), *dir)
	return nil
}

func initErr(err error) error {
	if errors.Is(err, scaffold.ErrInvalid) {
		return usageErr("init: %w", err)
	}
	return fmt.Errorf("init: %w", err)
}
