package jsonwire

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

const hexDigits = "0123456789abcdef"

// safe marks the ASCII bytes a JSON string holds unescaped; htmlSafe
// those that need no HTML escape either.
var safe, htmlSafe = func() (s, h [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		s[c] = c != '"' && c != '\\'
		h[c] = c != '<' && c != '>' && c != '&'
	}
	return s, h
}()

// AppendString appends s as a JSON string, byte for byte as encoding/json
// writes it: control characters, quote and backslash escaped, invalid UTF-8
// bytes as \ufffd, U+2028 and U+2029 escaped, and <, > and & escaped when
// escapeHTML is set (json.Marshal sets it; an Encoder may not).
func AppendString[S ~string | ~[]byte](dst []byte, s S, escapeHTML bool) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if safe[c] && (!escapeHTML || htmlSafe[c]) {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '\\', '"':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		n := min(len(s)-i, utf8.UTFMax)
		r, size := utf8.DecodeRuneInString(string(s[i : i+n]))
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendCompact appends the JSON value src with insignificant whitespace
// removed, as encoding/json writes a json.RawMessage (or a Marshaler's
// output): invalid JSON is an error and appends nothing; with escapeHTML,
// <, >, & and U+2028, U+2029 are escaped, else the bytes are copied as they
// are (invalid UTF-8 included).
func AppendCompact(dst, src []byte, escapeHTML bool) ([]byte, error) {
	if err := Check(src); err != nil {
		return dst, err
	}
	if !escapeHTML && !hasSpace(src) {
		return append(dst, src...), nil
	}
	start := 0
	flush := func(i int, repl []byte) {
		dst = append(dst, src[start:i]...)
		dst = append(dst, repl...)
	}
	for i := 0; i < len(src); i++ {
		switch c := src[i]; {
		case isSpace(c):
			flush(i, nil)
			start = i + 1
		case c == '"':
			// Inside strings only the HTML escapes apply.
			end := skipString(src, i)
			if escapeHTML {
				for j := i + 1; j < end-1; j++ {
					switch c := src[j]; {
					case c == '<' || c == '>' || c == '&':
						flush(j, []byte{'\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF]})
						start = j + 1
					case c == 0xE2 && j+2 < len(src) && src[j+1] == 0x80 && src[j+2]&^1 == 0xA8:
						flush(j, []byte{'\\', 'u', '2', '0', '2', hexDigits[src[j+2]&0xF]})
						start = j + 3
						j += 2
					case c == '\\':
						j++
					}
				}
			}
			i = end - 1
		}
	}
	return append(dst, src[start:]...), nil
}

// hasSpace reports whether b holds a whitespace byte (inside a string or
// not): without one, compacting without HTML escapes is a copy.
func hasSpace(b []byte) bool {
	for _, c := range b {
		if c <= ' ' && isSpace(c) {
			return true
		}
	}
	return false
}

// AppendFloat appends f as encoding/json writes a float64: like %g but with
// ES6's exponent cutoffs (1e-6, 1e21) and no exponent padding. NaN and the
// infinities are not JSON and are an error.
func AppendFloat(dst []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return dst, fmt.Errorf("json: unsupported value: %s", strconv.FormatFloat(f, 'g', -1, 64))
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		if n := len(dst); n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, nil
}

// AppendBytes appends b as encoding/json writes a []byte: standard base64
// in a string, or null for a nil slice.
func AppendBytes(dst, b []byte) []byte {
	if b == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '"')
	dst = base64.StdEncoding.AppendEncode(dst, b)
	return append(dst, '"')
}

// AppendValue appends v as json.Marshal (escapeHTML set) or an Encoder with
// SetEscapeHTML(false) would write it. The types JSON documents decode to
// (nil, bool, float64, string, []any, map[string]any, json.RawMessage) and
// the common scalar types are written here; anything else goes through
// encoding/json.
func AppendValue(dst []byte, v any, escapeHTML bool) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case string:
		return AppendString(dst, v, escapeHTML), nil
	case bool:
		return strconv.AppendBool(dst, v), nil
	case float64:
		return AppendFloat(dst, v)
	case int:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case int64:
		return strconv.AppendInt(dst, v, 10), nil
	case json.Number:
		n := string(v)
		if n == "" {
			n = "0" // encoding/json writes the zero Number as 0
		}
		if end, err := checkNumber([]byte(n), 0); n[0] != '-' && !isDigit(n[0]) || err != nil || end != len(n) {
			return dst, fmt.Errorf("json: invalid number literal %q", n)
		}
		return append(dst, n...), nil
	case json.RawMessage:
		if v == nil {
			return append(dst, "null"...), nil
		}
		out, err := AppendCompact(dst, v, escapeHTML)
		if err != nil {
			return dst, fmt.Errorf("json: error calling MarshalJSON for type json.RawMessage: %w", err)
		}
		return out, nil
	case map[string]any:
		if v == nil {
			return append(dst, "null"...), nil
		}
		return AppendMap(dst, v, escapeHTML, AppendValue)
	case map[string]string:
		if v == nil {
			return append(dst, "null"...), nil
		}
		return AppendMap(dst, v, escapeHTML, func(dst []byte, s string, escapeHTML bool) ([]byte, error) {
			return AppendString(dst, s, escapeHTML), nil
		})
	case []any:
		if v == nil {
			return append(dst, "null"...), nil
		}
		dst = append(dst, '[')
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = AppendValue(dst, e, escapeHTML); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	case []string:
		return AppendStrings(dst, v, escapeHTML), nil
	}
	return appendReflect(dst, v, escapeHTML)
}

// AppendInt appends an integer.
func AppendInt(dst []byte, n int64) []byte { return strconv.AppendInt(dst, n, 10) }

// AppendStrings appends a []string (null when nil).
func AppendStrings(dst []byte, v []string, escapeHTML bool) []byte {
	if v == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '[')
	for i, s := range v {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendString(dst, s, escapeHTML)
	}
	return append(dst, ']')
}

// AppendMap appends a map with string keys, its keys sorted as
// encoding/json sorts them, each value written by elem. The caller writes
// null for a nil map.
func AppendMap[V any](dst []byte, m map[string]V, escapeHTML bool, elem func([]byte, V, bool) ([]byte, error)) ([]byte, error) {
	var buf [16]string
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	sortStrings(keys)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendString(dst, k, escapeHTML)
		dst = append(dst, ':')
		var err error
		if dst, err = elem(dst, m[k], escapeHTML); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}

// sortStrings sorts byte-wise, as encoding/json orders map keys. A shell
// sort rather than slices.Sort: the generic sort's instantiation for
// strings would add ~19 KB to every guest, and maps on the wire are small.
func sortStrings(s []string) {
	for _, gap := range [...]int{701, 301, 132, 57, 23, 10, 4, 1} {
		for i := gap; i < len(s); i++ {
			v := s[i]
			j := i
			for ; j >= gap && s[j-gap] > v; j -= gap {
				s[j] = s[j-gap]
			}
			s[j] = v
		}
	}
}

// appendReflect writes a value of a type this package does not know with
// encoding/json, without the newline an Encoder adds.
func appendReflect(dst []byte, v any, escapeHTML bool) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(escapeHTML)
	if err := enc.Encode(v); err != nil {
		return dst, err
	}
	return append(dst, bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})...), nil
}
