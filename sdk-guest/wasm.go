//go:build wasip1

package sdk

import (
	"context"
	"unsafe"

	"github.com/connhost/connhost/abi"
)

// This file binds the ABI v1 exports and imports. Every export reads the
// staged input into a buffer that RPC responses reuse; that is safe because
// Module decodes its input completely before a handler can make a host call.
// Every export calls output exactly once.

//go:wasmimport connhost_v1 buffer_read
func bufferRead(ptr unsafe.Pointer, n uint32) uint32

//go:wasmimport connhost_v1 output
func output(ptr unsafe.Pointer, n uint32) uint32

//go:wasmimport connhost_v1 log
func hostLog(level int32, ptr unsafe.Pointer, n uint32)

//go:wasmimport connhost_v1 sleep
func hostSleep(ms int64) int32

//go:wasmimport connhost_v1 should_stop
func shouldStop() int32

//go:wasmimport connhost_v1 integration_context_get
func integrationContextGet(ptr unsafe.Pointer, n uint32) uint32

//go:wasmimport connhost_v1 integration_context_set
func integrationContextSet(ptr unsafe.Pointer, n uint32) uint32

//go:wasmimport connhost_v1 cache_get
func cacheGet(ptr unsafe.Pointer, n uint32) uint32

//go:wasmimport connhost_v1 cache_set
func cacheSet(ptr unsafe.Pointer, n uint32) uint32

//go:wasmimport connhost_v1 cache_delete
func cacheDelete(ptr unsafe.Pointer, n uint32) uint32

//go:wasmimport connhost_v1 last_run_get
func lastRunGet(ptr unsafe.Pointer, n uint32) uint32

//go:wasmimport connhost_v1 last_run_set
func lastRunSet(ptr unsafe.Pointer, n uint32) uint32

//go:wasmimport connhost_v1 last_mirror_run_get
func lastMirrorRunGet(ptr unsafe.Pointer, n uint32) uint32

//go:wasmimport connhost_v1 last_mirror_run_set
func lastMirrorRunSet(ptr unsafe.Pointer, n uint32) uint32

//go:wasmimport connhost_v1 add_entry
func addEntry(ptr unsafe.Pointer, n uint32) uint32

//go:wasmimport connhost_v1 create_incidents
func createIncidents(ptr unsafe.Pointer, n uint32) uint32

//go:wasmimport connhost_v1 find_user
func findUser(ptr unsafe.Pointer, n uint32) uint32

//go:wasmimport connhost_v1 handle_entitlement_for_user
func handleEntitlementForUser(ptr unsafe.Pointer, n uint32) uint32

//go:wasmimport connhost_v1 update_module_health
func updateModuleHealth(ptr unsafe.Pointer, n uint32) uint32

//go:wasmimport connhost_v1 mirror_investigation
func mirrorInvestigation(ptr unsafe.Pointer, n uint32) uint32

//go:wasmimport connhost_v1 direct_message
func directMessage(ptr unsafe.Pointer, n uint32) uint32

//go:wasmimport connhost_v1 http_request
func httpRequest(ptr unsafe.Pointer, n uint32) uint32

var rpcFuncs = map[string]func(unsafe.Pointer, uint32) uint32{
	abi.ImportIntegrationContextGet:    integrationContextGet,
	abi.ImportIntegrationContextSet:    integrationContextSet,
	abi.ImportCacheGet:                 cacheGet,
	abi.ImportCacheSet:                 cacheSet,
	abi.ImportCacheDelete:              cacheDelete,
	abi.ImportLastRunGet:               lastRunGet,
	abi.ImportLastRunSet:               lastRunSet,
	abi.ImportLastMirrorRunGet:         lastMirrorRunGet,
	abi.ImportLastMirrorRunSet:         lastMirrorRunSet,
	abi.ImportAddEntry:                 addEntry,
	abi.ImportCreateIncidents:          createIncidents,
	abi.ImportFindUser:                 findUser,
	abi.ImportHandleEntitlementForUser: handleEntitlementForUser,
	abi.ImportUpdateModuleHealth:       updateModuleHealth,
	abi.ImportMirrorInvestigation:      mirrorInvestigation,
	abi.ImportDirectMessage:            directMessage,
	abi.ImportHTTPRequest:              httpRequest,
}

func ptr(b []byte) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(b)) }

// wasmImports implements Imports over the real host functions.
type wasmImports struct {
	staged stage // reused for RPC responses and export inputs
}

// readStaged reads n staged bytes into the reused buffer.
func (w *wasmImports) readStaged(n uint32) []byte {
	b := w.staged.get(int(n))
	if n > 0 {
		b = b[:bufferRead(ptr(b), n)]
	}
	return b
}

func (w *wasmImports) RPC(_ context.Context, name string, req []byte) []byte {
	return w.readStaged(rpcFuncs[name](ptr(req), uint32(len(req))))
}

func (w *wasmImports) Log(level int32, msg []byte) { hostLog(level, ptr(msg), uint32(len(msg))) }

func (w *wasmImports) Sleep(_ context.Context, ms int64) int32 { return hostSleep(ms) }

func (w *wasmImports) ShouldStop() bool { return shouldStop() != 0 }

var (
	imports wasmImports
	module  *Module
)

// instance returns the module of the registered connector, created on first
// use so that Register in any init runs before it.
func instance() *Module {
	if module == nil {
		c := Connector{}
		if registered != nil {
			c = *registered
		}
		module = NewModule(c, &imports)
	}
	return module
}

// reply hands the envelope to the host and lets go of large buffers.
func reply(m *Module, env []byte) uint32 {
	output(ptr(env), uint32(len(env)))
	m.trim()
	return abi.StatusOK
}

//go:wasmexport connhost_abi_version
func connhostABIVersion() int32 { return abi.Version }

//go:wasmexport connhost_configure
func connhostConfigure(n uint32) uint32 {
	m := instance()
	return reply(m, m.Configure(context.Background(), imports.readStaged(n)))
}

//go:wasmexport connhost_call
func connhostCall(cmdLen, argsLen uint32) uint32 {
	m := instance()
	in := imports.readStaged(cmdLen + argsLen)
	cmd := string(in[:min(cmdLen, uint32(len(in)))])
	return reply(m, m.Call(context.Background(), cmd, in[len(cmd):]))
}

//go:wasmexport connhost_http
func connhostHTTP(n uint32) uint32 {
	m := instance()
	return reply(m, m.HTTP(context.Background(), imports.readStaged(n)))
}
