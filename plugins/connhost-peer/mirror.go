package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/connhost/connhost/abi"
	sdk "github.com/connhost/connhost/sdk-guest"
)

// ctxRemoteUser is the EntryContext key of an incoming entry's author on
// the peer.
const ctxRemoteUser = "remoteUser"

// getRemoteData returns the peer incident's fields, the peer entries added
// since last_update that did not come from us, and close or reopen entries.
func getRemoteData(ctx context.Context, h *sdk.Host, args abi.GetRemoteDataArgs) (abi.GetRemoteDataResponse, error) {
	res := abi.GetRemoteDataResponse{Entries: []abi.Entry{}}
	c, cfg, err := newClient(h)
	if err != nil {
		return res, err
	}
	id := args.RemoteIncidentID
	if id == "" {
		return res, sdk.BadRequest("remote_incident_id is required")
	}
	var since time.Time
	if args.LastUpdate != "" {
		if since, err = time.Parse(time.RFC3339Nano, args.LastUpdate); err != nil {
			return res, sdk.BadRequest("last_update %q: want RFC 3339", args.LastUpdate)
		}
	}
	inc, err := c.get(ctx, id)
	if err != nil {
		return res, fmt.Errorf("peer incident %s: %w", id, err)
	}
	led, err := readLedger(ctx, h)
	if err != nil {
		return res, err
	}
	ours, inFlight := led.postedRemote(id)
	err = c.entries(ctx, id, func(e entry) bool {
		// Inclusive: an entry made in the same instant as the last sync is
		// delivered again rather than lost; its ID lets the host add it once.
		if e.Created.Before(since) || strings.HasPrefix(e.Origin, originMirrorPrefix) || ours[e.ID] ||
			(len(inFlight) > 0 && inFlight[contentsSum(e.Contents)]) {
			return true
		}
		res.Entries = append(res.Entries, abi.Entry{
			ID: e.ID, Type: e.Type, Contents: e.Contents, ContentsFormat: e.Format, Tags: e.Tags, Note: e.Note,
			EntryContext: map[string]any{ctxRemoteUser: e.User},
		})
		return true
	})
	if err != nil {
		return res, fmt.Errorf("peer incident %s: %w", id, err)
	}
	if cfg.closeIncident {
		switch t, err := closeTransition(ctx, h, inc); {
		case err != nil:
			return res, err
		case t == closedNow:
			res.Entries = append(res.Entries, abi.CloseEntry(inc.CloseReason, inc.CloseNotes))
		case t == reopened:
			res.Entries = append(res.Entries, abi.ReopenEntry())
		}
	}
	res.MirroredObject = mirroredObject(inc)
	return res, nil
}

func mirroredObject(inc incident) map[string]any {
	m := map[string]any{
		"name": inc.Name, "type": inc.Type, "severity": inc.Severity, "owner": inc.Owner,
		"details": inc.Details, "labels": inc.Labels, "CustomFields": inc.CustomFields,
		"status": inc.Status, "closeReason": inc.CloseReason, "closeNotes": inc.CloseNotes,
	}
	if m["labels"] == nil {
		m["labels"] = []abi.Label{}
	}
	if m["CustomFields"] == nil {
		m["CustomFields"] = map[string]any{}
	}
	if !inc.Occurred.IsZero() {
		m["occurred"] = inc.Occurred.UTC().Format(time.RFC3339Nano)
	}
	return m
}

type transition int

const (
	unchanged transition = iota
	closedNow
	reopened
)

// closeTransition tells whether the peer incident was closed or reopened
// since this connector last reported on it, from the ledger's closed ids.
func closeTransition(ctx context.Context, h *sdk.Host, inc incident) (transition, error) {
	t := unchanged
	err := updateLedger(ctx, h, func(l *ledger) bool {
		_, was := l.Closed[inc.ID]
		switch {
		case inc.closed() && !was:
			if l.Closed == nil {
				l.Closed = map[string]time.Time{}
			}
			l.Closed[inc.ID], t = now(), closedNow
		case !inc.closed() && was:
			delete(l.Closed, inc.ID)
			t = reopened
		default:
			t = unchanged
		}
		return t != unchanged
	})
	if err != nil {
		return unchanged, fmt.Errorf("peer incident %s: %w", inc.ID, err)
	}
	return t, nil
}

// standardFields are the incident fields the peer's PATCH accepts besides
// CustomFields; anything else in a delta that the host does not manage is
// a custom field.
var standardFields = map[string]bool{
	"name": true, "type": true, "severity": true, "owner": true, "details": true, "labels": true, "occurred": true,
}

// unmirrored are incident keys that never go out as field changes: ids and
// bookkeeping, the source record, and close state (sent as a close).
var unmirrored = map[string]bool{
	"id": true, "version": true, "status": true, "created": true, "modified": true, "closed": true,
	"closeReason": true, "closeNotes": true, "rawJSON": true, "sourceInstance": true, "sourceId": true,
	"investigationId": true, "CustomFields": true,
}

// updateRemoteSystem pushes changed fields, posts the entries the host
// selected by mirror tags and closes the peer incident when the incident
// was closed and close_out is on. Without a remote id it creates the peer
// incident. Every step is idempotent, since the host delivers at least once.
func updateRemoteSystem(ctx context.Context, h *sdk.Host, args abi.UpdateRemoteSystemArgs) (string, error) {
	c, cfg, err := newClient(h)
	if err != nil {
		return "", err
	}
	id := args.RemoteIncidentID
	if id == "" {
		if id, err = createRemote(ctx, h, c, args.Data); err != nil {
			return "", err
		}
	} else if args.IncidentChanged && len(args.Delta) > 0 {
		if fields := patchFields(args.Delta, args.Data); len(fields) > 0 {
			if err := c.patch(ctx, id, fields); err != nil {
				return "", fmt.Errorf("peer incident %s: %w", id, err)
			}
		}
	}
	if err := postEntries(ctx, h, c, id, args.Entries); err != nil {
		return "", err
	}
	if args.IncStatus == abi.StatusDone && cfg.closeOut {
		reason, _ := args.Data["closeReason"].(string)
		notes, _ := args.Data["closeNotes"].(string)
		// 409: already closed, e.g. the close came from the peer.
		if err := c.close(ctx, id, reason, notes); err != nil && sdk.HTTPStatus(err) != 409 {
			return "", fmt.Errorf("peer incident %s: %w", id, err)
		}
	}
	return id, nil
}

// createRemote creates the peer incident for a local one, or returns the
// one a previous, retried delivery created.
func createRemote(ctx context.Context, h *sdk.Host, c *client, data map[string]any) (string, error) {
	local, _ := data["id"].(string)
	if local != "" {
		led, err := readLedger(ctx, h)
		if err != nil {
			return "", err
		}
		if r, ok := led.Created[local]; ok {
			return r.Remote, nil
		}
	}
	fields := patchFields(data, data)
	if name, _ := fields["name"].(string); name == "" {
		return "", sdk.BadRequest("update-remote-system: no remote id and no incident name to create the peer incident from")
	}
	cf, _ := fields["CustomFields"].(map[string]any)
	if cf == nil {
		cf = map[string]any{}
	}
	for k, v := range cf {
		if v == nil {
			delete(cf, k) // nothing to delete on a new incident
		}
	}
	cf[markerField] = h.Instance().Name
	fields["CustomFields"] = cf
	inc, err := c.create(ctx, fields)
	if err != nil {
		return "", fmt.Errorf("create peer incident for %q: %w", local, err)
	}
	h.Infof("created peer incident %s for incident %s", inc.ID, local)
	if local == "" {
		return inc.ID, nil
	}
	err = updateLedger(ctx, h, func(l *ledger) bool {
		if l.Created == nil {
			l.Created = map[string]record{}
		}
		l.Created[local] = record{Remote: inc.ID, At: now()}
		return true
	})
	return inc.ID, err
}

// patchFields builds the PATCH body for the changed keys, with values from
// data where present (Jira's rule: the delta names fields, data holds
// their values). Custom fields are read from data's CustomFields or, as
// XSOAR flattens them, from data itself; one absent from both is removed.
func patchFields(changed, data map[string]any) map[string]any {
	out := map[string]any{}
	custom := map[string]any{}
	dataCF, _ := data["CustomFields"].(map[string]any)
	if cf, ok := changed["CustomFields"].(map[string]any); ok {
		for k := range cf {
			custom[k] = dataCF[k]
		}
	}
	for k, v := range changed {
		switch {
		case unmirrored[k] || strings.HasPrefix(k, "dbot"):
		case standardFields[k]:
			if dv, ok := data[k]; ok {
				v = dv
			}
			if s, ok := v.(string); ok && k == "name" && strings.TrimSpace(s) == "" {
				continue // the peer requires a name
			}
			switch {
			case v != nil:
				out[k] = v
			case k == "labels":
				out[k] = []abi.Label{} // cleared locally
			case k != "severity" && k != "occurred":
				out[k] = "" // cleared locally
			}
		default:
			if dv, ok := dataCF[k]; ok {
				v = dv
			} else if dv, ok := data[k]; ok {
				v = dv
			} else {
				v = nil
			}
			custom[k] = v
		}
	}
	if len(custom) > 0 {
		out["CustomFields"] = custom
	}
	return out
}

// postEntries posts each entry to the peer incident once, as its author
// marked "(peer) user", and records it so that a re-delivery skips it and
// get-remote-data does not bring it back.
func postEntries(ctx context.Context, h *sdk.Host, c *client, id string, entries []abi.ServerEntry) error {
	if len(entries) == 0 {
		return nil
	}
	led, err := readLedger(ctx, h)
	if err != nil {
		return err
	}
	for _, e := range entries {
		// A record without a remote id is a post that may not have been
		// made (the call failed or the process died): post it again.
		if r, done := led.Posted[id][e.ID]; done && r.Remote != "" && e.ID != "" {
			continue
		}
		if !hasContents(e.Contents) {
			continue // the peer refuses empty entries, and there is nothing to say
		}
		user := "(peer)"
		if e.User != "" {
			user += " " + e.User
		}
		in := entryInput{Type: e.Type, Contents: e.Contents, Format: e.Format, Tags: e.Tags, Note: e.Note, User: user}
		if _, isText := e.Contents.(string); !isText && (e.Format == abi.FormatText || e.Format == "") {
			in.Format = abi.FormatJSON
		}
		note := func(r record) error {
			return updateLedger(ctx, h, func(l *ledger) bool {
				if l.Posted == nil {
					l.Posted = map[string]map[string]record{}
				}
				if l.Posted[id] == nil {
					l.Posted[id] = map[string]record{}
				}
				l.Posted[id][e.ID] = r
				return true
			})
		}
		// Recorded before it is sent, so that no incoming cycle can see
		// the post without knowing it is ours.
		if e.ID != "" {
			if err := note(record{At: now(), Sum: contentsSum(in.Contents)}); err != nil {
				return fmt.Errorf("peer incident %s: entry %s: %w", id, e.ID, err)
			}
		}
		posted, err := c.addEntry(ctx, id, in)
		if err != nil {
			return fmt.Errorf("peer incident %s: entry %s: %w", id, e.ID, err)
		}
		if e.ID == "" {
			continue
		}
		err = note(record{Remote: posted.ID, At: now()})
		if err != nil {
			return fmt.Errorf("peer incident %s: entry %s posted as %s: %w", id, e.ID, posted.ID, err)
		}
	}
	return nil
}
