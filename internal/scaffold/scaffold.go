// Package scaffold writes new connector projects for `connhost init`: a Go
// project on the guest SDK, or a hand-written WAT one. A Go project gets
// the SDK modules this binary carries (sdk.txtar) under
// third_party/connhost/ with replace directives, so it builds without a
// network and against the SDK of the connhost that made it.
package scaffold

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"
	"unicode"

	"golang.org/x/mod/module"
)

//go:embed templates
var templates embed.FS

// Languages a project can be written in.
const (
	LangGo  = "go"
	LangWAT = "wat"
)

// SDKDir is where a Go project keeps its copy of the SDK modules.
const SDKDir = "third_party/connhost"

// ErrInvalid marks options that name no valid project; nothing is written.
var ErrInvalid = errors.New("invalid project")

// Options describe a new project.
type Options struct {
	// Name is the plugin name (manifest name, command prefix): lower-case
	// letters, digits, '-' and '_', as abi.Manifest requires.
	Name string
	// Lang is LangGo (the default) or LangWAT.
	Lang string
	// Module is the Go module path; the default is Name.
	Module string
	// Version is the connhost version that writes the project, for the
	// README and go.mod comments.
	Version string
}

var nameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// check fills defaults and validates o.
func (o *Options) check() error {
	if !nameRe.MatchString(o.Name) {
		return fmt.Errorf("%w: name %q: want 1-64 lower-case letters, digits, '-' or '_', starting with a letter or digit", ErrInvalid, o.Name)
	}
	if o.Lang == "" {
		o.Lang = LangGo
	}
	if o.Lang != LangGo && o.Lang != LangWAT {
		return fmt.Errorf("%w: language %q: want go or wat", ErrInvalid, o.Lang)
	}
	if o.Module == "" {
		o.Module = o.Name
	}
	if err := module.CheckImportPath(o.Module); err != nil {
		return fmt.Errorf("%w: module path: %w", ErrInvalid, err)
	}
	if o.Version == "" {
		o.Version = "devel"
	}
	return nil
}

// data is what the templates see.
type data struct {
	Options
	Display, Prefix, GoVersion, SDKVersion string
	EchoCmd, NotImplemented, TooLarge      string
}

// Create writes a new project into dir, which must not exist or be empty,
// and returns the files it wrote, relative to dir. Options are checked
// before anything is created; if writing fails, what Create made is
// removed.
func Create(dir string, o Options) (files []string, err error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("%w: %s exists and is not empty", ErrInvalid, dir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	out, err := render(o)
	if err != nil {
		return nil, err
	}
	_, statErr := os.Stat(dir)
	created := errors.Is(statErr, fs.ErrNotExist)
	defer func() {
		if err != nil && created {
			os.RemoveAll(dir)
		}
	}()
	for _, f := range out {
		if err := writeFile(dir, f.name, f.data); err != nil {
			return nil, err
		}
		files = append(files, f.name)
	}
	return files, nil
}

// UpdateSDK replaces the SDK copy of the Go project in dir with the one
// this binary carries, and leaves every other file alone.
func UpdateSDK(dir, version string) error {
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return fmt.Errorf("%w: %s: no go.mod: not a Go connector project", ErrInvalid, dir)
	}
	if err := os.RemoveAll(filepath.Join(dir, filepath.FromSlash(SDKDir))); err != nil {
		return err
	}
	for _, f := range sdkOutput(version) {
		if err := writeFile(dir, f.name, f.data); err != nil {
			return err
		}
	}
	return nil
}

type file struct {
	name string // slash-separated, relative to the project
	data []byte
}

func render(o Options) ([]file, error) {
	d := data{Options: o, Display: display(o.Name), Prefix: prefix(o.Name),
		GoVersion: goVersion(), SDKVersion: SDKPseudoVersion, EchoCmd: o.Name + "-echo"}
	d.NotImplemented = `{"error":{"kind":"not_implemented","message":"` + o.Name + `: unknown command"}}`
	d.TooLarge = `{"error":{"kind":"bad_request","message":"` + o.Name + `: input too large"}}`
	funcs := template.FuncMap{"wat": func(s string) string {
		return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
	}}
	dir := "templates/" + o.Lang
	entries, err := templates.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []file
	for _, e := range entries {
		src, err := templates.ReadFile(dir + "/" + e.Name())
		if err != nil {
			return nil, err
		}
		t, err := template.New(e.Name()).Funcs(funcs).Option("missingkey=error").Parse(string(src))
		if err != nil {
			return nil, err
		}
		var b bytes.Buffer
		if err := t.Execute(&b, d); err != nil {
			return nil, err
		}
		out = append(out, file{outputName(o.Name, strings.TrimSuffix(e.Name(), ".tmpl")), b.Bytes()})
	}
	if o.Lang == LangGo {
		return append(out, sdkOutput(o.Version)...), nil
	}
	for _, f := range sdkFiles() {
		if f.Name == "abi/SPEC.md" {
			out = append(out, file{"SPEC.md", f.Data})
		}
	}
	return out, nil
}

// outputName maps a template's name to the project file it writes.
func outputName(name, tmpl string) string {
	switch tmpl {
	case "gitignore":
		return ".gitignore"
	case "plugin.wat":
		return name + ".wat"
	}
	return tmpl
}

// sdkOutput is the SDK copy of a Go project, with a README saying where
// it came from.
func sdkOutput(version string) []file {
	readme := "# connhost SDK\n\n" +
		"The connhost guest SDK modules (`abi`, `sdk-guest`) as connhost " + version + " carries them,\n" +
		"written by `connhost init`. go.mod uses them through `replace` directives, so\n" +
		"the project builds without a network and against the SDK of your connhost.\n" +
		"Do not edit: `connhost init --update-sdk DIR` rewrites this directory with\n" +
		"the SDK of the connhost that runs it. `abi/SPEC.md` is the ABI.\n"
	out := []file{{SDKDir + "/README.md", []byte(readme)}}
	for _, f := range sdkFiles() {
		out = append(out, file{SDKDir + "/" + f.Name, f.Data})
	}
	return out
}

// writeFile writes data to the slash-separated name under dir, refusing a
// name that would leave dir.
func writeFile(dir, name string, data []byte) error {
	if !fs.ValidPath(name) {
		return fmt.Errorf("scaffold: bad file name %q", name)
	}
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, data, 0o644)
}

// goVersion is the go directive of the SDK's go.mod: a project cannot ask
// for less than its dependencies do.
func goVersion() string {
	for _, f := range sdkFiles() {
		if f.Name != "sdk-guest/go.mod" {
			continue
		}
		for _, line := range strings.Split(string(f.Data), "\n") {
			if v, ok := strings.CutPrefix(line, "go "); ok {
				return strings.TrimSpace(v)
			}
		}
	}
	panic("scaffold: sdk.txtar has no sdk-guest/go.mod with a go directive")
}

// display turns a plugin name into a human one: "my-tickets" → "My Tickets".
func display(name string) string {
	words := strings.FieldsFunc(name, func(r rune) bool { return r == '-' || r == '_' })
	for i, w := range words {
		words[i] = strings.ToUpper(w[:1]) + w[1:]
	}
	return strings.Join(words, " ")
}

// prefix turns a plugin name into an outputs prefix: "my-tickets" →
// "MyTickets"; a leading digit gets a letter in front, as context keys
// conventionally start with one.
func prefix(name string) string {
	p := strings.ReplaceAll(display(name), " ", "")
	if p != "" && unicode.IsDigit(rune(p[0])) {
		p = "P" + p
	}
	return p
}
