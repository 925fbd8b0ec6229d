// Command lrguest is a test plugin for the supervisor. Its parameter mode
// selects the long-running execution: panic3 panics on its third iteration,
// ignore spins without ever checking for a stop request, return returns at
// once, cooperative waits for the stop request.
package main

import (
	"context"
	"time"

	sdk "github.com/connhost/connhost/sdk-guest"
)

// spins is written by the spinning loop so the compiler keeps it.
var spins uint64

func main() {}

func init() {
	sdk.Register(sdk.Connector{
		LongRunningExecution: func(ctx context.Context, h *sdk.Host) error {
			switch h.Params().String("mode") {
			case "panic3":
				n := 0
				return h.Every(ctx, 20*time.Millisecond, func(context.Context, *sdk.Host) error {
					if n++; n == 3 {
						panic("third iteration")
					}
					return nil
				})
			case "ignore":
				for {
					spins++
				}
			case "return":
				return nil
			}
			h.WaitForStop(ctx)
			return nil
		},
		Commands: map[string]sdk.CommandFunc{
			"ping": func(context.Context, *sdk.Host, sdk.Args) (any, error) { return "pong", nil },
		},
	})
}
