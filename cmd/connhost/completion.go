package main

import (
	"strings"

	"github.com/spf13/cobra"
)

// shells are the shells completionCommand writes scripts for.
var shells = []string{"bash", "zsh", "fish"}

// completionCommand writes a completion script. The scripts call back into
// the binary (cobra's hidden __complete command), so they complete the
// commands and flags of the binary that runs, not of the one that wrote
// them.
func completionCommand(a *app) *cobra.Command {
	c := leaf("completion bash|zsh|fish", "print a shell completion script",
		"Prints a completion script for bash, zsh or fish to stdout. To load it:\n\n"+
			"  bash:  source <(connhost completion bash)      (needs the bash-completion package)\n"+
			"  zsh:   connhost completion zsh > \"${fpath[1]}/_connhost\"\n"+
			"  fish:  connhost completion fish > ~/.config/fish/completions/connhost.fish\n\n"+
			"Commands, flags, plugin files and, for `connhost run FILE.wasm`, the plugin's commands\n"+
			"and params are completed.")
	c.ValidArgs = shells
	noDesc := c.Flags().Bool("no-descriptions", false, "leave out the descriptions of completions")
	c.RunE = func(c *cobra.Command, args []string) error {
		if len(args) != 1 {
			return argsErr("completion: want one shell: %s", strings.Join(shells, ", "))
		}
		root := c.Root()
		switch args[0] {
		case "bash":
			return root.GenBashCompletionV2(a.stdout, !*noDesc)
		case "zsh":
			if *noDesc {
				return root.GenZshCompletionNoDesc(a.stdout)
			}
			return root.GenZshCompletion(a.stdout)
		case "fish":
			return root.GenFishCompletion(a.stdout, !*noDesc)
		}
		return argsErr("completion: unknown shell %q (want %s)", args[0], strings.Join(shells, ", "))
	}
	return c
}
