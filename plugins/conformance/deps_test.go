package conformance

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestPluginDepsAvoidNetHTTP keeps net/http (and crypto/tls behind it) out of
// the first-party plugins built for wasip1: linking it triples a plugin's
// size and its cold compile time in the host. The SDK's own test checks the
// SDK's packages.
func TestPluginDepsAvoidNetHTTP(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH")
	}
	pkgs := []string{
		"./plugins/ticketdesk", "./plugins/connhost-peer", "./plugins/goecho",
		"./plugins/scim-iam", "./plugins/webhook", "./plugins/chatbot",
	}
	cmd := exec.Command(goTool, append([]string{"list", "-f", `{{.ImportPath}} {{join .Deps " "}}`}, pkgs...)...)
	cmd.Dir = "../.." // the module root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(pkgs) {
		t.Fatalf("go list answered for %d packages, want %d:\n%s", len(lines), len(pkgs), out)
	}
	for _, line := range lines {
		fields := strings.Fields(line)
		pkg, deps := fields[0], fields[1:]
		for _, banned := range []string{"net/http", "crypto/tls"} {
			if slices.Contains(deps, banned) {
				t.Errorf("%s imports %s for wasip1; use Host.HTTP, or keep net/http in package nethttp", pkg, banned)
			}
		}
	}
}
