package oauth2

import (
	"fmt"
	"io"
	"net/http"

	sdk "github.com/connhost/connhost/sdk-guest"
)

// Client returns an http.Client that sends every request with a bearer
// token from c and, when the server answers 401 to a token it should still
// accept (revoked, rotated), invalidates it and retries once with a fresh
// one.
func (c *Config) Client(h *sdk.Host) *http.Client {
	return &http.Client{Transport: &transport{c: c, h: h, base: h.HTTPClient().Transport}}
}

type transport struct {
	c    *Config
	h    *sdk.Host
	base http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	tok, err := t.c.Token(ctx, t.h)
	if err != nil {
		return nil, err
	}
	resp, err := t.send(req, tok)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	if req.Body != nil && req.GetBody == nil {
		return resp, nil // the body cannot be replayed
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err := t.c.Invalidate(ctx, t.h, tok); err != nil {
		return nil, err
	}
	if tok, err = t.c.Token(ctx, t.h); err != nil {
		return nil, err
	}
	retry := req.Clone(ctx)
	if req.GetBody != nil {
		if retry.Body, err = req.GetBody(); err != nil {
			return nil, fmt.Errorf("oauth2: replay request body: %w", err)
		}
	}
	return t.send(retry, tok)
}

func (t *transport) send(req *http.Request, tok Token) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	return t.base.RoundTrip(r)
}
