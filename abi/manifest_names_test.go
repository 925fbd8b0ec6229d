package abi

import (
	"net/netip"
	"regexp"
	"strings"
	"testing"
)

// The hand-written checks must accept exactly what the documented patterns
// accept (SPEC.md §7); regexp is fine here, in a test.
func TestNameAndVersionChecks(t *testing.T) {
	name := regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
	// The pattern semver.org gives for Semantic Versioning 2.0.0.
	semver := regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)` +
		`(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?` +
		`(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)
	names := []string{"", "a", "ticketdesk", "scim-iam", "a_b", "-a", "_a", "A", "a.b", "a b", "é",
		strings.Repeat("a", 64), strings.Repeat("a", 65), "0abc", "ab-"}
	for _, n := range names {
		if got, want := isIdent(n, 64), name.MatchString(n); got != want {
			t.Errorf("isIdent(%q) = %v, pattern says %v", n, got, want)
		}
	}
	versions := []string{"1.0.0", "0.0.0", "10.20.30", "01.0.0", "1.02.0", "1.0", "1.0.0.0", "1.0.0-rc.1",
		"1.0.0-", "1.0.0+build.5", "1.0.0-rc+b", "1.0.0+", "1.0.0-a_b", "v1.0.0", "1..0", "1.0.0-rc-1+x-y", "", "1.0.x",
		"1.0.0-..+..", "1.0.0-rc..1", "1.0.0-.a", "1.0.0-a.", "1.0.0+.", "1.0.0+a..b", "1.0.0-a+b+c",
		"1.0.0-01", "1.0.0-a.01", "1.0.0-0", "1.0.0-0a", "1.0.0-00a", "1.0.0+01", "1.0.0--", "1.0.0-a-",
		"1.0.0-x.7.z.92", "1.0.0+21AF26D3----117B344092BD", "1.0.0-0.3.7", "1.0.0-rc.1+build.1", "1.0.0-é"}
	for _, v := range versions {
		if got, want := checkSemver(v) == nil, semver.MatchString(v); got != want {
			t.Errorf("checkSemver(%q) == nil is %v, pattern says %v", v, got, want)
		}
	}
}

// The hand-written address checks must agree with net/netip, for the forms
// an egress entry allows: lower case, no zone.
func TestAddressChecks(t *testing.T) {
	v4 := []string{"0.0.0.0", "10.0.0.1", "255.255.255.255", "256.0.0.1", "1.2.3", "1.2.3.4.5", "01.2.3.4",
		"1.2.3.04", "1..3.4", "1.2.3.4.", "", "a.b.c.d", "1.2.3.-4", "1.2.3.+4", "1.2.3.4 ", "1000.2.3.4"}
	for _, s := range v4 {
		ip, err := netip.ParseAddr(s)
		if got, want := isIPv4(s), err == nil && ip.Is4(); got != want {
			t.Errorf("isIPv4(%q) = %v, net/netip says %v", s, got, want)
		}
	}
	v6 := []string{"::", "::1", "1::", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8:9",
		"1:2:3:4:5:6:7", "1::2::3", ":::", "1:::2", ":1:2:3:4:5:6:7", "1:2:3:4:5:6:7:", "2001:db8::1", "fe80::1",
		"::ffff:1.2.3.4", "1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:7:1.2.3.4", "::1.2.3.4", "1.2.3.4::", "::1.2.3",
		"::1.2.3.4:5", "12345::", "0000:0000::", "g::", "::ffff:01.2.3.4", "1:2:3:4:5::1.2.3.4", "", "1.2.3.4"}
	for _, s := range v6 {
		ip, err := netip.ParseAddr(s)
		if got, want := isIPv6(s), err == nil && ip.Is6(); got != want {
			t.Errorf("isIPv6(%q) = %v, net/netip says %v", s, got, want)
		}
	}
}
