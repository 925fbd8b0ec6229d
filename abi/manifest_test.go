package abi_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"strings"
	"testing"

	"github.com/connhost/connhost/abi"
)

// module returns a wasm module (header only) with one ManifestSection per
// payload, as a hostile author could craft it.
func module(payloads ...string) []byte {
	out := []byte("\x00asm\x01\x00\x00\x00")
	for _, p := range payloads {
		var sec []byte
		sec = binary.AppendUvarint(sec, uint64(len(abi.ManifestSection)))
		sec = append(sec, abi.ManifestSection...)
		sec = append(sec, p...)
		out = append(out, 0)
		out = binary.AppendUvarint(out, uint64(len(sec)))
		out = append(out, sec...)
	}
	return out
}

const head = `"name":"x","version":"1.0.0","abi_version":1`

// TestReadManifestStrict holds ReadManifest to the structural rules of
// SPEC.md §7, on modules as a hostile author would craft them.
func TestReadManifestStrict(t *testing.T) {
	tests := []struct {
		name string
		wasm []byte
		want string
	}{
		{"key case overriding", module(`{` + head + `,"NAME":"evil"}`),
			`unknown key "NAME" (keys are case-sensitive: did you mean "name"?)`},
		{"key case alone", module(`{"Name":"x","version":"1.0.0","abi_version":1}`),
			`unknown key "Name" (keys are case-sensitive: did you mean "name"?)`},
		{"param key case", module(`{` + head + `,"params":[{"name":"u","type":"string"},{"name":"p","Type":"secret"}]}`),
			`params[1]: unknown key "Type" (keys are case-sensitive: did you mean "type"?)`},
		{"command key case", module(`{` + head + `,"commands":[{"NAME":"c"}]}`),
			`commands[0]: unknown key "NAME" (keys are case-sensitive: did you mean "name"?)`},
		{"argument key case", module(`{` + head + `,"commands":[{"name":"c","arguments":[{"name":"a","Required":true}]}]}`),
			`commands[0].arguments[0]: unknown key "Required" (keys are case-sensitive: did you mean "required"?)`},
		{"flag key case", module(`{` + head + `,"isFetch":true}`),
			`unknown key "isFetch" (keys are case-sensitive: did you mean "isfetch"?)`},
		{"unknown key", module(`{` + head + `,"extra":1}`), `unknown key "extra"`},
		{"unknown nested key", module(`{` + head + `,"params":[{"name":"p","type":"string","secret":true}]}`),
			`params[0]: unknown key "secret"`},
		{"duplicate key", module(`{` + head + `,"name":"y"}`), `duplicate key "name"`},
		{"duplicate nested key", module(`{` + head + `,"commands":[{"name":"c","description":"a","description":"b"}]}`),
			`commands[0]: duplicate key "description"`},
		{"trailing object", module(`{` + head + `} {}`), "trailing data after the JSON object"},
		{"trailing garbage", module(`{` + head + `}x`), "trailing data after the JSON object"},
		{"not an object", module(`[{` + head + `}]`), "want a JSON object"},
		{"invalid UTF-8", module(`{` + head + `,"description":"` + "\xff" + `"}`), "not valid UTF-8"},
		{"too large", module(`{` + head + `,"description":"` + strings.Repeat("d", abi.MaxManifestBytes) + `"}`),
			fmt.Sprintf("%d bytes, limit %d", abi.MaxManifestBytes+len(head)+len(`{,"description":""}`), abi.MaxManifestBytes)},
		{"two manifest sections", module(`{`+head+`}`, `{"name":"y","version":"1.0.0","abi_version":1}`),
			"2 connhost.manifest custom sections, want exactly one"},
		{"three manifest sections", module(`{`+head+`}`, `{`+head+`}`, `{`+head+`}`),
			"3 connhost.manifest custom sections, want exactly one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := abi.ReadManifest(tt.wasm)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %+v, %v; want an error containing %q", m, err, tt.want)
			}
		})
	}
}

// TestReadManifestAccepts checks that strictness leaves alone what the
// rules allow: whitespace after the object, any keys inside a param's
// default (Validate judges defaults), escapes that spell a key exactly.
func TestReadManifestAccepts(t *testing.T) {
	for _, payload := range []string{
		"{" + head + "}\n\t ",
		`{` + head + `,"params":[{"name":"p","type":"string","default":{"Any":1,"any":2}}]}`,
		`{"n\u0061me":"x","version":"1.0.0","abi_version":1}`,
	} {
		if m, err := abi.ReadManifest(module(payload)); err != nil || m.Name != "x" {
			t.Errorf("%s: got %+v, %v", payload, m, err)
		}
	}
	if _, err := abi.ReadManifest(module()); !errors.Is(err, abi.ErrNoManifest) {
		t.Errorf("no manifest section: got %v, want ErrNoManifest", err)
	}
}

func valid() *abi.Manifest {
	return &abi.Manifest{
		Name: "x", Version: "1.0.0", ABIVersion: abi.Version,
		Params: []abi.Param{
			{Name: "url", Type: abi.ParamString},
			{Name: "key", Type: abi.ParamSecret},
			{Name: "n", Type: abi.ParamNumber},
			{Name: "mode", Type: abi.ParamSelect, Options: []string{"a", "b"}},
		},
		Commands: []abi.Command{{Name: "c", Arguments: []abi.Argument{{Name: "a"}}}},
	}
}

// TestValidateVersion holds versions to Semantic Versioning 2.0.0.
func TestValidateVersion(t *testing.T) {
	tests := []struct{ version, want string }{
		{"1.0.0-..+..", "empty prerelease identifier"},
		{"1.0.0-rc..1", "empty prerelease identifier"},
		{"1.0.0-a.", "empty prerelease identifier"},
		{"1.0.0-.a", "empty prerelease identifier"},
		{"1.0.0+a..b", "empty build identifier"},
		{"1.0.0+b.", "empty build identifier"},
		{"1.0.0-01", `prerelease identifier "01": a number with a leading zero`},
		{"1.0.0-rc.00", `prerelease identifier "00": a number with a leading zero`},
		{"1.0.0-" + strings.Repeat("a", abi.MaxVersionBytes), fmt.Sprintf("version: %d bytes, limit %d", abi.MaxVersionBytes+6, abi.MaxVersionBytes)},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			m := valid()
			m.Version = tt.version
			err := m.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestValidateEgress holds egress entries to the grammar of SPEC.md §7, so
// that what installs also runs.
func TestValidateEgress(t *testing.T) {
	tests := []struct {
		entries []string
		want    string
	}{
		{[]string{"*"}, `egress[0] "*": a bare "*" would allow every host`},
		{[]string{"*.com"}, `egress[0] "*.com": wildcard domain: want at least two labels`},
		{[]string{"a.*.example.com"}, `'*' only as the whole first label`},
		{[]string{"*example.com"}, `'*' only as the whole first label`},
		{[]string{"*.*.example.com"}, `wildcard domain: want a DNS name`},
		{[]string{"API.example.com"}, `egress[0] "API.example.com": upper case`},
		{[]string{"https:a.example.com"}, `egress[0] "https:a.example.com": port`},
		{[]string{"a.example.com?x=1"}, `want a DNS name`},
		{[]string{"user@a.example.com"}, `want a DNS name`},
		{[]string{"a.example.com:0"}, `port: want 1 to 65535`},
		{[]string{"a.example.com:65536"}, `port: want 1 to 65535`},
		{[]string{"a.example.com:0443"}, `port: want 1 to 65535`},
		{[]string{"a.example.com:"}, `port: want 1 to 65535`},
		{[]string{"a.example.com:1:2"}, `more than one ':'`},
		{[]string{"::1"}, `more than one ':' (an IPv6 address goes in brackets)`},
		{[]string{"[::1"}, `'[' without ']'`},
		{[]string{"[::1]443"}, `want ':PORT' after ']'`},
		{[]string{"[10.0.0.1]"}, `want an IPv6 address`},
		{[]string{"[fe80::1%eth0]"}, `want an IPv6 address (without zone)`},
		{[]string{"10.0.0.256"}, `want a DNS name`},
		{[]string{"-a.example.com"}, `want a DNS name`},
		{[]string{"a-.example.com"}, `want a DNS name`},
		{[]string{"a..example.com"}, `want a DNS name`},
		{[]string{"a.example.com."}, `want a DNS name`},
		{[]string{strings.Repeat("a", 64) + ".example.com"}, `want a DNS name`},
		{[]string{strings.Repeat("a.", 126) + "com"}, `want a DNS name`}, // 255 bytes
		{[]string{""}, `egress[0] "": empty`},
		{[]string{"a.example.com", "a.example.com"}, `egress[1]: duplicate "a.example.com"`},
		{[]string{"param:url", "param:url"}, `egress[1]: duplicate "param:url"`},
		{[]string{"param:key"}, `egress[0] "param:key": param "key" is of type secret, want string`},
		{[]string{"param:n"}, `egress[0] "param:n": param "n" is of type number, want string`},
		{[]string{"x" + strings.Repeat(".example", 40)}, fmt.Sprintf("%d bytes, limit %d", 321, abi.MaxEgressBytes)},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.entries, ","), func(t *testing.T) {
			m := valid()
			m.Egress = tt.entries
			err := m.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestParseEgress checks what the valid forms parse to: the host applies
// the rule as parsed, so a wrong split allows the wrong hosts.
func TestParseEgress(t *testing.T) {
	tests := []struct {
		entry string
		want  abi.EgressRule
	}{
		{"api.example.com", abi.EgressRule{Host: "api.example.com"}},
		{"api.example.com:8443", abi.EgressRule{Host: "api.example.com", Port: "8443"}},
		{"*.example.com", abi.EgressRule{Host: "example.com", Wildcard: true}},
		{"*.corp.example:65535", abi.EgressRule{Host: "corp.example", Wildcard: true, Port: "65535"}},
		{"localhost:1", abi.EgressRule{Host: "localhost", Port: "1"}},
		{"my_svc.internal", abi.EgressRule{Host: "my_svc.internal"}},
		{"xn--bcher-kva.example", abi.EgressRule{Host: "xn--bcher-kva.example"}},
		{"10.0.0.1:8080", abi.EgressRule{Host: "10.0.0.1", Port: "8080"}},
		{"[::1]", abi.EgressRule{Host: "::1"}},
		{"[2001:db8::1]:443", abi.EgressRule{Host: "2001:db8::1", Port: "443"}},
		{strings.Repeat("a.", 125) + "com", abi.EgressRule{Host: strings.Repeat("a.", 125) + "com"}}, // 253 bytes, the longest
	}
	for _, tt := range tests {
		got, err := abi.ParseEgress(tt.entry)
		if err != nil || got != tt.want {
			t.Errorf("ParseEgress(%q) = %+v, %v; want %+v", tt.entry, got, err, tt.want)
		}
	}
	m := valid()
	for _, tt := range tests {
		m.Egress = append(m.Egress, tt.entry)
	}
	m.Egress = append(m.Egress, "param:url")
	if err := m.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}
}

// TestValidateCaps checks every size cap: one byte (or entry) over fails
// naming the field path and the limit.
func TestValidateCaps(t *testing.T) {
	over := func(n int) string { return strings.Repeat("x", n+1) }
	many := func(n int, f func(i int) string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	opts := many(abi.MaxOptions+1, func(i int) string { return fmt.Sprint(i) })
	tests := []struct {
		name string
		edit func(m *abi.Manifest)
		want string
	}{
		{"name", func(m *abi.Manifest) { m.Name = over(abi.MaxNameBytes) }, "name: 65 bytes, limit 64"},
		{"display", func(m *abi.Manifest) { m.Display = over(abi.MaxDisplayBytes) }, "display: 129 bytes, limit 128"},
		{"description", func(m *abi.Manifest) { m.Description = over(abi.MaxDescriptionBytes) }, "description: 4097 bytes, limit 4096"},
		{"param name", func(m *abi.Manifest) { m.Params[3].Name = over(abi.MaxParamNameBytes) }, "params[3].name: 65 bytes, limit 64"},
		{"param display", func(m *abi.Manifest) { m.Params[3].Display = over(abi.MaxDisplayBytes) }, "params[3].display: 129 bytes, limit 128"},
		{"param help", func(m *abi.Manifest) { m.Params[3].Help = over(abi.MaxHelpBytes) }, "params[3].help: 1025 bytes, limit 1024"},
		{"param default", func(m *abi.Manifest) { m.Params[0].Default = over(abi.MaxDefaultBytes) }, "params[0].default: 1025 bytes, limit 1024"},
		{"param options", func(m *abi.Manifest) { m.Params[3].Options = opts }, "params[3].options: 257 entries, limit 256"},
		{"param option", func(m *abi.Manifest) { m.Params[3].Options[1] = over(abi.MaxOptionBytes) }, "params[3].options[1]: 129 bytes, limit 128"},
		{"command name", func(m *abi.Manifest) { m.Commands[0].Name = over(abi.MaxCommandNameBytes) }, "commands[0].name: 129 bytes, limit 128"},
		{"command description", func(m *abi.Manifest) { m.Commands[0].Description = over(abi.MaxDescriptionBytes) }, "commands[0].description: 4097 bytes, limit 4096"},
		{"argument name", func(m *abi.Manifest) { m.Commands[0].Arguments[0].Name = over(abi.MaxArgumentNameBytes) }, "commands[0].arguments[0].name: 65 bytes, limit 64"},
		{"argument description", func(m *abi.Manifest) { m.Commands[0].Arguments[0].Description = over(abi.MaxDescriptionBytes) }, "commands[0].arguments[0].description: 4097 bytes, limit 4096"},
		{"argument default", func(m *abi.Manifest) { m.Commands[0].Arguments[0].Default = over(abi.MaxDefaultBytes) }, "commands[0].arguments[0].default: 1025 bytes, limit 1024"},
		{"argument options", func(m *abi.Manifest) { m.Commands[0].Arguments[0].Options = opts }, "commands[0].arguments[0].options: 257 entries, limit 256"},
		{"argument option", func(m *abi.Manifest) { m.Commands[0].Arguments[0].Options = []string{over(abi.MaxOptionBytes)} }, "commands[0].arguments[0].options[0]: 129 bytes, limit 128"},
		{"params", func(m *abi.Manifest) {
			for i := len(m.Params); i <= abi.MaxParams; i++ {
				m.Params = append(m.Params, abi.Param{Name: fmt.Sprint("p", i), Type: abi.ParamBool})
			}
		}, "params: 129 entries, limit 128"},
		{"commands", func(m *abi.Manifest) {
			for i := len(m.Commands); i <= abi.MaxCommands; i++ {
				m.Commands = append(m.Commands, abi.Command{Name: fmt.Sprint("c", i)})
			}
		}, "commands: 257 entries, limit 256"},
		{"arguments", func(m *abi.Manifest) {
			for i := 1; i <= abi.MaxArguments; i++ {
				m.Commands[0].Arguments = append(m.Commands[0].Arguments, abi.Argument{Name: fmt.Sprint("a", i)})
			}
		}, "commands[0].arguments: 65 entries, limit 64"},
		{"egress", func(m *abi.Manifest) {
			m.Egress = many(abi.MaxEgress+1, func(i int) string { return fmt.Sprintf("h%d.example.com", i) })
		}, "egress: 65 entries, limit 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := valid()
			tt.edit(m)
			err := m.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestValidateErrorsStaySmall: a hostile manifest must not make the error
// that reports it (logged, returned by the API) large.
func TestValidateErrorsStaySmall(t *testing.T) {
	m := valid()
	m.Params = nil
	for range abi.MaxParams {
		m.Params = append(m.Params, abi.Param{Type: abi.ParamType(strings.Repeat("t", 1000))})
	}
	err := m.Validate()
	if err == nil || len(err.Error()) > 4000 || !strings.Contains(err.Error(), "more problems") {
		t.Fatalf("%d bytes of error: %.300v", len(err.Error()), err)
	}
}

// TestEmbedManifest checks that pack's output is what the host accepts:
// refused if over MaxManifestBytes as a whole, and with exactly one
// manifest section even when the input had several.
func TestEmbedManifest(t *testing.T) {
	m := valid()
	for i := range abi.MaxParams - len(m.Params) {
		m.Params = append(m.Params, abi.Param{Name: fmt.Sprint("p", i), Type: abi.ParamString, Help: strings.Repeat("h", abi.MaxHelpBytes)})
	}
	if err := m.Validate(); err != nil {
		t.Fatalf("every field within its cap: %v", err)
	}
	_, err := abi.EmbedManifest(module(), m)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("bytes as JSON, limit %d", abi.MaxManifestBytes)) {
		t.Fatalf("manifest over %d bytes as JSON: got %v", abi.MaxManifestBytes, err)
	}
	out, err := abi.EmbedManifest(module(`{"name":"old1"}`, `{"name":"old2"}`), valid())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := abi.ReadManifest(out); err != nil || got.Name != "x" {
		t.Fatalf("embedded into a module with two manifests: %+v, %v", got, err)
	}
}

// TestCheckArgs: the argument rules of SPEC §6, which the server and the
// local runner share.
func TestCheckArgs(t *testing.T) {
	c := abi.Command{Name: "ticket-get", Arguments: []abi.Argument{
		{Name: "id", Required: true},
		{Name: "view", Default: "short", Options: []string{"short", "full"}},
		{Name: "note"},
	}}
	for _, tc := range []struct {
		name    string
		args    map[string]any
		want    map[string]any
		wantErr []string
	}{
		{"defaults filled", map[string]any{"id": "7"}, map[string]any{"id": "7", "view": "short"}, nil},
		{"empty takes the default", map[string]any{"id": "7", "view": ""}, map[string]any{"id": "7", "view": "short"}, nil},
		{"option kept", map[string]any{"id": "7", "view": "full", "note": "x"}, map[string]any{"id": "7", "view": "full", "note": "x"}, nil},
		{"non-string values pass options", map[string]any{"id": 7.0, "view": "full"}, map[string]any{"id": 7.0, "view": "full"}, nil},
		{"every problem named", map[string]any{"id": "", "view": "wide", "colour": "red", "b": 1},
			nil, []string{`argument "id" is required`, `argument "view": "wide" is not one of short, full`,
				`argument "b" is not declared by command "ticket-get" (declared: id, view, note)`, `argument "colour" is not declared`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := maps.Clone(tc.args)
			got, err := c.CheckArgs(tc.args)
			if !maps.Equal(tc.args, in) {
				t.Errorf("CheckArgs changed its input: %v", tc.args)
			}
			if tc.wantErr == nil {
				if err != nil || !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("CheckArgs = %v, %v; want %v", got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckArgs = %v, want an error", got)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
