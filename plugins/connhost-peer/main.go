// Command connhost-peer is a connhost connector that fetches incidents from
// another connhost tenant over its /api/v1 and mirrors them both ways:
// fields, tagged entries, close and reopen. Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared ./plugins/connhost-peer
//
// README.md describes the behaviour and its loop guards.
package main

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/connhost/connhost/abi"
	sdk "github.com/connhost/connhost/sdk-guest"
)

func main() {}

func init() { sdk.Register(connector) }

const (
	// incidentType is the type name of get-mapping-fields.
	incidentType = "connhost incident"
	// peerPlugin is this plugin's name: peer instances of this plugin hold
	// mirrored copies that must not be fetched back.
	peerPlugin = "connhost-peer"
	// markerField is the custom field set on incidents this connector
	// creates on the peer (XSOAR Mirroring's frompong): they are copies.
	markerField = "connhostpeerorigin"
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
}

func now() time.Time { return time.Now().UTC() }

func testModule(ctx context.Context, h *sdk.Host) error {
	c, _, err := newClient(h)
	if err != nil {
		return err
	}
	_, _, err = c.listPage(ctx, url.Values{}, "", 1)
	return err
}

// fetchIncidents returns peer incidents created at or after the last run's
// last_fetch, oldest first, at most max_fetch. Incidents created at exactly
// last_fetch were fetched already when listed in last_fetched_incidents.
// The peer lists incidents in creation order without a created filter, so
// the last run also keeps the cursor of the page where the fetch stopped,
// and the next fetch reads on from there instead of from the start.
func fetchIncidents(ctx context.Context, h *sdk.Host, lastRun map[string]any) ([]abi.Incident, map[string]any, error) {
	c, cfg, err := newClient(h)
	if err != nil {
		return nil, nil, err
	}
	since := now().Add(-cfg.firstFetch)
	if s, _ := lastRun["last_fetch"].(string); s != "" {
		if since, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return nil, nil, fmt.Errorf("last run: last_fetch %q: %w", s, err)
		}
	}
	seen := map[string]bool{}
	if ids, ok := lastRun["last_fetched_incidents"].([]any); ok {
		for _, id := range ids {
			if s, ok := id.(string); ok {
				seen[s] = true
			}
		}
	}
	cursor, _ := lastRun["cursor"].(string)
	led, err := readLedger(ctx, h)
	if err != nil {
		return nil, nil, err
	}
	guard := &loopGuard{c: c, led: led, plugins: map[string]string{}}
	q := url.Values{}
	if cfg.query != "" {
		q.Set("q", cfg.query)
	}

	var picked []incident
	for full := false; !full; {
		page, next, err := c.listPage(ctx, q, cursor, pageSize)
		if err != nil && cursor != "" && sdk.HTTPStatus(err) == 400 {
			h.Warnf("fetch: the peer refused the saved cursor (%v); reading from the start", err)
			cursor = ""
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		for _, inc := range page {
			if inc.Created.Before(since) || (inc.Created.Equal(since) && seen[inc.ID]) {
				continue
			}
			skip, err := guard.skip(ctx, inc)
			if err != nil {
				return nil, nil, err
			}
			if skip {
				h.Debugf("fetch: skipping peer incident %s: it is a mirrored copy", inc.ID)
				continue
			}
			if len(picked) == cfg.maxFetch {
				full = true
				break
			}
			picked = append(picked, inc)
		}
		if full || next == "" {
			break // read this page again next time: dedup skips what we took
		}
		cursor = next
	}
	slices.SortStableFunc(picked, func(a, b incident) int { return a.Created.Compare(b.Created) })

	last, lastIDs := since, []string{}
	for id := range seen {
		lastIDs = append(lastIDs, id)
	}
	incs := make([]abi.Incident, 0, len(picked))
	for _, inc := range picked {
		incs = append(incs, toIncident(inc, cfg))
		switch {
		case inc.Created.After(last):
			last, lastIDs = inc.Created, []string{inc.ID}
		case inc.Created.Equal(last):
			lastIDs = append(lastIDs, inc.ID)
		}
	}
	slices.Sort(lastIDs)
	h.Debugf("fetched %d peer incidents created since %s", len(incs), since.Format(time.RFC3339Nano))
	return incs, map[string]any{
		"last_fetch":             last.UTC().Format(time.RFC3339Nano),
		"last_fetched_incidents": lastIDs,
		"cursor":                 cursor,
	}, nil
}

// loopGuard decides which peer incidents are mirrored copies that must not
// be fetched (README.md, "Loop prevention").
type loopGuard struct {
	c       *client
	led     ledger
	plugins map[string]string // peer instance name → plugin, per fetch
}

func (g *loopGuard) skip(ctx context.Context, inc incident) (bool, error) {
	if g.led.createdRemote(inc.ID) || inc.CustomFields[markerField] != nil {
		return true, nil
	}
	inst := inc.DbotMirrorInstance
	if inst == "" {
		inst = inc.SourceInstance
	}
	if inc.DbotMirrorID == "" || inst == "" {
		return false, nil
	}
	plugin, ok := g.plugins[inst]
	if !ok {
		var err error
		plugin, err = g.c.instancePlugin(ctx, inst)
		if sdk.HTTPStatus(err) == 404 {
			err = nil // the instance is gone; its incidents are plain incidents now
		}
		if err != nil {
			return false, fmt.Errorf("peer incident %s: source instance %q: %w", inc.ID, inst, err)
		}
		g.plugins[inst] = plugin
	}
	return plugin == peerPlugin, nil
}

func toIncident(inc incident, cfg config) abi.Incident {
	out := abi.Incident{
		Name:                inc.Name,
		Type:                inc.Type,
		Severity:            inc.Severity,
		Details:             inc.Details,
		Owner:               inc.Owner,
		Labels:              inc.Labels,
		RawJSON:             string(inc.raw),
		CustomFields:        inc.CustomFields,
		DbotMirrorID:        inc.ID,
		DbotMirrorDirection: cfg.direction,
		DbotMirrorTags:      cfg.tags,
	}
	if !inc.Occurred.IsZero() {
		out.Occurred = inc.Occurred.UTC().Format(time.RFC3339Nano)
	}
	return out
}

// getModifiedRemoteData lists peer incidents modified after last_update,
// through every page. A failure other than a rate limit skips the cycle,
// as XSOAR's return_error does for this command.
func getModifiedRemoteData(ctx context.Context, h *sdk.Host, args abi.GetModifiedRemoteDataArgs) (abi.GetModifiedRemoteDataResponse, error) {
	res := abi.GetModifiedRemoteDataResponse{ModifiedIncidentIDs: []string{}}
	c, _, err := newClient(h)
	if err != nil {
		return res, err
	}
	since, err := time.Parse(time.RFC3339Nano, args.LastUpdate)
	if err != nil {
		return res, sdk.BadRequest("last_update %q: want RFC 3339", args.LastUpdate)
	}
	q := url.Values{"modifiedAfter": {since.UTC().Format(time.RFC3339Nano)}}
	cursor := ""
	for {
		page, next, err := c.listPage(ctx, q, cursor, pageSize)
		if err != nil {
			if abi.KindOf(err) == abi.KindRateLimited {
				return res, err
			}
			return res, sdk.SkipUpdate("skip update. error: " + err.Error())
		}
		for _, inc := range page {
			res.ModifiedIncidentIDs = append(res.ModifiedIncidentIDs, inc.ID)
		}
		if next == "" {
			return res, nil
		}
		cursor = next
	}
}

// getMappingFields describes the incident fields the peer accepts.
func getMappingFields(context.Context, *sdk.Host) (abi.GetMappingFieldsResponse, error) {
	return abi.GetMappingFieldsResponse{incidentType: {
		"name":         "Incident name.",
		"type":         "Incident type.",
		"severity":     "0 unknown, 0.5 informational, 1 low, 2 medium, 3 high, 4 critical.",
		"owner":        "User the incident is assigned to.",
		"details":      "Incident details.",
		"occurred":     "When the incident occurred (RFC 3339).",
		"labels":       "Labels: a list of {type, value}.",
		"status":       "0 pending, 1 active, 2 done, 3 archive (read only: close and reopen mirror as entries).",
		"closeReason":  "Why the incident was closed.",
		"closeNotes":   "Notes written when closing.",
		"CustomFields": "Custom fields, by name; each mirrors as its own field.",
	}}, nil
}

// hasContents reports whether contents carry anything to post.
func hasContents(v any) bool {
	switch c := v.(type) {
	case nil:
		return false
	case string:
		return strings.TrimSpace(c) != ""
	default:
		return true
	}
}
