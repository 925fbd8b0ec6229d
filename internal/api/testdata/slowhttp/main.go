// Command slowhttp is a test plugin for the limits of HTTP requests into
// long-running plugins. A request with query "fast" is answered at once;
// any other adds one to "waiting" in the integration context, so a test
// can see it in flight, and then waits until its call deadline.
package main

import (
	"context"
	"time"

	"github.com/connhost/connhost/abi"
	sdk "github.com/connhost/connhost/sdk-guest"
)

func main() {}

func init() {
	sdk.Register(sdk.Connector{
		LongRunningExecution: func(ctx context.Context, h *sdk.Host) error {
			h.WaitForStop(ctx)
			return nil
		},
		HTTP: func(ctx context.Context, h *sdk.Host, r *abi.HTTPRequest) (*abi.HTTPResponse, error) {
			if r.Query == "fast" {
				return sdk.JSONResponse(200, map[string]string{"answer": "fast"})
			}
			err := h.UpdateIntegrationContext(ctx, func(m map[string]any) error {
				n, _ := m["waiting"].(float64)
				m["waiting"] = n + 1
				return nil
			})
			if err != nil {
				return nil, err
			}
			h.Sleep(ctx, time.Hour) // returns when the call deadline passes
			return sdk.JSONResponse(200, map[string]string{"answer": "slow"})
		},
	})
}
