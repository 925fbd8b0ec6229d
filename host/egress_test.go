package host

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
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
