package host

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/connhost/connhost/abi"
)

// egressRule is one allow-list entry: a host name (or "*." suffix) and an
// optional port.
type egressRule struct {
	host     string // lower case; for wildcards the suffix with its leading dot
	wildcard bool
	port     string // "" matches any port
}

// parseEgress parses allow-list entries with abi.ParseEgress, the grammar
// the manifest check uses, after lower-casing them: operators and URL
// parameters may spell host names in any case.
func parseEgress(entries []string) ([]egressRule, error) {
	rules := make([]egressRule, 0, len(entries))
	for _, e := range entries {
		r, err := abi.ParseEgress(strings.ToLower(e))
		if err != nil {
			return nil, fmt.Errorf("egress %q: %w", e, err)
		}
		rule := egressRule{host: r.Host, wildcard: r.Wildcard, port: r.Port}
		if r.Wildcard {
			rule.host = "." + r.Host
		}
		rules = append(rules, rule)
	}
	return rules, nil
}

// deriveEgress resolves the manifest's egress entries, "param:NAME" becoming
// the host (and port, if given) of the URL in params[NAME]. An unset
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
		out = append(out, u.Host)
	}
	return out, nil
}

// allowed reports whether u may be requested under rules.
func allowed(rules []egressRule, u *url.URL) bool {
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if port == "" {
		switch u.Scheme {
		case "http":
			port = "80"
		case "https":
			port = "443"
		}
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
