package sdk

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/connhost/connhost/abi"
)

func TestXSOARParams(t *testing.T) {
	p := Params{vals: map[string]any{
		"url": "https://tickets.example.com/", "bad_url": "ftp://x", "first_fetch": "2 Weeks",
		"bad_age": "soon", "dir": "Incoming And Outgoing", "bad_dir": "Sideways",
	}}
	if u, err := p.URL("url"); err != nil || u.String() != "https://tickets.example.com" {
		t.Fatalf("URL = %v, %v", u, err)
	}
	tests := []struct {
		name string
		got  func() (any, error)
		want any
		err  string // substring of the bad_request message; "" for success
	}{
		{"age", func() (any, error) { return p.Age("first_fetch", "3 days") }, 14 * 24 * time.Hour, ""},
		{"age default", func() (any, error) { return p.Age("unset", "3 days") }, 72 * time.Hour, ""},
		{"age singular", func() (any, error) { return ParseAge("1 minute") }, time.Minute, ""},
		{"age malformed", func() (any, error) { return p.Age("bad_age", "") }, time.Duration(0), "param bad_age"},
		{"age unit", func() (any, error) { return ParseAge("3 fortnights") }, time.Duration(0), "unknown unit"},
		{"direction", func() (any, error) { return p.MirrorDirection("dir", "None") }, abi.MirrorBoth, ""},
		{"direction default", func() (any, error) { return p.MirrorDirection("unset", "Incoming") }, abi.MirrorIn, ""},
		{"direction unknown", func() (any, error) { return p.MirrorDirection("bad_dir", "None") }, "", `unknown option "Sideways"`},
		{"url scheme", func() (any, error) { u, err := p.URL("bad_url"); return u == nil, err }, true, "param bad_url"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.got()
			if tc.err != "" {
				var ae *abi.Error
				if !errors.As(err, &ae) || ae.Kind != abi.KindBadRequest || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want bad_request containing %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("= %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}
