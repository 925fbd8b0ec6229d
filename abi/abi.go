// Package abi is the versioned contract between the connhost host and its
// WebAssembly plugins: export and import names, the result envelope, error
// kinds, wire types and the plugin manifest. SPEC.md in this directory is the
// normative description; this package is its Go rendering, shared by the host
// and the Go guest SDK. It has no dependencies outside the standard library so
// that it compiles for GOOS=wasip1.
package abi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/connhost/connhost/abi/jsonwire"
)

// Version is the ABI version this package describes. A guest reports the
// version it was built for from ExportABIVersion; the host refuses guests
// whose version it does not serve.
const Version = 1

// ImportModule is the name of the wasm import module that holds every host
// function of ABI version 1. A later ABI version gets a new module name so a
// host can serve both at once.
const ImportModule = "connhost_v1"

// Names of the functions a guest exports.
const (
	ExportMemory     = "memory"
	ExportInitialize = "_initialize" // WASI reactor initialiser; optional
	ExportABIVersion = "connhost_abi_version"
	ExportConfigure  = "connhost_configure"
	ExportCall       = "connhost_call"
	ExportHTTP       = "connhost_http" // optional; required when the manifest sets longRunningHTTP
)

// Names of the host functions in ImportModule.
const (
	ImportBufferRead               = "buffer_read"
	ImportOutput                   = "output"
	ImportLog                      = "log"
	ImportSleep                    = "sleep"
	ImportShouldStop               = "should_stop"
	ImportIntegrationContextGet    = "integration_context_get"
	ImportIntegrationContextSet    = "integration_context_set"
	ImportCacheGet                 = "cache_get"
	ImportCacheSet                 = "cache_set"
	ImportCacheDelete              = "cache_delete"
	ImportLastRunGet               = "last_run_get"
	ImportLastRunSet               = "last_run_set"
	ImportLastMirrorRunGet         = "last_mirror_run_get"
	ImportLastMirrorRunSet         = "last_mirror_run_set"
	ImportAddEntry                 = "add_entry"
	ImportCreateIncidents          = "create_incidents"
	ImportFindUser                 = "find_user"
	ImportHandleEntitlementForUser = "handle_entitlement_for_user"
	ImportUpdateModuleHealth       = "update_module_health"
	ImportMirrorInvestigation      = "mirror_investigation"
	ImportDirectMessage            = "direct_message"
	ImportHTTPRequest              = "http_request"
)

// RPCImports lists the host functions that take a JSON request and stage a
// JSON envelope as their response (SPEC.md, "RPC host functions").
var RPCImports = []string{
	ImportIntegrationContextGet, ImportIntegrationContextSet,
	ImportCacheGet, ImportCacheSet, ImportCacheDelete,
	ImportLastRunGet, ImportLastRunSet,
	ImportLastMirrorRunGet, ImportLastMirrorRunSet,
	ImportAddEntry, ImportCreateIncidents, ImportFindUser,
	ImportHandleEntitlementForUser, ImportUpdateModuleHealth,
	ImportMirrorInvestigation, ImportDirectMessage, ImportHTTPRequest,
}

// Status codes returned by connhost_configure, connhost_call and
// connhost_http. Anything but StatusOK means the guest broke the ABI; the
// envelope passed to output carries command failures.
const (
	StatusOK = 0
)

// Return values of the output host function.
const (
	OutputOK      = 0
	OutputTooLong = 1
)

// Return values of the sleep host function.
const (
	SleepCompleted   = 0
	SleepInterrupted = 1
)

// Log levels accepted by the log host function.
const (
	LogDebug = 0
	LogInfo  = 1
	LogWarn  = 2
	LogError = 3
)

// Reserved command names, as in XSOAR.
const (
	CommandTestModule            = "test-module"
	CommandFetchIncidents        = "fetch-incidents"
	CommandGetRemoteData         = "get-remote-data"
	CommandGetModifiedRemoteData = "get-modified-remote-data"
	CommandUpdateRemoteSystem    = "update-remote-system"
	CommandGetMappingFields      = "get-mapping-fields"
	CommandLongRunningExecution  = "long-running-execution"
	CommandSendNotification      = "send-notification"
)

// Sentinel substrings that XSOAR connectors put in error messages. The host
// treats a failed error whose message contains one of them as the matching
// kind, so connectors ported from Python behave the same.
const (
	SentinelRateLimit  = "API rate limit"
	SentinelSkipUpdate = "skip update"
)

// ErrorKind classifies an error in an envelope. Guests produce the first
// five; the host produces the rest for faults it detects itself.
type ErrorKind string

// Error kinds. See SPEC.md, "Error kinds", for who produces which.
const (
	KindNotImplemented ErrorKind = "not_implemented"
	KindRateLimited    ErrorKind = "rate_limited"
	KindSkipUpdate     ErrorKind = "skip_update"
	KindBadRequest     ErrorKind = "bad_request"
	KindFailed         ErrorKind = "failed"

	KindConflict      ErrorKind = "conflict"
	KindNotFound      ErrorKind = "not_found"
	KindDenied        ErrorKind = "denied"
	KindTimeout       ErrorKind = "timeout"
	KindCanceled      ErrorKind = "canceled"
	KindTrap          ErrorKind = "trap"
	KindMemoryLimit   ErrorKind = "memory_limit"
	KindOutputLimit   ErrorKind = "output_limit"
	KindABIViolation  ErrorKind = "abi_violation"
	KindIncompatible  ErrorKind = "incompatible"
	KindUnavailable   ErrorKind = "unavailable"
	KindInternalError ErrorKind = "internal"
)

var knownKinds = map[ErrorKind]bool{
	KindNotImplemented: true, KindRateLimited: true, KindSkipUpdate: true,
	KindBadRequest: true, KindFailed: true, KindConflict: true, KindNotFound: true,
	KindDenied: true, KindTimeout: true, KindCanceled: true, KindTrap: true,
	KindMemoryLimit: true, KindOutputLimit: true, KindABIViolation: true,
	KindIncompatible: true, KindUnavailable: true, KindInternalError: true,
}

// Known reports whether k is an error kind of this ABI version.
func (k ErrorKind) Known() bool { return knownKinds[k] }

// Error is the typed error carried in an envelope. It implements error.
type Error struct {
	Kind    ErrorKind `json:"kind"`
	Message string    `json:"message"`
}

// Error returns "kind: message".
func (e *Error) Error() string {
	if e.Message == "" {
		return string(e.Kind)
	}
	return string(e.Kind) + ": " + e.Message
}

// Is makes errors.Is(err, &abi.Error{Kind: k}) match on kind alone.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Kind == e.Kind && (t.Message == "" || t.Message == e.Message)
}

// Errorf returns an *Error of the given kind with a formatted message.
func Errorf(kind ErrorKind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// KindOf returns the kind of err: the kind of the first *Error in its chain,
// or KindFailed for any other non-nil error, or "" for nil.
func KindOf(err error) ErrorKind {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindFailed
}

// Normalize applies the XSOAR sentinel rule: an error of kind failed (or with
// no or an unknown kind) whose message contains "API rate limit" becomes
// rate_limited, one containing "skip update" becomes skip_update. Matching is
// case-sensitive, as in XSOAR. Unknown kinds become failed.
func Normalize(e *Error) *Error {
	if e == nil {
		return nil
	}
	out := *e
	if !out.Kind.Known() {
		out.Kind = KindFailed
	}
	if out.Kind == KindFailed {
		switch {
		case strings.Contains(out.Message, SentinelRateLimit):
			out.Kind = KindRateLimited
		case strings.Contains(out.Message, SentinelSkipUpdate):
			out.Kind = KindSkipUpdate
		}
	}
	return &out
}

// FromGuest reports whether a guest may put k in an envelope (SPEC.md §5.1).
// The other kinds are the host's: it produces them for faults it detects.
func (k ErrorKind) FromGuest() bool { return guestKinds[k] }

var guestKinds = map[ErrorKind]bool{
	KindNotImplemented: true, KindRateLimited: true, KindSkipUpdate: true,
	KindBadRequest: true, KindFailed: true,
}

// NormalizeGuest normalizes the error of a guest's envelope. A kind the guest
// may not produce (a host kind such as timeout or trap, or an unknown one)
// becomes failed, its message prefixed with "guest reported kind K: ", so
// that a guest cannot pass its own failure off as a fault the host detected;
// then Normalize applies the sentinel rule.
func NormalizeGuest(e *Error) *Error {
	if e == nil || e.Kind.FromGuest() {
		return Normalize(e)
	}
	msg := "guest reported kind " + string(e.Kind)
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return Normalize(&Error{Kind: KindFailed, Message: msg})
}

// Envelope is what every entry point and RPC host function returns: exactly
// one of Result or Error is set. A null result is a successful empty result.
type Envelope struct {
	Result json.RawMessage `json:"result,omitempty"`
	Error  *Error          `json:"error,omitempty"`
}

// DecodeEnvelope parses an envelope strictly: it must be a JSON object with
// exactly one member, result or error, and an error needs a kind. It
// accepts and rejects exactly what decoding with encoding/json into a map of
// members and then into an Envelope did (duplicate members, member names of
// the error matched case-insensitively, unknown members of the error
// ignored), without reflection; Result is a copy.
func DecodeEnvelope(b []byte) (Envelope, error) {
	if err := jsonwire.CheckObject(b); err != nil {
		return Envelope{}, fmt.Errorf("malformed result envelope: %w", err)
	}
	var (
		env               Envelope
		hasResult, hasErr bool
		result            []byte
	)
	err := jsonwire.Members(b, func(key, value []byte) error {
		switch jsonwire.UnquoteString(key) {
		case "result":
			hasResult, result = true, value
		case "error":
			hasErr = true
			return decodeError(&env.Error, value)
		default:
			// Members are checked first: a misspelt member would otherwise
			// decode as an empty success.
			return fmt.Errorf("unknown member %s", key)
		}
		return nil
	})
	switch {
	case err != nil:
		return Envelope{}, fmt.Errorf("malformed result envelope: %w", err)
	case !hasResult && !hasErr:
		return Envelope{}, errors.New("malformed result envelope: no result or error member")
	case hasResult && hasErr:
		return Envelope{}, errors.New("malformed result envelope: both result and error set")
	case hasResult:
		env.Result = bytes.Clone(result)
	case env.Error == nil:
		return Envelope{}, errors.New("malformed result envelope: error is null")
	case env.Error.Kind == "":
		return Envelope{}, errors.New("malformed result envelope: error without kind")
	}
	return env, nil
}

// decodeError decodes an envelope's error member as encoding/json decodes
// a *Error: null clears it, an object fills it (merging with an earlier
// duplicate member), anything else is a type error.
func decodeError(dst **Error, value []byte) error {
	switch value[0] {
	case 'n':
		*dst = nil
		return nil
	case '{':
	default:
		return errors.New("error is not an object")
	}
	if *dst == nil {
		*dst = &Error{}
	}
	e := *dst
	return jsonwire.Members(value, func(key, v []byte) error {
		var field *string
		switch {
		case jsonwire.KeyIs(key, "kind"):
			field = (*string)(&e.Kind)
		case jsonwire.KeyIs(key, "message"):
			field = &e.Message
		default:
			return nil
		}
		switch v[0] {
		case '"':
			*field = jsonwire.UnquoteString(v)
		case 'n':
		default:
			return fmt.Errorf("error member %s is not a string", key)
		}
		return nil
	})
}

// OK builds a success envelope around v.
func OK(v any) ([]byte, error) {
	b := append(make([]byte, 0, 64), `{"result":`...)
	b, err := jsonwire.AppendValue(b, v, true)
	if err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

// AppendFail appends an error envelope to dst, as json.Marshal writes it.
func AppendFail(dst []byte, e *Error) []byte {
	if e == nil {
		return append(dst, `{}`...)
	}
	dst = append(dst, `{"error":{"kind":`...)
	dst = jsonwire.AppendString(dst, e.Kind, true)
	dst = append(dst, `,"message":`...)
	dst = jsonwire.AppendString(dst, e.Message, true)
	return append(dst, "}}"...)
}

// Fail builds an error envelope.
func Fail(e *Error) []byte {
	return AppendFail(make([]byte, 0, 64), e)
}
