package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/connhost/connhost/host/api/apitypes"
)

// queryParams maps "METHOD /echo/path" to the query parameters openapi.json
// declares for the operation: the one list of what each route accepts.
var queryParams = mustQueryParams(OpenAPI)

func mustQueryParams(doc []byte) map[string][]string {
	type param struct{ Name, In string }
	var d struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		panic(fmt.Sprintf("openapi.json: %v", err))
	}
	pathParam := regexp.MustCompile(`\{([^}]+)\}`)
	out := map[string][]string{}
	for path, ops := range d.Paths {
		var shared []param
		if raw, ok := ops["parameters"]; ok {
			if err := json.Unmarshal(raw, &shared); err != nil {
				panic(fmt.Sprintf("openapi.json: %s parameters: %v", path, err))
			}
		}
		route := pathParam.ReplaceAllString(path, ":$1")
		for method, raw := range ops {
			if method == "parameters" {
				continue
			}
			var op struct{ Parameters []param }
			if err := json.Unmarshal(raw, &op); err != nil {
				panic(fmt.Sprintf("openapi.json: %s %s: %v", method, path, err))
			}
			names := []string{}
			for _, p := range append(shared, op.Parameters...) {
				if p.In == "query" {
					names = append(names, p.Name)
				}
			}
			out[strings.ToUpper(method)+" "+route] = names
		}
	}
	return out
}

// checkQuery refuses a query parameter the route does not declare, with a
// 400 naming it: a misspelt filter (?stauts=closed) would otherwise be
// ignored and answer as if no filter were given. Requests into plugins
// (/instance/execute/...) keep their query: it is the plugin's.
func (s *Server) checkQuery(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		route := c.Path()
		if strings.HasPrefix(route, InstanceHTTPPrefix+"/") || c.Request().URL.RawQuery == "" {
			return next(c)
		}
		allowed, ok := queryParams[c.Request().Method+" "+route]
		if !ok {
			return next(c) // unmatched: the handler answers 404 or 405
		}
		var unknown []string
		for name := range c.QueryParams() {
			if !slices.Contains(allowed, name) {
				unknown = append(unknown, name)
			}
		}
		if len(unknown) == 0 {
			return next(c)
		}
		slices.Sort(unknown)
		known := "none"
		if len(allowed) > 0 {
			known = strings.Join(slices.Sorted(slices.Values(allowed)), ", ")
		}
		closeUnreadBody(c)
		return apiErr(http.StatusBadRequest, apitypes.CodeInvalidRequest, "unknown query parameter %q (%s %s takes: %s)",
			unknown[0], c.Request().Method, route, known)
	}
}
