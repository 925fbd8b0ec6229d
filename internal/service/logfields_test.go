package service_test

import (
	"context"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/connhost/connhost/internal/service"
	"github.com/connhost/connhost/internal/store"
)

// TestLogPluginIsNameAtVersion: every log line that names a plugin names
// it as name@version, through an instance's life and a plugin install.
func TestLogPluginIsNameAtVersion(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.install(echo(t, "1.0.0"))
	e.install(chatbot(t))
	e.instance(service.InstanceInput{Name: "g", Plugin: "goecho", Enabled: ptr(true)})
	e.instance(service.InstanceInput{Name: "lr", Plugin: "chatbot", Enabled: ptr(true), Settings: &store.Settings{LongRunning: true}})
	if _, err := e.svc.Instances.Update(ctx, "g", service.InstanceInput{Settings: &store.Settings{MemoryMiB: 64}}); err != nil {
		t.Fatal(err)
	}
	e.install(echo(t, "1.1.0"))
	if err := e.svc.Instances.Delete(ctx, "lr"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Instances.Delete(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	lines := 0
	for _, line := range strings.Split(e.logs.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		p, ok := rec["plugin"]
		if !ok {
			continue
		}
		lines++
		name, version, found := strings.Cut(p.(string), "@")
		if !found || name == "" || version == "" || strings.Contains(version, "@") {
			t.Errorf("plugin %q is not name@version: %s", p, line)
		}
		if _, ok := rec["version"]; ok {
			t.Errorf("a separate version field: %s", line)
		}
	}
	if lines < 5 {
		t.Fatalf("only %d log lines name a plugin:\n%s", lines, e.logs.String())
	}
}

// TestLogDurationsCarryTheirUnit: zerolog writes a Dur field as a bare
// number of milliseconds, so every Dur key in the module says so with _ms.
func TestLogDurationsCarryTheirUnit(t *testing.T) {
	root := filepath.Join("..", "..")
	fset := token.NewFileSet()
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) != 2 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "Dur" {
				return true
			}
			lit, ok := call.Args[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			key, _ := strconv.Unquote(lit.Value)
			checked++
			if !strings.HasSuffix(key, "_ms") {
				t.Errorf("%s: Dur(%q): name the unit, as %q", fset.Position(lit.Pos()), key, key+"_ms")
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 5 {
		t.Fatalf("found only %d Dur fields: is the walk looking at the module?", checked)
	}
}
