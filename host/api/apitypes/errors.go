package apitypes

import "github.com/connhost/connhost/abi"

// ErrorCode is the stable, short description of what went wrong. Clients
// branch on it (and on the HTTP status); Detail is for people.
type ErrorCode string

// The error codes. The list is closed: the server answers no other.
const (
	CodeInvalidRequest       ErrorCode = "invalid request"
	CodeInvalidJSON          ErrorCode = "invalid JSON"
	CodeInvalidArguments     ErrorCode = "invalid arguments"
	CodeUnauthorized         ErrorCode = "unauthorized"
	CodeForbidden            ErrorCode = "forbidden"
	CodeRateLimited          ErrorCode = "rate limited"
	CodeUntrustedPlugin      ErrorCode = "untrusted plugin"
	CodeNotFound             ErrorCode = "not found"
	CodeMethodNotAllowed     ErrorCode = "method not allowed"
	CodeAlreadyExists        ErrorCode = "already exists"
	CodeConflict             ErrorCode = "conflict"
	CodeRequestTooLarge      ErrorCode = "request too large"
	CodeUnsupportedMediaType ErrorCode = "unsupported media type"
	CodeCommandFailed        ErrorCode = "command failed"
	CodeInternal             ErrorCode = "internal error"
	CodeBadGateway           ErrorCode = "bad gateway"
	CodeUnavailable          ErrorCode = "unavailable"
	CodeNotReady             ErrorCode = "not ready"
	CodeShuttingDown         ErrorCode = "shutting down"
	CodeTimeout              ErrorCode = "timeout"
	// CodeInsufficientStorage (507): the server's disk is (nearly) full, so
	// the write was refused; reads still work, retry once space is freed.
	CodeInsufficientStorage ErrorCode = "insufficient storage"
)

// ErrorCodes lists every ErrorCode, for the OpenAPI enum and for tests.
var ErrorCodes = []ErrorCode{
	CodeInvalidRequest, CodeInvalidJSON, CodeInvalidArguments, CodeUnauthorized, CodeForbidden, CodeRateLimited, CodeUntrustedPlugin,
	CodeNotFound, CodeMethodNotAllowed, CodeAlreadyExists, CodeConflict, CodeRequestTooLarge,
	CodeUnsupportedMediaType, CodeCommandFailed, CodeInternal, CodeBadGateway, CodeUnavailable,
	CodeNotReady, CodeShuttingDown, CodeTimeout, CodeInsufficientStorage,
}

// Error is the body of every error response.
type Error struct {
	// Error is the stable code of the error.
	Error ErrorCode `json:"error"`
	// Detail says what was wrong, naming the field, instance, plugin or
	// command.
	Detail string `json:"detail"`
	// Kind is the ABI error kind of a failed command (abi/SPEC.md §5.1).
	Kind abi.ErrorKind `json:"kind,omitempty"`
	// EntryID is the war-room entry that recorded a failed command run for
	// an incident.
	EntryID string `json:"entryId,omitempty"`
}

// Status is the body of the health endpoints and of accepted requests.
type Status struct {
	// Status is ok, ready or queued.
	Status string `json:"status"`
	// Engines, on /readyz of a server with engines enabled, are the
	// enrolled engines and whether each is connected; an engine down does
	// not make the server unready.
	Engines []EngineReady `json:"engines,omitempty"`
}

// EngineReady is an engine in /readyz.
type EngineReady struct {
	Name      string `json:"name"`
	Group     string `json:"group"`
	Connected bool   `json:"connected"`
}
