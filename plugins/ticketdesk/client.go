package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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
	cfg  config
	http *http.Client
}

func newClient(h *sdk.Host) (*client, config, error) {
	cfg, err := parseConfig(h.Params())
	if err != nil {
		return nil, cfg, err
	}
	return &client{cfg: cfg, http: h.HTTPClient()}, cfg, nil
}

// do sends a request and decodes a 2xx JSON answer into out. Errors name
// the method and path, never the key; 429 becomes rate_limited.
func (c *client) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	u := *c.cfg.base
	u.Path += "/api/v1" + path
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("ticketdesk %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return fmt.Errorf("ticketdesk %s %s: %w", method, path, err)
	}
	req.Header.Set("X-API-Key", c.cfg.apiKey)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("ticketdesk %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("ticketdesk %s %s: read body: %w", method, path, err)
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		return sdk.RateLimited(fmt.Sprintf("TicketDesk API rate limit exceeded on %s %s (retry after %ss)", method, path, resp.Header.Get("Retry-After")))
	case resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("ticketdesk %s %s: authorization failed: check the API key (HTTP 401)", method, path)
	case resp.StatusCode/100 != 2:
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(data, &e) // best effort: the status says enough
		return fmt.Errorf("ticketdesk %s %s: HTTP %d: %s", method, path, resp.StatusCode, e.Error)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("ticketdesk %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

func (c *client) ping(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/ping", nil, nil, nil)
}

// list returns tickets whose field ("created" or "updated") is at or after
// since, oldest first.
func (c *client) list(ctx context.Context, field string, since time.Time, limit int) ([]ticket, error) {
	q := url.Values{field + "_after": {since.UTC().Format(time.RFC3339)}, "limit": {strconv.Itoa(limit)}}
	var r struct {
		Tickets []ticket `json:"tickets"`
	}
	err := c.do(ctx, http.MethodGet, "/tickets", q, nil, &r)
	return r.Tickets, err
}

func (c *client) get(ctx context.Context, id string) (ticket, error) {
	var t ticket
	err := c.do(ctx, http.MethodGet, "/tickets/"+url.PathEscape(id), nil, nil, &t)
	return t, err
}

func (c *client) create(ctx context.Context, fields map[string]any) (ticket, error) {
	var t ticket
	err := c.do(ctx, http.MethodPost, "/tickets", nil, fields, &t)
	return t, err
}

func (c *client) patch(ctx context.Context, id string, fields map[string]any) error {
	return c.do(ctx, http.MethodPatch, "/tickets/"+url.PathEscape(id), nil, fields, nil)
}

func (c *client) comment(ctx context.Context, id string, cm comment) (comment, error) {
	var out comment
	err := c.do(ctx, http.MethodPost, "/tickets/"+url.PathEscape(id)+"/comments", nil, cm, &out)
	return out, err
}

func (c *client) close(ctx context.Context, id, reason, notes string) error {
	body := map[string]string{"close_reason": reason, "close_notes": notes}
	return c.do(ctx, http.MethodPost, "/tickets/"+url.PathEscape(id)+"/close", nil, body, nil)
}
