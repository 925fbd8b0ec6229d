package iam

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Mapping is a declarative field map: destination path → source path. Paths
// are dot-separated; a numeric segment indexes an array ("emails.0.value").
// mapper_out maps a user profile to the app's fields (destination: app
// field), mapper_in maps the app's record back to user profile fields
// (destination: profile field), as XSOAR's outgoing and incoming mappers.
type Mapping map[string]string

// ParseMapping decodes a mapping from an instance parameter: a JSON object
// of strings. An empty string is a nil Mapping.
func ParseMapping(s string) (Mapping, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var m Mapping
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("want a JSON object of destination path to source path: %w", err)
	}
	for dst, src := range m {
		if dst == "" || src == "" {
			return nil, fmt.Errorf("empty path in %q: %q", dst, src)
		}
	}
	return m, nil
}

// Apply builds a new object from src: for each destination path whose source
// path has a non-null value in src, it sets that value. Destinations are
// written in sorted order so that array elements are created in order.
func (m Mapping) Apply(src map[string]any) map[string]any {
	out := map[string]any{}
	for _, dst := range slices.Sorted(maps.Keys(m)) {
		if v, ok := Lookup(src, m[dst]); ok && v != nil {
			out = setPath(out, strings.Split(dst, "."), v).(map[string]any)
		}
	}
	return out
}

// Lookup returns the value at a dot-separated path of obj.
func Lookup(obj map[string]any, path string) (any, bool) {
	var cur any = obj
	for seg := range strings.SplitSeq(path, ".") {
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[seg]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// setPath sets v at path under node, creating maps and arrays as the
// segments ask, and returns the (possibly new) node.
func setPath(node any, path []string, v any) any {
	if len(path) == 0 {
		return v
	}
	seg, rest := path[0], path[1:]
	if i, err := strconv.Atoi(seg); err == nil && i >= 0 {
		arr, _ := node.([]any)
		for len(arr) <= i {
			arr = append(arr, nil)
		}
		arr[i] = setPath(arr[i], rest, v)
		return arr
	}
	obj, _ := node.(map[string]any)
	if obj == nil {
		obj = map[string]any{}
	}
	obj[seg] = setPath(obj[seg], rest, v)
	return obj
}

// scalar turns a looked-up attribute into a lookup value: strings and
// numbers as text, the first element of an array, the "value" of a
// multi-valued attribute's element (SCIM emails).
func scalar(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case []any:
		if len(x) > 0 {
			return scalar(x[0])
		}
	case map[string]any:
		return scalar(x["value"])
	}
	return ""
}
