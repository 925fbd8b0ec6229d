package main

import (
	"context"
	"net/url"
	"strconv"
	"time"

	sdk "github.com/connhost/connhost/sdk-guest"
)

// ticket and comment mirror the TicketDesk API (README.md).
type ticket struct {
	ID          string    `json:"id"`
	Title       string    `json:"title"`
	Description string    `json:"description"`
	Severity    int       `json:"severity"`
	Status      string    `json:"status"`
	CloseReason string    `json:"close_reason"`
	CloseNotes  string    `json:"close_notes"`
	Created     string    `json:"created"`
	Updated     string    `json:"updated"`
	Assignee    string    `json:"assignee"`
	Comments    []comment `json:"comments"`
}

type comment struct {
	ID      string   `json:"id"`
	Body    string   `json:"body"`
	Author  string   `json:"author"`
	Tags    []string `json:"tags"`
	Created string   `json:"created"`
}

const (
	statusClosed = "closed"
	// maxLimit is the largest page the list endpoint serves.
	maxLimit = 200
)

// config is the parsed instance parameters.
type config struct {
	base          *url.URL
	apiKey        string
	firstFetch    time.Duration
	maxFetch      int
	direction     string // abi.Mirror* value
	closeIncident bool
	closeOut      bool
	commentTag    string
}

// parseConfig validates the parameters; problems are bad_request errors
// naming the parameter.
func parseConfig(p sdk.Params) (config, error) {
	c := config{
		apiKey:        p.Secret("api_key"),
		maxFetch:      p.Int("max_fetch"),
		closeIncident: p.Bool("close_incident"),
		closeOut:      p.Bool("close_out"),
		commentTag:    p.String("comment_tag"),
	}
	u, err := p.URL("url")
	if err != nil {
		return c, err
	}
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
	if c.maxFetch < 1 || c.maxFetch > maxLimit {
		return c, sdk.BadRequest("param max_fetch: want 1..%d, got %v", maxLimit, p.Number("max_fetch"))
	}
	if c.direction, err = p.MirrorDirection("mirror_direction", "None"); err != nil {
		return c, err
	}
	if c.commentTag == "" {
		c.commentTag = "comment"
	}
	return c, nil
}

// client calls the TicketDesk API through the host.
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
		Name: "ticketdesk", Base: &base, HTTP: h,
		Header: sdk.Header{"X-Api-Key": {cfg.apiKey}},
	}}, cfg, nil
}

func (c *client) ping(ctx context.Context) error {
	return c.api.Do(ctx, "GET", "/ping", nil, nil, nil)
}

// list returns tickets whose field ("created" or "updated") is at or after
// since, oldest first.
func (c *client) list(ctx context.Context, field string, since time.Time, limit int) ([]ticket, error) {
	q := url.Values{field + "_after": {since.UTC().Format(time.RFC3339)}, "limit": {strconv.Itoa(limit)}}
	var r struct {
		Tickets []ticket `json:"tickets"`
	}
	err := c.api.Do(ctx, "GET", "/tickets", q, nil, &r)
	return r.Tickets, err
}

func (c *client) get(ctx context.Context, id string) (ticket, error) {
	var t ticket
	err := c.api.Do(ctx, "GET", "/tickets/"+url.PathEscape(id), nil, nil, &t)
	return t, err
}

func (c *client) create(ctx context.Context, fields map[string]any) (ticket, error) {
	var t ticket
	err := c.api.Do(ctx, "POST", "/tickets", nil, fields, &t)
	return t, err
}

func (c *client) patch(ctx context.Context, id string, fields map[string]any) error {
	return c.api.Do(ctx, "PATCH", "/tickets/"+url.PathEscape(id), nil, fields, nil)
}

func (c *client) comment(ctx context.Context, id string, cm comment) (comment, error) {
	var out comment
	err := c.api.Do(ctx, "POST", "/tickets/"+url.PathEscape(id)+"/comments", nil, cm, &out)
	return out, err
}

func (c *client) close(ctx context.Context, id, reason, notes string) error {
	body := map[string]string{"close_reason": reason, "close_notes": notes}
	return c.api.Do(ctx, "POST", "/tickets/"+url.PathEscape(id)+"/close", nil, body, nil)
}
