package main

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/connhost/connhost/abi/jsonwire"
)

// parseBodyDecoder is parseBody as it was written with a json.Decoder: the
// reference the reflection-free version must agree with.
func parseBodyDecoder(b []byte, contentType string) (document, error) {
	text := strings.TrimSpace(string(b))
	if text == "" {
		return document{obj: map[string]any{}}, nil
	}
	var v any
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	err := dec.Decode(&v)
	if err == nil && dec.More() {
		err = errors.New("trailing data after the JSON value")
	}
	if err != nil {
		if isJSON(contentType) {
			return document{}, err
		}
		return document{raw: strings.ToValidUTF8(string(b), "\uFFFD")}, nil
	}
	if m, ok := v.(map[string]any); ok {
		return document{obj: m}, nil
	}
	return document{raw: v}, nil
}

// FuzzParseBody checks that parseBody reads bodies as the json.Decoder
// version did, and that the rawJSON written from them is what json.Marshal
// wrote (deduplication keys hash it, so it must not change).
func FuzzParseBody(f *testing.F) {
	for _, s := range []string{``, ` `, `{}`, `{"a":1}}`, `{"a":1}]`, `{} {}`, `[1] x`, `1x`, `"s"`, `12345678901234567890`,
		`{"n":1.50,"s":"<\u2028\ud800>","o":{"x":[true,null]}}`, "not json \xff", `{"a":`, `nul`} {
		f.Add([]byte(s), "application/json")
		f.Add([]byte(s), "text/plain")
	}
	f.Fuzz(func(t *testing.T, b []byte, contentType string) {
		got, err := parseBody(b, contentType)
		want, werr := parseBodyDecoder(b, contentType)
		if (err != nil) != (werr != nil) {
			t.Fatalf("parseBody(%q, %q): error %v, json.Decoder %v", b, contentType, err, werr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("parseBody(%q) = %#v, json.Decoder %#v", b, got, want)
		}
		for _, v := range []any{got.obj, got.raw} {
			wantOut, werr := json.Marshal(v)
			gotOut, err := jsonwire.AppendValue(nil, v, true)
			if (err != nil) != (werr != nil) || string(gotOut) != string(wantOut) {
				t.Fatalf("%q: AppendValue %s %v, json.Marshal %s %v", b, gotOut, err, wantOut, werr)
			}
		}
	})
}
