package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/host"
	"github.com/connhost/connhost/host/service"
)

// ErrorBody is the JSON body of every error response. Kind and EntryID are
// set for command failures: the ABI error kind, and the war-room entry
// that recorded the failure when the command ran for an incident.
type ErrorBody struct {
	Error   string        `json:"error"`
	Detail  string        `json:"detail"`
	Kind    abi.ErrorKind `json:"kind,omitempty"`
	EntryID string        `json:"entryId,omitempty"`
}

// apiError is an error with its response already decided.
type apiError struct {
	status int
	body   ErrorBody
}

func (e *apiError) Error() string { return e.body.Error + ": " + e.body.Detail }

func apiErr(status int, short, format string, args ...any) *apiError {
	return &apiError{status, ErrorBody{Error: short, Detail: fmt.Sprintf(format, args...)}}
}

// classify decides the status and body of an error returned by a handler.
func classify(err error) (int, ErrorBody) {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.status, ae.body
	}
	var ce *host.CallError
	var ke *abi.Error
	if errors.As(err, &ce) || errors.As(err, &ke) {
		kind := abi.KindOf(err)
		status := http.StatusBadGateway
		switch kind {
		case abi.KindTimeout:
			status = http.StatusGatewayTimeout
		case abi.KindBadRequest:
			status = http.StatusUnprocessableEntity
		}
		return status, ErrorBody{Error: "command failed", Kind: kind, Detail: err.Error()}
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		return he.Code, ErrorBody{Error: strings.ToLower(http.StatusText(he.Code)), Detail: fmt.Sprint(he.Message)}
	}
	for _, m := range []struct {
		target error
		status int
		short  string
	}{
		{service.ErrUnauthorized, http.StatusUnauthorized, "unauthorized"},
		{service.ErrShuttingDown, http.StatusServiceUnavailable, "shutting down"},
		{service.ErrInvalid, http.StatusBadRequest, "invalid request"},
		{service.ErrNotFound, http.StatusNotFound, "not found"},
		{service.ErrExists, http.StatusConflict, "already exists"},
		{service.ErrConflict, http.StatusConflict, "conflict"},
	} {
		if errors.Is(err, m.target) {
			return m.status, ErrorBody{Error: m.short, Detail: err.Error()}
		}
	}
	return http.StatusInternalServerError, ErrorBody{Error: "internal error", Detail: err.Error()}
}

// handleError is echo's error handler: every error becomes an ErrorBody.
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
				err = apiErr(http.StatusInternalServerError, "internal error", "the handler panicked; see the server log")
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
		return nil, apiErr(http.StatusBadRequest, "bad request", "reading the request body: %v", err)
	}
	return b, nil
}

func tooLarge(limit int64) *apiError {
	return apiErr(http.StatusRequestEntityTooLarge, "request too large", "the request body exceeds the limit of %d bytes", limit)
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
		return apiErr(http.StatusBadRequest, "invalid JSON", "the request body is empty: want a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return apiErr(http.StatusBadRequest, "invalid JSON", "%s", describeJSONError(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return apiErr(http.StatusBadRequest, "invalid JSON", "unexpected data after the JSON value at byte %d", dec.InputOffset())
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
			return fmt.Sprintf("want a JSON %s, got %s", jsonKind(te.Type.String()), te.Value)
		}
		return fmt.Sprintf("field %q: want %s, got %s", te.Field, jsonKind(te.Type.String()), te.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "malformed JSON: the body ends in the middle of a value"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// jsonKind names a Go type as the JSON a client should send.
func jsonKind(goType string) string {
	switch {
	case strings.HasPrefix(goType, "map[") || strings.HasPrefix(goType, "service.") || strings.HasPrefix(goType, "store.") || strings.HasPrefix(goType, "api."):
		return "object"
	case strings.HasPrefix(goType, "[]"):
		return "array"
	case goType == "string":
		return "string"
	case goType == "bool":
		return "boolean"
	case strings.HasPrefix(goType, "int") || strings.HasPrefix(goType, "float") || strings.HasPrefix(goType, "abi."):
		return "number"
	}
	return goType
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
		return apiErr(http.StatusBadRequest, "invalid request", "unknown query parameter(s) %s; this endpoint takes none", strings.Join(unknown, ", "))
	}
	return apiErr(http.StatusBadRequest, "invalid request", "unknown query parameter(s) %s; this endpoint takes: %s",
		strings.Join(unknown, ", "), strings.Join(allowed, ", "))
}
