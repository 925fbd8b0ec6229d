//go:build wasip1

// Package rawabi implements the guest side of ABI v1 (abi/SPEC.md) in a few
// lines, for the fault corpus and the host's test guests. It is deliberately
// not the guest SDK: the corpus must exercise the raw ABI and stay
// independent of it. A guest calls Serve from init with its command handler;
// the package exports connhost_abi_version, connhost_configure and
// connhost_call.
package rawabi

import (
	"encoding/json"
	"unsafe"

	"github.com/connhost/connhost/abi"
)

//go:wasmimport connhost_v1 buffer_read
func bufferRead(ptr unsafe.Pointer, n uint32) uint32

//go:wasmimport connhost_v1 output
func output(ptr unsafe.Pointer, n uint32) uint32

//go:wasmimport connhost_v1 log
func hostLog(level uint32, ptr unsafe.Pointer, n uint32)

//go:wasmimport connhost_v1 sleep
func hostSleep(ms int64) uint32

//go:wasmimport connhost_v1 should_stop
func hostShouldStop() uint32

//go:wasmimport connhost_v1 integration_context_get
func integrationContextGet(ptr unsafe.Pointer, n uint32) uint32

//go:wasmimport connhost_v1 integration_context_set
func integrationContextSet(ptr unsafe.Pointer, n uint32) uint32

//go:wasmimport connhost_v1 cache_get
func cacheGet(ptr unsafe.Pointer, n uint32) uint32

//go:wasmimport connhost_v1 cache_set
func cacheSet(ptr unsafe.Pointer, n uint32) uint32

//go:wasmimport connhost_v1 last_run_get
func lastRunGet(ptr unsafe.Pointer, n uint32) uint32

//go:wasmimport connhost_v1 last_run_set
func lastRunSet(ptr unsafe.Pointer, n uint32) uint32

//go:wasmimport connhost_v1 add_entry
func addEntry(ptr unsafe.Pointer, n uint32) uint32

//go:wasmimport connhost_v1 direct_message
func directMessage(ptr unsafe.Pointer, n uint32) uint32

//go:wasmimport connhost_v1 http_request
func httpRequest(ptr unsafe.Pointer, n uint32) uint32

var rpcs = map[string]func(unsafe.Pointer, uint32) uint32{
	abi.ImportIntegrationContextGet: integrationContextGet,
	abi.ImportIntegrationContextSet: integrationContextSet,
	abi.ImportCacheGet:              cacheGet,
	abi.ImportCacheSet:              cacheSet,
	abi.ImportLastRunGet:            lastRunGet,
	abi.ImportLastRunSet:            lastRunSet,
	abi.ImportAddEntry:              addEntry,
	abi.ImportDirectMessage:         directMessage,
	abi.ImportHTTPRequest:           httpRequest,
}

// Handler serves one command: it returns the result, or an error (an
// *abi.Error keeps its kind).
type Handler func(command string, args json.RawMessage) (any, error)

var (
	handler Handler
	// Params holds the instance parameters from connhost_configure.
	Params map[string]any
	// Limits holds the instance's limits from connhost_configure.
	Limits abi.Limits
)

// HTTPHandler serves connhost_http requests of long-running HTTP plugins.
type HTTPHandler func(req abi.HTTPRequest) (abi.HTTPResponse, error)

var httpHandler HTTPHandler = func(abi.HTTPRequest) (abi.HTTPResponse, error) {
	return abi.HTTPResponse{Status: 404}, nil
}

// Serve registers the command handler.
func Serve(h Handler) { handler = h }

// ServeHTTP registers the connhost_http handler (default: 404).
func ServeHTTP(h HTTPHandler) { httpHandler = h }

func ptr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

func read(n uint32) []byte {
	b := make([]byte, n)
	bufferRead(ptr(b), n)
	return b
}

// Output passes an envelope to the host and returns output's status.
func Output(env []byte) uint32 { return output(ptr(env), uint32(len(env))) }

func reply(v any, err error) int32 {
	if err != nil {
		e, ok := err.(*abi.Error)
		if !ok {
			e = &abi.Error{Kind: abi.KindFailed, Message: err.Error()}
		}
		Output(abi.Fail(e))
		return 0
	}
	env, merr := abi.OK(v)
	if merr != nil {
		Output(abi.Fail(&abi.Error{Kind: abi.KindFailed, Message: merr.Error()}))
		return 0
	}
	Output(env)
	return 0
}

//go:wasmexport connhost_abi_version
func abiVersion() int32 { return abi.Version }

//go:wasmexport connhost_configure
func configure(n int32) int32 {
	var req abi.ConfigureRequest
	if err := json.Unmarshal(read(uint32(n)), &req); err != nil {
		return reply(nil, &abi.Error{Kind: abi.KindBadRequest, Message: err.Error()})
	}
	Params, Limits = req.Params, req.Limits
	return reply(nil, nil)
}

//go:wasmexport connhost_call
func call(cmdLen, argsLen int32) int32 {
	b := read(uint32(cmdLen + argsLen))
	return reply(handler(string(b[:cmdLen]), b[cmdLen:]))
}

//go:wasmexport connhost_http
func serveHTTP(n int32) int32 {
	var req abi.HTTPRequest
	if err := json.Unmarshal(read(uint32(n)), &req); err != nil {
		return reply(nil, &abi.Error{Kind: abi.KindBadRequest, Message: err.Error()})
	}
	return reply(httpHandler(req))
}

// Log logs a message through the host.
func Log(level uint32, msg string) {
	b := []byte(msg)
	hostLog(level, ptr(b), uint32(len(b)))
}

// Sleep sleeps through the host; it reports whether the sleep was cut short.
func Sleep(ms int64) bool { return hostSleep(ms) == abi.SleepInterrupted }

// ShouldStop reports whether the host wants the call to return.
func ShouldStop() bool { return hostShouldStop() == 1 }

// RPC calls the RPC host function name with a raw JSON request and returns
// the raw result or the typed error.
func RPC(name string, req json.RawMessage) (json.RawMessage, error) {
	f, ok := rpcs[name]
	if !ok {
		return nil, &abi.Error{Kind: abi.KindBadRequest, Message: "rawabi: no import " + name}
	}
	env, err := abi.DecodeEnvelope(read(f(ptr(req), uint32(len(req)))))
	if err != nil {
		return nil, err
	}
	if env.Error != nil {
		return nil, env.Error
	}
	return env.Result, nil
}
