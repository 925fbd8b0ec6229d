package sdk

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
)

// Params are the instance's configuration parameters, as validated and
// coerced by the host (strings, booleans, float64 numbers). Secrets arrive in
// clear: never log them. Formatting Params with fmt prints names only.
type Params struct {
	vals map[string]any
}

// Has reports whether the parameter is set.
func (p Params) Has(name string) bool {
	_, ok := p.vals[name]
	return ok
}

// String returns a string or select parameter ("" when unset). Other types
// are formatted.
func (p Params) String(name string) string {
	switch v := p.vals[name].(type) {
	case nil:
		return ""
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	default:
		return fmt.Sprint(v)
	}
}

// Secret returns a secret parameter. It is String under a name that makes
// reviews notice where secrets flow.
func (p Params) Secret(name string) string { return p.String(name) }

// Bool returns a boolean parameter (false when unset). String values
// "true"/"false" are accepted for hosts that pass form values through.
func (p Params) Bool(name string) bool {
	switch v := p.vals[name].(type) {
	case bool:
		return v
	case string:
		b, _ := strconv.ParseBool(v)
		return b
	}
	return false
}

// Number returns a number or interval parameter (0 when unset or not a
// number).
func (p Params) Number(name string) float64 {
	switch v := p.vals[name].(type) {
	case float64:
		return v
	case int:
		return float64(v)
	case string:
		f, _ := strconv.ParseFloat(v, 64)
		return f
	}
	return 0
}

// Int returns Number truncated to an int.
func (p Params) Int(name string) int { return int(p.Number(name)) }

// Names returns the names of the set parameters, sorted.
func (p Params) Names() []string { return slices.Sorted(maps.Keys(p.vals)) }

// Format prints the parameter names only, so that logging Params by mistake
// does not leak secrets.
func (p Params) Format(f fmt.State, _ rune) {
	fmt.Fprintf(f, "sdk.Params%v", p.Names())
}
