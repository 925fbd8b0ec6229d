package host

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/connhost/connhost/host/internal/gate"
)

// The gate's verdict and output are cached next to the compiled code. A
// load from the compilation cache used to parse, check and instrument the
// whole module again (about a third of its CPU for a 4 MB Go guest) only to
// produce the bytes whose compiled code the cache already holds. The entry
// is keyed by the plugin's hash and by everything the gate's result depends
// on: the module limits, the host functions, the stack size and the binary
// itself (its path, size and modification time), so a changed limit or a
// new connhost binary (whose gate may check more) never reuses a verdict.
// The entry carries the SHA-256 of the instrumented bytes, checked on read.
// Whoever can write the cache directory can already plant compiled native
// code, so trusting it with the gate's verdict adds no exposure.

// gateEntry is what the gate produced for a module.
type gateEntry struct {
	code     []byte
	minPages uint32
}

var (
	binaryIDOnce sync.Once
	binaryID     string
)

// selfID identifies the running binary, or is "" when it cannot be read
// (then nothing is cached).
func selfID() string {
	binaryIDOnce.Do(func() {
		exe, err := os.Executable()
		if err != nil {
			return
		}
		st, err := os.Stat(exe)
		if err != nil {
			return
		}
		binaryID = fmt.Sprintf("%s|%d|%d", exe, st.Size(), st.ModTime().UnixNano())
	})
	return binaryID
}

// gateCachePath returns where the gate's result for the plugin sha is
// cached, or "" when it is not.
func (r *Runtime) gateCachePath(sha string) string {
	id := selfID()
	if r.cfg.CacheDir == "" || r.unchecked || id == "" {
		return ""
	}
	h := sha256.New()
	fmt.Fprintf(h, "gate v1|%s|%+v|%d|%v", id, r.cfg.Module, r.cfg.StackBytes, r.hostFuncs)
	return filepath.Join(r.cfg.CacheDir, sha, "connhost-gate-"+hex.EncodeToString(h.Sum(nil))[:32])
}

const gateHeader = 4 + sha256.Size // minPages, then the SHA-256 of code

// readGateCache returns the cached gate result at path, if present and
// intact.
func readGateCache(path string) (gateEntry, bool) {
	if path == "" {
		return gateEntry{}, false
	}
	b, err := os.ReadFile(path)
	if err != nil || len(b) < gateHeader {
		return gateEntry{}, false
	}
	code := b[gateHeader:]
	if sum := sha256.Sum256(code); !bytes.Equal(sum[:], b[4:gateHeader]) {
		return gateEntry{}, false
	}
	return gateEntry{code: code, minPages: binary.LittleEndian.Uint32(b)}, true
}

// writeGateCache stores e at path (atomically: a reader sees all or
// nothing). Failing to cache only costs the next load time.
func writeGateCache(path string, e gateEntry) {
	if path == "" {
		return
	}
	b := make([]byte, gateHeader, gateHeader+len(e.code))
	binary.LittleEndian.PutUint32(b, e.minPages)
	sum := sha256.Sum256(e.code)
	copy(b[4:], sum[:])
	b = append(b, e.code...)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
	}
}

// gateModule runs the gate on wasm: it checks the module against the
// limits and host functions and instruments it, or takes that result from
// the cache entry at path.
func (r *Runtime) gateModule(wasm []byte, path string) (gateEntry, bool, error) {
	if e, ok := readGateCache(path); ok {
		return e, true, nil
	}
	mod, err := parseModule(wasm, r.cfg.Module, r.hostFuncs)
	if err != nil {
		return gateEntry{}, false, err
	}
	code := wasm
	if !r.unchecked {
		code = mod.Instrument(gate.Config{CheckModule: guardModule, CheckName: guardName, StackBytes: r.cfg.StackBytes})
	}
	return gateEntry{code: code, minPages: uint32(mod.InitialMemoryBytes() / wasmPageSize)}, false, nil
}
