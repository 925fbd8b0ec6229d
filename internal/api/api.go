// Package api is the connhost server's HTTP API: JSON over echo, mounted
// under /api/v1, in front of internal/service (API → service → store). It adds
// bearer-key authentication, strict request decoding, one error format,
// request logging, Prometheus metrics, health endpoints and the OpenAPI
// document that describes it (openapi.json, embedded).
package api

import (
	"context"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/connhost/connhost/host/api/apitypes"
	"github.com/connhost/connhost/internal/service"
)

// Prefix is the path every API route starts with.
const Prefix = "/api/v1"

// Default body limits.
const (
	DefaultMaxBodyBytes   = 1 << 20
	DefaultMaxPluginBytes = 64 << 20
)

// Options configure a Server.
type Options struct {
	// Logger receives one line per request (method, route, status,
	// duration; never bodies or the Authorization header).
	Logger zerolog.Logger
	// MaxBodyBytes caps a JSON request body; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MaxPluginBytes caps an uploaded plugin; 0 means DefaultMaxPluginBytes.
	MaxPluginBytes int64
	// MetricsAuth puts /metrics behind the API key.
	MetricsAuth bool
	// Registry receives the server's metrics and is served on /metrics;
	// nil means a new registry with the Go and process collectors.
	Registry *prometheus.Registry
	// ReadHeaderTimeout, ReadTimeout and IdleTimeout configure HTTPServer;
	// 0 means DefaultReadHeaderTimeout, DefaultReadTimeout and
	// DefaultIdleTimeout.
	ReadHeaderTimeout, ReadTimeout, IdleTimeout time.Duration
	// MaxInFlightPerClient bounds the requests one client address may have
	// in progress; 0 means DefaultMaxInFlightPerClient.
	MaxInFlightPerClient int
	// TrustedProxies are the peers whose X-Forwarded-For or X-Real-IP
	// header names the client (for logs and per-client limits); from any
	// other peer the headers are ignored.
	TrustedProxies []netip.Prefix
}

// Server is the HTTP API of one service.
type Server struct {
	svc     *service.Service
	opts    Options
	log     zerolog.Logger
	echo    *echo.Echo
	metrics *metrics
	// routeSet holds every registered route template: the only route
	// labels metrics use.
	routeSet map[string]bool
	inFlight *inFlight
	draining atomic.Bool
}

// New builds the API of svc. Serve it with Handler.
func New(svc *service.Service, opts Options) *Server {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.MaxPluginBytes <= 0 {
		opts.MaxPluginBytes = DefaultMaxPluginBytes
	}
	if opts.Registry == nil {
		opts.Registry = NewRegistry()
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&opts.ReadHeaderTimeout, DefaultReadHeaderTimeout}, {&opts.ReadTimeout, DefaultReadTimeout}, {&opts.IdleTimeout, DefaultIdleTimeout}} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	if opts.MaxInFlightPerClient <= 0 {
		opts.MaxInFlightPerClient = DefaultMaxInFlightPerClient
	}
	s := &Server{svc: svc, opts: opts, log: opts.Logger, metrics: newMetrics(opts.Registry),
		inFlight: &inFlight{max: opts.MaxInFlightPerClient, n: map[string]int{}}}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.IPExtractor = ipExtractor(opts.TrustedProxies)
	e.Use(s.observe, s.recoverPanic, s.limitInFlight, s.checkQuery)
	s.echo = e
	s.routes()
	s.routeSet = map[string]bool{}
	for _, r := range e.Routes() {
		s.routeSet[r.Path] = true
	}
	return s
}

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.echo }

// Routes lists the registered routes as (method, echo path).
func (s *Server) Routes() []*echo.Route { return s.echo.Routes() }

// Drain makes /readyz answer 503 from now on, so a load balancer stops
// sending traffic while in-flight requests finish.
func (s *Server) Drain() { s.draining.Store(true) }

// route is one route: method, full path, handler, and whether it is open
// (no API key).
type route struct {
	method, path string
	h            echo.HandlerFunc
	open         bool
}

func (s *Server) routes() {
	p := Prefix
	rs := []route{
		{http.MethodGet, "/livez", s.livez, true},
		{http.MethodGet, "/readyz", s.readyz, true},
		{http.MethodGet, "/healthz", s.readyz, true},
		{http.MethodGet, "/metrics", s.serveMetrics, !s.opts.MetricsAuth},
		{http.MethodGet, p + "/openapi.json", serveOpenAPI, true},

		{http.MethodPost, p + "/plugins", s.installPlugin, false},
		{http.MethodGet, p + "/plugins", s.listPlugins, false},
		{http.MethodGet, p + "/plugins/:name", s.getPlugin, false},
		{http.MethodDelete, p + "/plugins/:name", s.deletePlugin, false},

		{http.MethodPost, p + "/instances", s.createInstance, false},
		{http.MethodGet, p + "/instances", s.listInstances, false},
		{http.MethodGet, p + "/instances/:name", s.getInstance, false},
		{http.MethodPatch, p + "/instances/:name", s.updateInstance, false},
		{http.MethodDelete, p + "/instances/:name", s.deleteInstance, false},
		{http.MethodPost, p + "/instances/:name/enable", s.enableInstance, false},
		{http.MethodPost, p + "/instances/:name/disable", s.disableInstance, false},
		{http.MethodPost, p + "/instances/:name/test", s.testInstance, false},
		{http.MethodPost, p + "/instances/:name/execute", s.execute, false},
		{http.MethodPost, p + "/instances/:name/fetch", s.fetch, false},
		{http.MethodGet, p + "/instances/:name/health", s.health, false},
		{http.MethodGet, p + "/instances/:name/context", s.getContext, false},
		{http.MethodPut, p + "/instances/:name/context", s.putContext, false},

		{http.MethodPost, p + "/incidents", s.createIncident, false},
		{http.MethodGet, p + "/incidents", s.listIncidents, false},
		{http.MethodGet, p + "/incidents/:id", s.getIncident, false},
		{http.MethodPatch, p + "/incidents/:id", s.updateIncident, false},
		{http.MethodDelete, p + "/incidents/:id", s.deleteIncident, false},
		{http.MethodPost, p + "/incidents/:id/close", s.closeIncident, false},
		{http.MethodPost, p + "/incidents/:id/reopen", s.reopenIncident, false},
		{http.MethodGet, p + "/incidents/:id/entries", s.listEntries, false},
		{http.MethodPost, p + "/incidents/:id/entries", s.addEntry, false},

		{http.MethodPost, p + "/users", s.createUser, false},
		{http.MethodGet, p + "/users", s.listUsers, false},
		{http.MethodGet, p + "/users/:id", s.getUser, false},
	}
	for _, r := range rs {
		var mw []echo.MiddlewareFunc
		if !r.open {
			mw = append(mw, s.authenticate)
		}
		s.echo.Add(r.method, r.path, r.h, mw...)
	}
	s.mountInstanceHTTP()
	s.mountPluginSwap()
	s.mountMirror()
}

func (s *Server) livez(c echo.Context) error {
	return c.JSON(http.StatusOK, apitypes.Status{Status: "ok"})
}

func (s *Server) readyz(c echo.Context) error {
	switch {
	case s.draining.Load():
		return apiErr(http.StatusServiceUnavailable, apitypes.CodeNotReady, "the server is shutting down")
	case !s.svc.Ready():
		return apiErr(http.StatusServiceUnavailable, apitypes.CodeNotReady, "the service is starting or shutting down")
	}
	return c.JSON(http.StatusOK, apitypes.Status{Status: "ready"})
}

func (s *Server) serveMetrics(c echo.Context) error {
	promhttp.HandlerFor(s.opts.Registry, promhttp.HandlerOpts{}).ServeHTTP(c.Response(), c.Request())
	return nil
}

// keyCtx carries the authenticated API key's name in the echo context.
const keyCtx = "connhost.apikey"

// authenticate requires `Authorization: Bearer <key>` naming a live key.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Request().Header.Get(echo.HeaderAuthorization)
		token, ok := bearer(h)
		if !ok {
			closeUnreadBody(c)
			return apiErr(http.StatusUnauthorized, apitypes.CodeUnauthorized, "missing API key: send Authorization: Bearer <key>")
		}
		k, err := s.svc.APIKeys.Authenticate(c.Request().Context(), token)
		if err != nil {
			closeUnreadBody(c)
			return err
		}
		c.Set(keyCtx, k.Name)
		return next(c)
	}
}

func bearer(h string) (string, bool) {
	const scheme = "Bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return "", false
	}
	return h[len(scheme):], true
}

// keyName returns the name of the request's API key, for audit fields.
func keyName(c echo.Context) string {
	n, _ := c.Get(keyCtx).(string)
	return n
}

// ctx returns the request's context.
func ctx(c echo.Context) context.Context { return c.Request().Context() }
