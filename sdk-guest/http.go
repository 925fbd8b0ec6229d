package sdk

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/connhost/connhost/abi"
)

// transport is an http.RoundTripper over the http_request host function.
type transport struct{ h *Host }

// RoundTrip sends req through the host. The host applies the egress
// allow-list and caps the response body; the call's context deadline, if
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
	ctx := req.Context()
	hr := abi.HTTPRequest{Method: req.Method, URL: req.URL.String(), Headers: req.Header, Body: body}
	if req.Host != "" && req.Host != req.URL.Host {
		hr.Headers = req.Header.Clone()
		hr.Headers["Host"] = []string{req.Host}
	}
	if dl, ok := ctx.Deadline(); ok {
		hr.TimeoutMS = max(1, time.Until(dl).Milliseconds())
	}
	var r abi.HTTPResponse
	if err := t.h.rpc(ctx, abi.ImportHTTPRequest, hr, &r); err != nil {
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

// HostFrom returns the Host stored in the context of a request served by
// Connector.HTTP, or nil.
func HostFrom(ctx context.Context) *Host {
	h, _ := ctx.Value(hostKey{}).(*Host)
	return h
}

// serveHTTP runs handler on a connhost_http request and records its
// response.
func serveHTTP(ctx context.Context, h *Host, handler http.Handler, hr *abi.HTTPRequest) (abi.HTTPResponse, error) {
	target := hr.Path
	if target == "" {
		target = "/"
	}
	if hr.Query != "" {
		target += "?" + hr.Query
	}
	req, err := http.NewRequestWithContext(context.WithValue(ctx, hostKey{}, h), hr.Method, target, bytes.NewReader(hr.Body))
	if err != nil {
		return abi.HTTPResponse{}, BadRequest("http request: %v", err)
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
	return abi.HTTPResponse{Status: rec.status, Headers: rec.header, Body: rec.body.Bytes()}, nil
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
