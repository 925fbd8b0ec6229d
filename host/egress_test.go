package host

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/connhost/connhost/abi"
)

func TestAllowed(t *testing.T) {
	rules, err := parseEgress([]string{"api.example.com", "*.corp.example:8443", "10.0.0.1:8080", "[::1]:9000"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		url  string
		want bool
	}{
		{"https://api.example.com/v1", true},
		{"http://API.example.com:8080/", true}, // no port in the rule: any port
		{"https://evil-api.example.com/", false},
		{"https://api.example.com.evil.net/", false},
		{"https://a.corp.example:8443/", true},
		{"https://a.b.corp.example:8443/", true},
		{"https://a.corp.example/", false}, // port 443
		{"https://corp.example:8443/", false},
		{"http://10.0.0.1:8080/", true},
		{"http://10.0.0.1/", false},
		{"http://[::1]:9000/", true},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := allowed(rules, u); got != tt.want {
			t.Errorf("allowed(%s) = %v, want %v", tt.url, got, tt.want)
		}
	}
	for _, bad := range []string{"*", "a/b", "host:1:2:x", ""} {
		if _, err := parseEgress([]string{bad}); err == nil {
			t.Errorf("parseEgress(%q) accepted", bad)
		}
	}
}

// TestHTTPRequestEgress drives http_request through the guest against
// loopback servers: the allowed host answers, others are denied by name,
// redirects are re-checked and the body is capped.
func TestHTTPRequestEgress(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("request reached a host not on the allow-list: %s", r.URL)
	}))
	defer other.Close()
	otherURL, _ := url.Parse(other.URL)
	// Same address, other name: "localhost" is not on the list.
	otherByName := "http://localhost:" + otherURL.Port() + "/"

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, otherByName, http.StatusFound)
		case "/big":
			_, _ = w.Write([]byte(strings.Repeat("z", 5000)))
		case "/slow":
			<-r.Context().Done() // answers only after the client gave up
		default:
			w.Header().Set("X-Got-Auth", r.Header.Get("Authorization"))
			_, _ = w.Write([]byte("hello " + r.Method))
		}
	}))
	defer srv.Close()

	e := newEnv(t)
	// Egress is derived from the manifest's "param:url".
	inst := e.instance(t, "probe", NewMemServices(), InstanceSpec{
		Params: map[string]any{"url": srv.URL + "/api"},
		Limits: Limits{HTTPBodyBytes: 4096},
	})
	res, err := rpcCall(t, inst, abi.ImportHTTPRequest, abi.HTTPRequest{Method: "POST", URL: srv.URL + "/ok", Headers: map[string][]string{"Authorization": {"Bearer t"}}, Body: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	var resp abi.HTTPResponse
	if err := json.Unmarshal(res, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 || string(resp.Body) != "hello POST" || resp.Headers["X-Got-Auth"][0] != "Bearer t" {
		t.Errorf("response %d %q %v", resp.Status, resp.Body, resp.Headers)
	}

	tests := []struct {
		name string
		req  abi.HTTPRequest
		kind abi.ErrorKind
		want string
	}{
		{"other host", abi.HTTPRequest{URL: otherByName}, abi.KindDenied, `host "localhost:` + otherURL.Port() + `" is not on the egress allow-list`},
		{"redirect", abi.HTTPRequest{URL: srv.URL + "/redirect"}, abi.KindDenied, `redirect to host "localhost:` + otherURL.Port() + `"`},
		{"body cap", abi.HTTPRequest{URL: srv.URL + "/big"}, abi.KindFailed, "response body exceeds the limit of 4096 bytes"},
		{"timeout", abi.HTTPRequest{URL: srv.URL + "/slow", TimeoutMS: 50}, abi.KindTimeout, "timed out"},
		{"not http", abi.HTTPRequest{URL: "file:///etc/passwd"}, abi.KindBadRequest, "want an absolute http or https URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := rpcCall(t, inst, abi.ImportHTTPRequest, tt.req)
			wantRelayed(t, err, tt.kind, tt.want)
		})
	}
}

// TestNarrowEgress: the operator's entries narrow the manifest's list to
// their intersection; an entry sharing nothing with it is refused, naming
// it; a URL param without a port allows its scheme's default port only.
func TestNarrowEgress(t *testing.T) {
	m := &abi.Manifest{Egress: []string{"api.vendor.com", "*.corp.example:8443", "param:url"}}
	tests := []struct {
		name     string
		url      string
		operator []string
		want     []string
		err      string
	}{
		{name: "manifest only", url: "https://tenant.vendor.io/x", want: []string{"api.vendor.com", "*.corp.example:8443", "tenant.vendor.io:443"}},
		{name: "http url", url: "http://tenant.vendor.io", want: []string{"api.vendor.com", "*.corp.example:8443", "tenant.vendor.io:80"}},
		{name: "url without scheme", url: "tenant.vendor.io", want: []string{"api.vendor.com", "*.corp.example:8443", "tenant.vendor.io:443"}},
		{name: "url with port", url: "http://tenant.vendor.io:8080/", want: []string{"api.vendor.com", "*.corp.example:8443", "tenant.vendor.io:8080"}},
		{name: "url with another scheme", url: "ldap://dir.vendor.io", err: `scheme "ldap" without a port`},
		{name: "operator narrows", url: "https://t.vendor.io", operator: []string{"API.vendor.com:443", "a.corp.example"},
			want: []string{"api.vendor.com:443", "a.corp.example:8443"}},
		{name: "operator wildcard under a wildcard", operator: []string{"*.x.corp.example"}, want: []string{"*.x.corp.example:8443"}},
		{name: "operator wildcard over a host", url: "https://t.vendor.io", operator: []string{"*.vendor.io"}, want: []string{"t.vendor.io:443"}},
		{name: "operator allows nothing", operator: []string{}, want: []string{}},
		{name: "operator widens to another host", operator: []string{"api.vendor.com", "evil.example"}, err: `egress "evil.example": not allowed by the plugin's manifest`},
		{name: "operator widens to another port", url: "https://t.vendor.io", operator: []string{"t.vendor.io:22"}, err: `egress "t.vendor.io:22": not allowed`},
		{name: "operator repeats the manifest's wildcard", operator: []string{"*.corp.example"}, want: []string{"*.corp.example:8443"}},
		{name: "operator entry that does not parse", operator: []string{"a/b"}, err: `egress "a/b": a path`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NarrowEgress(m, map[string]any{"url": tt.url}, tt.operator)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("NarrowEgress = %v, %v; want an error containing %q", got, err, tt.err)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("NarrowEgress = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// stubResolver answers test host names with fixed addresses, counting
// lookups so a name can be rebound between them.
type stubResolver struct {
	mu      sync.Mutex
	answers map[string][][]netip.Addr // successive answers; the last repeats
	lookups map[string]int
}

func (r *stubResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	as, ok := r.answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	n := r.lookups[host]
	r.lookups[host]++
	return as[min(n, len(as)-1)], nil
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// TestEgressAddresses: a host name on the allow-list is dialled only if
// every address it resolves to is ordinary, or named by the allow-list, or
// private with AllowPrivateEgress; a name rebound to loopback after a first
// lookup is refused on the next dial. Names resolve through a stub to
// loopback test servers (or addresses nothing listens on).
func TestEgressAddresses(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("reached " + r.Host))
	}))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	p := strconv.Itoa(port)
	res := &stubResolver{lookups: map[string]int{}, answers: map[string][][]netip.Addr{
		"local.test":   {addrs("127.0.0.1")},
		"a.loop.test":  {addrs("127.0.0.1")},
		"meta.test":    {addrs("169.254.169.254")},
		"meta6.test":   {addrs("fe80::1")},
		"private.test": {addrs("10.1.2.3")},
		"ula.test":     {addrs("fd00::1")},
		"zero.test":    {addrs("0.0.0.0")},
		"mapped.test":  {addrs("::ffff:127.0.0.1")},
		"nat64.test":   {addrs("64:ff9b::7f00:1")},
		"mixed.test":   {addrs("192.0.2.10", "127.0.0.1")},
		// Rebinding: public for the first lookup, loopback after.
		"rebind.test": {addrs("192.0.2.10"), addrs("127.0.0.1")},
	}}
	tests := []struct {
		name         string
		egress       []string
		allowPrivate bool
		url          string
		want         string // "" means reached
	}{
		{name: "loopback by name", egress: []string{"local.test"}, url: "http://local.test:" + p, want: "127.0.0.1 is a loopback address"},
		{name: "loopback named literally", egress: []string{"local.test", "127.0.0.1"}, url: "http://local.test:" + p},
		{name: "loopback literal URL", egress: []string{"127.0.0.1:" + p}, url: "http://127.0.0.1:" + p},
		{name: "metadata", egress: []string{"meta.test"}, url: "http://meta.test/latest", want: "169.254.169.254 is a link-local address"},
		{name: "link-local v6", egress: []string{"meta6.test"}, url: "http://meta6.test/", want: "fe80::1 is a link-local address"},
		{name: "private", egress: []string{"private.test"}, url: "http://private.test/", want: "10.1.2.3 is a private address"},
		{name: "ula", egress: []string{"ula.test"}, url: "http://ula.test/", want: "fd00::1 is a private address"},
		{name: "unspecified", egress: []string{"zero.test"}, url: "http://zero.test/", want: "0.0.0.0 is an unspecified address"},
		{name: "v4-mapped loopback", egress: []string{"mapped.test"}, url: "http://mapped.test/", want: "127.0.0.1 is a loopback address"},
		{name: "nat64 loopback", egress: []string{"nat64.test"}, url: "http://nat64.test/", want: "64:ff9b::7f00:1 is a loopback address"},
		{name: "one bad address of two", egress: []string{"mixed.test"}, url: "http://mixed.test/", want: "127.0.0.1 is a loopback address"},
		{name: "loopback even with private allowed", egress: []string{"local.test"}, allowPrivate: true, url: "http://local.test:" + p, want: "127.0.0.1 is a loopback address"},
		{name: "wildcard", egress: []string{"*.loop.test"}, url: "http://a.loop.test:" + p, want: "127.0.0.1 is a loopback address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnvConfig(t, Config{Resolver: res, AllowPrivateEgress: tt.allowPrivate})
			inst := e.instance(t, "probe", NewMemServices(), InstanceSpec{Params: map[string]any{"url": "http://x.test"}, Egress: nil})
			inst.egress, _ = parseEgress(tt.egress)
			inst.transport.DialContext = (&egressDialer{dialer: &net.Dialer{}, resolver: res, rules: inst.egress, allowPrivate: tt.allowPrivate}).DialContext
			inst.client = newHTTPClient(inst.transport, inst.egress)
			out, err := rpcCall(t, inst, abi.ImportHTTPRequest, abi.HTTPRequest{URL: tt.url, TimeoutMS: 2000})
			if tt.want == "" {
				if err != nil {
					t.Fatalf("not reached: %v", err)
				}
				var resp abi.HTTPResponse
				if err := json.Unmarshal(out, &resp); err != nil || !strings.HasPrefix(string(resp.Body), "reached") {
					t.Fatalf("response %s, %v", out, err)
				}
				return
			}
			wantRelayed(t, err, abi.KindDenied, tt.want)
		})
	}
	t.Run("private with AllowPrivateEgress", func(t *testing.T) {
		// Nothing listens on 10.1.2.3: the request is dialled and times
		// out, rather than being denied.
		e := newEnvConfig(t, Config{Resolver: res, AllowPrivateEgress: true})
		inst := e.instance(t, "probe", NewMemServices(), InstanceSpec{Params: map[string]any{"url": "http://private.test:" + p}})
		_, err := rpcCall(t, inst, abi.ImportHTTPRequest, abi.HTTPRequest{URL: "http://private.test:" + p, TimeoutMS: 200})
		var ce *CallError
		if !errors.As(err, &ce) || strings.Contains(ce.Err.Message, "denied") {
			t.Fatalf("want a dial that fails, got %v", err)
		}
	})
	t.Run("rebinding", func(t *testing.T) {
		// The name is allowed and its first answer is public (nothing
		// listens there: the dial fails); the next answer is loopback and
		// must be refused, not dialled.
		e := newEnvConfig(t, Config{Resolver: res})
		inst := e.instance(t, "probe", NewMemServices(), InstanceSpec{Params: map[string]any{"url": "http://rebind.test:" + p}})
		_, err := rpcCall(t, inst, abi.ImportHTTPRequest, abi.HTTPRequest{URL: "http://rebind.test:" + p, TimeoutMS: 300})
		if err == nil {
			t.Fatal("the first request reached a server")
		}
		_, err = rpcCall(t, inst, abi.ImportHTTPRequest, abi.HTTPRequest{URL: "http://rebind.test:" + p, TimeoutMS: 2000})
		wantRelayed(t, err, abi.KindDenied, "127.0.0.1 is a loopback address")
	})
}
