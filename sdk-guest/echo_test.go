package sdk

import (
	"testing"

	"github.com/connhost/connhost/abi"
)

func TestEchoMarker(t *testing.T) {
	def := EchoMarker{}
	custom := Params{vals: map[string]any{"mirror_marker": " [from A] "}}.EchoMarkerParam("mirror_marker")
	tests := []struct {
		name   string
		m      EchoMarker
		body   string
		marked string
	}{
		{"default", def, "hello", "hello\n\nMirrored from connhost"},
		{"trailing newlines", def, "hello\n\n\n", "hello\n\nMirrored from connhost"},
		{"already marked", def, "hello\n\nMirrored from connhost", "hello\n\nMirrored from connhost"},
		{"configured", custom, "hi", "hi\n\n[from A]"},
		{"unset param is the default", Params{}.EchoMarkerParam("mirror_marker"), "x", "x\n\nMirrored from connhost"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.m.Mark(tc.body)
			if got != tc.marked || !tc.m.Marked(got) {
				t.Fatalf("Mark = %q (marked %v), want %q", got, tc.m.Marked(got), tc.marked)
			}
		})
	}
	if def.Marked("plain") || custom.Marked("hi\n\nMirrored from connhost") {
		t.Fatal("Marked matched another marker")
	}
	in := []abi.Entry{
		{Contents: "from the remote"}, {Contents: custom.Mark("ours")}, abi.ReopenEntry(), {Contents: def.Mark("another server's")},
	}
	var kept []any
	for _, e := range custom.Filter(in) {
		kept = append(kept, e.Contents)
	}
	if len(kept) != 3 || kept[0] != "from the remote" || kept[2] != def.Mark("another server's") {
		t.Fatalf("Filter kept %v", kept)
	}
	if in[1].Contents != custom.Mark("ours") {
		t.Fatal("Filter changed its input")
	}
}
