// Command goecho is the echo plugin written with the Go SDK: test-module
// answers "ok", echo returns its arguments object, version returns the
// plugin version the host configured (so hot-swap tests see which version
// answered), any other command is not_implemented. It behaves as plugins/watecho so that one conformance
// suite runs against both.
package main

import (
	"context"

	sdk "github.com/connhost/connhost/sdk-guest"
)

func main() {}

func init() { sdk.Register(connector) }

var connector = sdk.Connector{
	Configure: func(_ context.Context, h *sdk.Host) error {
		h.Infof("echo: configured")
		return nil
	},
	Commands: map[string]sdk.CommandFunc{
		"echo": func(_ context.Context, _ *sdk.Host, args sdk.Args) (any, error) {
			return args.Raw(), nil
		},
		"version": func(_ context.Context, h *sdk.Host, _ sdk.Args) (any, error) {
			return map[string]string{"version": h.PluginVersion()}, nil
		},
	},
}
