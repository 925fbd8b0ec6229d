package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/connhost/connhost/abi"
)

// version is set at build time with -ldflags "-X main.version=..."; without
// it the module version from the build info is used.
var version = ""

func versionString() string {
	v := version
	if v == "" {
		v = "devel"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
	}
	return v
}

func runVersion(_ context.Context, a *app, args []string) error {
	fs := newFlags(a, "connhost version", "", "Prints the version, the ABI version it serves and the Go runtime.")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("version takes no arguments")
	}
	fmt.Fprintf(a.stdout, "connhost %s (ABI v%d, %s %s/%s)\n", versionString(), abi.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}
