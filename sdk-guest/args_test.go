package sdk_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/connhost/connhost/abi"
	sdk "github.com/connhost/connhost/sdk-guest"
	"github.com/connhost/connhost/sdk-guest/sdktest"
)

// TestArgs runs each accessor through a real command call, so the host's
// JSON goes through the same decoding as in wasm.
func TestArgs(t *testing.T) {
	tests := []struct {
		name string
		args string
		get  func(sdk.Args) (any, error)
		want string // fmt of the value, or the error kind
	}{
		{"string", `{"a":"x"}`, func(a sdk.Args) (any, error) { return a.String("a"), nil }, "x"},
		{"string absent", `{}`, func(a sdk.Args) (any, error) { return a.String("a") + "|" + fmt.Sprint(a.Has("a")), nil }, "|false"},
		{"number as text", `{"n":12}`, func(a sdk.Args) (any, error) { return a.String("n"), nil }, "12"},
		{"null is absent", `{"n":null}`, func(a sdk.Args) (any, error) { return a.Has("n"), nil }, "false"},
		{"required", `{"id":"7"}`, func(a sdk.Args) (any, error) { return a.Required("id") }, "7"},
		{"required empty", `{"id":""}`, func(a sdk.Args) (any, error) { return a.Required("id") }, "bad_request"},
		{"int", `{"n":"42"}`, func(a sdk.Args) (any, error) { return a.Int("n", 1) }, "42"},
		{"int default", `{}`, func(a sdk.Args) (any, error) { return a.Int("n", 5) }, "5"},
		{"int bad", `{"n":"4x"}`, func(a sdk.Args) (any, error) { return a.Int("n", 5) }, "bad_request"},
		{"bool yes", `{"b":"yes"}`, func(a sdk.Args) (any, error) { return a.Bool("b", false) }, "true"},
		{"bool json", `{"b":false}`, func(a sdk.Args) (any, error) { return a.Bool("b", true) }, "false"},
		{"bool bad", `{"b":"maybe"}`, func(a sdk.Args) (any, error) { return a.Bool("b", false) }, "bad_request"},
		{"list csv", `{"l":" a, b,,c "}`, func(a sdk.Args) (any, error) { return a.List("l"), nil }, "[a b c]"},
		{"list json", `{"l":"[\"a,b\",\"c\"]"}`, func(a sdk.Args) (any, error) { return a.List("l"), nil }, "[a,b c]"},
		{"raw", `{"x":[1]}`, func(a sdk.Args) (any, error) { return string(a.Raw()), nil }, `{"x":[1]}`},
		{"raw empty", `{}`, func(a sdk.Args) (any, error) { return string(a.Raw()), nil }, `{}`},
		{"decode", `{"id":"7","n":3}`, func(a sdk.Args) (any, error) {
			var v struct {
				ID string `json:"id"`
				N  int    `json:"n"`
			}
			err := a.Decode(&v)
			return fmt.Sprintf("%s/%d", v.ID, v.N), err
		}, "7/3"},
		{"not an object", `[1]`, func(a sdk.Args) (any, error) { return nil, nil }, "bad_request"},
		{"map copy", `{"a":"1","b":"2"}`, func(a sdk.Args) (any, error) {
			m := a.Map()
			m["a"] = "z"
			return a.String("a") + fmt.Sprint(a.Len()), nil
		}, "12"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := sdktest.New(sdk.Connector{Commands: map[string]sdk.CommandFunc{
				"get": func(_ context.Context, _ *sdk.Host, a sdk.Args) (any, error) {
					v, err := tc.get(a)
					return fmt.Sprint(v), err
				},
			}}, nil)
			res, err := h.Call(context.Background(), "get", json.RawMessage(tc.args))
			got := string(abi.KindOf(err))
			if err == nil {
				json.Unmarshal(res, &got)
			}
			if got != tc.want {
				t.Errorf("got %q (err %v), want %q", got, err, tc.want)
			}
		})
	}
}

func TestNewArgs(t *testing.T) {
	a := sdk.NewArgs(map[string]string{"id": "1"})
	if v, err := a.Required("id"); v != "1" || err != nil || !strings.Contains(string(a.Raw()), `"id":"1"`) {
		t.Fatalf("NewArgs: %q %v %s", v, err, a.Raw())
	}
}
