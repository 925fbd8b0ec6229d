// Package nethttp adapts the SDK's HTTP to net/http for plugin authors who
// want it: an *http.Client whose requests go through the host, and an
// http.Handler serving connhost_http. It links net/http (and, through it,
// crypto/tls), which roughly triples a plugin's size and compile time; the
// sdk package's own Host.HTTP, APIClient and HTTPHandler avoid it.
package nethttp

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/connhost/connhost/abi"
	sdk "github.com/connhost/connhost/sdk-guest"
)

// Client returns an http.Client whose requests go through d, usually the
// *sdk.Host (net/http has no network in wasip1) or a wrapper of it such as
// an oauth2 authorizer. The host enforces the egress allow-list; a denied
// host fails with an error matching sdk.ErrDenied. Set a per-request
// deadline with the request's context.
func Client(d sdk.Doer) *http.Client {
	return &http.Client{Transport: Transport(d)}
}

// Transport returns an http.RoundTripper over d.
func Transport(d sdk.Doer) http.RoundTripper { return &transport{d: d} }

type transport struct{ d sdk.Doer }

// RoundTrip sends req through the Doer. The request context's deadline, if
// any, becomes the host-side timeout.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("read request body: %w", err)
		}
		body = b
	}
	hr := abi.HTTPRequest{Method: req.Method, URL: req.URL.String(), Headers: req.Header, Body: body}
	if req.Host != "" && req.Host != req.URL.Host {
		hr.Headers = req.Header.Clone()
		hr.Headers["Host"] = []string{req.Host}
	}
	r, err := t.d.HTTP(req.Context(), hr)
	if err != nil {
		return nil, err
	}
	return &http.Response{
		Status:        strconv.Itoa(r.Status) + " " + http.StatusText(r.Status),
		StatusCode:    r.Status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header(r.Headers),
		Body:          io.NopCloser(bytes.NewReader(r.Body)),
		ContentLength: int64(len(r.Body)),
		Request:       req,
	}, nil
}

type hostKey struct{}

// HostFrom returns the Host stored in the context of a request served by a
// Handler, or nil.
func HostFrom(ctx context.Context) *sdk.Host {
	h, _ := ctx.Value(hostKey{}).(*sdk.Host)
	return h
}

// Handler adapts an http.Handler to sdk.Connector.HTTP. HostFrom on the
// request's context returns the Host.
func Handler(handler http.Handler) sdk.HTTPHandler {
	return func(ctx context.Context, h *sdk.Host, hr *abi.HTTPRequest) (*abi.HTTPResponse, error) {
		target := hr.Path
		if target == "" {
			target = "/"
		}
		if hr.Query != "" {
			target += "?" + hr.Query
		}
		req, err := http.NewRequestWithContext(context.WithValue(ctx, hostKey{}, h), hr.Method, target, bytes.NewReader(hr.Body))
		if err != nil {
			return nil, sdk.BadRequest("http request: %v", err)
		}
		req.RequestURI = target
		req.Header = http.Header(hr.Headers)
		if req.Header == nil {
			req.Header = http.Header{}
		}
		req.Host = req.Header.Get("Host")
		rec := &recorder{header: http.Header{}}
		handler.ServeHTTP(rec, req)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		return &abi.HTTPResponse{Status: rec.status, Headers: rec.header, Body: rec.body.Bytes()}, nil
	}
}

// recorder is a minimal http.ResponseWriter that buffers the response.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}
