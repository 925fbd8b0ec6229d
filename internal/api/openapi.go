package api

import (
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v4"
)

// OpenAPI is the OpenAPI 3.1 document of the API. Its paths are written
// by hand, and a test keeps them equal to the registered routes; its
// component schemas are generated from package apitypes.
//
//go:generate go run ./internal/openapigen -doc openapi.json -types ../../host/api/apitypes
//go:embed openapi.json
var OpenAPI []byte

func serveOpenAPI(c echo.Context) error {
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, OpenAPI)
}
