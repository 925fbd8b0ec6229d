package api

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/connhost/connhost/host/api/apitypes"
)

// Defaults of the HTTP server's connection limits (Options).
const (
	// DefaultReadHeaderTimeout bounds reading a request's headers: a client
	// sending them a byte at a time is cut off after it.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultReadTimeout bounds reading a whole request, body included; it
	// leaves a 64 MiB plugin upload about 0.5 MB/s.
	DefaultReadTimeout = 2 * time.Minute
	// DefaultIdleTimeout closes a keep-alive connection idle this long.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultMaxInFlightPerClient bounds the requests one client address
	// may have in progress at once.
	DefaultMaxInFlightPerClient = 64
)

// retryAfterSeconds is the Retry-After of a refusal by the in-flight bound:
// requests in progress usually finish within it.
const retryAfterSeconds = 1

// HTTPServer returns an http.Server for the API with the Options' timeouts.
// There is no write timeout: commands and plugin requests may rightly run
// for up to their own deadlines (settings.callTimeoutSeconds, up to an
// hour), and the in-flight bound per client caps what slow readers hold.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s.echo,
		ReadHeaderTimeout: s.opts.ReadHeaderTimeout,
		ReadTimeout:       s.opts.ReadTimeout,
		IdleTimeout:       s.opts.IdleTimeout,
	}
}

// ipExtractor returns how the client address of a request is found: the
// TCP peer, unless the peer is one of the trusted proxies, in which case
// the nearest untrusted address of X-Forwarded-For (or X-Real-IP without
// it). echo's extractors trust loopback, link-local and private peers by
// default; here only the configured ranges are trusted.
func ipExtractor(trusted []netip.Prefix) echo.IPExtractor {
	if len(trusted) == 0 {
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range trusted {
		p = p.Masked()
		opts = append(opts, echo.TrustIPRange(&net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}))
	}
	xff, realIP := echo.ExtractIPFromXFFHeader(opts...), echo.ExtractIPFromRealIPHeader(opts...)
	return func(r *http.Request) string {
		if len(r.Header.Values(echo.HeaderXForwardedFor)) > 0 {
			return xff(r)
		}
		return realIP(r)
	}
}

// inFlight counts the requests in progress per client address.
type inFlight struct {
	max int
	mu  sync.Mutex
	n   map[string]int // only addresses with requests in progress
}

// acquire counts one more request of addr, or reports false if addr is at
// the bound.
func (f *inFlight) acquire(addr string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n[addr] >= f.max {
		return false
	}
	f.n[addr]++
	return true
}

func (f *inFlight) release(addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n[addr]--; f.n[addr] <= 0 {
		delete(f.n, addr)
	}
}

// limitInFlight answers 503 with Retry-After to a client address that
// already has Options.MaxInFlightPerClient requests in progress, so one
// client cannot hold every handler (and the memory of their bodies).
func (s *Server) limitInFlight(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		addr := c.RealIP()
		if !s.inFlight.acquire(addr) {
			closeUnreadBody(c)
			c.Response().Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds))
			return apiErr(http.StatusServiceUnavailable, apitypes.CodeUnavailable,
				"too many requests in progress from %s (limit %d); retry later", addr, s.inFlight.max)
		}
		defer s.inFlight.release(addr)
		return next(c)
	}
}

// closeUnreadBody marks the connection to close after a response that
// refuses a request before reading its body. net/http would otherwise read
// up to 256 KiB of the body before sending the response, to keep the
// connection, and a client sending it slowly would hold the handler until
// server.read_timeout.
func closeUnreadBody(c echo.Context) {
	if c.Request().ContentLength != 0 {
		c.Response().Header().Set(echo.HeaderConnection, "close")
	}
}
