package api

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"github.com/connhost/connhost/host/api/apitypes"
	"github.com/connhost/connhost/internal/service"
)

// access is what a route asks of a request: nothing (open), or an API key
// whose role is at least role.
type access struct {
	open bool
	role service.Role
	// console marks the console's routes (open here; see routeAccess).
	console bool
}

var (
	public   = access{open: true}
	reader   = access{role: service.RoleRead}
	operator = access{role: service.RoleOperator}
	admin    = access{role: service.RoleAdmin}
	console  = access{open: true, console: true}
)

// anyMethod stands for every method of a route registered with echo's Any.
const anyMethod = "*"

// routeAccess is the one place that decides who may call each route, by
// "METHOD path" (the echo route template). The guard middleware looks every
// matched request up here, and refuses a registered route that is missing
// (TestRouteAccessCoversRoutes fails first). openapi.json states each role
// as x-connhost-role, and a test holds the two equal.
//
// read is for dashboards and auditors: GET only, and not the integration
// context (plugins cache credentials there) nor the remote schema (it runs
// a command against the remote system). operator runs commands and
// fetches, and works incidents, entries and mirroring. admin changes what
// runs and who may call: plugins, instances, users and API keys.
var routeAccess = map[string]access{
	"GET /livez":                      public,
	"GET /readyz":                     public,
	"GET /healthz":                    public,
	"GET /metrics":                    reader, // open instead when Options.MetricsAuth is false
	"GET " + Prefix + "/openapi.json": public,
	// The instance's own credentials apply, checked by the plugin.
	anyMethod + " " + InstanceHTTPPrefix + "/:instance":   public,
	anyMethod + " " + InstanceHTTPPrefix + "/:instance/*": public,

	"POST " + Prefix + "/plugins":                admin,
	"GET " + Prefix + "/plugins":                 reader,
	"GET " + Prefix + "/plugins/:name":           reader,
	"DELETE " + Prefix + "/plugins/:name":        admin,
	"POST " + Prefix + "/plugins/:name/rollback": admin,
	"PUT " + Prefix + "/plugins/:name/current":   admin,

	"POST " + Prefix + "/instances":                     admin,
	"GET " + Prefix + "/instances":                      reader,
	"GET " + Prefix + "/instances/:name":                reader,
	"PATCH " + Prefix + "/instances/:name":              admin,
	"DELETE " + Prefix + "/instances/:name":             admin,
	"POST " + Prefix + "/instances/:name/enable":        admin,
	"POST " + Prefix + "/instances/:name/disable":       admin,
	"PUT " + Prefix + "/instances/:name/version":        admin,
	"POST " + Prefix + "/instances/:name/test":          operator,
	"POST " + Prefix + "/instances/:name/execute":       operator,
	"POST " + Prefix + "/instances/:name/fetch":         operator,
	"GET " + Prefix + "/instances/:name/health":         reader,
	"GET " + Prefix + "/instances/:name/long-running":   reader,
	"GET " + Prefix + "/instances/:name/context":        operator,
	"PUT " + Prefix + "/instances/:name/context":        admin,
	"GET " + Prefix + "/instances/:name/mirror/stats":   reader,
	"GET " + Prefix + "/instances/:name/mirror/records": reader,
	"POST " + Prefix + "/instances/:name/mirror/purge":  operator,
	"POST " + Prefix + "/instances/:name/mirror/run":    operator,
	"POST " + Prefix + "/instances/:name/mirror/push":   operator,
	"GET " + Prefix + "/instances/:name/remote-schema":  operator,

	"POST " + Prefix + "/incidents":                  operator,
	"GET " + Prefix + "/incidents":                   reader,
	"GET " + Prefix + "/incidents/:id":               reader,
	"PATCH " + Prefix + "/incidents/:id":             operator,
	"DELETE " + Prefix + "/incidents/:id":            operator,
	"POST " + Prefix + "/incidents/:id/close":        operator,
	"POST " + Prefix + "/incidents/:id/reopen":       operator,
	"GET " + Prefix + "/incidents/:id/entries":       reader,
	"POST " + Prefix + "/incidents/:id/entries":      operator,
	"GET " + Prefix + "/incidents/:id/mirror":        reader,
	"POST " + Prefix + "/incidents/:id/mirror/debug": operator,

	"POST " + Prefix + "/users":    admin,
	"GET " + Prefix + "/users":     reader,
	"GET " + Prefix + "/users/:id": reader,

	"GET " + Prefix + "/apikeys":          admin,
	"POST " + Prefix + "/apikeys":         admin,
	"DELETE " + Prefix + "/apikeys/:id":   admin,
	"GET " + Prefix + "/engines":          reader,
	"POST " + Prefix + "/engines":         admin,
	"DELETE " + Prefix + "/engines/:name": admin,

	// The console (internal/console, docs/console.md) is open here because
	// it authenticates with a session cookie, not a bearer key: its own
	// middleware refuses a request without a live session, checks the
	// session's API key through the service on every request (a revoked key
	// ends its sessions), checks the CSRF token of every POST, and gives
	// each action the role of the API route it stands for (RoleFor), so a
	// key can do no more in the console than over the API.
	"GET /":                            console,
	"GET /assets/*":                    console,
	"GET /login":                       console,
	"POST /login":                      console,
	"POST /logout":                     console,
	"GET /plugins":                     console,
	"POST /plugins":                    console,
	"GET /plugins/:name":               console,
	"POST /plugins/:name/current":      console,
	"POST /plugins/:name/rollback":     console,
	"POST /plugins/:name/delete":       console,
	"GET /instances":                   console,
	"POST /instances":                  console,
	"GET /instances/:name":             console,
	"POST /instances/:name":            console,
	"POST /instances/:name/test":       console,
	"POST /instances/:name/enable":     console,
	"POST /instances/:name/disable":    console,
	"POST /instances/:name/version":    console,
	"POST /instances/:name/execute":    console,
	"POST /instances/:name/fetch":      console,
	"POST /instances/:name/context":    console,
	"POST /instances/:name/mirror/run": console,
	"GET /incidents":                   console,
	"GET /incidents/:id":               console,
	"POST /incidents/:id/entries":      console,
	"POST /incidents/:id/close":        console,
	"POST /incidents/:id/reopen":       console,
	"POST /incidents/:id/mirror/debug": console,
	"GET /keys":                        console,
	"POST /keys":                       console,
	"POST /keys/:id/revoke":            console,
}

// RoleFor returns the role an API route needs, by method and echo path
// (as in routeAccess), and false for an open or unknown route. The
// console asks it which of its actions a key may see and do, so the API
// and the console apply one table.
func RoleFor(method, path string) (service.Role, bool) {
	a, ok := routeAccess[method+" "+path]
	if !ok || a.open {
		return "", false
	}
	return a.role, true
}

// accessFor returns the rule of a route: its own, or its Any rule.
func (s *Server) accessFor(method, path string) (access, bool) {
	if a, ok := s.access[method+" "+path]; ok {
		return a, true
	}
	a, ok := s.access[anyMethod+" "+path]
	return a, ok
}

// guard runs on every request after routing. Open routes pass; the others
// need a live API key (401), within its rate limit (429), whose role is
// enough (403). A request no route matched passes to echo's 404, 405 or
// OPTIONS answer; a registered route without a rule is refused.
func (s *Server) guard(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if err := s.admit(c); err != nil {
			closeUnreadBody(c)
			return err
		}
		return next(c)
	}
}

// admit applies routeAccess to one request: nil lets it through.
func (s *Server) admit(c echo.Context) error {
	method, path := c.Request().Method, c.Path()
	a, ok := s.accessFor(method, path)
	if !ok {
		if s.registered[method+" "+path] {
			s.log.Error().Str("method", method).Str("route", path).Msg("route has no access rule in routeAccess; refused")
			return apiErr(http.StatusInternalServerError, apitypes.CodeInternal, "route %s %s has no access rule", method, path)
		}
		return nil
	}
	if a.open {
		return nil
	}
	token, ok := bearer(c.Request().Header.Get(echo.HeaderAuthorization))
	if !ok {
		return apiErr(http.StatusUnauthorized, apitypes.CodeUnauthorized, "missing API key: send Authorization: Bearer <key>")
	}
	k, err := s.svc.APIKeys.Authenticate(ctx(c), token)
	if err != nil {
		return err
	}
	c.Set(keyCtx, k.Name)
	if wait, ok := s.limits.allow(k.ID, time.Now()); !ok {
		secs := int(math.Ceil(wait.Seconds()))
		c.Response().Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
		return apiErr(http.StatusTooManyRequests, apitypes.CodeRateLimited,
			"API key %q is over its rate limit of %g requests/s (burst %d); retry in %d s", k.Name, s.limits.rate, s.limits.burst, max(secs, 1))
	}
	if !k.Role.Allows(a.role) {
		return apiErr(http.StatusForbidden, apitypes.CodeForbidden,
			"%s %s needs an API key with role %s or higher; key %q has role %s", method, path, a.role, k.Name, k.Role)
	}
	return nil
}

// keyLimits holds one token bucket per API key: each request takes a
// token, and the bucket refills at rate per second up to burst. A nil
// *keyLimits admits everything.
type keyLimits struct {
	rate  float64
	burst int

	mu      sync.Mutex
	buckets map[string]*rate.Limiter // by key id; only keys that authenticated
}

// newKeyLimits returns the limits of perSecond requests per key with the
// given burst, or nil when perSecond is 0 (off). A burst below 1 becomes
// one second's worth of requests.
func newKeyLimits(perSecond float64, burst int) *keyLimits {
	if perSecond <= 0 {
		return nil
	}
	if burst < 1 {
		burst = max(1, int(math.Ceil(perSecond)))
	}
	return &keyLimits{rate: perSecond, burst: burst, buckets: map[string]*rate.Limiter{}}
}

// allow takes a token from key id's bucket; when there is none it returns
// false and how long until one is there.
func (l *keyLimits) allow(id string, now time.Time) (time.Duration, bool) {
	if l == nil {
		return 0, true
	}
	l.mu.Lock()
	b, ok := l.buckets[id]
	if !ok {
		b = rate.NewLimiter(rate.Limit(l.rate), l.burst)
		l.buckets[id] = b
	}
	l.mu.Unlock()
	if b.AllowN(now, 1) {
		return 0, true
	}
	missing := 1 - b.TokensAt(now)
	return time.Duration(missing / l.rate * float64(time.Second)), false
}

// forget drops a revoked key's bucket.
func (l *keyLimits) forget(id string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	delete(l.buckets, id)
	l.mu.Unlock()
}
