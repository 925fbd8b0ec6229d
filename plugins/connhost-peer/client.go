package main

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/connhost/connhost/abi"
	sdk "github.com/connhost/connhost/sdk-guest"
)

// incident is a peer incident as GET /api/v1/incidents returns it (the
// JSON of the peer's apitypes.Incident); only the fields this connector reads.
type incident struct {
	ID                 string             `json:"id"`
	Name               string             `json:"name"`
	Type               string             `json:"type"`
	Severity           float64            `json:"severity"`
	Status             abi.IncidentStatus `json:"status"`
	Occurred           time.Time          `json:"occurred"`
	Created            time.Time          `json:"created"`
	Modified           time.Time          `json:"modified"`
	Owner              string             `json:"owner"`
	Labels             []abi.Label        `json:"labels"`
	Details            string             `json:"details"`
	CustomFields       map[string]any     `json:"CustomFields"`
	CloseReason        string             `json:"closeReason"`
	CloseNotes         string             `json:"closeNotes"`
	SourceInstance     string             `json:"sourceInstance"`
	DbotMirrorID       string             `json:"dbotMirrorId"`
	DbotMirrorInstance string             `json:"dbotMirrorInstance"`

	raw json.RawMessage // the whole record, for rawJSON
}

// UnmarshalJSON keeps the raw record next to the decoded fields.
func (i *incident) UnmarshalJSON(b []byte) error {
	type plain incident
	if err := json.Unmarshal(b, (*plain)(i)); err != nil {
		return err
	}
	i.raw = append(json.RawMessage(nil), b...)
	return nil
}

func (i incident) closed() bool { return i.Status == abi.StatusDone || i.Status == abi.StatusArchive }

// entry is a peer war-room entry (the JSON of the peer's apitypes.Entry).
type entry struct {
	ID       string        `json:"id"`
	Type     abi.EntryType `json:"type"`
	Contents any           `json:"contents"`
	Format   string        `json:"format"`
	Tags     []string      `json:"tags"`
	Note     bool          `json:"note"`
	User     string        `json:"user"`
	Created  time.Time     `json:"created"`
	Origin   string        `json:"origin"`
}

// entryInput is the body of POST /incidents/{id}/entries. The peer decodes
// bodies strictly, so it carries exactly the fields the API knows.
type entryInput struct {
	Type     abi.EntryType `json:"type,omitempty"`
	Contents any           `json:"contents"`
	Format   string        `json:"format,omitempty"`
	Tags     []string      `json:"tags,omitempty"`
	Note     bool          `json:"note,omitempty"`
	User     string        `json:"user,omitempty"`
}

// originMirrorPrefix starts the origin of entries the peer's own mirroring
// engine added (store.OriginMirrorPrefix on the peer).
const originMirrorPrefix = "mirror:"

// pageSize is the page the peer API serves at most.
const pageSize = 500

// maxFetchLimit bounds max_fetch.
const maxFetchLimit = 200

// config is the parsed instance parameters.
type config struct {
	base          *url.URL
	apiKey        string
	firstFetch    time.Duration
	maxFetch      int
	direction     string // abi.Mirror* value
	tags          []string
	closeIncident bool
	closeOut      bool
	query         string
}

// parseConfig validates the parameters; problems are bad_request errors
// naming the parameter, never showing the key.
func parseConfig(p sdk.Params) (config, error) {
	c := config{
		apiKey:        p.Secret("api_key"),
		maxFetch:      p.Int("max_fetch"),
		closeIncident: p.Bool("close_incident"),
		closeOut:      p.Bool("close_out"),
		query:         strings.TrimSpace(p.String("incidents_fetch_query")),
	}
	u, err := p.URL("url")
	if err != nil {
		return c, err
	}
	u.Path = strings.TrimSuffix(u.Path, "/api/v1")
	c.base = u
	if c.apiKey == "" {
		return c, sdk.BadRequest("param api_key: required")
	}
	if c.firstFetch, err = p.Age("first_fetch", "3 days"); err != nil {
		return c, err
	}
	if !p.Has("max_fetch") {
		c.maxFetch = 50
	}
	if c.maxFetch < 1 || c.maxFetch > maxFetchLimit {
		return c, sdk.BadRequest("param max_fetch: want 1..%d, got %v", maxFetchLimit, p.Number("max_fetch"))
	}
	if c.direction, err = p.MirrorDirection("mirror_direction", "Incoming And Outgoing"); err != nil {
		return c, err
	}
	tags := p.String("mirror_tags")
	if !p.Has("mirror_tags") {
		tags = "comment"
	}
	for t := range strings.SplitSeq(tags, ",") {
		if t = strings.TrimSpace(t); t != "" {
			c.tags = append(c.tags, t)
		}
	}
	return c, nil
}

// client calls the peer's API through the host's http_request. Errors name
// the method and path, never the key.
type client struct {
	cfg config
	api sdk.APIClient
}

func newClient(h *sdk.Host) (*client, config, error) {
	cfg, err := parseConfig(h.Params())
	if err != nil {
		return nil, cfg, err
	}
	base := *cfg.base
	base.Path += "/api/v1"
	return &client{cfg: cfg, api: sdk.APIClient{
		Name: "peer", Base: &base, HTTP: h,
		Header: sdk.Header{"Authorization": {"Bearer " + cfg.apiKey}},
	}}, cfg, nil
}

func incidentPath(id string) string { return "/incidents/" + url.PathEscape(id) }

// listPage returns one page of GET /incidents and the next cursor.
func (c *client) listPage(ctx context.Context, q url.Values, cursor string, limit int) ([]incident, string, error) {
	q.Set("limit", strconv.Itoa(limit))
	q.Del("cursor")
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	var page struct {
		Incidents []incident `json:"incidents"`
		Next      string     `json:"next"`
	}
	err := c.api.Do(ctx, "GET", "/incidents", q, nil, &page)
	return page.Incidents, page.Next, err
}

func (c *client) get(ctx context.Context, id string) (incident, error) {
	var inc incident
	err := c.api.Do(ctx, "GET", incidentPath(id), nil, nil, &inc)
	return inc, err
}

// entries calls fn for each entry of incident id, oldest first, until fn
// returns false.
func (c *client) entries(ctx context.Context, id string, fn func(entry) bool) error {
	cursor := ""
	for {
		q := url.Values{"limit": {strconv.Itoa(pageSize)}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var page struct {
			Entries []entry `json:"entries"`
			Next    string  `json:"next"`
		}
		if err := c.api.Do(ctx, "GET", incidentPath(id)+"/entries", q, nil, &page); err != nil {
			return err
		}
		for _, e := range page.Entries {
			if !fn(e) {
				return nil
			}
		}
		if page.Next == "" {
			return nil
		}
		cursor = page.Next
	}
}

// instancePlugin returns the plugin name of a peer instance.
func (c *client) instancePlugin(ctx context.Context, name string) (string, error) {
	var v struct {
		Plugin string `json:"plugin"`
	}
	err := c.api.Do(ctx, "GET", "/instances/"+url.PathEscape(name), nil, nil, &v)
	return v.Plugin, err
}

func (c *client) create(ctx context.Context, in map[string]any) (incident, error) {
	var inc incident
	err := c.api.Do(ctx, "POST", "/incidents", nil, in, &inc)
	return inc, err
}

func (c *client) patch(ctx context.Context, id string, in map[string]any) error {
	return c.api.Do(ctx, "PATCH", incidentPath(id), nil, in, nil)
}

func (c *client) addEntry(ctx context.Context, id string, in entryInput) (entry, error) {
	var e entry
	err := c.api.Do(ctx, "POST", incidentPath(id)+"/entries", nil, in, &e)
	return e, err
}

func (c *client) close(ctx context.Context, id, reason, notes string) error {
	body := map[string]string{"closeReason": reason, "closeNotes": notes}
	return c.api.Do(ctx, "POST", incidentPath(id)+"/close", nil, body, nil)
}
