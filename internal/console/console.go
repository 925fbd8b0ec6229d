// Package console is connhost's operator console: server-rendered HTML
// pages served by the API's echo server at /, over the same service layer
// as the API (console → service → store). Users sign in with an API key,
// which becomes an in-memory session (cookie); the key's role decides
// which actions a page shows, and every action is checked again on the
// server against the role of the API route it stands for (api.RoleFor).
//
// Pages use a vendored htmx (assets/htmx.min.js) for partial page loads and
// work without it. Everything is embedded: no CDN, fonts or inline script
// or style, under a strict Content-Security-Policy.
package console

import (
	"embed"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/rs/zerolog"

	"github.com/connhost/connhost/internal/api"
	"github.com/connhost/connhost/internal/service"
)

//go:embed assets
var assetFS embed.FS

//go:embed templates
var templateFS embed.FS

// DefaultSessionTTL is how long a sign-in lasts.
const DefaultSessionTTL = 8 * time.Hour

// Options configure a Console.
type Options struct {
	Logger zerolog.Logger
	// SessionTTL is how long a session lasts from sign-in; 0 means
	// DefaultSessionTTL.
	SessionTTL time.Duration
	// MaxBodyBytes caps a form; 0 means api.DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MaxPluginBytes caps an uploaded plugin; 0 means
	// api.DefaultMaxPluginBytes.
	MaxPluginBytes int64
	// Now is the clock of sessions; nil means time.Now.
	Now func() time.Time
}

// Console is the operator console of one service. It implements
// api.Console.
type Console struct {
	svc      *service.Service
	opts     Options
	log      zerolog.Logger
	sessions *sessions
	pages    map[string]*pageTemplate
	allow    func(keyID string) (time.Duration, bool)
}

var _ api.Console = (*Console)(nil)

// New returns the console of svc; pass it as api.Options.Console.
func New(svc *service.Service, opts Options) (*Console, error) {
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = DefaultSessionTTL
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = api.DefaultMaxBodyBytes
	}
	if opts.MaxPluginBytes <= 0 {
		opts.MaxPluginBytes = api.DefaultMaxPluginBytes
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	for name, route := range actions {
		if _, ok := actionRoles[name]; !ok {
			return nil, fmt.Errorf("console action %q: API route %s has no role in routeAccess", name, route)
		}
	}
	return &Console{svc: svc, opts: opts, log: opts.Logger, sessions: newSessions(opts.SessionTTL, opts.Now), pages: pages}, nil
}

// Mount registers the console's routes on e (api.Console).
func (co *Console) Mount(e *echo.Echo, allow func(keyID string) (time.Duration, bool)) {
	co.allow = allow
	static, err := fs.Sub(assetFS, "assets")
	if err != nil {
		panic(err) // the embedded directory exists: a build without it is broken
	}
	files := http.StripPrefix("/assets/", http.FileServer(http.FS(static)))
	e.GET("/assets/*", func(c echo.Context) error {
		secure(c)
		if name := c.Param("*"); name == "" || strings.HasSuffix(name, "/") {
			return echo.ErrNotFound // files only, no directory listings
		}
		c.Response().Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(c.Response(), c.Request())
		return nil
	})
	e.GET("/login", co.open(co.loginPage))
	e.POST("/login", co.open(co.login))
	e.POST("/logout", co.signedIn("", co.logout))

	e.GET("/", co.signedIn("overview", co.overview))

	e.GET("/plugins", co.signedIn("plugins.read", co.pluginsPage))
	e.POST("/plugins", co.signedIn("plugins.install", co.uploadPlugin))
	e.GET("/plugins/:name", co.signedIn("plugins.read", co.pluginPage))
	e.POST("/plugins/:name/current", co.signedIn("plugins.current", co.setCurrent))
	e.POST("/plugins/:name/rollback", co.signedIn("plugins.rollback", co.rollback))
	e.POST("/plugins/:name/delete", co.signedIn("plugins.delete", co.deletePlugin))

	e.GET("/instances", co.signedIn("instances.read", co.instancesPage))
	e.POST("/instances", co.signedIn("instances.create", co.createInstance))
	e.GET("/instances/:name", co.signedIn("instances.read", co.instancePage))
	e.POST("/instances/:name", co.signedIn("instances.update", co.updateInstance))
	e.POST("/instances/:name/test", co.signedIn("instances.test", co.testInstance))
	e.POST("/instances/:name/enable", co.signedIn("instances.enable", co.enable))
	e.POST("/instances/:name/disable", co.signedIn("instances.disable", co.disable))
	e.POST("/instances/:name/version", co.signedIn("instances.pin", co.pin))
	e.POST("/instances/:name/execute", co.signedIn("instances.execute", co.execute))
	e.POST("/instances/:name/fetch", co.signedIn("instances.fetch", co.fetch))
	e.POST("/instances/:name/context", co.signedIn("instances.context.write", co.setContext))
	e.POST("/instances/:name/mirror/run", co.signedIn("mirror.run", co.mirrorRun))

	e.GET("/incidents", co.signedIn("incidents.read", co.incidentsPage))
	e.GET("/incidents/:id", co.signedIn("incidents.read", co.incidentPage))
	e.POST("/incidents/:id/entries", co.signedIn("incidents.entry", co.addEntry))
	e.POST("/incidents/:id/close", co.signedIn("incidents.close", co.closeIncident))
	e.POST("/incidents/:id/reopen", co.signedIn("incidents.reopen", co.reopenIncident))
	e.POST("/incidents/:id/mirror/debug", co.signedIn("incidents.debug", co.mirrorDebug))

	e.GET("/keys", co.signedIn("keys.read", co.keysPage))
	e.POST("/keys", co.signedIn("keys.create", co.createKey))
	e.POST("/keys/:id/revoke", co.signedIn("keys.revoke", co.revokeKey))
}
