package api

import (
	"encoding/json"
	"testing"

	"github.com/connhost/connhost/host/api/apitypes"
)

// TestResultOut: a command that returns nothing (or null) answers a body
// without result, since the document has no nulls; any other JSON is kept.
func TestResultOut(t *testing.T) {
	tests := []struct {
		name, result, want string
	}{
		{"nothing", "", `{}`},
		{"null", "null", `{}`},
		{"null with spaces", " null\n", `{}`},
		{"an object", `{"a":1}`, `{"result":{"a":1}}`},
		{"false", "false", `{"result":false}`},
		{"zero", "0", `{"result":0}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var raw json.RawMessage
			if tt.result != "" {
				raw = json.RawMessage(tt.result)
			}
			b, err := json.Marshal(apitypes.ExecuteResult{Result: resultOut(raw)})
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Fatalf("got %s, want %s", b, tt.want)
			}
		})
	}
}
