package console_test

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/api"
	"github.com/connhost/connhost/internal/console"
	"github.com/connhost/connhost/internal/service"
	"github.com/connhost/connhost/internal/store"
	"github.com/connhost/connhost/internal/testenv"
)

// htmxSHA256 pins the vendored htmx (assets/htmx.min.js: htmx.org 2.0.11's
// dist/htmx.min.js from the npm registry, behind a one-line licence
// header). Updating htmx means updating this on purpose.
const htmxSHA256 = "99e70fdc86442c2d0c65c02e840c3e42090d376ac84a5ac6d56a2c39cc59ad77"

// client is a browser stand-in: a cookie jar, no redirects followed.
type client struct {
	t    *testing.T
	base string
	hc   *http.Client
	csrf string // the page's CSRF token, from the last page read
}

func newClient(t *testing.T, base string, hc *http.Client) *client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	if hc == nil {
		hc = &http.Client{}
	}
	c := *hc
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &client{t: t, base: base, hc: &c}
}

var csrfRe = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// page is a response with its body read.
type page struct {
	*http.Response
	body string
}

func (c *client) do(req *http.Request) page {
	c.t.Helper()
	res, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	p := page{res, string(b)}
	if m := csrfRe.FindStringSubmatch(p.body); m != nil {
		c.csrf = m[1]
	}
	return p
}

func (c *client) get(path string) page {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodGet, c.base+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	return c.do(req)
}

// post sends a form; header, if set, is added to the request.
func (c *client) post(path string, form url.Values, header http.Header) page {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header[k] = v
	}
	return c.do(req)
}

// signIn signs in with key and returns the sign-in response (a 303 when
// it worked).
func (c *client) signIn(key, next string) page {
	c.t.Helper()
	c.get("/login")
	return c.post("/login", url.Values{"csrf": {c.csrf}, "key": {key}, "next": {next}}, nil)
}

// mustSignIn signs in and loads the overview, for its CSRF token.
func (c *client) mustSignIn(key string) {
	c.t.Helper()
	if p := c.signIn(key, ""); p.StatusCode != http.StatusSeeOther {
		c.t.Fatalf("sign-in: %d %s", p.StatusCode, p.body)
	}
	if p := c.get("/"); p.StatusCode != http.StatusOK {
		c.t.Fatalf("overview: %d", p.StatusCode)
	}
}

func sessionCookie(t *testing.T, res *http.Response) *http.Cookie {
	t.Helper()
	for _, ck := range res.Cookies() {
		if ck.Name == console.SessionCookie {
			return ck
		}
	}
	return nil
}

func issue(t *testing.T, s *testenv.Server, name string, role service.Role) string {
	t.Helper()
	key, _, err := s.Service.APIKeys.Issue(t.Context(), service.APIKeySpec{Name: name, Role: role})
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// TestHTMXPinned: the vendored htmx is the pinned file, served as is.
func TestHTMXPinned(t *testing.T) {
	b, err := os.ReadFile("assets/htmx.min.js")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != htmxSHA256 {
		t.Fatalf("assets/htmx.min.js has SHA-256 %s, pinned %s", got, htmxSHA256)
	}
	if !strings.HasPrefix(string(b), "/*! htmx 2.0.11 ") || !strings.Contains(strings.SplitN(string(b), "\n", 2)[0], "0BSD") {
		t.Fatal("assets/htmx.min.js lost its version and licence header")
	}
	s := testenv.NewServer(t, testenv.ServerOptions{})
	p := newClient(t, s.URL, nil).get("/assets/htmx.min.js")
	if p.StatusCode != http.StatusOK || p.body != string(b) {
		t.Fatalf("served htmx: %d, %d bytes", p.StatusCode, len(p.body))
	}
}

var (
	scriptTagRe = regexp.MustCompile(`<script[^>]*>`)
	linkAttrRe  = regexp.MustCompile(`\s(?:src|href|action)="([^"]*)"`)
)

// TestPagesAreSelfContained: every response carries the strict CSP and
// the other security headers, and no page has inline script or style or
// loads anything from another origin.
func TestPagesAreSelfContained(t *testing.T) {
	s := testenv.NewServer(t, testenv.ServerOptions{})
	s.Install(testenv.Plugin(t, "goecho"))
	s.CreateInstance("echo", "goecho", nil, store.Settings{})
	c := newClient(t, s.URL, nil)
	anon := newClient(t, s.URL, nil)
	c.mustSignIn(s.Key)
	inc, err := s.Service.Incidents.Create(t.Context(), service.IncidentInput{Name: ptr("Suspicious login")})
	if err != nil {
		t.Fatal(err)
	}
	pages := []struct {
		c      *client
		path   string
		status int
	}{
		{anon, "/login", http.StatusOK},
		{anon, "/", http.StatusUnauthorized},
		{anon, "/assets/console.css", http.StatusOK},
		{c, "/", http.StatusOK},
		{c, "/plugins", http.StatusOK},
		{c, "/plugins/goecho", http.StatusOK},
		{c, "/instances", http.StatusOK},
		{c, "/instances?plugin=goecho", http.StatusOK},
		{c, "/instances/echo", http.StatusOK},
		{c, "/incidents", http.StatusOK},
		{c, "/incidents/" + inc.ID, http.StatusOK},
		{c, "/keys", http.StatusOK},
		{c, "/incidents/nosuch", http.StatusNotFound},
		{anon, "/assets/htmx.LICENSE", http.StatusOK},
	}
	for _, dir := range []string{"/assets/", "/assets/nosuch.js"} {
		if p := anon.get(dir); p.StatusCode != http.StatusNotFound || strings.Contains(p.body, "console.css") {
			t.Errorf("GET %s: %d %s", dir, p.StatusCode, p.body)
		}
	}
	for _, tt := range pages {
		t.Run(tt.path, func(t *testing.T) {
			p := tt.c.get(tt.path)
			if p.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", p.StatusCode, tt.status)
			}
			for h, want := range map[string]string{"Content-Security-Policy": console.CSP, "X-Content-Type-Options": "nosniff",
				"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"} {
				if got := p.Header.Get(h); got != want {
					t.Errorf("%s: %q, want %q", h, got, want)
				}
			}
			if !strings.Contains(console.CSP, "default-src 'self'") || strings.Contains(console.CSP, "unsafe") {
				t.Errorf("CSP %q is not strict", console.CSP)
			}
			if !strings.HasPrefix(p.Header.Get("Content-Type"), "text/html") {
				return
			}
			if p.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", p.Header.Get("Cache-Control"))
			}
			for _, tag := range scriptTagRe.FindAllString(p.body, -1) {
				if !strings.Contains(tag, `src="/assets/`) {
					t.Errorf("inline or foreign script %s", tag)
				}
			}
			if strings.Contains(p.body, "<style") || strings.Contains(p.body, " style=") || regexp.MustCompile(`\son[a-z]+=`).MatchString(p.body) {
				t.Error("inline style or event handler")
			}
			for _, m := range linkAttrRe.FindAllStringSubmatch(p.body, -1) {
				if u := m[1]; !strings.HasPrefix(u, "/") || strings.HasPrefix(u, "//") {
					if !strings.HasPrefix(u, "#") {
						t.Errorf("link %q leaves the console", u)
					}
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestSessionCookie: the session cookie is HttpOnly, SameSite=Strict,
// expires with the session, and is Secure exactly when the request came
// over TLS (directly or through a proxy that says so).
func TestSessionCookie(t *testing.T) {
	s := testenv.NewServer(t, testenv.ServerOptions{})
	tlsSrv := httptest.NewTLSServer(s.API.Handler())
	t.Cleanup(tlsSrv.Close)
	tests := []struct {
		name   string
		base   string
		hc     *http.Client
		proto  string
		secure bool
	}{
		{"plain HTTP", s.URL, nil, "", false},
		{"TLS", tlsSrv.URL, tlsSrv.Client(), "", true},
		{"behind a TLS proxy", s.URL, nil, "https", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, tt.base, tt.hc)
			c.get("/login")
			var h http.Header
			if tt.proto != "" {
				h = http.Header{"X-Forwarded-Proto": {tt.proto}}
			}
			p := c.post("/login", url.Values{"csrf": {c.csrf}, "key": {s.Key}}, h)
			ck := sessionCookie(t, p.Response)
			if p.StatusCode != http.StatusSeeOther || ck == nil {
				t.Fatalf("sign-in: %d, cookie %v", p.StatusCode, ck)
			}
			if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || ck.Secure != tt.secure {
				t.Errorf("cookie %s: want HttpOnly, SameSite=Strict, Path=/, Secure=%v", ck.String(), tt.secure)
			}
			if left := time.Until(ck.Expires); left < console.DefaultSessionTTL-time.Minute || left > console.DefaultSessionTTL+time.Minute {
				t.Errorf("cookie expires in %s, want %s", left, console.DefaultSessionTTL)
			}
		})
	}
}

// TestSignIn covers the sign-in form: its own CSRF token, bad keys and
// where it returns to.
func TestSignIn(t *testing.T) {
	s := testenv.NewServer(t, testenv.ServerOptions{})
	tests := []struct {
		name     string
		key      string
		token    func(real string) string
		next     string
		status   int
		location string
	}{
		{"good key", s.Key, nil, "", http.StatusSeeOther, "/"},
		{"returns to the page asked for", s.Key, nil, "/incidents?q=x", http.StatusSeeOther, "/incidents?q=x"},
		{"no open redirect", s.Key, nil, "//evil.example/", http.StatusSeeOther, "/"},
		{"no open redirect with a backslash", s.Key, nil, `/\evil.example/`, http.StatusSeeOther, "/"},
		{"unknown key", "chk_nosuch", nil, "", http.StatusUnauthorized, ""},
		{"no sign-in token", s.Key, func(string) string { return "" }, "", http.StatusForbidden, ""},
		{"another form's token", s.Key, func(string) string { return strings.Repeat("a", 64) }, "", http.StatusForbidden, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, s.URL, nil)
			c.get("/login")
			tok := c.csrf
			if tt.token != nil {
				tok = tt.token(tok)
			}
			p := c.post("/login", url.Values{"csrf": {tok}, "key": {tt.key}, "next": {tt.next}}, nil)
			if p.StatusCode != tt.status || p.Header.Get("Location") != tt.location {
				t.Fatalf("%d to %q, want %d to %q: %s", p.StatusCode, p.Header.Get("Location"), tt.status, tt.location, p.body)
			}
			if ck := sessionCookie(t, p.Response); (ck != nil) != (tt.status == http.StatusSeeOther) {
				t.Fatalf("session cookie %v after %d", ck, p.StatusCode)
			}
		})
	}
}

// TestCSRF: every POST needs the session's own token, as a form field or
// the htmx header; without it nothing happens.
func TestCSRF(t *testing.T) {
	s := testenv.NewServer(t, testenv.ServerOptions{})
	other := newClient(t, s.URL, nil)
	other.mustSignIn(s.Key)
	c := newClient(t, s.URL, nil)
	c.mustSignIn(s.Key)
	tests := []struct {
		name   string
		field  string
		header string
		status int
	}{
		{"no token", "", "", http.StatusForbidden},
		{"a wrong token", strings.Repeat("0", 64), "", http.StatusForbidden},
		{"another session's token", other.csrf, "", http.StatusForbidden},
		{"another session's token in the header", "", other.csrf, http.StatusForbidden},
		{"the session's token", c.csrf, "", http.StatusOK},
		{"the session's token in the header", "", c.csrf, http.StatusOK},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := s.Service.APIKeys.List(t.Context())
			form := url.Values{"name": {"k" + string(rune('a'+i))}, "role": {"read"}}
			if tt.field != "" {
				form.Set("csrf", tt.field)
			}
			var h http.Header
			if tt.header != "" {
				h = http.Header{console.CSRFHeader: {tt.header}}
			}
			token := c.csrf
			p := c.post("/keys", form, h)
			c.csrf = token
			if p.StatusCode != tt.status {
				t.Fatalf("status %d, want %d: %s", p.StatusCode, tt.status, p.body)
			}
			after, _ := s.Service.APIKeys.List(t.Context())
			if created := len(after) - len(before); (created == 1) != (tt.status == http.StatusOK) {
				t.Fatalf("%d keys created with status %d", created, p.StatusCode)
			}
			if tt.status == http.StatusForbidden && !strings.Contains(p.body, "CSRF token") {
				t.Errorf("403 page does not say why: %s", p.body)
			}
		})
	}
}

// TestRolesEnforced: a key's role decides what the console does, as over
// the API, whatever the page showed: each POST with a valid session and
// token is refused with 403 when the role is short, and not otherwise.
func TestRolesEnforced(t *testing.T) {
	s := testenv.NewServer(t, testenv.ServerOptions{})
	s.Install(testenv.Plugin(t, "goecho"))
	s.CreateInstance("echo", "goecho", nil, store.Settings{})
	inc, err := s.Service.Incidents.Create(t.Context(), service.IncidentInput{Name: ptr("Suspicious login")})
	if err != nil {
		t.Fatal(err)
	}
	clients := map[service.Role]*client{}
	for _, role := range service.Roles {
		clients[role] = newClient(t, s.URL, nil)
		clients[role].mustSignIn(issue(t, s, "k-"+string(role), role))
	}
	posts := []struct {
		path string
		form url.Values
		need service.Role
	}{
		{"/instances/echo/test", nil, service.RoleOperator},
		{"/incidents/" + inc.ID + "/entries", url.Values{"contents": {"hello"}}, service.RoleOperator},
		{"/incidents/" + inc.ID + "/mirror/debug", nil, service.RoleOperator},
		{"/instances/echo/disable", nil, service.RoleAdmin},
		{"/instances/echo/context", url.Values{"context": {"{}"}, "version": {"-1"}}, service.RoleAdmin},
		{"/plugins/goecho/rollback", nil, service.RoleAdmin},
		{"/plugins/goecho/delete", url.Values{"version": {"9.9.9"}}, service.RoleAdmin},
		{"/keys", url.Values{"name": {"escalate"}, "role": {"admin"}}, service.RoleAdmin},
	}
	for _, tt := range posts {
		for _, role := range service.Roles {
			t.Run(string(role)+" "+tt.path, func(t *testing.T) {
				c := clients[role]
				form := url.Values{"csrf": {c.csrf}}
				for k, v := range tt.form {
					form[k] = v
				}
				token := c.csrf
				p := c.post(tt.path, form, nil)
				c.csrf = token
				if !role.Allows(tt.need) {
					if p.StatusCode != http.StatusForbidden || !strings.Contains(p.body, "role "+string(tt.need)) {
						t.Fatalf("want 403 naming role %s, got %d: %s", tt.need, p.StatusCode, p.body)
					}
					return
				}
				if p.StatusCode == http.StatusForbidden || p.StatusCode == http.StatusUnauthorized {
					t.Fatalf("role %s is enough, got %d: %s", role, p.StatusCode, p.body)
				}
			})
		}
	}
	if v, _ := s.Service.Instances.Get(t.Context(), "echo"); v.Enabled {
		t.Error("the admin's disable did not happen") // the one POST that changes state visibly
	}
	if p := clients[service.RoleRead].get("/keys"); p.StatusCode != http.StatusForbidden {
		t.Errorf("a read key reading API keys: %d", p.StatusCode)
	}
	if p := clients[service.RoleOperator].get("/instances/echo"); strings.Contains(p.body, `action="/instances/echo/disable"`) ||
		!strings.Contains(p.body, `action="/instances/echo/test"`) {
		t.Error("an operator sees disable, or not test")
	}
}

// TestSessionEnds: sign-out, revoking the key and the session's expiry
// each end a session at its next request.
func TestSessionEnds(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	s := testenv.NewServer(t, testenv.ServerOptions{Now: clock})
	tests := []struct {
		name string
		end  func(c *client, keyID string)
		msg  string
	}{
		{"sign-out", func(c *client, _ string) {
			if p := c.post("/logout", url.Values{"csrf": {c.csrf}}, nil); p.StatusCode != http.StatusSeeOther {
				t.Fatalf("sign-out: %d", p.StatusCode)
			}
		}, ""},
		{"key revoked", func(_ *client, id string) {
			if err := s.Service.APIKeys.Revoke(t.Context(), id); err != nil {
				t.Fatal(err)
			}
		}, "was revoked"},
		{"own key revoked in the console", func(c *client, id string) {
			if p := c.post("/keys/"+id+"/revoke", url.Values{"csrf": {c.csrf}}, nil); p.StatusCode != http.StatusSeeOther || p.Header.Get("Location") != "/login" {
				t.Fatalf("revoke: %d to %q", p.StatusCode, p.Header.Get("Location"))
			}
		}, ""},
		{"expired", func(*client, string) { now.Add(int64(console.DefaultSessionTTL + time.Second)) }, "session has ended"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, v, err := s.Service.APIKeys.Issue(t.Context(), service.APIKeySpec{Name: "k" + string(rune('a'+i)), Role: service.RoleAdmin})
			if err != nil {
				t.Fatal(err)
			}
			c := newClient(t, s.URL, nil)
			c.mustSignIn(key)
			u, _ := url.Parse(s.URL)
			cookie := c.hc.Jar.Cookies(u)
			tt.end(c, v.ID)
			// The old cookie replayed, as a thief would.
			replay := newClient(t, s.URL, nil)
			replay.hc.Jar.SetCookies(u, cookie)
			p := replay.get("/plugins")
			if p.StatusCode != http.StatusUnauthorized || !strings.Contains(p.body, `id="signin"`) || !strings.Contains(p.body, tt.msg) {
				t.Fatalf("after %s: %d, want the sign-in page saying %q: %s", tt.name, p.StatusCode, tt.msg, p.body)
			}
			if p := replay.post("/keys", url.Values{"csrf": {c.csrf}, "name": {"late"}, "role": {"admin"}}, nil); p.StatusCode != http.StatusUnauthorized {
				t.Fatalf("POST after %s: %d", tt.name, p.StatusCode)
			}
		})
	}
	if keys, _ := s.Service.APIKeys.List(t.Context()); len(keys) != 5 {
		t.Errorf("%d keys, want 5: a POST after the session ended created one", len(keys))
	}
}

// TestRateLimit: console requests count against the key's rate limit, as
// API requests do.
func TestRateLimit(t *testing.T) {
	s := testenv.NewServer(t, testenv.ServerOptions{API: func(o *api.Options) { o.RateLimit, o.RateBurst = 0.01, 3 }})
	c := newClient(t, s.URL, nil)
	c.mustSignIn(s.Key) // one request: the overview
	var last page
	for range 3 {
		last = c.get("/plugins")
	}
	if last.StatusCode != http.StatusTooManyRequests || last.Header.Get("Retry-After") == "" {
		t.Fatalf("fourth request: %d, Retry-After %q", last.StatusCode, last.Header.Get("Retry-After"))
	}
	r, err := http.NewRequest(http.MethodGet, s.URL+"/api/v1/plugins", nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Authorization", "Bearer "+s.Key)
	res, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusTooManyRequests {
		t.Errorf("the API after the console used the key's burst: %d, want 429", res.StatusCode)
	}
}

var nextRe = regexp.MustCompile(`<a href="(/incidents\?[^"]+)" id="next">`)

// TestIncidentList: search, filters and paging as the API's, the next
// page's link keeping the filters; bad filters are a 400 naming them.
func TestIncidentList(t *testing.T) {
	s := testenv.NewServer(t, testenv.ServerOptions{})
	for _, name := range []string{"alpha one", "alpha two", "beta", "Alpha three"} {
		if _, err := s.Service.Incidents.Create(t.Context(), service.IncidentInput{Name: ptr(name), Type: ptr("Phishing")}); err != nil {
			t.Fatal(err)
		}
	}
	closed, err := s.Service.Incidents.Create(t.Context(), service.IncidentInput{Name: ptr("alpha closed")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Service.Incidents.Close(t.Context(), closed.ID, "Resolved", ""); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, s.URL, nil)
	c.mustSignIn(s.Key)
	rows := func(p page) int { return strings.Count(p.body, `<td><a href="/incidents/`) }

	p := c.get("/incidents?q=alpha&type=Phishing&limit=2")
	m := nextRe.FindStringSubmatch(p.body)
	if p.StatusCode != http.StatusOK || rows(p) != 2 || m == nil {
		t.Fatalf("first page: %d, %d rows, next %v", p.StatusCode, rows(p), m)
	}
	next := strings.ReplaceAll(m[1], "&amp;", "&")
	for _, kv := range []string{"q=alpha", "type=Phishing", "limit=2", "cursor="} {
		if !strings.Contains(next, kv) {
			t.Errorf("next link %s lost %s", next, kv)
		}
	}
	p = c.get(next)
	if rows(p) != 1 || nextRe.MatchString(p.body) || !strings.Contains(p.body, "Alpha three") {
		t.Errorf("second page: %d rows", rows(p))
	}
	if p := c.get("/incidents?status=done"); rows(p) != 1 || !strings.Contains(p.body, "alpha closed") {
		t.Errorf("status=done: %d rows", rows(p))
	}
	future := url.QueryEscape(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	if p := c.get("/incidents?modifiedAfter=" + future); rows(p) != 0 {
		t.Errorf("modified in the future: %d rows", rows(p))
	}
	for _, bad := range []string{"limit=0", "limit=501", "status=open", "modifiedAfter=yesterday"} {
		if p := c.get("/incidents?" + bad); p.StatusCode != http.StatusBadRequest || !strings.Contains(p.body, strings.SplitN(bad, "=", 2)[1]) {
			t.Errorf("%s: %d, want 400 naming the value", bad, p.StatusCode)
		}
	}
}

// TestInstanceForms: an instance made and edited through the params form
// gets typed values and defaults; a secret is write-only (never in a
// page), kept when its field is left empty and removed only when cleared;
// settings the form does not show keep their value.
func TestInstanceForms(t *testing.T) {
	const secret = "s3cret-token-value"
	s := testenv.NewServer(t, testenv.ServerOptions{})
	s.Install(testenv.PluginWithManifest(t, "goecho", func(m *abi.Manifest) {
		m.Params = []abi.Param{
			{Name: "url", Type: abi.ParamString, Required: true},
			{Name: "token", Type: abi.ParamSecret},
			{Name: "max", Type: abi.ParamNumber, Default: 5.0},
			{Name: "verbose", Type: abi.ParamBool},
			{Name: "mode", Type: abi.ParamSelect, Options: []string{"fast", "safe"}, Default: "safe"},
		}
	}))
	c := newClient(t, s.URL, nil)
	c.mustSignIn(s.Key)
	if p := c.get("/instances?plugin=goecho"); !strings.Contains(p.body, `name="p.max" value="5"`) || !strings.Contains(p.body, `<option selected>safe</option>`) {
		t.Fatalf("the create form lacks the defaults:\n%s", p.body)
	}
	p := c.post("/instances", url.Values{"csrf": {c.csrf}, "plugin": {"goecho"}, "name": {"e"}, "p.url": {"https://x.example"},
		"p.token": {secret}, "p.max": {""}, "p.verbose": {"true"}, "p.mode": {"fast"}, "s.mirror_direction": {"In"}, "s.comment_tag": {"comment"}}, nil)
	if p.StatusCode != http.StatusOK || !strings.Contains(p.body, "Instance created") {
		t.Fatalf("create: %d %s", p.StatusCode, p.body)
	}
	v, err := s.Service.Instances.Get(t.Context(), "e")
	if err != nil || v.Params["url"] != "https://x.example" || v.Params["max"] != 5.0 || v.Params["verbose"] != true || v.Params["mode"] != "fast" ||
		len(v.SecretsSet) != 1 || v.Settings.MirrorDirection != "In" || v.Settings.CommentTag != "comment" || v.Enabled {
		t.Fatalf("created %+v, %v", v, err)
	}
	// A setting only the API sets survives edits from the form.
	mem := 64
	if _, err := s.Service.Instances.Update(t.Context(), "e", service.InstanceInput{Settings: &store.Settings{MirrorDirection: "In", CommentTag: "comment", MemoryMiB: mem}}); err != nil {
		t.Fatal(err)
	}
	edit := func(extra url.Values) page {
		form := url.Values{"csrf": {c.csrf}, "p.url": {"https://y.example"}, "p.token": {""}, "p.max": {"7"}, "p.mode": {"safe"}, "s.mirror_direction": {"Out"}}
		for k, v := range extra {
			form[k] = v
		}
		return c.post("/instances/e", form, nil)
	}
	if p := edit(nil); p.StatusCode != http.StatusOK || strings.Contains(p.body, secret) {
		t.Fatalf("edit: %d, or the page shows the secret", p.StatusCode)
	}
	v, _ = s.Service.Instances.Get(t.Context(), "e")
	if v.Params["url"] != "https://y.example" || v.Params["max"] != 7.0 || v.Params["verbose"] != false || len(v.SecretsSet) != 1 ||
		v.Settings.MirrorDirection != "Out" || v.Settings.MemoryMiB != mem {
		t.Fatalf("after an edit leaving the secret empty: %+v", v)
	}
	if p := c.get("/instances/e"); strings.Contains(p.body, secret) || !strings.Contains(p.body, "set; leave empty to keep") {
		t.Fatal("the instance page shows the secret, or not that it is set")
	}
	edit(url.Values{"clear.token": {"true"}})
	if v, _ = s.Service.Instances.Get(t.Context(), "e"); len(v.SecretsSet) != 0 {
		t.Fatalf("clear left the secret set: %+v", v.SecretsSet)
	}
	if p := edit(url.Values{"p.max": {"many"}}); p.StatusCode != http.StatusBadRequest || !strings.Contains(p.body, "max") {
		t.Errorf("a bad number: %d, want 400 naming the param", p.StatusCode)
	}
}

// TestInstanceFormsConventionalParams: where the manifest declares one of
// XSOAR's conventional params, the form has no setting for it (the param
// drives the host), and a forged setting field is not applied.
func TestInstanceFormsConventionalParams(t *testing.T) {
	s := testenv.NewServer(t, testenv.ServerOptions{})
	s.Install(testenv.PluginWithManifest(t, "goecho", func(m *abi.Manifest) {
		m.IsRemoteSyncIn = true
		m.Params = []abi.Param{
			{Name: "mirror_direction", Type: abi.ParamSelect, Options: []string{"None", "Incoming", "Outgoing", "Incoming And Outgoing"}, Default: "None"},
		}
	}))
	c := newClient(t, s.URL, nil)
	c.mustSignIn(s.Key)
	form := c.get("/instances?plugin=goecho")
	if strings.Contains(form.body, `name="s.mirror_direction"`) || !strings.Contains(form.body, `name="p.mirror_direction"`) ||
		!strings.Contains(form.body, `name="s.comment_tag"`) {
		t.Fatalf("the create form should offer the param, not the setting, for mirror_direction only:\n%s", form.body)
	}
	p := c.post("/instances", url.Values{"csrf": {c.csrf}, "plugin": {"goecho"}, "name": {"m"},
		"p.mirror_direction": {"Incoming"}, "s.mirror_direction": {"Both"}}, nil)
	if p.StatusCode != http.StatusOK || !strings.Contains(p.body, "Instance created") {
		t.Fatalf("create: %d %s", p.StatusCode, p.body)
	}
	v, err := s.Service.Instances.Get(t.Context(), "m")
	if err != nil || v.Params["mirror_direction"] != "Incoming" || v.Settings.MirrorDirection != "" {
		t.Fatalf("created %+v, %v; want the param set and no setting", v, err)
	}
	if p := c.get("/instances/m"); strings.Contains(p.body, `name="s.mirror_direction"`) {
		t.Error("the edit form offers the setting of a declared param")
	}
}

// TestSessionsPerKey: signing in with one key again and again keeps at
// most 16 sessions, ending the oldest.
func TestSessionsPerKey(t *testing.T) {
	s := testenv.NewServer(t, testenv.ServerOptions{})
	first := newClient(t, s.URL, nil)
	first.mustSignIn(s.Key)
	var last *client
	for range 16 {
		last = newClient(t, s.URL, nil)
		last.mustSignIn(s.Key)
	}
	if p := first.get("/"); p.StatusCode != http.StatusUnauthorized {
		t.Errorf("the oldest of 17 sessions: %d, want 401", p.StatusCode)
	}
	if p := last.get("/"); p.StatusCode != http.StatusOK {
		t.Errorf("the newest session: %d", p.StatusCode)
	}
	other := newClient(t, s.URL, nil)
	other.mustSignIn(issue(t, s, "other", service.RoleRead)) // another key's sessions are not counted
	if p := last.get("/"); p.StatusCode != http.StatusOK {
		t.Errorf("another key's sign-in ended a session: %d", p.StatusCode)
	}
}

// TestFormLimit: a form larger than server.max_body_bytes is refused with
// 413 and does nothing.
func TestFormLimit(t *testing.T) {
	s := testenv.NewServer(t, testenv.ServerOptions{})
	inc, err := s.Service.Incidents.Create(t.Context(), service.IncidentInput{Name: ptr("big")})
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, s.URL, nil)
	c.mustSignIn(s.Key)
	for _, chunked := range []bool{false, true} {
		body := url.Values{"csrf": {c.csrf}, "contents": {strings.Repeat("x", api.DefaultMaxBodyBytes)}}.Encode()
		req, err := http.NewRequest(http.MethodPost, s.URL+"/incidents/"+inc.ID+"/entries", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if chunked { // no Content-Length: the limit applies while reading
			req.ContentLength = -1
			req.Body = io.NopCloser(strings.NewReader(body))
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		token := c.csrf
		p := c.do(req)
		c.csrf = token
		if p.StatusCode != http.StatusRequestEntityTooLarge || strings.Count(p.body, "<html") != 1 || !strings.Contains(p.body, "exceeds the limit") {
			t.Errorf("chunked %v: %d, want one 413 page: %s", chunked, p.StatusCode, p.body)
		}
	}
	if es, _, _ := s.Service.Incidents.ListEntries(t.Context(), inc.ID, service.EntryQuery{}); len(es) != 0 {
		t.Errorf("%d entries added by refused forms", len(es))
	}
}

// TestIncidentActions: close with a reason, reopen, and an entry with
// tags and the note flag, each shown on the incident page.
func TestIncidentActions(t *testing.T) {
	s := testenv.NewServer(t, testenv.ServerOptions{})
	inc, err := s.Service.Incidents.Create(t.Context(), service.IncidentInput{Name: ptr("Suspicious login")})
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, s.URL, nil)
	c.mustSignIn(s.Key)
	path := "/incidents/" + inc.ID
	p := c.post(path+"/close", url.Values{"csrf": {c.csrf}, "closeReason": {"Resolved"}, "closeNotes": {"reset the password"}}, nil)
	if got, _ := s.Service.Incidents.Get(t.Context(), inc.ID); p.StatusCode != http.StatusOK || got.Status != abi.StatusDone ||
		got.CloseReason != "Resolved" || got.CloseNotes != "reset the password" || !strings.Contains(p.body, `id="reopen"`) {
		t.Fatalf("close: %d, incident %+v", p.StatusCode, got)
	}
	if p := c.post(path+"/close", url.Values{"csrf": {c.csrf}}, nil); p.StatusCode != http.StatusConflict || !strings.Contains(p.body, "conflict") {
		t.Errorf("closing twice: %d, want the API's 409", p.StatusCode)
	}
	p = c.post(path+"/reopen", url.Values{"csrf": {c.csrf}}, nil)
	if got, _ := s.Service.Incidents.Get(t.Context(), inc.ID); p.StatusCode != http.StatusOK || got.Status != abi.StatusActive || !strings.Contains(p.body, `id="close"`) {
		t.Fatalf("reopen: %d, status %d", p.StatusCode, got.Status)
	}
	c.post(path+"/entries", url.Values{"csrf": {c.csrf}, "contents": {"Called the user."}, "tags": {" comment, escalation ,"}, "note": {"true"}}, nil)
	es, _, err := s.Service.Incidents.ListEntries(t.Context(), inc.ID, service.EntryQuery{})
	if err != nil || len(es) != 1 || es[0].Contents != "Called the user." || !es[0].Note || strings.Join(es[0].Tags, "|") != "comment|escalation" || es[0].User != "test" {
		t.Fatalf("entries %+v, %v", es, err)
	}
	if p := c.get(path); !strings.Contains(p.body, "Called the user.") || !strings.Contains(p.body, "comment, escalation") || strings.Contains(p.body, `id="mirror-now"`) {
		t.Error("the war room lacks the entry, or a mirror-now button shows for an incident that is not mirrored")
	}
}
