// Command chatbot is a minimal chat connector, used to test the chat host
// functions end to end. Its "channel" is the integration context: every
// send-notification it receives is appended there (key "received"). A
// mirrored entry whose text contains "guid=<GUID>" is a question; the bot
// answers it at once with handleEntitlementForUser, as a chat user
// clicking a reply button would.
package main

import (
	"context"
	"fmt"
	"regexp"
	"strconv"

	"github.com/connhost/connhost/abi"
	sdk "github.com/connhost/connhost/sdk-guest"
)

func main() {}

func init() { sdk.Register(Connector()) }

var guidRe = regexp.MustCompile(`guid=([A-Za-z0-9_-]+)`)

// Connector returns the chat bot connector.
func Connector() sdk.Connector {
	return sdk.Connector{
		LongRunningExecution: func(ctx context.Context, h *sdk.Host) error {
			h.WaitForStop(ctx)
			return nil
		},
		SendNotification: notify,
		Commands: map[string]sdk.CommandFunc{
			"chatbot-mirror": func(ctx context.Context, h *sdk.Host, a sdk.Args) (any, error) {
				autoClose, _ := strconv.ParseBool(a.String("auto_close"))
				typ := a.String("mirror_type")
				if typ == "" {
					typ = "all"
				}
				err := h.MirrorInvestigation(ctx, abi.MirrorInvestigationRequest{
					IncidentID: a.String("incident_id"), MirrorType: typ, AutoClose: autoClose,
				})
				return "mirrored", err
			},
			"chatbot-dm": func(ctx context.Context, h *sdk.Host, a sdk.Args) (any, error) {
				anyone, _ := strconv.ParseBool(a.String("anyone_can_open_incidents"))
				return h.DirectMessage(ctx, abi.DirectMessageRequest{
					Message: a.String("message"), Username: a.String("username"), Email: a.String("email"),
					AnyoneCanOpenIncidents: anyone,
				})
			},
			"chatbot-received": func(ctx context.Context, h *sdk.Host, _ sdk.Args) (any, error) {
				c, _, err := h.IntegrationContext(ctx)
				if err != nil {
					return nil, err
				}
				if c["received"] == nil {
					return []any{}, nil
				}
				return c["received"], nil
			},
		},
	}
}

// notify records a notification in the channel and answers questions.
func notify(ctx context.Context, h *sdk.Host, args map[string]any) error {
	if err := h.UpdateIntegrationContext(ctx, func(c map[string]any) error {
		list, _ := c["received"].([]any)
		c["received"] = append(list, args)
		return nil
	}); err != nil {
		return err
	}
	msg, _ := args["message"].(string)
	m := guidRe.FindStringSubmatch(msg)
	if args["messageType"] != "mirrorEntry" || m == nil {
		return nil
	}
	incident, _ := args["incident_id"].(string)
	if err := h.HandleEntitlementForUser(ctx, abi.EntitlementRequest{
		IncidentID: incident, GUID: m[1], Email: h.Params().String("user_email"), Content: h.Params().String("answer"),
	}); err != nil {
		return fmt.Errorf("answer question %s of incident %s: %w", m[1], incident, err)
	}
	return nil
}
