package oauth2_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connhost/connhost/abi"
	sdk "github.com/connhost/connhost/sdk-guest"
	"github.com/connhost/connhost/sdk-guest/oauth2"
	"github.com/connhost/connhost/sdk-guest/sdktest"
)

const secret = "s3cr3t-client-secret"

// tokenServer is an OAuth2 token endpoint and a resource that accepts only
// unrevoked tokens it issued.
type tokenServer struct {
	*httptest.Server
	requests  atomic.Int32
	expiresIn atomic.Int32
	mu        sync.Mutex
	valid     map[string]bool
	issued    []string
	refreshes []string // refresh tokens presented
}

func newTokenServer(t testing.TB) *tokenServer {
	ts := &tokenServer{valid: map[string]bool{}}
	ts.expiresIn.Store(3600)
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		id, sec, ok := r.BasicAuth()
		if err := r.ParseForm(); err != nil || !ok || id != "client" || sec != secret {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, `{"error":"invalid_client","echo":%q}`, sec)
			return
		}
		n := ts.requests.Add(1)
		tok := fmt.Sprintf("access-%d", n)
		ts.mu.Lock()
		ts.valid[tok] = true
		ts.issued = append(ts.issued, tok)
		if rt := r.PostForm.Get("refresh_token"); rt != "" {
			ts.refreshes = append(ts.refreshes, rt)
		}
		ts.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{
			"access_token": tok, "token_type": "Bearer", "expires_in": ts.expiresIn.Load(),
			"refresh_token": fmt.Sprintf("refresh-%d", n),
		})
	})
	mux.HandleFunc("GET /resource", func(w http.ResponseWriter, r *http.Request) {
		ts.mu.Lock()
		ok := ts.valid[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
		ts.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Write([]byte("ok"))
	})
	ts.Server = httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts
}

// revoke makes every issued token unacceptable to the resource.
func (ts *tokenServer) revoke() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	clear(ts.valid)
}

// clock is a settable clock shared by the host's cache and the Config.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// connector has one command that fetches the resource through the oauth2
// client.
func connector(clk *clock, grant string) sdk.Connector {
	return sdk.Connector{Commands: map[string]sdk.CommandFunc{
		"get": func(ctx context.Context, h *sdk.Host, _ sdk.Args) (any, error) {
			cfg := &oauth2.Config{
				TokenURL: h.Params().String("url") + "/token", ClientID: "client",
				ClientSecret: h.Params().Secret("secret"), Now: clk.Now, Grant: grant,
				RefreshToken: h.Params().Secret("refresh_token"),
			}
			hd := sdk.Header{"Accept": {"*/*"}}
			resp, err := cfg.Doer(h).HTTP(ctx, abi.HTTPRequest{Method: "GET", URL: h.Params().String("url") + "/resource", Headers: hd})
			if err != nil {
				return nil, err
			}
			if len(hd) != 1 {
				return nil, fmt.Errorf("the caller's headers changed: %v", hd)
			}
			if resp.Status != http.StatusOK {
				return nil, fmt.Errorf("resource: HTTP %d", resp.Status)
			}
			return "ok", nil
		},
	}}
}

func params(ts *tokenServer) map[string]any {
	return map[string]any{"url": ts.URL, "secret": secret, "refresh_token": "seed"}
}

func TestTokenCachedUntilExpiry(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name         string
		advance      time.Duration // before the calls of this step
		revoke       bool
		calls        int
		wantRequests int32
	}{
		{"first call fetches", 0, false, 1, 1},
		{"50 calls while valid reuse it", 0, false, 50, 1},
		{"still valid just before valid_until", 3600*time.Second - oauth2.DefaultSkew - 2*time.Second, false, 5, 1},
		{"refreshed once after valid_until", 2 * time.Second, false, 20, 2},
		{"refreshed once after the server revoked it", 0, true, 20, 3},
	}
	ts := newTokenServer(t)
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	h := sdktest.New(connector(clk, ""), params(ts))
	h.Now = clk.Now
	for _, tt := range tests {
		clk.add(tt.advance)
		if tt.revoke {
			ts.revoke()
		}
		for i := range tt.calls {
			if _, err := h.Command(ctx, "get", nil); err != nil {
				t.Fatalf("%s: call %d: %v", tt.name, i, err)
			}
		}
		if got := ts.requests.Load(); got != tt.wantRequests {
			t.Errorf("%s: token requests = %d, want %d", tt.name, got, tt.wantRequests)
		}
	}
	checkNoSecrets(t, h, ts)
}

// checkNoSecrets scans the guest's logs and the integration context for the
// client secret and every token the server issued.
func checkNoSecrets(t *testing.T, h *sdktest.Host, ts *tokenServer) {
	t.Helper()
	ictx, _ := h.IntegrationContext()
	raw, _ := json.Marshal(ictx)
	var logs strings.Builder
	for _, l := range h.Logs() {
		logs.WriteString(l.Message + "\n")
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, s := range append([]string{secret}, ts.issued...) {
		if strings.Contains(string(raw), s) {
			t.Errorf("integration context %s contains a secret", raw)
		}
		if strings.Contains(logs.String(), s) {
			t.Errorf("logs contain a secret: %s", logs.String())
		}
	}
}

// TestConcurrentRefreshFetchesOnce runs 8 module instances over one shared
// host state, as pooled module instances of one connector instance are.
func TestConcurrentRefreshFetchesOnce(t *testing.T) {
	ctx := context.Background()
	for _, revoke := range []bool{false, true} {
		t.Run(fmt.Sprintf("revoked=%v", revoke), func(t *testing.T) {
			ts := newTokenServer(t)
			clk := &clock{t: time.Unix(1_700_000_000, 0)}
			conn := connector(clk, "")
			shared := sdktest.New(conn, params(ts))
			shared.Now = clk.Now
			cfg, _ := json.Marshal(abi.ConfigureRequest{ABIVersion: abi.Version, Instance: shared.Instance, Params: params(ts)})
			mods := make([]*sdk.Module, 8)
			for i := range mods {
				mods[i] = sdk.NewModule(conn, shared)
				if env := mods[i].Configure(ctx, cfg); string(env) != `{"result":null}` {
					t.Fatalf("configure: %s", env)
				}
			}
			call := func(m *sdk.Module) error {
				env, err := abi.DecodeEnvelope(m.Call(ctx, "get", []byte("{}")))
				if err != nil {
					return err
				}
				if env.Error != nil {
					return env.Error
				}
				return nil
			}
			if err := call(mods[0]); err != nil {
				t.Fatal(err)
			}
			if revoke {
				ts.revoke()
			} else {
				clk.add(time.Hour)
			}
			var wg sync.WaitGroup
			errs := make(chan error, len(mods))
			for _, m := range mods {
				wg.Go(func() { errs <- call(m) })
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Errorf("concurrent call: %v", err)
				}
			}
			if got := ts.requests.Load(); got != 2 {
				t.Errorf("token requests = %d, want 2 (one initial, one refresh)", got)
			}
			checkNoSecrets(t, shared, ts)
		})
	}
}

func TestRefreshTokenGrantRotates(t *testing.T) {
	ctx := context.Background()
	ts := newTokenServer(t)
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	h := sdktest.New(connector(clk, oauth2.GrantRefreshToken), params(ts))
	h.Now = clk.Now
	for range 3 {
		if _, err := h.Command(ctx, "get", nil); err != nil {
			t.Fatal(err)
		}
		clk.add(2 * time.Hour)
	}
	ts.mu.Lock()
	got := strings.Join(ts.refreshes, ",")
	ts.mu.Unlock()
	if want := "seed,refresh-1,refresh-2"; got != want {
		t.Errorf("refresh tokens presented = %s, want %s", got, want)
	}
}

func TestTokenErrorsRedact(t *testing.T) {
	ctx := context.Background()
	ts := newTokenServer(t)
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	p := params(ts)
	p["secret"] = "wrong-" + secret
	h := sdktest.New(connector(clk, ""), p)
	_, err := h.Command(ctx, "get", nil)
	if err == nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("err = %v, want invalid_client", err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("error leaks the secret: %v", err)
	}
	// A failed fetch releases its lease: the next call tries again at once.
	_, _ = h.Command(ctx, "get", nil)
	ictx, _ := h.IntegrationContext()
	if st := ictx[oauth2.ContextKey].(map[string]any)[oauth2.DefaultName].(map[string]any); st["lease"] != nil {
		t.Errorf("lease kept after a failed fetch: %v", st)
	}
}

func TestTokenFormatRedacts(t *testing.T) {
	tok := oauth2.Token{AccessToken: "very-secret-token", ValidUntil: 42}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		if s := fmt.Sprintf(f, tok); strings.Contains(s, tok.AccessToken) {
			t.Errorf("%s prints the token: %s", f, s)
		}
	}
}

// BenchmarkTokenCached measures a command that uses a cached token: one
// context read and one cache read through the host functions.
func BenchmarkTokenCached(b *testing.B) {
	ctx := context.Background()
	ts := newTokenServer(b)
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	conn := sdk.Connector{Commands: map[string]sdk.CommandFunc{
		"token": func(ctx context.Context, h *sdk.Host, _ sdk.Args) (any, error) {
			cfg := &oauth2.Config{TokenURL: ts.URL + "/token", ClientID: "client", ClientSecret: secret, Now: clk.Now}
			_, err := cfg.Token(ctx, h)
			return nil, err
		},
	}}
	h := sdktest.New(conn, nil)
	h.Now = clk.Now
	for b.Loop() {
		if _, err := h.Command(ctx, "token", nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(ts.requests.Load()), "token-requests")
}

// TestTokenRefusedIsMarked: a wrong secret is ErrTokenRefused, so callers
// can report it as an authentication failure.
func TestTokenRefusedIsMarked(t *testing.T) {
	ts := newTokenServer(t)
	p := params(ts)
	p["secret"] = "wrong-" + secret
	h := sdktest.New(sdk.Connector{Commands: map[string]sdk.CommandFunc{
		"token": func(ctx context.Context, h *sdk.Host, _ sdk.Args) (any, error) {
			cfg := &oauth2.Config{TokenURL: h.Params().String("url") + "/token", ClientID: "client", ClientSecret: h.Params().Secret("secret")}
			_, err := cfg.Token(ctx, h)
			return errors.Is(err, oauth2.ErrTokenRefused), nil
		},
	}}, p)
	raw, err := h.Command(context.Background(), "token", nil)
	if err != nil || string(raw) != "true" {
		t.Fatalf("token with a wrong secret: refused = %s, %v; want true", raw, err)
	}
}
