// Package api is the connhost server's HTTP API: JSON over echo, mounted
// under /api/v1, in front of internal/service (API → service → store). It adds
// bearer-key authentication, strict request decoding, one error format,
// request logging, Prometheus metrics, health endpoints and the OpenAPI
// document that describes it (openapi.json, embedded). Keys have roles
// (read, operator, admin) and per-key rate limits; routeAccess in roles.go
// says which role each route needs.
package api

import (
	"context"
	"maps"
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
	// RateLimit is the requests per second each API key may make, as a
	// token bucket of RateBurst; 0 turns the limit off.
	RateLimit float64
	// RateBurst is how many requests a key may make at once before
	// RateLimit applies; below 1 it is one second's worth.
	RateBurst int
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
	// Console, if set, is mounted beside the API (internal/console).
	Console Console
	// Engines, when set, serves /engines and adds the engines to /readyz.
	Engines EngineHub
}

// Console is a user interface served by the same echo server as the API.
// Its routes are open in routeAccess: it signs its users in itself and
// applies the API's roles (RoleFor) and rate limits (allow) to them.
type Console interface {
	// Mount registers the console's routes on e. allow takes a token from
	// an API key's rate limit, as the API does for each request, and says
	// how long to wait when there is none.
	Mount(e *echo.Echo, allow func(keyID string) (wait time.Duration, ok bool))
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
	// access is routeAccess as this server applies it (/metrics open or
	// not); registered holds every registered "METHOD path".
	access     map[string]access
	registered map[string]bool
	limits     *keyLimits
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
		inFlight: &inFlight{max: opts.MaxInFlightPerClient, n: map[string]int{}},
		access:   maps.Clone(routeAccess), registered: map[string]bool{}, limits: newKeyLimits(opts.RateLimit, opts.RateBurst)}
	svc.SetCommandObserver(s.metrics.command)
	if !opts.MetricsAuth {
		s.access["GET /metrics"] = public
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.IPExtractor = ipExtractor(opts.TrustedProxies)
	// Credentials before query checks: an unauthenticated client learns
	// nothing of an operation's parameters.
	e.Use(s.observe, s.recoverPanic, s.limitInFlight, s.guard, s.checkQuery)
	s.echo = e
	s.routes()
	s.routeSet = map[string]bool{}
	for _, r := range e.Routes() {
		s.routeSet[r.Path] = true
		s.registered[r.Method+" "+r.Path] = true
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

// route is one route: method, full path and handler. Who may call it is
// routeAccess's to say.
type route struct {
	method, path string
	h            echo.HandlerFunc
}

func (s *Server) routes() {
	p := Prefix
	rs := []route{
		{http.MethodGet, "/livez", s.livez},
		{http.MethodGet, "/readyz", s.readyz},
		{http.MethodGet, "/healthz", s.readyz},
		{http.MethodGet, "/metrics", s.serveMetrics},
		{http.MethodGet, p + "/openapi.json", serveOpenAPI},

		{http.MethodPost, p + "/plugins", s.installPlugin},
		{http.MethodGet, p + "/plugins", s.listPlugins},
		{http.MethodGet, p + "/plugins/:name", s.getPlugin},
		{http.MethodDelete, p + "/plugins/:name", s.deletePlugin},

		{http.MethodPost, p + "/instances", s.createInstance},
		{http.MethodGet, p + "/instances", s.listInstances},
		{http.MethodGet, p + "/instances/:name", s.getInstance},
		{http.MethodPatch, p + "/instances/:name", s.updateInstance},
		{http.MethodDelete, p + "/instances/:name", s.deleteInstance},
		{http.MethodPost, p + "/instances/:name/enable", s.enableInstance},
		{http.MethodPost, p + "/instances/:name/disable", s.disableInstance},
		{http.MethodPost, p + "/instances/:name/test", s.testInstance},
		{http.MethodPost, p + "/instances/:name/execute", s.execute},
		{http.MethodPost, p + "/instances/:name/fetch", s.fetch},
		{http.MethodGet, p + "/instances/:name/health", s.health},
		{http.MethodGet, p + "/instances/:name/context", s.getContext},
		{http.MethodPut, p + "/instances/:name/context", s.putContext},

		{http.MethodPost, p + "/incidents", s.createIncident},
		{http.MethodGet, p + "/incidents", s.listIncidents},
		{http.MethodGet, p + "/incidents/:id", s.getIncident},
		{http.MethodPatch, p + "/incidents/:id", s.updateIncident},
		{http.MethodDelete, p + "/incidents/:id", s.deleteIncident},
		{http.MethodPost, p + "/incidents/:id/close", s.closeIncident},
		{http.MethodPost, p + "/incidents/:id/reopen", s.reopenIncident},
		{http.MethodGet, p + "/incidents/:id/entries", s.listEntries},
		{http.MethodPost, p + "/incidents/:id/entries", s.addEntry},

		{http.MethodPost, p + "/users", s.createUser},
		{http.MethodGet, p + "/users", s.listUsers},
		{http.MethodGet, p + "/users/:id", s.getUser},
	}
	for _, r := range rs {
		s.echo.Add(r.method, r.path, r.h)
	}
	s.mountInstanceHTTP()
	s.mountPluginSwap()
	s.mountMirror()
	s.mountAPIKeys()
	if s.opts.Console != nil {
		s.opts.Console.Mount(s.echo, func(keyID string) (time.Duration, bool) { return s.limits.allow(keyID, time.Now()) })
	}
	s.mountEngines()
}

func (s *Server) livez(c echo.Context) error {
	return c.JSON(http.StatusOK, apitypes.Status{Status: "ok"})
}

func (s *Server) readyz(c echo.Context) error {
	switch {
	case s.draining.Load():
		return apiErr(http.StatusServiceUnavailable, apitypes.CodeNotReady, "the server is shutting down")
	case !s.svc.Ready():
		if left, total := s.svc.Starting(); left > 0 {
			return apiErr(http.StatusServiceUnavailable, apitypes.CodeNotReady,
				"the service is starting: %d of %d instances still starting", left, total)
		}
		return apiErr(http.StatusServiceUnavailable, apitypes.CodeNotReady, "the service is starting or shutting down")
	case s.opts.Engines != nil && !s.opts.Engines.Ready():
		return apiErr(http.StatusServiceUnavailable, apitypes.CodeNotReady, "the engines' NATS server is not running")
	}
	st := apitypes.Status{Status: "ready"}
	if s.opts.Engines != nil {
		for _, e := range s.opts.Engines.Engines() {
			st.Engines = append(st.Engines, apitypes.EngineReady{Name: e.Name, Group: e.Group, Connected: e.Connected})
		}
	}
	return c.JSON(http.StatusOK, st)
}

func (s *Server) serveMetrics(c echo.Context) error {
	promhttp.HandlerFor(s.opts.Registry, promhttp.HandlerOpts{}).ServeHTTP(c.Response(), c.Request())
	return nil
}

// keyCtx carries the authenticated API key's name in the echo context.
const keyCtx = "connhost.apikey"

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
