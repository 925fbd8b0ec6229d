package jsonwire

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
)

// The Decode functions take one value of a document that passed Check, as
// Members hands them out, and decode it as json.Unmarshal decodes into a Go
// value of the named type: null leaves a string, number or bool unchanged
// and sets a slice, map or pointer to nil; any other JSON type is an error
// (encoding/json's UnmarshalTypeError), as is a number that does not fit.

// TypeError reports a JSON value that cannot be stored in a Go type.
type TypeError struct {
	Value string // "string", "number 1e400", "object", ...
	Type  string // the Go type
}

// Error returns the message.
func (e *TypeError) Error() string {
	return "cannot unmarshal " + e.Value + " into Go value of type " + e.Type
}

func typeErr(v []byte, typ string) error {
	kind := "number " + string(v)
	switch v[0] {
	case '"':
		kind = "string"
	case '{':
		kind = "object"
	case '[':
		kind = "array"
	case 't', 'f':
		kind = "bool"
	case 'n':
		kind = "null"
	}
	return &TypeError{Value: kind, Type: typ}
}

// DecodeString decodes a string; ok is false for null.
func DecodeString(v []byte) (s string, ok bool, err error) {
	switch v[0] {
	case '"':
		return UnquoteString(v), true, nil
	case 'n':
		return "", false, nil
	}
	return "", false, typeErr(v, "string")
}

// DecodeInt decodes an integer of the given bit size; ok is false for null.
// A fraction or exponent is an error, as for encoding/json.
func DecodeInt(v []byte, bits int) (n int64, ok bool, err error) {
	switch c := v[0]; {
	case c == 'n':
		return 0, false, nil
	case c == '-' || isDigit(c):
		n, err := strconv.ParseInt(string(v), 10, bits)
		if err != nil {
			return 0, false, &TypeError{Value: "number " + string(v), Type: "int" + strconv.Itoa(bits)}
		}
		return n, true, nil
	}
	return 0, false, typeErr(v, "int"+strconv.Itoa(bits))
}

// DecodeBool decodes a bool; ok is false for null.
func DecodeBool(v []byte) (b, ok bool, err error) {
	switch v[0] {
	case 't':
		return true, true, nil
	case 'f':
		return false, true, nil
	case 'n':
		return false, false, nil
	}
	return false, false, typeErr(v, "bool")
}

// DecodeStrings decodes a []string: null is nil, [] is empty but not nil,
// a null element is "".
func DecodeStrings(v []byte) ([]string, error) {
	switch v[0] {
	case 'n':
		return nil, nil
	case '[':
	default:
		return nil, typeErr(v, "[]string")
	}
	out := []string{}
	err := Elements(v, func(e []byte) error {
		s, _, err := DecodeString(e)
		out = append(out, s)
		return err
	})
	return out, err
}

// DecodeBytes decodes a []byte: a base64 string (standard encoding, line
// breaks ignored), or an array of numbers 0–255; null is nil.
func DecodeBytes(v []byte) ([]byte, error) {
	switch v[0] {
	case 'n':
		return nil, nil
	case '"':
		s := v[1 : len(v)-1]
		for _, c := range s {
			if c == '\\' || c >= 0x80 {
				s = Unquote(nil, v)
				break
			}
		}
		b := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
		n, err := base64.StdEncoding.Decode(b, s)
		if err != nil {
			return nil, err
		}
		return b[:n], nil
	case '[':
		out := []byte{}
		err := Elements(v, func(e []byte) error {
			var n uint64
			switch c := e[0]; {
			case c == 'n':
			case c == '-' || isDigit(c):
				var err error
				if n, err = strconv.ParseUint(string(e), 10, 8); err != nil {
					return &TypeError{Value: "number " + string(e), Type: "uint8"}
				}
			default:
				return typeErr(e, "uint8")
			}
			out = append(out, byte(n))
			return nil
		})
		return out, err
	}
	return nil, typeErr(v, "[]uint8")
}

// DecodeAny decodes any value as encoding/json decodes into an interface{}:
// objects to map[string]any, arrays to []any, numbers to float64 (one out
// of float64's range is an error), strings, bools and nil.
func DecodeAny(v []byte) (any, error) { return decodeAny(v, false) }

// DecodeAnyNumber is DecodeAny for a json.Decoder with UseNumber: numbers
// become json.Number, kept exactly as written.
func DecodeAnyNumber(v []byte) (any, error) { return decodeAny(v, true) }

func decodeAny(v []byte, useNumber bool) (any, error) {
	switch c := v[0]; c {
	case '{':
		return decodeMap(v, nil, useNumber)
	case '[':
		out := []any{}
		err := Elements(v, func(e []byte) error {
			x, err := decodeAny(e, useNumber)
			out = append(out, x)
			return err
		})
		return out, err
	case '"':
		return UnquoteString(v), nil
	case 't':
		return true, nil
	case 'f':
		return false, nil
	case 'n':
		return nil, nil
	default:
		if useNumber {
			return json.Number(v), nil
		}
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil {
			return nil, &TypeError{Value: "number " + string(v), Type: "float64"}
		}
		return f, nil
	}
}

// DecodeMap decodes a map[string]any into m (made when nil; an object
// decoded twice into one map field merges, as with encoding/json). null
// returns nil.
func DecodeMap(v []byte, m map[string]any) (map[string]any, error) {
	return decodeMap(v, m, false)
}

func decodeMap(v []byte, m map[string]any, useNumber bool) (map[string]any, error) {
	switch v[0] {
	case 'n':
		return nil, nil
	case '{':
	default:
		return m, typeErr(v, "map[string]interface {}")
	}
	if m == nil {
		m = map[string]any{}
	}
	err := Members(v, func(k, e []byte) error {
		x, err := decodeAny(e, useNumber)
		m[UnquoteString(k)] = x
		return err
	})
	return m, err
}

// DecodeObject calls field for each member of an object value; null does
// nothing; any other value is a type error naming typ.
func DecodeObject(v []byte, typ string, field func(key, value []byte) error) error {
	switch v[0] {
	case 'n':
		return nil
	case '{':
		return Members(v, field)
	}
	return typeErr(v, typ)
}

// DecodeDocument checks a whole document and decodes its top-level value
// with DecodeObject, as json.Unmarshal into a struct does.
func DecodeDocument(b []byte, typ string, field func(key, value []byte) error) error {
	if err := Check(b); err != nil {
		return err
	}
	err := DecodeObject(b[skipSpace(b, 0):], typ, field)
	if err != nil {
		return fmt.Errorf("json: %w", err)
	}
	return nil
}

// FirstValue returns the first JSON value of b and what follows it, as a
// json.Decoder reads one value from a stream: leading whitespace skipped,
// the value checked, anything after it left for the caller.
func FirstValue(b []byte) (value, rest []byte, err error) {
	i := skipSpace(b, 0)
	end, err := checkValue(b, i, 0)
	if err != nil {
		return nil, nil, err
	}
	return b[i:end], b[end:], nil
}

// Elements calls fn with each element of an array value, in order.
func Elements(arr []byte, fn func(value []byte) error) error {
	i := skipSpace(arr, 1)
	for i < len(arr) && arr[i] != ']' {
		if arr[i] == ',' {
			i = skipSpace(arr, i+1)
		}
		e := skip(arr, i)
		if err := fn(arr[i:e]); err != nil {
			return err
		}
		i = skipSpace(arr, e)
	}
	return nil
}
