package api

import "github.com/connhost/connhost/internal/service"

// RuleFor returns the routeAccess rule of a route, by the key it is stored
// under: the route's own "METHOD path", or its any-method rule.
func RuleFor(method, path string) (key string, open bool, role service.Role, ok bool) {
	for _, k := range []string{method + " " + path, anyMethod + " " + path} {
		if a, found := routeAccess[k]; found {
			return k, a.open, a.role, true
		}
	}
	return "", false, "", false
}

// RuleCount is how many rules routeAccess has.
func RuleCount() int { return len(routeAccess) }

// DropRule removes a route's rule from this server, as if it had been
// registered without one.
func (s *Server) DropRule(method, path string) { delete(s.access, method+" "+path) }

// IsConsoleRoute reports whether a route is the console's (HTML, not in
// openapi.json).
func IsConsoleRoute(method, path string) bool { return routeAccess[method+" "+path].console }
