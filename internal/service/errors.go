package service

import (
	"errors"

	"github.com/connhost/connhost/abi"
	"github.com/connhost/connhost/internal/store"
)

// Errors callers map to responses. Store errors reach callers translated
// (see fromStore), so callers test these and need not import the store.
var (
	// ErrNotFound means the named plugin, instance, incident, user or key
	// does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists means a unique name is taken, or a plugin version is
	// installed with other content.
	ErrExists = errors.New("already exists")
	// ErrInvalid means a request the service refuses as malformed.
	ErrInvalid = errors.New("invalid")
	// ErrConflict means the request does not fit the current state: a
	// disabled instance, a stale version, a plugin still in use, ...
	ErrConflict = errors.New("conflict")
	// ErrInvalidArguments wraps the refusal of a command's arguments: a
	// required argument missing, or one the command does not declare. The
	// API answers it 422, as when the plugin itself refuses them.
	ErrInvalidArguments = errors.New("invalid arguments")
	// ErrNoSpace means a write was refused because the store's disk is
	// (nearly) full (store.ErrNoSpace); nothing changed, reads go on, and
	// the same request succeeds once space is freed.
	ErrNoSpace = errors.New("insufficient storage")
	// ErrShuttingDown is returned for work refused because Close has begun.
	ErrShuttingDown = errors.New("server is shutting down")
	// ErrUnauthorized is returned by APIKeys.Authenticate for a missing,
	// unknown or revoked key.
	ErrUnauthorized = errors.New("invalid or revoked API key")
	// ErrUnauthenticated is returned by LongRunning.HandleHTTP for a
	// request with missing or wrong credentials.
	ErrUnauthenticated = errors.New("missing or wrong credentials")
	// ErrBusy is returned by LongRunning.HandleHTTP when an instance already
	// has HTTPConcurrency requests in flight.
	ErrBusy = errors.New("too many requests in flight")
	// ErrUntrusted wraps refusals of the trust policy (signing.ErrUnsigned,
	// ErrUnknownKey, ErrTamperedPlugin, ...); the wrapped error names the
	// check.
	ErrUntrusted = errors.New("untrusted plugin")
)

// storeKinds pairs each store sentinel with the service sentinel it
// becomes.
var storeKinds = [...]struct{ store, service error }{
	{store.ErrNotFound, ErrNotFound},
	{store.ErrExists, ErrExists},
	{store.ErrInvalid, ErrInvalid},
	{store.ErrConflict, ErrConflict},
	{store.ErrNoSpace, ErrNoSpace},
}

// kindError is a store error seen through the service: its text is the
// store's (the record kind and id), and it matches both the store's
// sentinel and the service's.
type kindError struct {
	err   error
	kinds []error
}

func (e *kindError) Error() string   { return e.err.Error() }
func (e *kindError) Unwrap() []error { return append([]error{e.err}, e.kinds...) }

// fromStore translates the store sentinels in err (also those the
// mirroring engine passes on) to the service's. Errors the service made
// itself, and nil, are returned as they are; translating twice is
// harmless.
func fromStore(err error) error {
	if err == nil {
		return nil
	}
	var kinds []error
	for _, k := range storeKinds {
		if errors.Is(err, k.store) && !errors.Is(err, k.service) {
			kinds = append(kinds, k.service)
		}
	}
	if len(kinds) == 0 {
		return err
	}
	return &kindError{err: err, kinds: kinds}
}

// typed maps the service's (and store's) sentinels to the ABI error kinds
// a guest sees.
func typed(err error) error {
	err = fromStore(err)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrConflict):
		return abi.Errorf(abi.KindConflict, "%v", err)
	case errors.Is(err, ErrNotFound):
		return abi.Errorf(abi.KindNotFound, "%v", err)
	case errors.Is(err, ErrInvalid):
		return abi.Errorf(abi.KindBadRequest, "%v", err)
	}
	return err
}
