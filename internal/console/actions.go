package console

import (
	"strings"

	"github.com/connhost/connhost/internal/api"
	"github.com/connhost/connhost/internal/service"
)

// actions names what the console lets a user see or do, each by the API
// route it stands for: the role that route needs in api's routeAccess is
// the role the action needs here, for showing its controls and for doing
// it. The console thus has no role table of its own to drift.
var actions = map[string]string{
	"overview": "GET /api/v1/instances",

	"plugins.read":     "GET /api/v1/plugins",
	"plugins.install":  "POST /api/v1/plugins",
	"plugins.current":  "PUT /api/v1/plugins/:name/current",
	"plugins.rollback": "POST /api/v1/plugins/:name/rollback",
	"plugins.delete":   "DELETE /api/v1/plugins/:name",

	"instances.read":          "GET /api/v1/instances",
	"instances.create":        "POST /api/v1/instances",
	"instances.update":        "PATCH /api/v1/instances/:name",
	"instances.test":          "POST /api/v1/instances/:name/test",
	"instances.enable":        "POST /api/v1/instances/:name/enable",
	"instances.disable":       "POST /api/v1/instances/:name/disable",
	"instances.pin":           "PUT /api/v1/instances/:name/version",
	"instances.execute":       "POST /api/v1/instances/:name/execute",
	"instances.fetch":         "POST /api/v1/instances/:name/fetch",
	"instances.context.read":  "GET /api/v1/instances/:name/context",
	"instances.context.write": "PUT /api/v1/instances/:name/context",
	"mirror.read":             "GET /api/v1/instances/:name/mirror/stats",
	"mirror.run":              "POST /api/v1/instances/:name/mirror/run",

	"incidents.read":   "GET /api/v1/incidents",
	"incidents.entry":  "POST /api/v1/incidents/:id/entries",
	"incidents.close":  "POST /api/v1/incidents/:id/close",
	"incidents.reopen": "POST /api/v1/incidents/:id/reopen",
	"incidents.debug":  "POST /api/v1/incidents/:id/mirror/debug",

	"keys.read":   "GET /api/v1/apikeys",
	"keys.create": "POST /api/v1/apikeys",
	"keys.revoke": "DELETE /api/v1/apikeys/:id",
}

// actionRoles is the role of each action, looked up once; New refuses to
// build a console when an action's route has none.
var actionRoles = func() map[string]service.Role {
	out := map[string]service.Role{}
	for name, route := range actions {
		method, path, _ := strings.Cut(route, " ")
		if r, ok := api.RoleFor(method, path); ok {
			out[name] = r
		}
	}
	return out
}()

// allowed reports whether role may do action; an unknown action is
// allowed to nobody.
func allowed(role service.Role, action string) bool {
	need, ok := actionRoles[action]
	return ok && role.Allows(need)
}
