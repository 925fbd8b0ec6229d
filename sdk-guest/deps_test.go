package sdk

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// goList runs go list in this module's root (the package directory) for
// wasip1 and returns its output.
func goList(t *testing.T, args ...string) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH")
	}
	cmd := exec.Command(goTool, append([]string{"list"}, args...)...)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}

// TestGuestDepsAvoidNetHTTP keeps net/http (and crypto/tls behind it) out of
// the SDK core: linking it triples a plugin's size and its cold compile time
// in the host. plugins/conformance checks the first-party plugins the same
// way.
func TestGuestDepsAvoidNetHTTP(t *testing.T) {
	pkgs := []string{".", "./cache", "./iam", "./oauth2"}
	out := goList(t, append([]string{"-f", `{{.ImportPath}} {{join .Deps " "}}`}, pkgs...)...)
	lines := strings.Split(out, "\n")
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

// TestModuleNeedsOnlyABI: the SDK module requires nothing but the abi
// module, so a connector's go.sum lists nothing of the server's.
func TestModuleNeedsOnlyABI(t *testing.T) {
	got := strings.Fields(goList(t, "-m", "-f", "{{.Path}}", "all"))
	want := []string{"github.com/connhost/connhost/sdk-guest", "github.com/connhost/connhost/abi"}
	if !slices.Equal(got, want) {
		t.Errorf("go list -m all = %v, want %v", got, want)
	}
	for _, line := range strings.Split(goList(t, "-deps", "-test", "-f", "{{.ImportPath}} {{.Standard}}", "./..."), "\n") {
		path, std, _ := strings.Cut(line, " ")
		if std == "false" && !strings.HasPrefix(path, "github.com/connhost/connhost/") {
			t.Errorf("the SDK imports %s; it may use only the standard library and abi", path)
		}
	}
}
