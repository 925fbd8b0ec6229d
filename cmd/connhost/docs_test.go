package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"mvdan.cc/sh/v3/syntax"

	"github.com/connhost/connhost/internal/scaffold"
	"github.com/connhost/connhost/internal/testenv/wasmbuild"
)

// TestDocCommands keeps the commands in README.md and docs/*.md working:
// in shell blocks (```sh), every connhost invocation goes through the CLI's
// own flag parsing, every `go test` names existing packages, known flags
// and -run/-bench patterns that compile and select tests (and, for
// -bench, only benchmarks the document reports), every `make` names
// existing targets and every curl an endpoint of the API. Synopsis lines
// (untagged blocks starting "connhost ") must name existing commands and
// flags; program output goes in ```text blocks.
func TestDocCommands(t *testing.T) {
	root, err := wasmbuild.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	c := newDocChecker(t, root)
	for _, path := range append([]string{filepath.Join(root, "README.md")}, docs...) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, path)
		c.project, c.vars = "", nil
		for _, blk := range fencedBlocks(string(b)) {
			var errs []error
			switch blk.lang {
			case "sh", "bash", "shell":
				errs = c.shell(blk.code, string(b))
			case "":
				errs = c.synopsis(blk.code)
			}
			for _, err := range errs {
				t.Errorf("%s:%d: %v", rel, blk.line, err)
			}
		}
	}
	// Guard against a parser that finds nothing and so checks nothing.
	for _, kind := range []string{"connhost", "connhost synopsis", "go test", "make", "curl"} {
		if c.checked[kind] == 0 {
			t.Errorf("no %s command found in the docs: the extraction is broken", kind)
		}
	}
	t.Logf("checked: %v", c.checked)
}

var (
	codeSpanRe = regexp.MustCompile("`[^`\n]*`")
	linkRe     = regexp.MustCompile(`\]\(([^)\s]+)\)`)
)

// TestDocLinks: relative links, and paths in code spans that climb with
// "../", resolve to files inside the repository, so a doc neither rots nor
// points at material outside the project.
func TestDocLinks(t *testing.T) {
	root, err := wasmbuild.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range append([]string{filepath.Join(root, "README.md"), filepath.Join(root, "RATIONALE.md")}, docs...) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, path)
		var targets []string
		for i, part := range strings.Split(string(b), "```") {
			if i%2 == 1 {
				continue // a fenced block
			}
			for _, m := range linkRe.FindAllStringSubmatch(codeSpanRe.ReplaceAllString(part, ""), -1) {
				targets = append(targets, m[1])
			}
			for _, span := range codeSpanRe.FindAllString(part, -1) {
				if p := strings.Trim(span, "`"); strings.HasPrefix(p, "../") {
					targets = append(targets, p)
				}
			}
		}
		for _, target := range targets {
			if strings.Contains(target, "://") || strings.HasPrefix(target, "#") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, _, _ := strings.Cut(target, "#")
			abs := filepath.Join(filepath.Dir(path), filepath.FromSlash(file))
			if r, err := filepath.Rel(root, abs); err != nil || strings.HasPrefix(r, "..") {
				t.Errorf("%s: %s points outside the repository", rel, target)
			} else if _, err := os.Stat(abs); err != nil {
				t.Errorf("%s: %s does not exist", rel, target)
			}
		}
	}
}

// TestDocChecker: each check fails on what a drifted doc would say.
func TestDocChecker(t *testing.T) {
	root, err := wasmbuild.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	const doc = "BenchmarkExecuteHTTP BenchmarkCreateIncidentHTTP"
	tests := []struct {
		name, src string
		synopsis  bool
		wantErr   string // "" for none
	}{
		{"connhost", "connhost plugin keygen -o k --kdf-cost interactive", false, ""},
		{"connhost via bin/", "bin/connhost run x.wasm test-module --param url=$URL", false, ""},
		{"connhost unknown flag", "connhost plugin keygen -o k --colour", false, "unknown flag: --colour"},
		{"connhost unknown command", "connhost plugin frobnicate", false, `unknown command "frobnicate"`},
		{"connhost unknown command with flags", "connhost plugin frobnicate --json", false, `unknown command "frobnicate"`},
		{"connhost deprecated flag", "connhost plugin keygen --out k", false, "--out is deprecated"},
		{"connhost flag of another command", "connhost run x.wasm c --data-dir d", false, "unknown flag: --data-dir"},
		{"connhost bad value", "connhost run x.wasm c --limits-call-timeout soon", false, "invalid argument"},
		{"synopsis", "connhost apikey create --name NAME | list [--json] | revoke ID", true, ""},
		{"synopsis unknown flag", "connhost apikey create --name NAME | list [--yaml]", true, "unknown flag: --yaml"},
		{"go test", "go test ./internal/api -run '^$' -bench 'BenchmarkExecuteHTTP|BenchmarkCreateIncidentHTTP' -benchtime 2000x", false, ""},
		{"go test all packages", "go test ./internal/store/... -run TestCompareSemver -count 1", false, ""},
		{"go test unknown package", "go test ./host/nope -run TestX", false, "./host/nope: no such package"},
		{"go test unknown flag", "go test ./internal/store -benchtimes 2x", false, "unknown flag -benchtimes"},
		{"go test bad regexp", "go test ./internal/store -run '('", false, "-run ("},
		{"go test bad benchtime", "go test ./internal/store -bench . -benchtime often", false, "-benchtime often"},
		{"go test regexp selects nothing", "go test ./internal/store -run 'TestCompareSemver|TestNope'", false, `"TestNope" selects no test`},
		{"go test benchmark not reported", "go test ./internal/api -run '^$' -bench .", false, "BenchmarkInstallToFirstCall, which the document does not report"},
		{"make", "make test", false, ""},
		{"make unknown target", "make tset", false, "make tset"},
		{"make in an init project", "cd demo && make pack sign validate", false, ""},
		{"make in an init project, unknown target", "cd demo\nmake publish", false, "make publish"},
		{"make in the repository, project target", "make sign", false, "make sign"},
		{"curl", `API=http://127.0.0.1:8080/api/v1; curl -H "$H" $API/instances/td/execute -d '{}'`, false, ""},
		{"curl form", `curl -H "$H" -F wasm=@x.wasm -F minisig=@x.wasm.minisig http://127.0.0.1:8080/api/v1/plugins`, false, ""},
		{"curl GET", `curl "$URL/api/v1/incidents?status=active"; curl http://127.0.0.1:8080/readyz`, false, ""},
		{"curl unknown endpoint", `curl -X POST "$URL/api/v1/instances/td/frobnicate"`, false, "POST /api/v1/instances/td/frobnicate: no such endpoint"},
		{"curl wrong method", `curl -X DELETE "$URL/api/v1/users/u1"`, false, "DELETE /api/v1/users/u1: no such endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newDocChecker(t, root)
			var errs []error
			if tt.synopsis {
				errs = c.synopsis(tt.src)
			} else {
				errs = c.shell(tt.src, doc)
			}
			err := errors.Join(errs...)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
			if len(c.checked) == 0 {
				t.Fatal("nothing checked")
			}
		})
	}
}

type block struct {
	lang, code string
	line       int // of the opening fence
}

// fencedBlocks returns the ``` blocks of a markdown document.
func fencedBlocks(md string) []block {
	var out []block
	var cur *block
	var code strings.Builder
	for i, line := range strings.Split(md, "\n") {
		if !strings.HasPrefix(line, "```") {
			if cur != nil {
				code.WriteString(line + "\n")
			}
			continue
		}
		if cur == nil {
			cur = &block{lang: strings.TrimSpace(line[3:]), line: i + 1}
			code.Reset()
			continue
		}
		cur.code = code.String()
		out = append(out, *cur)
		cur = nil
	}
	return out
}

type docChecker struct {
	root    string
	project string            // after a `cd` in the document: a project `connhost init` made, whose Makefile make runs
	vars    map[string]string // shell variables set so far in the document
	t       *testing.T
	api     map[string]map[string]any // OpenAPI paths → methods
	checked map[string]int
	make    map[string]error // memoised `make -n TARGET`
}

func newDocChecker(t *testing.T, root string) *docChecker {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "internal", "api", "openapi.json"))
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(b, &spec); err != nil || len(spec.Paths) == 0 {
		t.Fatalf("openapi.json: %v", err)
	}
	return &docChecker{root: root, t: t, api: spec.Paths, checked: map[string]int{}, make: map[string]error{}}
}

// shell checks the commands of a shell block; doc is the whole document.
func (c *docChecker) shell(src, doc string) []error {
	f, err := syntax.NewParser().Parse(strings.NewReader(src), "")
	if err != nil {
		return []error{err}
	}
	if c.vars == nil {
		c.vars = map[string]string{}
	}
	vars := c.vars
	var errs []error
	syntax.Walk(f, func(n syntax.Node) bool {
		call, ok := n.(*syntax.CallExpr)
		if !ok {
			return true
		}
		for _, a := range call.Assigns {
			if a.Value != nil {
				vars[a.Name.Value] = render(a.Value, vars)
			}
		}
		var args []string
		for _, w := range call.Args {
			args = append(args, render(w, vars))
		}
		if len(args) == 0 {
			return true
		}
		var err error
		switch {
		case args[0] == "cd" && c.project == "":
			c.project = c.initProject()
		case filepath.Base(args[0]) == "connhost":
			c.checked["connhost"]++
			err = c.connhost(args[1:])
		case args[0] == "go" && len(args) > 1 && args[1] == "test":
			c.checked["go test"]++
			err = c.goTest(args[2:], doc)
		case args[0] == "make":
			c.checked["make"]++
			err = c.makeTargets(args[1:])
		case args[0] == "curl":
			c.checked["curl"]++
			err = c.curl(args[1:])
		}
		if err != nil {
			errs = append(errs, err)
		}
		return true
	})
	return errs
}

// render is a word as the shell would pass it, with variables set earlier
// in the block expanded and anything else ($X, $(...)) as "X".
func render(w *syntax.Word, vars map[string]string) string {
	var b strings.Builder
	var part func(p syntax.WordPart)
	part = func(p syntax.WordPart) {
		switch p := p.(type) {
		case *syntax.Lit:
			b.WriteString(p.Value)
		case *syntax.SglQuoted:
			b.WriteString(p.Value)
		case *syntax.DblQuoted:
			for _, q := range p.Parts {
				part(q)
			}
		case *syntax.ParamExp:
			if v, ok := vars[p.Param.Value]; ok {
				b.WriteString(v)
			} else {
				b.WriteString("X")
			}
		default:
			b.WriteString("X")
		}
	}
	for _, p := range w.Parts {
		part(p)
	}
	return b.String()
}

// connhost parses args with the CLI itself: --help appended makes every
// command stop after its flags parsed, before doing anything. Words left
// after a group's name are a misspelt command, which --help would hide, and
// a deprecated flag is drift too.
func (c *docChecker) connhost(args []string) error {
	var stdout, stderr bytes.Buffer
	a := &app{stdout: &stdout, stderr: &stderr}
	if cmd, rest, err := newRoot(a).Find(args); err == nil && cmd.HasSubCommands() {
		for _, w := range rest {
			if !strings.HasPrefix(w, "-") {
				return fmt.Errorf("connhost %s: unknown command %q for %q", strings.Join(args, " "), w, cmd.CommandPath())
			}
		}
	}
	code := execute(context.Background(), a, append(slices.Clone(args), "--help"))
	if code != exitOK || !strings.Contains(stdout.String(), "Usage:") {
		msg, _, _ := strings.Cut(stderr.String(), "\n")
		return fmt.Errorf("connhost %s: exit %d: %s", strings.Join(args, " "), code, msg)
	}
	if strings.Contains(stderr.String(), "deprecated") {
		msg, _, _ := strings.Cut(stderr.String(), "\n")
		return fmt.Errorf("connhost %s: %s", strings.Join(args, " "), msg)
	}
	return nil
}

// synopsis checks usage lines such as
//
//	connhost apikey create --name NAME | list [--json] | revoke ID
//
// as invocations: brackets and "..." dropped, each "|" alternative a
// sibling command of the first one.
func (c *docChecker) synopsis(src string) []error {
	var lines []string
	for _, l := range strings.Split(src, "\n") {
		switch {
		case strings.HasPrefix(l, "connhost "):
			lines = append(lines, l)
		case len(lines) > 0 && strings.TrimSpace(l) != "" && (l[0] == ' ' || l[0] == '\t'):
			lines[len(lines)-1] += " " + strings.TrimSpace(l) // continuation
		}
	}
	var errs []error
	for _, l := range lines {
		var path []string // the first alternative's command path
		for i, alt := range splitTopLevel(strings.TrimPrefix(l, "connhost "), " | ") {
			words := synopsisWords(alt)
			if i == 0 {
				path = commandPath(words)
			} else if len(path) > 0 {
				words = append(slices.Clone(path[:len(path)-1]), words...)
			}
			c.checked["connhost synopsis"]++
			if err := c.connhost(words); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errs
}

// splitTopLevel splits s at sep outside brackets.
func splitTopLevel(s, sep string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '[':
			depth++
		case s[i] == ']':
			depth--
		case depth == 0 && strings.HasPrefix(s[i:], sep):
			out = append(out, s[start:i])
			start = i + len(sep)
		}
	}
	return append(out, s[start:])
}

// synopsisWords turns "[--a X | --b]... FILE..." into "--a X --b FILE".
func synopsisWords(s string) []string {
	s = strings.NewReplacer("[", " ", "]", " ", "...", "").Replace(s)
	var out []string
	for _, w := range strings.Fields(s) {
		if w != "|" {
			out = append(out, w)
		}
	}
	return out
}

// commandPath is the leading words of args that name commands.
func commandPath(args []string) []string {
	cmd, _, err := newRoot(&app{stdout: io.Discard, stderr: io.Discard}).Find(args)
	if err != nil {
		return nil
	}
	return strings.Fields(cmd.CommandPath())[1:]
}

// goBuildFlags are the go test flags that are not test binary flags,
// with whether they take a value.
var goBuildFlags = map[string]bool{"race": false, "json": false, "cover": false, "tags": true, "p": true}

var benchtimeRe = regexp.MustCompile(`^[0-9]+x$`)

func (c *docChecker) goTest(args []string, doc string) error {
	var pkgs []string
	regexps := map[string]string{} // flag → pattern
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			pkgs = append(pkgs, a)
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		takesValue, ok := goBuildFlags[name]
		if !ok {
			f := flag.Lookup("test." + name)
			if f == nil {
				return fmt.Errorf("go test: unknown flag -%s", name)
			}
			b, isBool := f.Value.(interface{ IsBoolFlag() bool })
			takesValue = !isBool || !b.IsBoolFlag()
		}
		if takesValue && !hasVal {
			if i++; i == len(args) {
				return fmt.Errorf("go test: -%s needs a value", name)
			}
			val = args[i]
		}
		switch name {
		case "run", "bench", "skip":
			if _, err := regexp.Compile(val); err != nil {
				return fmt.Errorf("go test: -%s %s: %v", name, val, err)
			}
			regexps[name] = val
		case "benchtime":
			if _, err := time.ParseDuration(val); err != nil && !benchtimeRe.MatchString(val) {
				return fmt.Errorf("go test: -benchtime %s: want a duration or Nx", val)
			}
		case "count":
			if _, err := strconv.Atoi(val); err != nil {
				return fmt.Errorf("go test: -count %s: %v", val, err)
			}
		}
	}
	if len(pkgs) == 0 {
		pkgs = []string{"."}
	}
	var tests, benchmarks []string
	for _, p := range pkgs {
		ts, bs, err := c.testFuncs(p)
		if err != nil {
			return fmt.Errorf("go test: %w", err)
		}
		tests, benchmarks = append(tests, ts...), append(benchmarks, bs...)
	}
	if re, ok := regexps["run"]; ok && re != "^$" { // ^$: no tests, on purpose
		if _, err := selects(re, tests, "test"); err != nil {
			return fmt.Errorf("go test: -run: %w", err)
		}
	}
	if re, ok := regexps["bench"]; ok {
		got, err := selects(re, benchmarks, "benchmark")
		if err != nil {
			return fmt.Errorf("go test: -bench: %w", err)
		}
		for _, b := range got {
			if !strings.Contains(doc, b) {
				return fmt.Errorf("go test: -bench %s also runs %s, which the document does not report", re, b)
			}
		}
	}
	return nil
}

// selects returns the names the top level of a -run or -bench pattern
// selects, failing when any of its alternatives selects none of them.
func selects(pattern string, names []string, what string) ([]string, error) {
	top := splitRegexp(pattern, '/')[0]
	var got []string
	for _, alt := range splitRegexp(top, '|') {
		re, err := regexp.Compile(alt)
		if err != nil {
			return nil, err
		}
		n := 0
		for _, name := range names {
			if re.MatchString(name) {
				n++
				if !slices.Contains(got, name) {
					got = append(got, name)
				}
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("%q selects no %s", alt, what)
		}
	}
	return got, nil
}

// splitRegexp splits a pattern at sep outside brackets and parentheses,
// as go test splits -run at '/'.
func splitRegexp(s string, sep byte) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '[', '(':
			depth++
		case ']', ')':
			depth--
		case sep:
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// testFuncs returns the tests and benchmarks of a package pattern
// ("./dir" or "./dir/...").
func (c *docChecker) testFuncs(pattern string) (tests, benchmarks []string, err error) {
	dir, all := strings.CutSuffix(pattern, "/...")
	dir = filepath.Join(c.root, filepath.FromSlash(dir))
	var dirs []string
	if all {
		err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return err
		})
	} else {
		dirs = []string{dir}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", pattern, err)
	}
	found := false
	fset := token.NewFileSet()
	for _, d := range dirs {
		files, _ := filepath.Glob(filepath.Join(d, "*.go"))
		found = found || len(files) > 0
		for _, file := range files {
			if !strings.HasSuffix(file, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, file, nil, parser.SkipObjectResolution)
			if err != nil {
				return nil, nil, err
			}
			for _, decl := range f.Decls {
				fn, ok := decl.(*ast.FuncDecl)
				if !ok || fn.Recv != nil {
					continue
				}
				switch name := fn.Name.Name; {
				case strings.HasPrefix(name, "Test") && name != "TestMain":
					tests = append(tests, name)
				case strings.HasPrefix(name, "Benchmark"):
					benchmarks = append(benchmarks, name)
				}
			}
		}
	}
	if !found {
		return nil, nil, fmt.Errorf("%s: no such package", pattern)
	}
	return tests, benchmarks, nil
}

// makeTargets checks each target with make -n, which fails on an unknown
// target without running anything.
func (c *docChecker) makeTargets(args []string) error {
	dir := c.root
	if c.project != "" {
		dir = c.project
	}
	for _, target := range args {
		if strings.HasPrefix(target, "-") || strings.Contains(target, "=") {
			continue
		}
		err, ok := c.make[dir+" "+target]
		if !ok {
			cmd := exec.Command("make", "-n", target)
			cmd.Dir = dir
			out, runErr := cmd.CombinedOutput()
			if runErr != nil {
				err = fmt.Errorf("make %s: %v: %s", target, runErr, bytes.TrimSpace(out))
			}
			c.make[dir+" "+target] = err
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// initProject is where a document that changes directory works: a Go
// project as `connhost init` writes it, so that make targets are checked
// against its Makefile (docs/authoring.md).
func (c *docChecker) initProject() string {
	dir := filepath.Join(c.t.TempDir(), "project")
	if _, err := scaffold.Create(dir, scaffold.Options{Name: "demo"}); err != nil {
		c.t.Fatal(err)
	}
	return dir
}

// curlValueFlags are the curl options the docs use that take a value.
var curlValueFlags = map[string]bool{"-H": true, "--header": true, "-d": true, "--data": true, "--data-binary": true,
	"--data-raw": true, "-F": true, "--form": true, "-X": true, "--request": true, "-o": true, "--output": true, "-u": true, "--user": true}

// curl checks the request's method and path against the OpenAPI document.
func (c *docChecker) curl(args []string) error {
	method := ""
	hasData := false
	var urls []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case curlValueFlags[a]:
			i++
			if i < len(args) && (a == "-X" || a == "--request") {
				method = args[i]
			}
			hasData = hasData || strings.HasPrefix(a, "-d") || strings.HasPrefix(a, "--data") || a == "-F" || a == "--form"
		case strings.HasPrefix(a, "-"):
		default:
			urls = append(urls, a)
		}
	}
	if method == "" {
		method = "GET"
		if hasData {
			method = "POST"
		}
	}
	if len(urls) == 0 {
		return errors.New("curl: no URL")
	}
	for _, u := range urls {
		if _, rest, ok := strings.Cut(u, "://"); ok {
			u = rest
		}
		i := strings.Index(u, "/")
		if i < 0 {
			return fmt.Errorf("curl %s: no path", u)
		}
		path, _, _ := strings.Cut(u[i:], "?")
		if !c.endpoint(method, path) {
			return fmt.Errorf("curl: %s %s: no such endpoint in internal/api/openapi.json", method, path)
		}
	}
	return nil
}

func (c *docChecker) endpoint(method, path string) bool {
	segs := strings.Split(path, "/")
	for tmpl, methods := range c.api {
		if _, ok := methods[strings.ToLower(method)]; !ok {
			continue
		}
		ts := strings.Split(tmpl, "/")
		if len(ts) != len(segs) {
			continue
		}
		match := true
		for i := range ts {
			if ts[i] != segs[i] && !(strings.HasPrefix(ts[i], "{") && segs[i] != "") {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}
