// Package oauth2 gets and caches OAuth 2.0 access tokens for a connector
// instance (RFC 6749 client-credentials and refresh-token grants).
//
// A token is shared by every module instance of the connector instance, and
// is fetched once while it is valid: the token itself lives in the
// instance's integration cache, and the versioned integration context holds
// which token is current and until when (valid_until, epoch seconds, as
// XSOAR's MicrosoftApiModule) plus a short refresh lease. When a token is
// missing or expires (Skew seconds early), a module instance claims the
// lease with a versioned write; the one that wins fetches the token, the
// others re-read and wait for the winner's token instead of fetching their
// own (XSOAR's set_to_integration_context_with_retries, made to fetch once).
//
// Tokens, refresh tokens and the client secret are never logged, never put
// in an error message, and never stored in the integration context, which
// operators can read through the API.
package oauth2

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/connhost/connhost/abi"
	sdk "github.com/connhost/connhost/sdk-guest"
	"github.com/connhost/connhost/sdk-guest/cache"
)

// ErrTokenRefused marks a token endpoint's refusal to issue a token: an
// OAuth error or a non-200 answer below 500 (wrong client secret, unknown
// client, scope not granted). Callers report it as an
// authentication failure, not as a failure of the service behind it.
var ErrTokenRefused = errors.New("the token endpoint refused the credentials")

// Grant types.
const (
	GrantClientCredentials = "client_credentials"
	GrantRefreshToken      = "refresh_token"
)

// Defaults of Config fields.
const (
	DefaultSkew      = 5 * time.Second
	DefaultExpiresIn = 3595 * time.Second // MicrosoftApiModule's default when the server omits expires_in
	DefaultName      = "default"
)

// ContextKey is the integration context key under which the token state
// (no secrets) is kept, one entry per Config.Name.
const ContextKey = "oauth2"

// cachePrefix prefixes the integration cache keys holding token material.
const cachePrefix = "oauth2/"

const (
	// leaseTTL bounds how long other callers wait for a refresh whose
	// module instance died before finishing it.
	leaseTTL = 30 * time.Second
	// pollInterval is how often a caller waiting for another's refresh
	// re-reads the context.
	pollInterval = 50 * time.Millisecond
	// maxConflicts bounds consecutive lost versioned writes; each loss means
	// another writer made progress, so this is only hit under a storm.
	maxConflicts = 32
	// maxErrorBody bounds how much of a token error response is read.
	maxErrorBody = 64 << 10
)

// Config describes how to get tokens for one connector instance. Build it
// per call from the instance parameters; it holds no state.
type Config struct {
	// TokenURL is the token endpoint.
	TokenURL string
	// ClientID and ClientSecret authenticate the client (the secret comes
	// from a secret parameter).
	ClientID     string
	ClientSecret string
	// Scopes are sent space-separated as "scope" when set.
	Scopes []string
	// Grant is GrantClientCredentials (default) or GrantRefreshToken.
	Grant string
	// RefreshToken seeds the refresh-token grant (typically from a secret
	// parameter). A rotated refresh token returned by the server is kept in
	// the integration cache and preferred afterwards.
	RefreshToken string
	// AuthInBody sends client_id and client_secret in the form body instead
	// of HTTP Basic authentication (RFC 6749 §2.3.1 allows both).
	AuthInBody bool
	// Name tells apart several tokens of one instance (one per resource or
	// scope, like MicrosoftApiModule's {scope}_access_token). Default
	// DefaultName.
	Name string
	// Skew is how long before expiry a token is refreshed. Default
	// DefaultSkew.
	Skew time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Token is an access token. Its String and Format methods redact it, so a
// token logged by mistake does not leak.
type Token struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type,omitempty"`
	// ValidUntil is when the token stops being used (expiry minus Skew),
	// in epoch seconds.
	ValidUntil int64 `json:"valid_until"`

	gen string // the generation it was stored under, for Invalidate
}

// String returns a redacted description.
func (t Token) String() string {
	return fmt.Sprintf("oauth2.Token{valid_until: %d, access_token: [redacted]}", t.ValidUntil)
}

// Format prints String for every verb, so %v, %+v and %#v redact too.
func (t Token) Format(f fmt.State, _ rune) { io.WriteString(f, t.String()) }

// refreshState is the rotated refresh token, kept in the cache without TTL.
type refreshState struct {
	RefreshToken string `json:"refresh_token"`
}

// state is what the integration context holds for one token: no secrets.
type state struct {
	Gen         string `json:"gen,omitempty"`
	ValidUntil  int64  `json:"valid_until,omitempty"`
	Fingerprint string `json:"fingerprint,omitempty"`
	Lease       string `json:"lease,omitempty"`
	LeaseUntil  int64  `json:"lease_until,omitempty"`
}

func (c *Config) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Config) name() string {
	if c.Name == "" {
		return DefaultName
	}
	return c.Name
}

func (c *Config) skew() time.Duration {
	if c.Skew <= 0 {
		return DefaultSkew
	}
	return c.Skew
}

func (c *Config) grant() string {
	if c.Grant == "" {
		return GrantClientCredentials
	}
	return c.Grant
}

// fingerprint identifies the credentials a stored token was issued for, so
// that changing them in the instance parameters ignores the old token. It
// hashes the secret so that the context does not reveal it.
func (c *Config) fingerprint() string {
	sum := sha256.Sum256([]byte(strings.Join([]string{
		c.TokenURL, c.ClientID, c.ClientSecret, c.grant(), strings.Join(c.Scopes, " "),
	}, "\x00")))
	return hex.EncodeToString(sum[:8])
}

func (c *Config) tokens(h *sdk.Host) cache.Cache[Token] {
	return cache.New[Token](h, cachePrefix+c.name()+"/token/", 0)
}

func (c *Config) refreshes(h *sdk.Host) cache.Cache[refreshState] {
	return cache.New[refreshState](h, cachePrefix+c.name()+"/", 0)
}

// readState returns the state of this token from the context root.
func (c *Config) readState(root map[string]any) state {
	var st state
	all, _ := root[ContextKey].(map[string]any)
	raw, err := json.Marshal(all[c.name()])
	if err == nil {
		_ = json.Unmarshal(raw, &st) // a malformed entry reads as no token
	}
	return st
}

// writeState puts st into the context root, keeping other keys and tokens.
func (c *Config) writeState(root map[string]any, st state) {
	all, _ := root[ContextKey].(map[string]any)
	if all == nil {
		all = map[string]any{}
	}
	raw, _ := json.Marshal(st) // a struct of strings and ints always marshals
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	all[c.name()] = m
	root[ContextKey] = all
}

// Token returns a valid access token, fetching one if none is stored or the
// stored one is about to expire. Concurrent callers on other module
// instances share one fetch.
func (c *Config) Token(ctx context.Context, h *sdk.Host) (Token, error) {
	if c.TokenURL == "" || c.ClientID == "" {
		return Token{}, sdk.BadRequest("oauth2: token URL and client id are required")
	}
	me, err := newID()
	if err != nil {
		return Token{}, err
	}
	fp := c.fingerprint()
	for conflicts := 0; ; {
		root, ver, err := h.IntegrationContext(ctx)
		if err != nil {
			return Token{}, fmt.Errorf("oauth2 token %s: %w", c.name(), err)
		}
		st := c.readState(root)
		now := c.now().Unix()
		if st.Gen != "" && st.Fingerprint == fp && now < st.ValidUntil {
			tok, ok, err := c.tokens(h).Get(ctx, st.Gen)
			if err != nil {
				return Token{}, fmt.Errorf("oauth2 token %s: %w", c.name(), err)
			}
			if ok && tok.AccessToken != "" {
				tok.gen = st.Gen
				return tok, nil
			}
			// The cache lost the token (evicted or cleared): fetch anew.
		}
		if st.Lease != "" && st.Lease != me && now < st.LeaseUntil {
			// Another module instance is fetching: wait for its token.
			if !h.Sleep(ctx, pollInterval) {
				return Token{}, fmt.Errorf("oauth2 token %s: interrupted waiting for another call's refresh", c.name())
			}
			continue
		}
		st.Lease, st.LeaseUntil = me, c.now().Add(leaseTTL).Unix()
		c.writeState(root, st)
		_, err = h.SetIntegrationContext(ctx, root, ver)
		if errors.Is(err, sdk.ErrConflict) {
			if conflicts++; conflicts > maxConflicts {
				return Token{}, fmt.Errorf("oauth2 token %s: context still conflicting after %d attempts: %w", c.name(), maxConflicts, err)
			}
			continue // lost the race: re-read, most likely to find the winner's lease
		}
		if err != nil {
			return Token{}, fmt.Errorf("oauth2 token %s: claim refresh: %w", c.name(), err)
		}
		return c.refresh(ctx, h, me, fp)
	}
}

// refresh fetches a token while holding the lease and publishes it.
func (c *Config) refresh(ctx context.Context, h *sdk.Host, me, fp string) (Token, error) {
	tok, err := c.fetch(ctx, h)
	if err != nil {
		// Release the lease so that the next call retries at once.
		_ = h.UpdateIntegrationContext(ctx, func(root map[string]any) error {
			st := c.readState(root)
			if st.Lease == me {
				st.Lease, st.LeaseUntil = "", 0
				c.writeState(root, st)
			}
			return nil
		})
		return Token{}, err
	}
	gen, err := newID()
	if err != nil {
		return Token{}, err
	}
	// The token outlives valid_until by the skew; keep it that long at most.
	ttl := time.Unix(tok.ValidUntil, 0).Sub(c.now()) + c.skew()
	if err := c.tokens(h).SetTTL(ctx, gen, tok, max(ttl, time.Second)); err != nil {
		return Token{}, fmt.Errorf("oauth2 token %s: %w", c.name(), err)
	}
	err = h.UpdateIntegrationContext(ctx, func(root map[string]any) error {
		c.writeState(root, state{Gen: gen, ValidUntil: tok.ValidUntil, Fingerprint: fp})
		return nil
	})
	if err != nil {
		return Token{}, fmt.Errorf("oauth2 token %s: publish: %w", c.name(), err)
	}
	tok.gen = gen
	h.Debugf("oauth2: fetched token %s, valid until %s", c.name(), time.Unix(tok.ValidUntil, 0).UTC().Format(time.RFC3339))
	return tok, nil
}

// Invalidate marks tok as no longer usable (the server rejected it before
// its expiry) unless another caller already replaced it, so that callers
// that all saw the same rejection still fetch one new token between them.
func (c *Config) Invalidate(ctx context.Context, h *sdk.Host, tok Token) error {
	if tok.gen == "" {
		return nil
	}
	err := h.UpdateIntegrationContext(ctx, func(root map[string]any) error {
		st := c.readState(root)
		if st.Gen == tok.gen {
			st.Gen, st.ValidUntil = "", 0
			c.writeState(root, st)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("oauth2 invalidate %s: %w", c.name(), err)
	}
	return nil
}

// tokenResponse is RFC 6749 §5.1 and §5.2.
type tokenResponse struct {
	AccessToken      string          `json:"access_token"`
	TokenType        string          `json:"token_type"`
	ExpiresIn        json.RawMessage `json:"expires_in"`
	RefreshToken     string          `json:"refresh_token"`
	Error            string          `json:"error"`
	ErrorDescription string          `json:"error_description"`
}

// fetch requests a token from the token endpoint.
func (c *Config) fetch(ctx context.Context, h *sdk.Host) (Token, error) {
	form := url.Values{"grant_type": {c.grant()}}
	if len(c.Scopes) > 0 {
		form.Set("scope", strings.Join(c.Scopes, " "))
	}
	if c.grant() == GrantRefreshToken {
		rt := c.RefreshToken
		if st, ok, err := c.refreshes(h).Get(ctx, "refresh"); err != nil {
			return Token{}, err
		} else if ok && st.RefreshToken != "" {
			rt = st.RefreshToken
		}
		if rt == "" {
			return Token{}, sdk.BadRequest("oauth2 token %s: the refresh-token grant needs a refresh token", c.name())
		}
		form.Set("refresh_token", rt)
	}
	if c.AuthInBody {
		form.Set("client_id", c.ClientID)
		form.Set("client_secret", c.ClientSecret)
	}
	hd := sdk.Header{
		"Content-Type": {"application/x-www-form-urlencoded"},
		"Accept":       {"application/json"},
	}
	if !c.AuthInBody {
		hd.Set("Authorization", sdk.BasicAuthHeader(url.QueryEscape(c.ClientID), url.QueryEscape(c.ClientSecret)))
	}
	if u, err := url.Parse(c.TokenURL); err != nil || !u.IsAbs() {
		return Token{}, sdk.BadRequest("oauth2 token URL %s: want an absolute URL", redact(c.TokenURL))
	}
	start := c.now()
	resp, err := h.HTTP(ctx, abi.HTTPRequest{Method: "POST", URL: c.TokenURL, Headers: hd, Body: []byte(form.Encode())})
	if err != nil {
		return Token{}, fmt.Errorf("oauth2 token request to %s: %w", redact(c.TokenURL), err)
	}
	// Token answers are small; parse at most maxErrorBody bytes of any.
	body := resp.Body[:min(len(resp.Body), maxErrorBody)]
	var tr tokenResponse
	jsonErr := json.Unmarshal(body, &tr)
	if resp.Status != 200 || tr.Error != "" {
		// Only the standard error fields: the body could echo credentials.
		msg := strings.TrimSpace(tr.Error + " " + tr.ErrorDescription)
		if msg == "" {
			msg = "no OAuth error in the response"
		}
		if resp.Status < 500 {
			return Token{}, fmt.Errorf("oauth2 token request to %s: %w: HTTP %d: %s", redact(c.TokenURL), ErrTokenRefused, resp.Status, msg)
		}
		return Token{}, fmt.Errorf("oauth2 token request to %s: HTTP %d: %s", redact(c.TokenURL), resp.Status, msg)
	}
	if jsonErr != nil || tr.AccessToken == "" {
		return Token{}, fmt.Errorf("oauth2 token request to %s: response has no access_token", redact(c.TokenURL))
	}
	expiresIn := DefaultExpiresIn
	if s := strings.Trim(string(tr.ExpiresIn), `"`); s != "" && s != "null" {
		var secs float64
		if _, err := fmt.Sscan(s, &secs); err == nil && secs > 0 {
			expiresIn = time.Duration(secs * float64(time.Second))
		}
	}
	if tr.RefreshToken != "" {
		if err := c.refreshes(h).Set(ctx, "refresh", refreshState{RefreshToken: tr.RefreshToken}); err != nil {
			return Token{}, err
		}
	}
	return Token{
		AccessToken: tr.AccessToken,
		TokenType:   tr.TokenType,
		ValidUntil:  start.Add(expiresIn - c.skew()).Unix(),
	}, nil
}

// redact drops the query and user info of a URL for messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(token URL)"
	}
	u.RawQuery, u.User, u.Fragment = "", nil, ""
	return u.String()
}

func newID() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("oauth2: random id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
