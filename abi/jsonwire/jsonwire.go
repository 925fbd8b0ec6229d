// Package jsonwire is a reflection-free JSON codec for the ABI's wire types,
// used by the Go guest SDK and by package abi on every call. Each function
// behaves exactly as encoding/json does for the same job (what it accepts,
// the bytes it writes, how it repairs invalid UTF-8, its nesting limit),
// which the package's fuzz tests check against encoding/json itself; it is
// faster because it knows the types it handles and writes into a caller's
// buffer. Values of other types go through encoding/json.
package jsonwire

import (
	"errors"
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth is encoding/json's nesting limit: a document with more than
// MaxDepth nested arrays and objects is invalid.
const MaxDepth = 10000

// SyntaxError describes why a document is not JSON. Offset is the byte at
// which the problem was found.
type SyntaxError struct {
	Msg    string
	Offset int
}

// Error returns the message with the offset.
func (e *SyntaxError) Error() string {
	return e.Msg + " at offset " + strconv.Itoa(e.Offset)
}

// ErrNotObject is returned when a document is valid JSON but not an object
// where one is required.
var ErrNotObject = errors.New("not a JSON object")

func syntaxErr(msg string, off int) error { return &SyntaxError{Msg: msg, Offset: off} }

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// Check reports whether b is one JSON value, optionally surrounded by
// whitespace, as json.Valid does; the error says where it is not.
func Check(b []byte) error {
	i, err := checkValue(b, skipSpace(b, 0), 0)
	if err != nil {
		return err
	}
	if i = skipSpace(b, i); i != len(b) {
		return syntaxErr("invalid character "+quoteChar(b[i])+" after top-level value", i)
	}
	return nil
}

// Valid reports whether b is one JSON value, as json.Valid does.
func Valid(b []byte) bool { return Check(b) == nil }

// CheckObject is Check for a document that must be an object.
func CheckObject(b []byte) error {
	if err := Check(b); err != nil {
		return err
	}
	if b[skipSpace(b, 0)] != '{' {
		return ErrNotObject
	}
	return nil
}

func quoteChar(c byte) string {
	if c == '\'' {
		return `'\''`
	}
	if c == '"' {
		return `'"'`
	}
	s := strconv.Quote(string(rune(c)))
	return "'" + s[1:len(s)-1] + "'"
}

func unexpectedEnd(b []byte) error { return syntaxErr("unexpected end of JSON input", len(b)) }

// checkValue validates the value starting at b[i] and returns the index
// after it. Containers recurse, bounded by MaxDepth.
func checkValue(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return i, unexpectedEnd(b)
	}
	switch c := b[i]; {
	case c == '{':
		if depth++; depth > MaxDepth {
			return i, syntaxErr("exceeded max depth", i)
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, nil
		}
		for {
			if i >= len(b) {
				return i, unexpectedEnd(b)
			}
			if b[i] != '"' {
				return i, syntaxErr("invalid character "+quoteChar(b[i])+" looking for beginning of object key string", i)
			}
			var err error
			if i, err = checkString(b, i); err != nil {
				return i, err
			}
			if i = skipSpace(b, i); i >= len(b) {
				return i, unexpectedEnd(b)
			}
			if b[i] != ':' {
				return i, syntaxErr("invalid character "+quoteChar(b[i])+" after object key", i)
			}
			if i, err = checkValue(b, skipSpace(b, i+1), depth); err != nil {
				return i, err
			}
			if i = skipSpace(b, i); i >= len(b) {
				return i, unexpectedEnd(b)
			}
			switch b[i] {
			case ',':
				i = skipSpace(b, i+1)
			case '}':
				return i + 1, nil
			default:
				return i, syntaxErr("invalid character "+quoteChar(b[i])+" after object key:value pair", i)
			}
		}
	case c == '[':
		if depth++; depth > MaxDepth {
			return i, syntaxErr("exceeded max depth", i)
		}
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, nil
		}
		for {
			var err error
			if i, err = checkValue(b, i, depth); err != nil {
				return i, err
			}
			if i = skipSpace(b, i); i >= len(b) {
				return i, unexpectedEnd(b)
			}
			switch b[i] {
			case ',':
				i = skipSpace(b, i+1)
			case ']':
				return i + 1, nil
			default:
				return i, syntaxErr("invalid character "+quoteChar(b[i])+" after array element", i)
			}
		}
	case c == '"':
		return checkString(b, i)
	case c == '-' || ('0' <= c && c <= '9'):
		return checkNumber(b, i)
	case c == 't':
		return checkLiteral(b, i, "true")
	case c == 'f':
		return checkLiteral(b, i, "false")
	case c == 'n':
		return checkLiteral(b, i, "null")
	default:
		return i, syntaxErr("invalid character "+quoteChar(c)+" looking for beginning of value", i)
	}
}

func checkLiteral(b []byte, i int, lit string) (int, error) {
	for j := 1; j < len(lit); j++ {
		if i+j >= len(b) {
			return i + j, unexpectedEnd(b)
		}
		if b[i+j] != lit[j] {
			return i + j, syntaxErr("invalid character "+quoteChar(b[i+j])+" in literal "+lit+" (expecting "+quoteChar(lit[j])+")", i+j)
		}
	}
	return i + len(lit), nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func checkNumber(b []byte, i int) (int, error) {
	if b[i] == '-' {
		if i++; i >= len(b) {
			return i, unexpectedEnd(b)
		}
		if !isDigit(b[i]) {
			return i, syntaxErr("invalid character "+quoteChar(b[i])+" in numeric literal", i)
		}
	}
	if b[i] == '0' {
		i++
	} else {
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && b[i] == '.' {
		if i++; i >= len(b) {
			return i, unexpectedEnd(b)
		}
		if !isDigit(b[i]) {
			return i, syntaxErr("invalid character "+quoteChar(b[i])+" after decimal point in numeric literal", i)
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		if i++; i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) {
			return i, unexpectedEnd(b)
		}
		if !isDigit(b[i]) {
			return i, syntaxErr("invalid character "+quoteChar(b[i])+" in exponent of numeric literal", i)
		}
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	}
	return i, nil
}

func isHex(c byte) bool { return isDigit(c) || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F') }

// checkString validates the string starting at the quote b[i]. Invalid
// UTF-8 is accepted, as encoding/json does (decoding replaces it).
func checkString(b []byte, i int) (int, error) {
	for i++; i < len(b); i++ {
		for i < len(b) && plain[b[i]] {
			i++
		}
		if i >= len(b) {
			break
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, nil
		case c == '\\':
			if i++; i >= len(b) {
				return i, unexpectedEnd(b)
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				for j := 1; j <= 4; j++ {
					if i+j >= len(b) {
						return i + j, unexpectedEnd(b)
					}
					if !isHex(b[i+j]) {
						return i + j, syntaxErr("invalid character "+quoteChar(b[i+j])+" in \\u hexadecimal character escape", i+j)
					}
				}
				i += 4
			default:
				return i, syntaxErr("invalid character "+quoteChar(b[i])+" in string escape code", i)
			}
		default: // c < 0x20
			return i, syntaxErr("invalid character "+quoteChar(c)+" in string literal", i)
		}
	}
	return i, unexpectedEnd(b)
}

// plain marks the bytes a string holds as they are: not a quote, a
// backslash or a control character. One table load per byte is the
// cheapest test in a wasm build, which has no vector instructions.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// skip returns the index after the value starting at b[i], in a document
// already checked.
func skip(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return i
	default:
		for i < len(b) && !isSpace(b[i]) && b[i] != ',' && b[i] != '}' && b[i] != ']' {
			i++
		}
		return i
	}
}

func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '"':
			return i + 1
		case '\\':
			i++
		}
	}
	return i
}

// Members calls fn with the raw key (quoted, as written) and the raw value
// of each member of the object obj, in order, stopping at fn's first error.
// obj must have passed CheckObject.
func Members(obj []byte, fn func(key, value []byte) error) error {
	i := skipSpace(obj, 0) + 1
	for {
		i = skipSpace(obj, i)
		if i >= len(obj) || obj[i] == '}' {
			return nil
		}
		if obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
		k := skipString(obj, i)
		key := obj[i:k]
		v := skipSpace(obj, skipSpace(obj, k)+1)
		e := skip(obj, v)
		if err := fn(key, obj[v:e]); err != nil {
			return err
		}
		i = e
	}
}

// Unquote appends the text of the quoted JSON string s (as written,
// checked) to dst, as encoding/json decodes it: escapes resolved, an
// invalid surrogate escape and every byte of invalid UTF-8 replaced by
// U+FFFD.
func Unquote(dst, s []byte) []byte {
	s = s[1 : len(s)-1]
	for r := 0; r < len(s); {
		switch c := s[r]; {
		case c == '\\':
			r++
			switch s[r] {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				rr := hex4(s[r+1:])
				r += 5
				if utf16.IsSurrogate(rr) {
					if r+6 <= len(s) && s[r] == '\\' && s[r+1] == 'u' {
						if dec := utf16.DecodeRune(rr, hex4(s[r+2:])); dec != unicode.ReplacementChar {
							dst = utf8.AppendRune(dst, dec)
							r += 6
							continue
						}
					}
					rr = unicode.ReplacementChar
				}
				dst = utf8.AppendRune(dst, rr)
				continue
			default: // " \ /
				dst = append(dst, s[r])
			}
			r++
		case c < utf8.RuneSelf:
			start := r
			for r < len(s) && s[r] < utf8.RuneSelf && s[r] != '\\' {
				r++
			}
			dst = append(dst, s[start:r]...)
		default:
			rr, size := utf8.DecodeRune(s[r:])
			if rr == utf8.RuneError && size == 1 {
				dst = append(dst, "\uFFFD"...)
			} else {
				dst = append(dst, s[r:r+size]...)
			}
			r += size
		}
	}
	return dst
}

// UnquoteString is Unquote returning a string; it copies nothing twice for
// a plain ASCII string.
func UnquoteString(s []byte) string {
	plain := true
	for _, c := range s[1 : len(s)-1] {
		if c == '\\' || c >= utf8.RuneSelf {
			plain = false
			break
		}
	}
	if plain {
		return string(s[1 : len(s)-1])
	}
	var buf [64]byte
	return string(Unquote(buf[:0], s))
}

func hex4(s []byte) rune {
	var r rune
	for _, c := range s[:4] {
		switch {
		case c <= '9':
			c -= '0'
		case c >= 'a':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// KeyIs reports whether the quoted key matches the struct field name, as
// encoding/json matches them: exactly, or else equal under its case folding
// (the smallest rune of each rune's case-folding orbit, so U+212A KELVIN
// SIGN matches K and U+017F LONG S matches S). name is ASCII.
func KeyIs(key []byte, name string) bool {
	if len(key) == len(name)+2 && string(key[1:len(key)-1]) == name {
		return true
	}
	var buf [64]byte
	k := Unquote(buf[:0], key)
	i := 0
	for j := 0; j < len(k); {
		var r rune
		if k[j] < utf8.RuneSelf {
			r = rune(k[j])
			j++
		} else {
			var n int
			r, n = utf8.DecodeRune(k[j:])
			j += n
			r = foldRune(r)
		}
		if i >= len(name) || upperASCII(rune(name[i])) != upperASCII(r) {
			return false
		}
		i++
	}
	return i == len(name)
}

func foldRune(r rune) rune {
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}

func upperASCII(r rune) rune {
	if 'a' <= r && r <= 'z' {
		return r - ('a' - 'A')
	}
	return r
}
