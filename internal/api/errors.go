package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/host/api/apitypes"
	"github.com/connhost/connhost/internal/service"
)

// apiError is an error with its response already decided.
type apiError struct {
	status int
	body   apitypes.Error
}

func (e *apiError) Error() string { return string(e.body.Error) + ": " + e.body.Detail }

func apiErr(status int, code apitypes.ErrorCode, format string, args ...any) *apiError {
	return &apiError{status, apitypes.Error{Error: code, Detail: fmt.Sprintf(format, args...)}}
}

// sentinels maps the service's sentinel errors to responses.
var sentinels = []struct {
	target error
	status int
	code   apitypes.ErrorCode
}{
	{service.ErrUnauthorized, http.StatusUnauthorized, apitypes.CodeUnauthorized},
	{service.ErrShuttingDown, http.StatusServiceUnavailable, apitypes.CodeShuttingDown},
	{service.ErrNoSpace, http.StatusInsufficientStorage, apitypes.CodeInsufficientStorage},
	{service.ErrInvalidArguments, http.StatusUnprocessableEntity, apitypes.CodeInvalidArguments},
	{service.ErrInvalid, http.StatusBadRequest, apitypes.CodeInvalidRequest},
	{service.ErrNotFound, http.StatusNotFound, apitypes.CodeNotFound},
	{service.ErrExists, http.StatusConflict, apitypes.CodeAlreadyExists},
	{service.ErrConflict, http.StatusConflict, apitypes.CodeConflict},
}

// classify decides the status and body of an error returned by a handler.
// ErrorBody returns the status and the {error, detail} body the API
// answers err with, so the console shows the same text.
func ErrorBody(err error) (int, apitypes.Error) {
	if errors.Is(err, service.ErrUntrusted) {
		return http.StatusForbidden, apitypes.Error{Error: apitypes.CodeUntrustedPlugin, Detail: err.Error()}
	}
	return classify(err)
}

func classify(err error) (int, apitypes.Error) {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.status, ae.body
	}
	if isCommandError(err) {
		kind := abi.KindOf(err)
		status := http.StatusBadGateway
		switch kind {
		case abi.KindTimeout:
			status = http.StatusGatewayTimeout
		case abi.KindBadRequest:
			status = http.StatusUnprocessableEntity
		}
		return status, apitypes.Error{Error: apitypes.CodeCommandFailed, Kind: kind, Detail: err.Error()}
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		return he.Code, apitypes.Error{Error: echoCode(he.Code), Detail: fmt.Sprint(he.Message)}
	}
	for _, m := range sentinels {
		if errors.Is(err, m.target) {
			return m.status, apitypes.Error{Error: m.code, Detail: err.Error()}
		}
	}
	return http.StatusInternalServerError, apitypes.Error{Error: apitypes.CodeInternal, Detail: err.Error()}
}

// isCommandError reports whether err is a plugin's failure to run a
// command (as opposed to the server refusing to run it).
func isCommandError(err error) bool {
	var ce *host.CallError
	var ke *abi.Error
	return errors.As(err, &ce) || errors.As(err, &ke)
}

// echoCode is the code of an error echo itself raises: no route, or a
// method the route does not take.
func echoCode(status int) apitypes.ErrorCode {
	switch {
	case status == http.StatusNotFound:
		return apitypes.CodeNotFound
	case status == http.StatusMethodNotAllowed:
		return apitypes.CodeMethodNotAllowed
	case status == http.StatusRequestEntityTooLarge:
		return apitypes.CodeRequestTooLarge
	case status >= http.StatusInternalServerError:
		return apitypes.CodeInternal
	}
	return apitypes.CodeInvalidRequest
}

// handleError is echo's error handler: every error becomes an apitypes.Error.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, body := classify(err)
	if status == http.StatusNotFound && c.Path() == "" {
		body.Detail = fmt.Sprintf("no route %s %s", c.Request().Method, c.Request().URL.Path)
	}
	if status == http.StatusMethodNotAllowed {
		body.Detail = fmt.Sprintf("method %s is not allowed on %s", c.Request().Method, c.Request().URL.Path)
	}
	if werr := c.JSON(status, body); werr != nil {
		s.log.Debug().Err(werr).Msg("writing error response")
	}
}

// recoverPanic turns a handler panic into a 500 and logs its stack.
func (s *Server) recoverPanic(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				s.log.Error().Str("route", c.Path()).Bytes("stack", debug.Stack()).Msgf("handler panic: %v", r)
				err = apiErr(http.StatusInternalServerError, apitypes.CodeInternal, "the handler panicked; see the server log")
			}
		}()
		return next(c)
	}
}

// readBody reads the request body, refusing more than limit bytes with 413.
func readBody(c echo.Context, limit int64) ([]byte, error) {
	r := c.Request()
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	b, err := io.ReadAll(http.MaxBytesReader(c.Response(), r.Body, limit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, tooLarge(limit)
	}
	if err != nil {
		return nil, apiErr(http.StatusBadRequest, apitypes.CodeInvalidRequest, "reading the request body: %v", err)
	}
	return b, nil
}

func tooLarge(limit int64) *apiError {
	return apiErr(http.StatusRequestEntityTooLarge, apitypes.CodeRequestTooLarge, "the request body exceeds the limit of %d bytes", limit)
}

// decode parses a JSON object body into v strictly: unknown fields,
// trailing data and type mismatches are 400s naming the problem. An empty
// body is accepted only when optional.
func (s *Server) decode(c echo.Context, v any, optional bool) error {
	body, err := readBody(c, s.opts.MaxBodyBytes)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		if optional {
			return nil
		}
		return apiErr(http.StatusBadRequest, apitypes.CodeInvalidJSON, "the request body is empty: want a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return apiErr(http.StatusBadRequest, apitypes.CodeInvalidJSON, "%s", describeJSONError(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return apiErr(http.StatusBadRequest, apitypes.CodeInvalidJSON, "unexpected data after the JSON value at byte %d", dec.InputOffset())
	}
	return nil
}

func describeJSONError(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, se)
	case errors.As(err, &te):
		if te.Field == "" {
			return fmt.Sprintf("want a JSON %s, got %s", jsonKind(te.Type), te.Value)
		}
		return fmt.Sprintf("field %q: want %s, got %s", te.Field, jsonKind(te.Type), te.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "malformed JSON: the body ends in the middle of a value"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// jsonKind names the JSON a client should send for a Go type, from its
// kind: a type's name says nothing about its JSON.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeFor[time.Time]() {
		return "string (an RFC 3339 time)"
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "object"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	}
	return "any JSON value"
}

// checkQuery refuses query parameters outside allowed, so a misspelt filter
// is not silently ignored.
func checkQuery(c echo.Context, allowed ...string) error {
	var unknown []string
	for k := range c.QueryParams() {
		if !slices.Contains(allowed, k) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	slices.Sort(unknown)
	if len(allowed) == 0 {
		return apiErr(http.StatusBadRequest, apitypes.CodeInvalidRequest, "unknown query parameter(s) %s; this endpoint takes none", strings.Join(unknown, ", "))
	}
	return apiErr(http.StatusBadRequest, apitypes.CodeInvalidRequest, "unknown query parameter(s) %s; this endpoint takes: %s",
		strings.Join(unknown, ", "), strings.Join(allowed, ", "))
}
