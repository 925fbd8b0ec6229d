package main

import (
	"net/http"
	"strings"
	"syscall"
	"testing"

	"github.com/connhost/connhost/internal/testenv/smallfs"
)

// TestServeDiskFull runs `connhost serve` on a data dir on a 256 MiB tmpfs:
// with store.min_free_mib above the free space, writes answer 507 naming
// the cause while reads answer 200 and the server stays up; with a reserve
// that fits, the same write succeeds.
func TestServeDiskFull(t *testing.T) {
	dir := smallfs.Mount(t, 256<<20)
	p := startServe(t, dir, "CONNHOST_STORE_MIN_FREE_MIB=64")
	key := p.key
	if status, body, err := call(p.url, key, "POST", "/api/v1/incidents", map[string]any{"name": "room"}); err != nil || status != http.StatusCreated {
		t.Fatalf("create with room: %d %s %v", status, body, err)
	}
	stop := func(p *serveProc) {
		t.Helper()
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		if code := p.wait(t); code != exitOK {
			t.Fatalf("serve exited %d; stderr:\n%s", code, p.stderr)
		}
	}
	stop(p)

	p = startServe(t, dir, "CONNHOST_STORE_MIN_FREE_MIB=1024")
	for range 3 {
		status, body, err := call(p.url, key, "POST", "/api/v1/incidents", map[string]any{"name": "no room"})
		if err != nil || status != http.StatusInsufficientStorage || !strings.Contains(string(body), `"error":"insufficient storage"`) ||
			!strings.Contains(string(body), "writes stop below 1024.0 MiB") {
			t.Fatalf("create with the disk short of the reserve: %d %s %v", status, body, err)
		}
	}
	status, body, err := call(p.url, key, "GET", "/api/v1/incidents", nil)
	if err != nil || status != http.StatusOK || !strings.Contains(string(body), `"room"`) || strings.Contains(string(body), "no room") {
		t.Fatalf("list with the disk short of the reserve: %d %s %v", status, body, err)
	}
	stop(p)

	p = startServe(t, dir, "CONNHOST_STORE_MIN_FREE_MIB=64")
	if status, body, err := call(p.url, key, "POST", "/api/v1/incidents", map[string]any{"name": "room again"}); err != nil || status != http.StatusCreated {
		t.Fatalf("create with room again: %d %s %v", status, body, err)
	}
	stop(p)
}
