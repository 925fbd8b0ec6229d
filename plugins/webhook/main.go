// Command webhook is connhost's generic webhook connector, after XSOAR's
// Generic Webhook: a long-running HTTP plugin that turns each POST into an
// incident. The host checks the credentials (params credentials_identifier
// and credentials_password) before a request reaches the plugin.
//
// Body (all optional): {"name", "type", "occurred" (RFC 3339), "raw_json"
// (any JSON object)}. The incident's rawJSON is raw_json with the request
// headers added under "headers".
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/connhost/connhost/abi"
	sdk "github.com/connhost/connhost/sdk-guest"
)

func main() {}

func init() { sdk.Register(Connector()) }

// DefaultName names incidents whose body gives none (XSOAR's default).
const DefaultName = "Generic webhook triggered incident"

// Connector returns the webhook connector.
func Connector() sdk.Connector {
	return sdk.Connector{
		LongRunningExecution: func(ctx context.Context, h *sdk.Host) error {
			// Requests are served by HTTP from the warm pool; the execution
			// only reports the instance healthy and waits.
			_ = h.SetHealthy(ctx)
			h.WaitForStop(ctx)
			return nil
		},
		HTTP: serve,
	}
}

// body is the optional JSON body of a webhook request.
type body struct {
	Name     string         `json:"name"`
	Type     string         `json:"type"`
	Occurred string         `json:"occurred"`
	RawJSON  map[string]any `json:"raw_json"`
}

func serve(ctx context.Context, h *sdk.Host, r *abi.HTTPRequest) (*abi.HTTPResponse, error) {
	if r.Method != "POST" {
		resp, err := sdk.JSONResponse(405, map[string]string{"error": "use POST"})
		if err != nil {
			return nil, err
		}
		resp.Headers["Allow"] = []string{"POST"}
		return resp, nil
	}
	inc, err := incident(h, r)
	if err != nil {
		return sdk.JSONResponse(400, map[string]string{"error": err.Error()})
	}
	ids, err := h.CreateIncidents(ctx, abi.CreateIncidentsRequest{Incidents: []abi.Incident{inc}})
	if err != nil {
		h.Errorf("create incident: %v", err)
		_ = h.SetUnhealthy(ctx, fmt.Errorf("create incident: %w", err))
		return sdk.JSONResponse(500, map[string]string{"error": "could not create the incident"})
	}
	return sdk.JSONResponse(200, map[string]any{"id": ids[0], "name": inc.Name})
}

// incident builds the incident of a request, or says why the body is bad.
func incident(h *sdk.Host, r *abi.HTTPRequest) (abi.Incident, error) {
	raw := r.Body
	var b body
	if len(strings.TrimSpace(string(raw))) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		if err := dec.Decode(&b); err != nil {
			return abi.Incident{}, fmt.Errorf("body: want a JSON object: %w", err)
		}
		if dec.More() {
			return abi.Incident{}, errors.New("body: trailing data after the JSON object")
		}
	}
	inc := abi.Incident{Name: strings.TrimSpace(b.Name), Type: b.Type}
	if inc.Name == "" {
		inc.Name = DefaultName
	}
	if inc.Type == "" {
		inc.Type = h.Params().String("incident_type")
	}
	if b.Occurred != "" {
		t, err := time.Parse(time.RFC3339Nano, b.Occurred)
		if err != nil {
			return abi.Incident{}, fmt.Errorf("occurred %q: want RFC 3339", b.Occurred)
		}
		inc.Occurred = t.UTC().Format(time.RFC3339Nano)
	}
	rawJSON := b.RawJSON
	if rawJSON == nil {
		rawJSON = map[string]any{}
	}
	headers := map[string]string{}
	for k, v := range r.Headers {
		headers[k] = strings.Join(v, ", ")
	}
	rawJSON["headers"] = headers
	enc, err := json.Marshal(rawJSON)
	if err != nil {
		return abi.Incident{}, fmt.Errorf("raw_json: %w", err)
	}
	inc.RawJSON = string(enc)
	return inc, nil
}
