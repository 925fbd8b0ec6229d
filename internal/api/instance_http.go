package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host/api/apitypes"
	"github.com/connhost/connhost/internal/service"
)

// InstanceHTTPPrefix is where requests into long-running HTTP plugins are
// served, outside Prefix as XSOAR's /instance/execute/<instance name>.
const InstanceHTTPPrefix = "/instance/execute"

// hopHeaders are connection-level headers neither passed to a plugin nor
// copied from its response.
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Content-Length"}

// mountInstanceHTTP registers /instance/execute/:instance[/*] (no API key:
// the instance's own credentials apply) and the authenticated
// long-running status route.
func (s *Server) mountInstanceHTTP() {
	s.echo.Any(InstanceHTTPPrefix+"/:instance", s.instanceHTTP)
	s.echo.Any(InstanceHTTPPrefix+"/:instance/*", s.instanceHTTP)
	s.echo.GET(Prefix+"/instances/:name/long-running", s.longRunning)
}

// instanceHTTP hands a request to the instance's connhost_http export.
// Plugin failures are answered without detail (the caller is outside the
// server); the log has them.
func (s *Server) instanceHTTP(c echo.Context) error {
	name := c.Param("instance")
	r := c.Request()
	headers := map[string][]string(r.Header.Clone())
	for _, h := range hopHeaders {
		delete(headers, h)
	}
	headers["Host"] = []string{r.Host}
	req := abi.HTTPRequest{
		Method: r.Method, Path: "/" + c.Param("*"), Query: r.URL.RawQuery, Headers: headers,
	}
	// The body is read only after the instance and its credentials are
	// checked: a client cannot hold a handler with a slow body to an
	// instance that does not exist, or without the password.
	var bodyErr error
	bodyRead := false
	resp, err := s.svc.LongRunning.HandleHTTP(ctx(c), name, req, func() ([]byte, error) {
		bodyRead = true
		limit := s.svc.LongRunning.MaxBodyBytes()
		b, err := readBody(c, limit)
		if ae, ok := err.(*apiError); ok && ae.status == http.StatusRequestEntityTooLarge {
			// The sender loses data: the operator must see it and may raise the limit.
			s.log.Warn().Str("instance", name).Int64("limit_bytes", limit).Int64("content_length", r.ContentLength).
				Msg("instance HTTP request body over long_running.http_max_body_bytes; refused with 413")
		}
		bodyErr = err
		return b, err
	})
	if !bodyRead {
		closeUnreadBody(c)
	}
	switch {
	case bodyErr != nil:
		return bodyErr
	case errors.Is(err, service.ErrUnauthenticated):
		c.Response().Header().Set("WWW-Authenticate", `Basic realm="connhost instance `+name+`"`)
		return apiErr(http.StatusUnauthorized, apitypes.CodeUnauthorized, "missing or wrong credentials for instance %q", name)
	case errors.Is(err, service.ErrNotFound):
		return apiErr(http.StatusNotFound, apitypes.CodeNotFound, "no instance %q is exposed over HTTP", name)
	case errors.Is(err, service.ErrBusy):
		s.log.Warn().Str("instance", name).Err(err).Msg("instance HTTP request refused: too many in flight")
		c.Response().Header().Set("Retry-After", "1")
		return apiErr(http.StatusServiceUnavailable, apitypes.CodeUnavailable, "instance %q has too many requests in flight; retry later", name)
	case errors.Is(err, service.ErrConflict):
		return apiErr(http.StatusServiceUnavailable, apitypes.CodeUnavailable, "instance %q is disabled", name)
	case errors.Is(err, service.ErrShuttingDown):
		return err
	case err != nil:
		s.log.Warn().Str("instance", name).Err(err).Msg("instance HTTP request failed")
		if abi.KindOf(err) == abi.KindTimeout {
			return apiErr(http.StatusGatewayTimeout, apitypes.CodeTimeout, "instance %q did not answer in time", name)
		}
		return apiErr(http.StatusBadGateway, apitypes.CodeBadGateway, "instance %q failed to handle the request", name)
	}
	if resp.Status < 100 || resp.Status > 999 {
		s.log.Warn().Str("instance", name).Int("status", resp.Status).Msg("instance HTTP response has an invalid status")
		return apiErr(http.StatusBadGateway, apitypes.CodeBadGateway, "instance %q answered with an invalid status", name)
	}
	h := c.Response().Header()
	for k, v := range resp.Headers {
		if !isHop(k) {
			h[http.CanonicalHeaderKey(k)] = v
		}
	}
	c.Response().WriteHeader(resp.Status)
	_, err = c.Response().Write(resp.Body)
	return err
}

func isHop(k string) bool {
	for _, h := range hopHeaders {
		if strings.EqualFold(h, k) {
			return true
		}
	}
	return false
}

// longRunning returns the supervision state and health of an instance's
// long-running execution.
func (s *Server) longRunning(c echo.Context) error {
	st, err := s.svc.LongRunning.Status(ctx(c), c.Param("name"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, longRunningOut(st))
}
