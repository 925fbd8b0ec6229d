package jsonwire

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
)

// Each test compares this package with encoding/json on the same input:
// the seeds cover escaping, invalid UTF-8, surrogates, case folding and the
// nesting limit; `go test -fuzz FuzzX` explores further.

var docSeeds = []string{
	``, ` `, `{}`, `[]`, `null`, `true`, `false`, `0`, `-0`, `01`, `1.`, `1.5e`, `1e+5`, `-1.25E-3`, `-`,
	`"a"`, `"\u00e9\ud83d\ude00"`, `"\ud800"`, `"\ud800\u0041"`, `"\udc00\ud800"`, "\"\xff\xfe\"", "\"\xed\xa0\x80\"",
	`"\x"`, `"\u12"`, "\"a\tb\"", `"<&>"`, "\"\u2028\u2029\"", `"\/\b\f\n\r\t\\\""`,
	` {"a" : [1, 2, {"b": null}], "c":"d" } `, `{"a":1,}`, `{"a" 1}`, `{,}`, `[1,]`, `[1 2]`, `{"a":1}x`, `{"a":1} {}`,
	`{"result":{"x":1},"result":2}`, `tru`, `nul`, `falsey`, `{"a":"\u0000"}`, "{\"k\xff\":1}",
}

func FuzzCheck(f *testing.F) {
	for _, s := range docSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := Valid(b), json.Valid(b); got != want {
			t.Fatalf("Valid(%q) = %v, encoding/json says %v (%v)", b, got, want, Check(b))
		}
	})
}

func TestDepthLimit(t *testing.T) {
	for _, n := range []int{MaxDepth - 1, MaxDepth, MaxDepth + 1} {
		for _, open := range []string{"[", `{"a":`} {
			closer := map[string]string{"[": "]", `{"a":`: "}"}[open]
			doc := []byte(strings.Repeat(open, n) + "1" + strings.Repeat(closer, n))
			if got, want := Valid(doc), json.Valid(doc); got != want || got != (n <= MaxDepth) {
				t.Errorf("depth %d (%s): Valid = %v, encoding/json %v", n, open, got, want)
			}
		}
	}
}

// marshalNoHTML is what an Encoder with SetEscapeHTML(false) writes.
func marshalNoHTML(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(v)
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), err
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "a\"b\\c", "\x00\x1f\x7f", "<a href='x'>&amp;</a>", "\u2028\u2029", "\xff", "\xe2\x80", "é😀", "\xed\xa0\x80", "\t\n\r\b\f"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s, true); !bytes.Equal(got, want) {
			t.Fatalf("AppendString(%q, html) = %s, json.Marshal %s", s, got, want)
		}
		want, _ = marshalNoHTML(s)
		if got := AppendString([]byte("x"), []byte(s), false); !bytes.Equal(got[1:], want) {
			t.Fatalf("AppendString(%q) = %s, Encoder %s", s, got[1:], want)
		}
	})
}

func FuzzAppendCompact(f *testing.F) {
	for _, s := range docSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, html := range []bool{true, false} {
			var want []byte
			var werr error
			if html {
				want, werr = json.Marshal(json.RawMessage(b))
			} else {
				want, werr = marshalNoHTML(json.RawMessage(b))
			}
			got, err := AppendCompact([]byte("x"), b, html)
			if (err != nil) != (werr != nil) {
				t.Fatalf("AppendCompact(%q, %v): error %v, encoding/json %v", b, html, err, werr)
			}
			if err != nil {
				if string(got) != "x" {
					t.Fatalf("AppendCompact(%q) appended %q on error", b, got)
				}
				continue
			}
			if !bytes.Equal(got[1:], want) {
				t.Fatalf("AppendCompact(%q, %v) = %q, encoding/json %q", b, html, got[1:], want)
			}
		}
	})
}

func FuzzUnquote(f *testing.F) {
	for _, s := range docSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		b = bytes.TrimSpace(b)
		if len(b) == 0 || b[0] != '"' || !Valid(b) {
			return
		}
		var want string
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		if got := UnquoteString(b); got != want {
			t.Fatalf("UnquoteString(%q) = %q, encoding/json %q", b, got, want)
		}
	})
}

func FuzzKeyIs(f *testing.F) {
	for _, s := range []string{`"kind"`, `"KIND"`, `"Kind"`, `"\u212aind"`, `"kınd"`, `"\u006bind"`, `"kin"`, `"kinds"`, `"messaǥe"`, `"meſſage"`, "\"k\xffind\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, key []byte) {
		key = bytes.TrimSpace(key)
		if len(key) == 0 || key[0] != '"' || !Valid(key) {
			return
		}
		var v struct {
			Kind    int `json:"kind"`
			Message int `json:"message"`
		}
		doc := append(append([]byte("{"), key...), ":1}"...)
		if err := json.Unmarshal(doc, &v); err != nil {
			t.Fatal(err)
		}
		if got, want := KeyIs(key, "kind"), v.Kind == 1; got != want {
			t.Fatalf("KeyIs(%s, kind) = %v, encoding/json %v", key, got, want)
		}
		if got, want := KeyIs(key, "message"), v.Message == 1; got != want {
			t.Fatalf("KeyIs(%s, message) = %v, encoding/json %v", key, got, want)
		}
	})
}

func FuzzMembers(f *testing.F) {
	for _, s := range docSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if CheckObject(b) != nil {
			return
		}
		var want map[string]json.RawMessage
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		got := map[string]json.RawMessage{}
		_ = Members(b, func(k, v []byte) error {
			got[UnquoteString(k)] = v
			return nil
		})
		if len(got) != len(want) {
			t.Fatalf("Members(%q) = %q, encoding/json %q", b, got, want)
		}
		for k, v := range want {
			if !bytes.Equal(got[k], v) {
				t.Fatalf("Members(%q)[%q] = %q, encoding/json %q", b, k, got[k], v)
			}
		}
	})
}

func FuzzAppendFloat(f *testing.F) {
	for _, v := range []float64{0, math.Copysign(0, -1), 1, -1.5, 1e-6, 9.99e-7, 1e21, 1e20, 123456789, 1e-9, 5e-324, math.MaxFloat64, 0.1} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v float64) {
		want, werr := json.Marshal(v)
		got, err := AppendFloat(nil, v)
		if (err != nil) != (werr != nil) || (err == nil && !bytes.Equal(got, want)) {
			t.Fatalf("AppendFloat(%v) = %s %v, json.Marshal %s %v", v, got, err, want, werr)
		}
	})
}

func TestAppendValue(t *testing.T) {
	type custom struct {
		A string `json:"a"`
	}
	for _, v := range []any{
		nil, "x<y>", true, 1.5, 7, int64(-3), []any{}, []any(nil), map[string]any(nil), []string{"a", "<"}, []string(nil),
		map[string]any{"z": 1.0, "a": []any{nil, "s", map[string]any{"k\xff": "v\u2028", "": false}}, "<": json.RawMessage(` [ 1 , "<" ] `)},
		map[string]string{"b": "&", "a": ""}, json.RawMessage(nil), custom{A: "<"}, map[string]any{"c": custom{A: "x"}, "f": float32(1.1)},
	} {
		for _, html := range []bool{true, false} {
			var want []byte
			if html {
				want, _ = json.Marshal(v)
			} else {
				want, _ = marshalNoHTML(v)
			}
			got, err := AppendValue(nil, v, html)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("AppendValue(%#v, %v) = %s, %v; encoding/json %s", v, html, got, err, want)
			}
		}
	}
	for _, v := range []any{math.NaN(), json.RawMessage(`{`), map[string]any{"a": math.Inf(1)}, []any{json.RawMessage(`x`)}} {
		if _, err := AppendValue(nil, v, true); err == nil {
			t.Errorf("AppendValue(%#v): no error", v)
		}
		if _, err := json.Marshal(v); err == nil {
			t.Errorf("json.Marshal(%#v): no error", v)
		}
	}
}

// TestMapKeyOrder checks the key order of maps larger than the seeds'.
func TestMapKeyOrder(t *testing.T) {
	for _, n := range []int{0, 1, 2, 9, 100, 2000} {
		m := map[string]any{}
		for i := range n {
			m[strings.Repeat("k", i%7)+string(rune('a'+(i*7919)%26))+strings.Repeat("z", i%3)+string(rune(i))] = float64(i)
		}
		want, _ := json.Marshal(m)
		if got, err := AppendValue(nil, m, true); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%d keys: AppendValue differs from json.Marshal", n)
		}
	}
}

// FuzzDecodeAnyNumber checks FirstValue and DecodeAnyNumber against a
// json.Decoder with UseNumber reading one value, and AppendValue of the
// result against json.Marshal.
func FuzzDecodeAnyNumber(f *testing.F) {
	for _, s := range docSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"n":12345678901234567890,"f":-1.5e-7,"a":[0,{"b":1E+2}]}`))
	f.Add([]byte(`{"a":1}}`))
	f.Add([]byte(`[1] x`))
	f.Fuzz(func(t *testing.T, b []byte) {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var want any
		werr := dec.Decode(&want)
		v, _, err := FirstValue(b)
		var got any
		if err == nil {
			got, err = DecodeAnyNumber(v)
		}
		if (err != nil) != (werr != nil) {
			t.Fatalf("%q: error %v, json.Decoder %v", b, err, werr)
		}
		if err != nil {
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: decoded %#v, json.Decoder %#v", b, got, want)
		}
		wantOut, werr := json.Marshal(want)
		gotOut, err := AppendValue(nil, got, true)
		if (err != nil) != (werr != nil) || !bytes.Equal(gotOut, wantOut) {
			t.Fatalf("%q: AppendValue %s %v, json.Marshal %s %v", b, gotOut, err, wantOut, werr)
		}
	})
}

func TestAppendNumber(t *testing.T) {
	for _, n := range []json.Number{"", "0", "-1.5e+10", "01", "1.", "abc", "-", "1e", "+1", " 1"} {
		want, werr := json.Marshal(n)
		got, err := AppendValue(nil, n, true)
		if (err != nil) != (werr != nil) || !bytes.Equal(got, want) {
			t.Errorf("AppendValue(Number %q) = %s %v, json.Marshal %s %v", n, got, err, want, werr)
		}
	}
}
