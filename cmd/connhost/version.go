package main

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"

	"github.com/connhost/connhost/abi"
)

// version and commit are set at build time with -ldflags "-X
// main.version=... -X main.commit=..."; without them the module version
// and the VCS revision from the build info are used.
var (
	version = ""
	commit  = ""
)

// buildInfo is what `connhost version --json` prints.
type buildInfo struct {
	Version    string `json:"version"`
	Commit     string `json:"commit"`
	GoVersion  string `json:"go_version"`
	Platform   string `json:"platform"`
	ABIVersion int    `json:"abi_version"`
}

// versionString is the version: set by -ldflags, else the module version
// of the build info, else "devel".
func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

func currentBuild() buildInfo {
	b := buildInfo{Version: versionString(), Commit: commit, GoVersion: runtime.Version(),
		Platform: runtime.GOOS + "/" + runtime.GOARCH, ABIVersion: abi.Version}
	if bi, ok := debug.ReadBuildInfo(); ok && b.Commit == "" {
		var rev, dirty string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "-dirty"
				}
			}
		}
		if rev != "" {
			b.Commit = rev + dirty
		}
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	return b
}

// versionLine is the one line `connhost --version` and `connhost version`
// print.
func versionLine() string {
	b := currentBuild()
	commit, dirty := strings.CutSuffix(b.Commit, "-dirty")
	if len(commit) > 12 {
		commit = commit[:12]
	}
	if dirty {
		commit += "-dirty"
	}
	return fmt.Sprintf("connhost %s (commit %s, ABI v%d, %s %s)", b.Version, commit, b.ABIVersion, b.GoVersion, b.Platform)
}

func versionCommand(a *app) *cobra.Command {
	c := leaf("version", "print the version, commit, Go version and plugin ABI version",
		"Prints the version, the commit it was built from, the plugin ABI version it serves and the Go\n"+
			"runtime; --json prints them as a JSON object. `connhost --version` prints the same line.")
	asJSON := c.Flags().Bool("json", false, "print a JSON object")
	c.RunE = func(_ *cobra.Command, args []string) error {
		if len(args) > 0 {
			return argsErr("version takes no arguments")
		}
		if *asJSON {
			enc := json.NewEncoder(a.stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(currentBuild())
		}
		_, err := fmt.Fprintln(a.stdout, versionLine())
		return err
	}
	return c
}
