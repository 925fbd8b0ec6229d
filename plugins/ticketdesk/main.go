// Command ticketdesk is the example connhost connector: it fetches
// TicketDesk tickets as incidents and mirrors them both ways. Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared ./plugins/ticketdesk
//
// README.md describes the TicketDesk API and the mirroring rules.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/connhost/connhost/abi"
	sdk "github.com/connhost/connhost/sdk-guest"
)

func main() {}

func init() { sdk.Register(connector) }

// Origin markers (README.md, "Loop prevention"): comments this connector
// posts carry originTag, and entries it creates from ticket comments carry
// fromTicketDeskTag, so neither side echoes the other's mirror back.
const (
	originTag         = "mirrored-from-connhost"
	fromTicketDeskTag = "from_ticketdesk"
	// closedKey is the integration context key of the ticket ids this
	// connector reported as closed, to recognize a reopen.
	closedKey = "closed_tickets"
	// modifiedLimit bounds get-modified-remote-data, as ServiceNow's
	// mirror_limit does.
	modifiedLimit = maxLimit
	incidentType  = "TicketDesk Ticket"
)

var connector = sdk.Connector{
	Configure: func(_ context.Context, h *sdk.Host) error {
		_, err := parseConfig(h.Params())
		return err
	},
	TestModule:            testModule,
	FetchIncidents:        fetchIncidents,
	GetModifiedRemoteData: getModifiedRemoteData,
	GetRemoteData:         getRemoteData,
	UpdateRemoteSystem:    updateRemoteSystem,
	GetMappingFields:      getMappingFields,
	Commands: map[string]sdk.CommandFunc{
		"ticketdesk-get-ticket":  getTicketCommand,
		"ticketdesk-add-comment": addCommentCommand,
	},
}

func testModule(ctx context.Context, h *sdk.Host) error {
	c, _, err := newClient(h)
	if err != nil {
		return err
	}
	return c.ping(ctx)
}

func now() time.Time { return time.Now().UTC() }

// fetchIncidents lists tickets created at or after the last run's
// last_fetch. Tickets sharing that second were already fetched and are
// listed in last_ids; they are skipped, and asked for on top of max_fetch
// so that they do not starve new tickets.
func fetchIncidents(ctx context.Context, h *sdk.Host, lastRun map[string]any) ([]abi.Incident, map[string]any, error) {
	c, cfg, err := newClient(h)
	if err != nil {
		return nil, nil, err
	}
	since := now().Add(-cfg.firstFetch).Truncate(time.Second)
	if s, _ := lastRun["last_fetch"].(string); s != "" {
		if since, err = time.Parse(time.RFC3339, s); err != nil {
			return nil, nil, fmt.Errorf("last run: last_fetch %q: %w", s, err)
		}
	}
	seen := map[string]bool{}
	if ids, ok := lastRun["last_ids"].([]any); ok {
		for _, id := range ids {
			if s, ok := id.(string); ok {
				seen[s] = true
			}
		}
	}
	tickets, err := c.list(ctx, "created", since, min(cfg.maxFetch+len(seen), maxLimit))
	if err != nil {
		return nil, nil, err
	}
	last, lastIDs := since, slices.Sorted(maps.Keys(seen))
	var incs []abi.Incident
	for _, t := range tickets {
		if seen[t.ID] || len(incs) == cfg.maxFetch {
			continue
		}
		created, err := time.Parse(time.RFC3339, t.Created)
		if err != nil {
			return nil, nil, fmt.Errorf("ticket %s: created %q: %w", t.ID, t.Created, err)
		}
		incs = append(incs, toIncident(t, cfg))
		switch {
		case created.After(last):
			last, lastIDs = created, []string{t.ID}
		case created.Equal(last):
			lastIDs = append(lastIDs, t.ID)
		}
	}
	h.Debugf("fetched %d tickets created since %s", len(incs), since.Format(time.RFC3339))
	return incs, map[string]any{"last_fetch": last.Format(time.RFC3339), "last_ids": lastIDs}, nil
}

func toIncident(t ticket, cfg config) abi.Incident {
	t.Comments = nil // comments arrive as entries through mirroring
	raw, _ := json.Marshal(t)
	inc := abi.Incident{
		Name:                t.ID + ": " + t.Title,
		Type:                incidentType,
		Severity:            float64(t.Severity),
		Occurred:            t.Created,
		Details:             t.Description,
		RawJSON:             string(raw),
		DbotMirrorID:        t.ID,
		DbotMirrorDirection: cfg.direction,
		DbotMirrorTags:      []string{cfg.commentTag},
	}
	if t.Assignee != "" {
		inc.Labels = []abi.Label{{Type: "assignee", Value: t.Assignee}}
	}
	return inc
}

// getModifiedRemoteData lists tickets updated at or after last_update. Any
// failure but a rate limit skips the cycle, as XSOAR's return_error does.
func getModifiedRemoteData(ctx context.Context, h *sdk.Host, args abi.GetModifiedRemoteDataArgs) (abi.GetModifiedRemoteDataResponse, error) {
	var res abi.GetModifiedRemoteDataResponse
	c, _, err := newClient(h)
	if err != nil {
		return res, err
	}
	since, err := time.Parse(time.RFC3339, args.LastUpdate)
	if err != nil {
		return res, sdk.BadRequest("last_update %q: want RFC 3339", args.LastUpdate)
	}
	tickets, err := c.list(ctx, "updated", since, modifiedLimit)
	if err != nil {
		if abi.KindOf(err) == abi.KindRateLimited {
			return res, err
		}
		return res, sdk.SkipUpdate("skip update. error: " + err.Error())
	}
	res.ModifiedIncidentIDs = make([]string, 0, len(tickets))
	for _, t := range tickets {
		res.ModifiedIncidentIDs = append(res.ModifiedIncidentIDs, t.ID)
	}
	return res, nil
}

// getRemoteData returns the ticket as the mirrored object, its comments
// since last_update as note entries, and close or reopen entries.
func getRemoteData(ctx context.Context, h *sdk.Host, args abi.GetRemoteDataArgs) (abi.GetRemoteDataResponse, error) {
	var res abi.GetRemoteDataResponse
	c, cfg, err := newClient(h)
	if err != nil {
		return res, err
	}
	if args.RemoteIncidentID == "" {
		return res, sdk.BadRequest("remote_incident_id is required")
	}
	since, err := time.Parse(time.RFC3339, args.LastUpdate)
	if err != nil {
		return res, sdk.BadRequest("last_update %q: want RFC 3339", args.LastUpdate)
	}
	t, err := c.get(ctx, args.RemoteIncidentID)
	if err != nil {
		return res, err
	}
	for _, cm := range t.Comments {
		created, err := time.Parse(time.RFC3339, cm.Created)
		if err != nil || !created.After(since) || slices.Contains(cm.Tags, originTag) {
			continue
		}
		res.Entries = append(res.Entries, abi.Entry{
			Type:           abi.EntryNote,
			ContentsFormat: abi.FormatMarkdown,
			Contents:       fmt.Sprintf("**%s** commented on %s (%s):\n\n%s", cm.Author, t.ID, cm.Created, cm.Body),
			Tags:           []string{fromTicketDeskTag},
			Note:           true,
		})
	}
	state, err := closeState(ctx, h, cfg, t)
	if err != nil {
		return res, err
	}
	switch state {
	case closedNow:
		res.Entries = append(res.Entries, abi.CloseEntry(t.CloseReason, t.CloseNotes))
	case reopened:
		res.Entries = append(res.Entries, abi.ReopenEntry())
	}
	t.Comments = nil
	res.MirroredObject = ticketFields(t)
	return res, nil
}

type transition int

const (
	unchanged transition = iota
	closedNow
	reopened
)

// closeState tells whether the ticket was closed or reopened since this
// connector last looked, remembering closed ids in the integration context
// (which other module instances update concurrently, hence the retries).
func closeState(ctx context.Context, h *sdk.Host, cfg config, t ticket) (transition, error) {
	if !cfg.closeIncident {
		return unchanged, nil
	}
	state := unchanged
	err := h.UpdateIntegrationContext(ctx, func(v map[string]any) error {
		state = unchanged
		closed, _ := v[closedKey].(map[string]any)
		if closed == nil {
			closed = map[string]any{}
		}
		was := closed[t.ID] != nil
		switch {
		case t.Status == statusClosed && !was:
			closed[t.ID], state = t.Updated, closedNow
		case t.Status != statusClosed && was:
			delete(closed, t.ID)
			state = reopened
		}
		v[closedKey] = closed
		return nil
	})
	if err != nil {
		return unchanged, fmt.Errorf("ticket %s: %w", t.ID, err)
	}
	return state, nil
}

func ticketFields(t ticket) map[string]any {
	return map[string]any{
		"id": t.ID, "title": t.Title, "description": t.Description, "severity": t.Severity,
		"status": t.Status, "close_reason": t.CloseReason, "close_notes": t.CloseNotes,
		"created": t.Created, "updated": t.Updated, "assignee": t.Assignee,
	}
}

// fieldMap maps incident fields to ticket fields for outgoing mirroring.
var fieldMap = map[string]string{
	"name": "title", "title": "title",
	"details": "description", "description": "description",
	"severity": "severity",
	"owner":    "assignee", "assignee": "assignee",
}

// updateRemoteSystem pushes changed fields, posts entries tagged with
// comment_tag as comments and closes the ticket when the incident was
// closed and close_out is on. Without a remote id it creates the ticket.
func updateRemoteSystem(ctx context.Context, h *sdk.Host, args abi.UpdateRemoteSystemArgs) (string, error) {
	c, cfg, err := newClient(h)
	if err != nil {
		return "", err
	}
	id := args.RemoteIncidentID
	if id == "" {
		fields := patchFields(args.Data, args.Data)
		if _, ok := fields["title"]; !ok {
			return "", sdk.BadRequest("update-remote-system: no remote id and no incident name to create a ticket from")
		}
		t, err := c.create(ctx, fields)
		if err != nil {
			return "", err
		}
		id = t.ID
		h.Infof("created ticket %s", id)
	} else if args.IncidentChanged && len(args.Delta) > 0 {
		if fields := patchFields(args.Delta, args.Data); len(fields) > 0 {
			if err := c.patch(ctx, id, fields); err != nil {
				return "", err
			}
		}
	}
	for _, e := range args.Entries {
		if !slices.Contains(e.Tags, cfg.commentTag) || slices.Contains(e.Tags, fromTicketDeskTag) {
			continue
		}
		body := entryText(e)
		if body == "" {
			continue
		}
		author := e.User
		if author == "" {
			author = "connhost"
		}
		if _, err := c.comment(ctx, id, comment{Body: body, Author: author, Tags: []string{originTag}}); err != nil {
			return "", fmt.Errorf("entry %s: %w", e.ID, err)
		}
	}
	if args.IncStatus == abi.StatusDone && cfg.closeOut {
		reason, _ := args.Data["closeReason"].(string)
		notes, _ := args.Data["closeNotes"].(string)
		if err := c.close(ctx, id, reason, notes); err != nil {
			return "", err
		}
	}
	return id, nil
}

// patchFields takes the mapped keys of changed, with values from data when
// present (Jira's rule: the delta names fields, data holds their values).
func patchFields(changed, data map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range changed {
		f, ok := fieldMap[k]
		if !ok {
			continue
		}
		if dv, ok := data[k]; ok {
			v = dv
		}
		if f == "severity" {
			n, ok := v.(float64)
			if !ok || n < 1 {
				continue // unknown or informational severity has no ticket level
			}
			v = min(int(n), 4)
		}
		out[f] = v
	}
	return out
}

func entryText(e abi.ServerEntry) string {
	switch v := e.Contents.(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

func getMappingFields(context.Context, *sdk.Host) (abi.GetMappingFieldsResponse, error) {
	return abi.GetMappingFieldsResponse{incidentType: {
		"title":        "Short summary of the ticket.",
		"description":  "Full description.",
		"severity":     "1 low, 2 medium, 3 high, 4 critical.",
		"status":       "open or closed.",
		"assignee":     "User the ticket is assigned to.",
		"close_reason": "Why the ticket was closed.",
		"close_notes":  "Notes written when closing.",
	}}, nil
}

func getTicketCommand(ctx context.Context, h *sdk.Host, args sdk.Args) (any, error) {
	id, err := args.Required("id")
	if err != nil {
		return nil, err
	}
	c, _, err := newClient(h)
	if err != nil {
		return nil, err
	}
	t, err := c.get(ctx, id)
	if err != nil {
		return nil, err
	}
	var md strings.Builder
	fmt.Fprintf(&md, "### TicketDesk ticket %s\n|Title|Severity|Status|Assignee|Updated|\n|---|---|---|---|---|\n", t.ID)
	fmt.Fprintf(&md, "|%s|%d|%s|%s|%s|\n", mdCell(t.Title), t.Severity, t.Status, mdCell(t.Assignee), t.Updated)
	return abi.CommandResults{
		ReadableOutput: md.String(), OutputsPrefix: "TicketDesk.Ticket", OutputsKeyField: "id",
		Outputs: t, RawResponse: t,
	}, nil
}

func addCommentCommand(ctx context.Context, h *sdk.Host, args sdk.Args) (any, error) {
	id, err := args.Required("id")
	if err != nil {
		return nil, err
	}
	body, err := args.Required("body")
	if err != nil {
		return nil, err
	}
	c, _, err := newClient(h)
	if err != nil {
		return nil, err
	}
	cm, err := c.comment(ctx, id, comment{Body: body, Author: "connhost"})
	if err != nil {
		return nil, err
	}
	return abi.CommandResults{
		ReadableOutput: fmt.Sprintf("Comment %s added to ticket %s.", cm.ID, id),
		OutputsPrefix:  "TicketDesk.Comment", OutputsKeyField: "id", Outputs: cm,
	}, nil
}

func mdCell(s string) string { return strings.NewReplacer("|", "\\|", "\n", " ").Replace(s) }
