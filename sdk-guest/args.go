package sdk

import (
	"bytes"
	"encoding/json"
	"maps"
	"strconv"
	"strings"
	"sync"

	"github.com/connhost/connhost/abi/jsonwire"
)

// Args are the arguments of a custom command: XSOAR passes every value as a
// string. Values that arrive as other JSON (numbers, booleans, objects) read
// as their JSON text. The zero Args has no arguments.
//
// The arguments object is checked before the handler runs, but split into
// values only when the handler first asks for one: a handler that reads Raw
// or calls Decode never pays for the map.
type Args struct {
	raw json.RawMessage
	p   *argVals // nil when there are no arguments
}

// argVals are the values of Args, decoded on first use.
type argVals struct {
	once sync.Once
	vals map[string]string
}

// NewArgs returns Args holding vals, for calling a CommandFunc directly.
func NewArgs(vals map[string]string) Args {
	raw, _ := json.Marshal(vals) // a map of strings always marshals
	p := &argVals{vals: vals}
	p.once.Do(func() {})
	return Args{raw: raw, p: p}
}

// parseArgs checks that b is a JSON object and keeps a copy of it (the
// input buffer is reused by the next call). An empty object costs nothing,
// which is the common case for commands that take no arguments.
func parseArgs(b []byte) (Args, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "{}" || string(b) == "null" {
		return Args{}, nil
	}
	if err := jsonwire.CheckObject(b); err != nil {
		return Args{}, BadRequest("arguments are not a JSON object: %v", err)
	}
	return Args{raw: bytes.Clone(b), p: &argVals{}}, nil
}

// values returns the argument values, decoding them on first use as
// decoding the object into a map of json.RawMessage did: the last of
// duplicate names wins, strings are unquoted, null means absent and other
// values keep their JSON text.
func (a Args) values() map[string]string {
	if a.p == nil {
		return nil
	}
	a.p.once.Do(func() {
		vals := map[string]string{}
		_ = jsonwire.Members(a.raw, func(k, v []byte) error {
			name := jsonwire.UnquoteString(k)
			switch v[0] {
			case '"':
				vals[name] = jsonwire.UnquoteString(v)
			case 'n':
				delete(vals, name)
			default:
				vals[name] = string(v)
			}
			return nil
		})
		a.p.vals = vals
	})
	return a.p.vals
}

// Len returns the number of arguments.
func (a Args) Len() int { return len(a.values()) }

// Has reports whether the argument is present (possibly empty).
func (a Args) Has(name string) bool {
	_, ok := a.values()[name]
	return ok
}

// String returns the argument, or "" when absent.
func (a Args) String(name string) string { return a.values()[name] }

// Required returns the argument, or a bad_request error naming it when it is
// absent or empty.
func (a Args) Required(name string) (string, error) {
	v := a.values()[name]
	if v == "" {
		return "", BadRequest("argument %q is required", name)
	}
	return v, nil
}

// Int returns the argument as an integer, def when absent or empty, or a
// bad_request error when it is not an integer.
func (a Args) Int(name string, def int) (int, error) {
	v := strings.TrimSpace(a.values()[name])
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
	v := strings.ToLower(strings.TrimSpace(a.values()[name]))
	switch v {
	case "":
		return def, nil
	case "true", "yes", "1":
		return true, nil
	case "false", "no", "0":
		return false, nil
	}
	return false, BadRequest("argument %q: want true or false, got %q", name, a.values()[name])
}

// List splits a comma-separated argument (XSOAR argToList), trimming blanks
// and dropping empty items; a JSON array of strings is accepted too.
func (a Args) List(name string) []string {
	v := strings.TrimSpace(a.values()[name])
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
func (a Args) Map() map[string]string { return maps.Clone(a.values()) }

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
