// Package sdk is the Go guest SDK for connhost connectors: write handlers as
// plain Go functions, register them, and build the package to WebAssembly
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o plugin.wasm .
//
// A plugin's main package has an empty func main and registers its
// Connector from init:
//
//	func main() {}
//
//	func init() {
//		sdk.Register(sdk.Connector{
//			TestModule: func(ctx context.Context, h *sdk.Host) error { return nil },
//			Commands:   map[string]sdk.CommandFunc{"hello": hello},
//		})
//	}
//
// The SDK owns every export of ABI v1 (connhost_abi_version,
// connhost_configure, connhost_call, connhost_http) and binds every
// connhost_v1 import behind the typed methods of Host. Outside wasip1 the
// same dispatch runs natively over any Imports implementation; package
// sdktest provides an in-memory one so handlers can be unit-tested with plain
// go test.
//
// # HTTP
//
// Host.HTTP sends a request through the host's http_request (the host
// enforces the egress allow-list); APIClient builds JSON REST calls on it,
// and a long-running HTTP plugin serves requests with an HTTPHandler
// (JSONResponse, TextResponse, BasicAuth and Header help). None of it links
// net/http, which would triple a plugin's size and cold compile time; code
// that wants net/http anyway uses package nethttp.
//
// # JSON
//
// encoding/json's reflection is slow in a wasm build, so the SDK writes and
// reads its own wire types with package jsonwire, byte for byte as
// encoding/json would. A hot command can do the same for its own types:
// Args.Raw passes the arguments through (their map is built only when a
// value is asked for), jsonwire.Members and the jsonwire Decode functions
// read them, and a result implementing JSONAppender is written by its
// AppendJSON method.
//
// # Errors
//
// A handler's error becomes the call's error envelope. Return the helpers
// (NotImplemented, RateLimited, SkipUpdate, BadRequest, Errorf) for a typed
// kind; any other error has kind failed, and the host then applies XSOAR's
// sentinel rule ("API rate limit", "skip update" in the message).
//
// # Panics
//
// The SDK does not recover panics in handlers. A panic traps the module
// instance; the host fails the call with kind trap and discards the instance,
// so no half-updated memory serves the next call. Natively a panic reaches
// the test that made the call.
//
// # Concurrency
//
// The host never enters one module instance concurrently, but runs several
// instances of a plugin in parallel. Keep durable state in the integration
// context, cache or last run, never in package variables.
package sdk
