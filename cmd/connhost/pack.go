package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/connhost/connhost/abi"
)

func packCommand() *command {
	return &command{
		name:    "pack",
		summary: "validate a manifest and embed it into a built module",
		run:     runPack,
	}
}

func runPack(_ context.Context, a *app, args []string) error {
	const synopsis = "--manifest manifest.json -o OUT.wasm IN.wasm"
	fs := newFlags(a, "connhost plugin pack", synopsis,
		"Validates the manifest (unknown fields are rejected) and writes IN.wasm with the manifest\nin its "+abi.ManifestSection+" custom section to OUT.wasm, replacing any earlier manifest.")
	manifestPath := fs.String("manifest", "manifest.json", "manifest JSON file")
	out := fs.StringP("output", "o", "", "output .wasm file (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *out == "" {
		fs.Usage()
		return usageErr("plugin pack: want one input module and -o OUT.wasm")
	}
	in := fs.Arg(0)
	m, err := readManifestFile(*manifestPath)
	if err != nil {
		return usageErr("plugin pack: %w", err)
	}
	wasm, err := os.ReadFile(in)
	if err != nil {
		return usageErr("plugin pack: %w", err)
	}
	packed, err := abi.EmbedManifest(wasm, m)
	if err != nil {
		return usageErr("plugin pack: %s: %w", in, err)
	}
	if err := writeFileAtomic(*out, packed); err != nil {
		return fmt.Errorf("plugin pack: %w", err)
	}
	fmt.Fprintf(a.stderr, "packed %s@%s into %s (%d bytes)\n", m.Name, m.Version, *out, len(packed))
	return nil
}

// readManifestFile decodes a manifest strictly (unknown fields, trailing
// data) and validates it.
func readManifestFile(path string) (*abi.Manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m abi.Manifest
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", path, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("manifest %s: trailing data after the JSON object", path)
	}
	// encoding/json matches keys case-insensitively, so "isFetch" would
	// pass as isfetch; the manifest is case-sensitive (SPEC §7, its schema).
	if err := exactKeys(b, reflect.TypeFor[abi.Manifest](), "manifest"); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", path, err)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", path, err)
	}
	return &m, nil
}

// writeFileAtomic writes through a temporary file and a rename so a reader
// (or a crashed pack) never sees a half-written module.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// exactKeys checks that every object key in raw is spelled exactly as a json
// tag of t, recursing into struct and slice-of-struct fields.
func exactKeys(raw json.RawMessage, t reflect.Type, at string) error {
	switch t.Kind() {
	case reflect.Slice:
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil {
			return nil // the typed decode has already judged the shape
		}
		for i, it := range items {
			if err := exactKeys(it, t.Elem(), fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return err
			}
		}
	case reflect.Struct:
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &obj) != nil {
			return nil
		}
		fields := map[string]reflect.Type{}
		for i := range t.NumField() {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
			fields[name] = t.Field(i).Type
		}
		for k, v := range obj {
			ft, ok := fields[k]
			if !ok {
				for name := range fields {
					if strings.EqualFold(name, k) {
						return fmt.Errorf("%s: unknown field %q (did you mean %q?)", at, k, name)
					}
				}
				return fmt.Errorf("%s: unknown field %q", at, k)
			}
			if err := exactKeys(v, ft, at+"."+k); err != nil {
				return err
			}
		}
	}
	return nil
}
