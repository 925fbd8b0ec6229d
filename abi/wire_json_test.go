package abi

import (
	"bytes"
	"encoding/json"
	"math"
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
