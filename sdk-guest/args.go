package sdk

import (
	"bytes"
	"encoding/json"
	"maps"
	"strconv"
	"strings"
)

// Args are the arguments of a custom command: XSOAR passes every value as a
// string. Values that arrive as other JSON (numbers, booleans, objects) read
// as their JSON text. The zero Args has no arguments.
type Args struct {
	vals map[string]string
	raw  json.RawMessage
}

// NewArgs returns Args holding vals, for calling a CommandFunc directly.
func NewArgs(vals map[string]string) Args {
	raw, _ := json.Marshal(vals) // a map of strings always marshals
	return Args{vals: vals, raw: raw}
}

// parseArgs decodes a JSON object. An empty object costs nothing, which is
// the common case for commands that take no arguments.
func parseArgs(b []byte) (Args, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "{}" || string(b) == "null" {
		return Args{}, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return Args{}, BadRequest("arguments are not a JSON object: %v", err)
	}
	vals := make(map[string]string, len(m))
	for k, v := range m {
		var s string
		if len(v) > 0 && v[0] == '"' && json.Unmarshal(v, &s) == nil {
			vals[k] = s
			continue
		}
		if string(v) == "null" {
			continue
		}
		vals[k] = string(v)
	}
	// The input buffer is reused by the next call; keep a copy.
	return Args{vals: vals, raw: bytes.Clone(b)}, nil
}

// Len returns the number of arguments.
func (a Args) Len() int { return len(a.vals) }

// Has reports whether the argument is present (possibly empty).
func (a Args) Has(name string) bool {
	_, ok := a.vals[name]
	return ok
}

// String returns the argument, or "" when absent.
func (a Args) String(name string) string { return a.vals[name] }

// Required returns the argument, or a bad_request error naming it when it is
// absent or empty.
func (a Args) Required(name string) (string, error) {
	v := a.vals[name]
	if v == "" {
		return "", BadRequest("argument %q is required", name)
	}
	return v, nil
}

// Int returns the argument as an integer, def when absent or empty, or a
// bad_request error when it is not an integer.
func (a Args) Int(name string, def int) (int, error) {
	v := strings.TrimSpace(a.vals[name])
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, BadRequest("argument %q: want an integer, got %q", name, v)
	}
	return n, nil
}

// Bool returns the argument as a boolean (true/false, yes/no, 1/0), def when
// absent or empty, or a bad_request error otherwise.
func (a Args) Bool(name string, def bool) (bool, error) {
	v := strings.ToLower(strings.TrimSpace(a.vals[name]))
	switch v {
	case "":
		return def, nil
	case "true", "yes", "1":
		return true, nil
	case "false", "no", "0":
		return false, nil
	}
	return false, BadRequest("argument %q: want true or false, got %q", name, a.vals[name])
}

// List splits a comma-separated argument (XSOAR argToList), trimming blanks
// and dropping empty items; a JSON array of strings is accepted too.
func (a Args) List(name string) []string {
	v := strings.TrimSpace(a.vals[name])
	if v == "" {
		return nil
	}
	if v[0] == '[' {
		var l []string
		if json.Unmarshal([]byte(v), &l) == nil {
			return l
		}
	}
	var out []string
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// Map returns a copy of all arguments.
func (a Args) Map() map[string]string { return maps.Clone(a.vals) }

// Raw returns the arguments object exactly as the host sent it ("{}" when
// empty).
func (a Args) Raw() json.RawMessage {
	if len(a.raw) == 0 {
		return json.RawMessage("{}")
	}
	return a.raw
}

// Decode unmarshals the arguments object into v, for handlers that prefer a
// struct. Errors are bad_request.
func (a Args) Decode(v any) error {
	if err := json.Unmarshal(a.Raw(), v); err != nil {
		return BadRequest("arguments: %v", err)
	}
	return nil
}
