package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidate runs `connhost plugin validate` on packed plugins, project
// directories and manifest files: one line per finding, located by file and
// field, and the exit code by the worst finding.
func TestValidate(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	const head = `"name":"demo","display":"Demo","version":"1.0.0","description":"Demo.","abi_version":1`
	good := write("good/manifest.json", `{`+head+`,"isfetch":true,
		"params":[{"name":"first_fetch","display":"First fetch","type":"string"}]}`)
	lintErr := write("linterr/manifest.json", `{`+head+`,
		"params":[{"name":"close_out","display":"Close","type":"string"}]}`)
	warnOnly := write("warn.json", `{`+head+`,"commands":[{"name":"demo-x"}]}`)
	refused := write("refused/manifest.json", `{`+head+`,"egress":["https://api.example.com/"]}`)
	badKey := write("badkey.json", `{`+head+`,"isFetch":true}`)
	raw, err := os.ReadFile(echoRaw)
	if err != nil {
		t.Fatal(err)
	}
	noManifest := write("raw.wasm", string(raw))

	tests := []struct {
		name   string
		target string
		code   int
		lines  []string // each a line of stdout
	}{
		{"project dir", filepath.Dir(good), exitOK, []string{filepath.Dir(good) + ": 0 errors, 0 warnings"}},
		{"packed plugin", echoWasm, exitOK, []string{
			"warning: " + echoWasm + " (manifest): params[0].display: param url: empty: the operator sees this label",
			echoWasm + ": 0 errors, 5 warnings",
		}},
		{"lint error", filepath.Dir(lintErr), exitFailed, []string{
			"error: " + lintErr + ": params[0].type: param close_out: type string, want bool (XSOAR's conventional close_out)",
			"error: " + lintErr + ": params[0].name: param close_out needs isremotesyncout: without it the host never runs the commands it configures",
			filepath.Dir(lintErr) + ": 2 errors, 0 warnings",
		}},
		{"warnings only", warnOnly, exitOK, []string{
			"warning: " + warnOnly + ": commands[0].description: command demo-x: empty: say what it does and returns",
			warnOnly + ": 0 errors, 1 warnings",
		}},
		{"refused by the host", filepath.Dir(refused), exitIncompatible, []string{
			"error: " + refused + `: egress[0] "https://api.example.com/": `,
		}},
		{"undecodable manifest", badKey, exitIncompatible, []string{
			"error: " + badKey + `: unknown key "isFetch" (keys are case-sensitive: did you mean "isfetch"?)`,
		}},
		{"module without a manifest", noManifest, exitIncompatible, []string{"error: " + noManifest + ": "}},
		{"missing", filepath.Join(dir, "nope"), exitUsage, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := execute(context.Background(), &app{stdout: &stdout, stderr: &stderr}, []string{"plugin", "validate", tt.target})
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, &stdout, &stderr)
			}
			got := strings.Split(strings.TrimSpace(stdout.String()), "\n")
			for _, want := range tt.lines {
				found := false
				for _, l := range got {
					if l == want || strings.HasSuffix(want, ": ") && strings.HasPrefix(l, want) {
						found = true
					}
				}
				if !found {
					t.Errorf("no line %q in\n%s", want, &stdout)
				}
			}
		})
	}
}
