// Package doccomments reads the doc comments of a Go package directory, keyed
// as github.com/invopop/jsonschema's Reflector.CommentMap expects them, for
// the generators that turn Go types into JSON Schema descriptions.
package doccomments

import (
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"github.com/invopop/jsonschema"
)

// Read returns the doc comments of the package in dir, keyed by
// importPath + "." + name. The library keys comments by the import path it
// derives from the walked directory, so Read walks the absolute path under
// a placeholder base and re-keys the entries of dir itself. No comment at
// all is an error: the directory is wrong.
func Read(dir, importPath string) (map[string]string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("doc comments: %w", err)
	}
	var r jsonschema.Reflector
	const base = "placeholder"
	if err := r.AddGoComments(base, abs); err != nil {
		return nil, fmt.Errorf("reading doc comments of %s: %w", abs, err)
	}
	prefix := path.Join(base, filepath.ToSlash(abs)) + "."
	out := map[string]string{}
	for k, v := range r.CommentMap {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			out[importPath+"."+rest] = v
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no doc comments found in %s", abs)
	}
	return out, nil
}
