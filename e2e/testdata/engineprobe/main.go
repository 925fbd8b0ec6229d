// Command engineprobe is the engines e2e's plugin. Its commands reach the
// server's host functions from an engine (bump), fetch-incidents numbers
// its incidents from the last run the server keeps, and its long-running
// execution writes {run, ticks} to the integration context every 100 ms with
// the context version: run is a per-execution id, so the test sees which
// execution wrote, and a second copy running at once would lose the
// version race.
package main

import (
	"context"
	"fmt"
	"time"

	"github.com/connhost/connhost/abi"
	sdk "github.com/connhost/connhost/sdk-guest"
)

func main() {}

func init() { sdk.Register(connector) }

var connector = sdk.Connector{
	FetchIncidents: func(_ context.Context, _ *sdk.Host, lastRun map[string]any) ([]abi.Incident, map[string]any, error) {
		n, _ := lastRun["n"].(float64)
		return []abi.Incident{{Name: fmt.Sprintf("fetched %d", int(n)+1)}}, map[string]any{"n": n + 1}, nil
	},
	Commands: map[string]sdk.CommandFunc{
		"echo": func(_ context.Context, _ *sdk.Host, args sdk.Args) (any, error) {
			return args.Raw(), nil
		},
		"version": func(_ context.Context, h *sdk.Host, _ sdk.Args) (any, error) {
			return map[string]string{"version": h.PluginVersion()}, nil
		},
		"bump": func(ctx context.Context, h *sdk.Host, _ sdk.Args) (any, error) {
			var n float64
			err := h.UpdateIntegrationContext(ctx, func(m map[string]any) error {
				n, _ = m["count"].(float64)
				n++
				m["count"] = n
				return nil
			})
			return map[string]any{"count": n}, err
		},
	},
	LongRunningExecution: func(ctx context.Context, h *sdk.Host) error {
		run := fmt.Sprintf("run-%d", time.Now().UnixNano())
		return h.Every(ctx, 100*time.Millisecond, func(ctx context.Context, h *sdk.Host) error {
			v, ver, err := h.IntegrationContext(ctx)
			if err != nil {
				return err
			}
			if v == nil {
				v = map[string]any{}
			}
			ticks, _ := v["ticks"].(float64)
			v["run"], v["ticks"] = run, ticks+1
			if _, err := h.SetIntegrationContext(ctx, v, ver); err != nil {
				return err
			}
			return nil
		})
	},
}
