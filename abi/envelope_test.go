package abi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
)

// decodeEnvelopeReflect is DecodeEnvelope as it was written with
// encoding/json: the reference the hand-written decoder must agree with.
func decodeEnvelopeReflect(b []byte) (Envelope, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(b, &members); err != nil {
		return Envelope{}, fmt.Errorf("malformed result envelope: %w", err)
	}
	if members == nil {
		return Envelope{}, errors.New("malformed result envelope: not a JSON object")
	}
	for k := range members {
		if k != "result" && k != "error" {
			return Envelope{}, fmt.Errorf("malformed result envelope: unknown member %q", k)
		}
	}
	switch len(members) {
	case 0:
		return Envelope{}, errors.New("malformed result envelope: no result or error member")
	case 2:
		return Envelope{}, errors.New("malformed result envelope: both result and error set")
	}
	var env Envelope
	if err := json.Unmarshal(b, &env); err != nil {
		return Envelope{}, fmt.Errorf("malformed result envelope: %w", err)
	}
	if _, ok := members["error"]; ok {
		if env.Error == nil {
			return Envelope{}, errors.New("malformed result envelope: error is null")
		}
		if env.Error.Kind == "" {
			return Envelope{}, errors.New("malformed result envelope: error without kind")
		}
	}
	return env, nil
}

var envelopeSeeds = []string{
	`{"result":null}`, `{"result":"ok"}`, ` { "result" : { "a" : [1, 2] } } `, `{"error":{"kind":"failed","message":"m"}}`,
	`{}`, `null`, `[]`, `"x"`, `1`, `{"result":1,"error":{"kind":"k"}}`, `{"resul":1}`, `{"Result":1}`, `{"res\u0075lt":2}`,
	`{"result":1,"result":2}`, `{"error":null}`, `{"error":{}}`, `{"error":{"message":"m"}}`, `{"error":"x"}`, `{"error":[]}`,
	`{"error":{"kind":1}}`, `{"error":{"kind":null,"message":"m"}}`, `{"error":{"KIND":"a","Message":"b"}}`,
	`{"error":{"\u212aind":"a"}}`, `{"error":{"kınd":"a"}}`, `{"error":{"kind":"a"},"error":{"message":"m"}}`,
	`{"error":{"kind":"a"},"error":null}`, `{"error":null,"error":{"kind":"a"}}`, `{"error":{"kind":"a","x":{"y":[1]}}}`,
	`{"error":{"kind":"a","message":"\ud800 \u00e9 \xff"}}`, `{"result":1}x`, `{"result":}`, `{"error":{"kind":"a","kind":"b"}}`,
	`{"error":{"kind":"a","message":5}}`,
}

// FuzzDecodeEnvelope checks that DecodeEnvelope accepts exactly what the
// encoding/json version accepted, with the same result and error.
func FuzzDecodeEnvelope(f *testing.F) {
	for _, s := range envelopeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeEnvelope(b)
		want, werr := decodeEnvelopeReflect(b)
		if (err != nil) != (werr != nil) {
			t.Fatalf("DecodeEnvelope(%q): error %v, encoding/json %v", b, err, werr)
		}
		if err == nil && (!bytes.Equal(got.Result, want.Result) || !reflect.DeepEqual(got.Error, want.Error)) {
			t.Fatalf("DecodeEnvelope(%q) = %q %+v, encoding/json %q %+v", b, got.Result, got.Error, want.Result, want.Error)
		}
	})
}

// FuzzFail checks that Fail writes what json.Marshal wrote.
func FuzzFail(f *testing.F) {
	f.Add("failed", "m")
	f.Add("bad_request", "<a> & \u2028 \xff \"q\"\n")
	f.Fuzz(func(t *testing.T, kind, msg string) {
		e := &Error{Kind: ErrorKind(kind), Message: msg}
		want, _ := json.Marshal(Envelope{Error: e})
		if got := Fail(e); !bytes.Equal(got, want) {
			t.Fatalf("Fail(%+v) = %s, json.Marshal %s", e, got, want)
		}
	})
}

func TestOKMatchesMarshal(t *testing.T) {
	for _, v := range []any{nil, "ok", map[string]any{"b": 1.0, "a": "<"}, json.RawMessage(` {"x" : 1} `), struct{ A int }{1}} {
		raw, _ := json.Marshal(v)
		want, _ := json.Marshal(Envelope{Result: raw})
		got, err := OK(v)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("OK(%#v) = %s, %v; json.Marshal %s", v, got, err, want)
		}
	}
	if want, _ := json.Marshal(Envelope{}); !bytes.Equal(Fail(nil), want) {
		t.Errorf("Fail(nil) = %s, want %s", Fail(nil), want)
	}
}
