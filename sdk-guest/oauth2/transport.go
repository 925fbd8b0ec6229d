package oauth2

import (
	"context"

	"github.com/connhost/connhost/abi"
	sdk "github.com/connhost/connhost/sdk-guest"
)

// Doer returns an sdk.Doer (for sdk.APIClient, or nethttp.Client) that
// sends every request through h with a bearer token from c and, when the
// server answers 401 to a token it should still accept (revoked, rotated),
// invalidates it and retries once with a fresh one.
func (c *Config) Doer(h *sdk.Host) sdk.Doer { return &authorizer{c: c, h: h} }

type authorizer struct {
	c *Config
	h *sdk.Host
}

// HTTP implements sdk.Doer.
func (a *authorizer) HTTP(ctx context.Context, req abi.HTTPRequest) (abi.HTTPResponse, error) {
	tok, err := a.c.Token(ctx, a.h)
	if err != nil {
		return abi.HTTPResponse{}, err
	}
	resp, err := a.send(ctx, req, tok)
	if err != nil || resp.Status != 401 {
		return resp, err
	}
	if err := a.c.Invalidate(ctx, a.h, tok); err != nil {
		return abi.HTTPResponse{}, err
	}
	if tok, err = a.c.Token(ctx, a.h); err != nil {
		return abi.HTTPResponse{}, err
	}
	return a.send(ctx, req, tok)
}

// send adds the token to a copy of the headers, leaving the caller's intact.
func (a *authorizer) send(ctx context.Context, req abi.HTTPRequest, tok Token) (abi.HTTPResponse, error) {
	hd := sdk.Header(req.Headers).Clone()
	if hd == nil {
		hd = sdk.Header{}
	}
	hd.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Headers = hd
	return a.h.HTTP(ctx, req)
}
