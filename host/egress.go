package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/connhost/connhost/abi"
)

// egressRule is one allow-list entry: a host name (or "*." suffix) and an
// optional port.
type egressRule struct {
	host     string // lower case; an IP address in its canonical form; for wildcards the suffix with its leading dot
	wildcard bool
	port     string // "" matches any port
}

// String is the rule in the allow-list grammar.
func (r egressRule) String() string {
	h := r.host
	switch {
	case r.wildcard:
		h = "*" + h
	case strings.Contains(h, ":"):
		h = "[" + h + "]"
	}
	if r.port != "" {
		h += ":" + r.port
	}
	return h
}

// parseEgress parses allow-list entries with abi.ParseEgress, the grammar
// the manifest check uses, after lower-casing them: operators and URL
// parameters may spell host names in any case.
func parseEgress(entries []string) ([]egressRule, error) {
	rules := make([]egressRule, 0, len(entries))
	for _, e := range entries {
		r, err := parseEgressEntry(e)
		if err != nil {
			return nil, err
		}
		rules = append(rules, r)
	}
	return rules, nil
}

func parseEgressEntry(e string) (egressRule, error) {
	r, err := abi.ParseEgress(strings.ToLower(e))
	if err != nil {
		return egressRule{}, fmt.Errorf("egress %q: %w", e, err)
	}
	rule := egressRule{host: r.Host, wildcard: r.Wildcard, port: r.Port}
	if r.Wildcard {
		rule.host = "." + r.Host
	} else if ip, err := netip.ParseAddr(r.Host); err == nil {
		// One spelling per address, so "[0::1]" and "[::1]" are the same
		// rule when rules are intersected.
		rule.host = ip.String()
	}
	return rule, nil
}

// ErrEgressOutsideManifest marks an operator's egress entry that the
// plugin's manifest does not allow: an operator can only narrow the
// manifest's allow-list.
var ErrEgressOutsideManifest = errors.New("not allowed by the plugin's manifest")

// NarrowEgress returns the egress allow-list of an instance of m with
// params (already validated): the manifest's egress with "param:NAME"
// resolved, narrowed by the operator's entries when operator is not nil.
// The result is the intersection of the two lists: an operator entry
// allows only what some manifest entry also allows ("api.example.com" under
// a manifest "api.example.com:443" allows port 443 only). An operator entry
// that does not parse is an error naming it, and so is one that shares
// nothing with the manifest's list (ErrEgressOutsideManifest).
func NarrowEgress(m *abi.Manifest, params map[string]any, operator []string) ([]string, error) {
	rules, outside, err := narrowEgress(m, params, operator)
	if err != nil {
		return nil, err
	}
	if len(outside) > 0 {
		return nil, fmt.Errorf("egress %q: %w (it allows %s)", outside[0], ErrEgressOutsideManifest, manifestEgress(m, params))
	}
	out := make([]string, len(rules))
	for i, r := range rules {
		out[i] = r.String()
	}
	return out, nil
}

// manifestEgress lists the manifest's resolved entries for messages.
func manifestEgress(m *abi.Manifest, params map[string]any) string {
	entries, _ := deriveEgress(m, params)
	if len(entries) == 0 {
		return "nothing"
	}
	return strings.Join(entries, ", ")
}

// narrowEgress is NarrowEgress on parsed rules, returning the operator's
// entries that share nothing with the manifest's list instead of failing
// on them: they allow nothing.
func narrowEgress(m *abi.Manifest, params map[string]any, operator []string) (rules []egressRule, outside []string, err error) {
	entries, err := deriveEgress(m, params)
	if err != nil {
		return nil, nil, err
	}
	manifest, err := parseEgress(entries)
	if err != nil || operator == nil {
		return manifest, nil, err
	}
	out := []egressRule{}
	for _, e := range operator {
		op, err := parseEgressEntry(e)
		if err != nil {
			return nil, nil, err
		}
		shared := false
		for _, mr := range manifest {
			r, ok := intersect(op, mr)
			shared = shared || ok
			if ok && !slices.Contains(out, r) {
				out = append(out, r)
			}
		}
		if !shared {
			outside = append(outside, e)
		}
	}
	return out, outside, nil
}

// intersect returns the rule allowing exactly what both a and b allow, if
// anything.
func intersect(a, b egressRule) (egressRule, bool) {
	port := a.port
	switch {
	case a.port == "":
		port = b.port
	case b.port != "" && b.port != a.port:
		return egressRule{}, false
	}
	switch {
	case !a.wildcard && !b.wildcard && a.host == b.host,
		!a.wildcard && b.wildcard && strings.HasSuffix(a.host, b.host),
		a.wildcard && b.wildcard && strings.HasSuffix(a.host, b.host):
		return egressRule{host: a.host, wildcard: a.wildcard, port: port}, true
	case a.wildcard && !b.wildcard && strings.HasSuffix(b.host, a.host),
		a.wildcard && b.wildcard && strings.HasSuffix(b.host, a.host):
		return egressRule{host: b.host, wildcard: b.wildcard, port: port}, true
	}
	return egressRule{}, false
}

// deriveEgress resolves the manifest's egress entries, "param:NAME" becoming
// the host and port of the URL in params[NAME]; a URL without a port allows
// only its scheme's default port (https when it has no scheme). An unset
// parameter allows nothing.
func deriveEgress(m *abi.Manifest, params map[string]any) ([]string, error) {
	var out []string
	for _, e := range m.Egress {
		name, ok := strings.CutPrefix(e, abi.EgressParamPrefix)
		if !ok {
			out = append(out, e)
			continue
		}
		s, _ := params[name].(string)
		if s == "" {
			continue
		}
		if !strings.Contains(s, "://") {
			s = "https://" + s
		}
		u, err := url.Parse(s)
		if err != nil || u.Hostname() == "" {
			return nil, fmt.Errorf("egress %q: param %q is not a URL", e, name)
		}
		host := u.Host
		if u.Port() == "" {
			port, ok := defaultPorts[strings.ToLower(u.Scheme)]
			if !ok {
				return nil, fmt.Errorf("egress %q: param %q: scheme %q without a port: want http or https, or a port", e, name, u.Scheme)
			}
			host = net.JoinHostPort(u.Hostname(), port)
		}
		out = append(out, host)
	}
	return out, nil
}

// defaultPorts are the ports of URLs that name none.
var defaultPorts = map[string]string{"http": "80", "https": "443"}

// allowed reports whether u may be requested under rules.
func allowed(rules []egressRule, u *url.URL) bool {
	host := strings.ToLower(u.Hostname())
	if ip, err := netip.ParseAddr(host); err == nil {
		host = ip.String()
	}
	port := u.Port()
	if port == "" {
		port = defaultPorts[u.Scheme]
	}
	for _, r := range rules {
		if r.port != "" && r.port != port {
			continue
		}
		if r.wildcard && strings.HasSuffix(host, r.host) || !r.wildcard && host == r.host {
			return true
		}
	}
	return false
}

// errRedirectDenied marks a redirect refused by the allow-list.
var errRedirectDenied = errors.New("redirect denied")

// newHTTPClient returns the client of one Instance: the Runtime's transport,
// and redirects re-checked against the allow-list.
func newHTTPClient(tr http.RoundTripper, rules []egressRule) *http.Client {
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			if !allowed(rules, req.URL) {
				return fmt.Errorf("%w: host %q is not on the egress allow-list", errRedirectDenied, req.URL.Host)
			}
			return nil
		},
	}
}

// redact drops userinfo, query and fragment from a URL for error messages:
// they may carry credentials.
func redact(u *url.URL) string {
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

// doHTTP performs an http_request for the guest. Headers and bodies are never
// logged.
func (i *Instance) doHTTP(ctx context.Context, cs *callState, r abi.HTTPRequest) (abi.HTTPResponse, error) {
	const name = abi.ImportHTTPRequest
	if r.URL == "" {
		return abi.HTTPResponse{}, missing(name, "url")
	}
	if r.Method == "" {
		r.Method = http.MethodGet
	}
	u, err := url.Parse(r.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return abi.HTTPResponse{}, abi.Errorf(abi.KindBadRequest, "%s: url: want an absolute http or https URL", name)
	}
	if !allowed(i.egress, u) {
		return abi.HTTPResponse{}, abi.Errorf(abi.KindDenied, "%s: host %q is not on the egress allow-list of instance %q", name, u.Host, i.spec.Info.Name)
	}
	if r.TimeoutMS > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(r.TimeoutMS)*time.Millisecond)
		defer cancel()
	}
	var body io.Reader
	if len(r.Body) > 0 {
		body = bytes.NewReader(r.Body)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, u.String(), body)
	if err != nil {
		return abi.HTTPResponse{}, abi.Errorf(abi.KindBadRequest, "%s: %s %s: invalid request", name, r.Method, redact(u))
	}
	for k, vs := range r.Headers {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := i.client.Do(req)
	if err != nil {
		switch {
		case errors.Is(err, errRedirectDenied):
			var ue *url.Error
			target := ""
			if errors.As(err, &ue) {
				if ru, perr := url.Parse(ue.URL); perr == nil {
					target = ru.Host
				}
			}
			return abi.HTTPResponse{}, abi.Errorf(abi.KindDenied, "%s: %s %s: redirect to host %q is not on the egress allow-list", name, r.Method, redact(u), target)
		case errors.Is(err, errAddressDenied):
			return abi.HTTPResponse{}, abi.Errorf(abi.KindDenied, "%s: %s %s: %v", name, r.Method, redact(u), unwrapURLError(err))
		case errors.Is(err, context.DeadlineExceeded):
			return abi.HTTPResponse{}, abi.Errorf(abi.KindTimeout, "%s: %s %s: timed out", name, r.Method, redact(u))
		case errors.Is(err, context.Canceled):
			return abi.HTTPResponse{}, abi.Errorf(abi.KindCanceled, "%s: %s %s: canceled", name, r.Method, redact(u))
		}
		return abi.HTTPResponse{}, abi.Errorf(abi.KindFailed, "%s: %s %s: %v", name, r.Method, redact(u), unwrapURLError(err))
	}
	defer resp.Body.Close()
	limit := int64(cs.lim.HTTPBodyBytes)
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return abi.HTTPResponse{}, abi.Errorf(abi.KindFailed, "%s: %s %s: read body: %v", name, r.Method, redact(u), unwrapURLError(err))
	}
	if int64(len(b)) > limit {
		return abi.HTTPResponse{}, abi.Errorf(abi.KindFailed, "%s: %s %s: response body exceeds the limit of %d bytes", name, r.Method, redact(u), limit)
	}
	return abi.HTTPResponse{Status: resp.StatusCode, Headers: resp.Header, Body: b}, nil
}

// unwrapURLError strips *url.Error, whose message repeats the full URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
