package sdk

import (
	"fmt"

	"github.com/connhost/connhost/abi"
)

// Sentinels for host errors a handler may want to test with errors.Is.
var (
	// ErrConflict: SetIntegrationContext lost a race to another writer.
	ErrConflict = &abi.Error{Kind: abi.KindConflict}
	// ErrDenied: an HTTP request went to a host outside the egress allow-list.
	ErrDenied = &abi.Error{Kind: abi.KindDenied}
	// ErrUnavailable: the host has nothing behind this function (for example
	// direct_message in the local runner).
	ErrUnavailable = &abi.Error{Kind: abi.KindUnavailable}
)

// Errorf returns an error of the given kind with a formatted message.
func Errorf(kind abi.ErrorKind, format string, args ...any) error {
	return abi.Errorf(kind, format, args...)
}

// NotImplemented reports that the command is not implemented; for
// get-modified-remote-data the host then polls every incident instead.
func NotImplemented() error {
	return &abi.Error{Kind: abi.KindNotImplemented}
}

// RateLimited reports that the remote is throttling; mirroring stops this
// cycle and resumes from this incident next time.
func RateLimited(msg string) error {
	return &abi.Error{Kind: abi.KindRateLimited, Message: msg}
}

// SkipUpdate tells the host not to continue this mirroring cycle.
func SkipUpdate(msg string) error {
	return &abi.Error{Kind: abi.KindSkipUpdate, Message: msg}
}

// BadRequest reports wrong arguments or parameters.
func BadRequest(format string, args ...any) error {
	return &abi.Error{Kind: abi.KindBadRequest, Message: fmt.Sprintf(format, args...)}
}

// toABIError turns a handler error into the error of an envelope. A typed
// error keeps its kind (its message is the whole chain when wrapped, so
// context added with %w is not lost); host-produced kinds that a handler
// passes on, and plain errors, become failed.
func toABIError(err error) *abi.Error {
	if e, ok := err.(*abi.Error); ok && e.Kind.FromGuest() {
		return e
	}
	kind := abi.KindOf(err)
	if !kind.FromGuest() {
		kind = abi.KindFailed
	}
	return &abi.Error{Kind: kind, Message: err.Error()}
}
