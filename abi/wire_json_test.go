package abi

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"testing"
)

type jsonAppender interface {
	AppendJSON(dst []byte, escapeHTML bool) ([]byte, error)
}

// wireValues returns one of each hand-encoded wire type, with s in every
// string and extra in every interface-typed field.
func wireValues(s string, extra any) []jsonAppender {
	m := map[string]any{s: extra, "b": []any{1.5, s, nil, true}, "a": map[string]any{}}
	inc := Incident{Name: s, Type: s, Severity: 0.5, Occurred: s, Details: s, Owner: s, Labels: []Label{{s, s}, {}},
		RawJSON: s, CustomFields: m, DbotMirrorID: s, DbotMirrorDirection: s, DbotMirrorTags: []string{s, ""}}
	entry := Entry{ID: s, Type: EntryNote, Contents: extra, ContentsFormat: s, Tags: []string{s}, Note: true, EntryContext: m}
	return []jsonAppender{
		CommandResults{}, CommandResults{ReadableOutput: s, OutputsPrefix: s, OutputsKeyField: s, Outputs: m, RawResponse: extra},
		&CommandResults{Outputs: []any{}},
		Label{}, &Incident{}, &inc, &Entry{}, &entry,
		&AddEntryRequest{}, &AddEntryRequest{IncidentID: s, Entry: entry, Username: s, Email: s, Footer: s},
		&CreateIncidentsRequest{}, &CreateIncidentsRequest{Incidents: []Incident{}}, &CreateIncidentsRequest{Incidents: []Incident{inc, {}}, LastRun: m, UserID: s},
		CacheGetRequest{Key: s}, CacheDeleteRequest{Key: s}, &CacheSetRequest{}, &CacheSetRequest{Key: s, Value: json.RawMessage(` {"x": [1, "<"]} `), TTLSeconds: 1e-7},
		&RunValue{}, &RunValue{Value: m}, &ContextSetRequest{Version: -1}, &ContextSetRequest{Context: m, Version: 7},
		ModuleHealth{}, ModuleHealth{Message: s, IsError: true},
		&HTTPRequest{}, &HTTPRequest{Method: s, URL: s, Path: s, Query: s, Headers: map[string][]string{s: {s, ""}, "A": nil, "Z": {}}, Body: []byte(s), TimeoutMS: 5},
		&HTTPResponse{}, &HTTPResponse{Status: 201, Headers: map[string][]string{"Content-Type": {"<x>"}}, Body: []byte{0, 255}},
	}
}

func marshalNoHTML(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(v)
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), err
}

func checkWire(t *testing.T, s string, extra any) {
	t.Helper()
	for _, v := range wireValues(s, extra) {
		for _, html := range []bool{true, false} {
			var want []byte
			var werr error
			if html {
				want, werr = json.Marshal(v)
			} else {
				want, werr = marshalNoHTML(v)
			}
			got, err := v.AppendJSON([]byte("x"), html)
			if (err != nil) != (werr != nil) {
				t.Fatalf("%T.AppendJSON(%v): error %v, encoding/json %v", v, html, err, werr)
			}
			if err == nil && !bytes.Equal(got[1:], want) {
				t.Fatalf("%T.AppendJSON(%v) =\n%s\nencoding/json:\n%s", v, html, got[1:], want)
			}
		}
	}
}

// TestWireJSONMatchesMarshal checks every hand-written encoder against
// encoding/json, including values it hands on to encoding/json.
func TestWireJSONMatchesMarshal(t *testing.T) {
	type custom struct {
		A string `json:"a,omitempty"`
	}
	for _, extra := range []any{nil, "x", 2.5, []any{"<"}, map[string]any{"k": nil}, custom{"<&>"}, json.RawMessage(`[1, 2]`)} {
		checkWire(t, "plain", extra)
	}
	for _, bad := range []any{math.NaN(), json.RawMessage(`{`), map[string]any{"x": math.Inf(-1)}} {
		checkWire(t, "s", bad) // both must fail
	}
}

func FuzzWireJSON(f *testing.F) {
	for _, s := range []string{"", "<a & b>", "\u2028\xff\"\\\n", "é😀"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkWire(t, s, s) })
}

type jsonDecoder interface {
	DecodeJSON([]byte) error
}

// decoders returns a fresh value of each hand-decoded wire type.
func decoders() []jsonDecoder {
	return []jsonDecoder{&ContextGetResult{}, &RunValue{}, &CacheGetResult{}, &AddEntryResult{}, &CreateIncidentsResult{},
		&DirectMessageResult{}, &HTTPRequest{}, &HTTPResponse{}}
}

var decodeSeeds = []string{
	`{}`, `null`, `[]`, `"x"`, `1`, ` {"context":{"a":[1,"x",null,{"b":true}],"n":1e400},"version":3} `, `{"context":null,"version":1.5}`,
	`{"context":{"a":1},"context":{"b":2},"Version":-1}`, `{"value":{"k":"v"},"VALUE":null}`, `{"found":true,"value":{"x" : 1}}`,
	`{"found":"yes"}`, `{"value":null}`, `{"id":"e1","ids":["a",null,"b"]}`, `{"ids":"a"}`, `{"ids":[1]}`, `{"ids":[]}`, `{"reply":null}`,
	`{"method":"POST","path":"/hook","query":"a=1","headers":{"X":["1","2"],"Y":null,"Z":[]},"body":"aGVsbG8=","timeout_ms":5}`,
	`{"body":"aGVsbG8"}`, `{"body":"aGVs\nbG8="}`, `{"body":"aGVs\u0062G8="}`, `{"body":[104,105,null]}`, `{"body":[256]}`, `{"body":""}`, `{"body":[]}`,
	`{"headers":{}}`, `{"headers":{"A":["x"]},"headers":{"B":["y"]}}`, `{"headers":[]}`, `{"headers":{"A":"x"}}`, `{"status":200,"status":null}`,
	`{"status":1e2}`, `{"status":99999999999999999999}`, `{"STATUS":201,"\u212a":1,"body":null}`, `{"timeout_ms":"5"}`, `{"method":1}`,
	`{"context":{"a":1}} x`, `{"context":"x"}`, `{"version":-9223372036854775808}`, `{"found":null,"found":false}`,
}

// FuzzDecodeJSON checks that each hand-written decoder accepts exactly what
// json.Unmarshal accepts into the same type, and decodes the same value.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for i, got := range decoders() {
			want := decoders()[i]
			err := got.DecodeJSON(b)
			werr := json.Unmarshal(b, want)
			if (err != nil) != (werr != nil) {
				t.Fatalf("%T.DecodeJSON(%q): error %v, encoding/json %v", got, b, err, werr)
			}
			if err == nil && !reflect.DeepEqual(got, want) {
				t.Fatalf("%T.DecodeJSON(%q) = %+v, encoding/json %+v", got, b, got, want)
			}
		}
	})
}
