package abi

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// EgressRule is one parsed egress allow-list entry (SPEC.md §7).
type EgressRule struct {
	// Host is a lower-case host name, an IPv4 address, or an IPv6 address
	// without its brackets; for a wildcard, the domain after "*.".
	Host string
	// Wildcard marks "*.domain": any host strictly below Host.
	Wildcard bool
	// Port is the decimal port, or "" for any port.
	Port string
}

// MaxEgressBytes caps one egress entry: a wildcard on a domain of the
// longest DNS name, with the longest port.
const MaxEgressBytes = len("*.") + maxDNSName + len(":65535")

// maxDNSName is the longest DNS name in its text form (RFC 1035 §2.3.4),
// without the trailing dot.
const maxDNSName = 253

// ParseEgress parses one egress entry other than "param:NAME": HOST or
// HOST:PORT, where HOST is a lower-case DNS name, an IPv4 address, an IPv6
// address in brackets, or "*." followed by a DNS name of at least two
// labels, and PORT is 1 to 65535 without leading zeros. The host matches
// URLs by exact string, so an entry that does not parse could never match
// anything; refusing it is kinder than an allow-list that silently allows
// less than it says.
func ParseEgress(entry string) (EgressRule, error) {
	switch {
	case entry == "":
		return EgressRule{}, errors.New("empty")
	case len(entry) > MaxEgressBytes:
		return EgressRule{}, fmt.Errorf("%d bytes, limit %d", len(entry), MaxEgressBytes)
	case strings.Contains(entry, "://"):
		return EgressRule{}, errors.New("a URL: want a host name, without scheme")
	case strings.Contains(entry, "/"):
		return EgressRule{}, errors.New("a path: want a host name only")
	case strings.ToLower(entry) != entry:
		return EgressRule{}, errors.New("upper case: want a lower-case host name")
	}
	host, port, hasPort := entry, "", false
	if rest, ok := strings.CutPrefix(entry, "["); ok {
		addr, after, ok := strings.Cut(rest, "]")
		if !ok {
			return EgressRule{}, errors.New("'[' without ']'")
		}
		port, hasPort = strings.CutPrefix(after, ":")
		if after != "" && !hasPort {
			return EgressRule{}, errors.New("want ':PORT' after ']'")
		}
		if !isIPv6(addr) {
			return EgressRule{}, errors.New("want an IPv6 address (without zone) between brackets")
		}
		host = addr
	} else {
		switch strings.Count(entry, ":") {
		case 0:
		case 1:
			host, port, hasPort = strings.Cut(entry, ":")
		default:
			return EgressRule{}, errors.New("more than one ':' (an IPv6 address goes in brackets)")
		}
		if err := checkEgressHost(host); err != nil {
			return EgressRule{}, err
		}
	}
	if hasPort && !isPort(port) {
		return EgressRule{}, errors.New("port: want 1 to 65535, without leading zeros")
	}
	if domain, ok := strings.CutPrefix(host, "*."); ok {
		return EgressRule{Host: domain, Wildcard: true, Port: port}, nil
	}
	return EgressRule{Host: host, Port: port}, nil
}

// checkEgressHost checks the host part of an entry that is not an IPv6
// literal.
func checkEgressHost(host string) error {
	if host == "*" {
		return errors.New(`a bare "*" would allow every host: want "*." and a domain of at least two labels`)
	}
	if domain, ok := strings.CutPrefix(host, "*."); ok {
		if !isDNSName(domain) {
			return errors.New("wildcard domain: want a DNS name after \"*.\"")
		}
		if !strings.Contains(domain, ".") {
			return errors.New("wildcard domain: want at least two labels after \"*.\"")
		}
		return nil
	}
	if strings.Contains(host, "*") {
		return errors.New(`'*' only as the whole first label, as "*.example.com"`)
	}
	if isIPv4(host) {
		return nil
	}
	if !isDNSName(host) {
		return errors.New("want a DNS name (labels of a-z, 0-9, '-', '_'), an IPv4 address or [IPv6]")
	}
	return nil
}

// The address checks below are written out rather than with net/netip,
// which would bring package unique into every guest that links abi without
// net/url; a test holds them to net/netip.

// isIPv4 reports whether s is an IPv4 address in dotted decimal, without
// leading zeros.
func isIPv4(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return false
	}
	for _, p := range parts {
		if p == "" || len(p) > 3 || len(p) > 1 && p[0] == '0' || strings.Trim(p, "0123456789") != "" {
			return false
		}
		if n, _ := strconv.Atoi(p); n > 255 {
			return false
		}
	}
	return true
}

// isIPv6 reports whether s is an IPv6 address in the text form of RFC 4291
// §2.2, lower case and without zone: eight groups of one to four hex
// digits, or fewer around one "::", the last two optionally as an IPv4
// address.
func isIPv6(s string) bool {
	head, tail, compressed := strings.Cut(s, "::")
	if !compressed {
		n, ok := ipv6Groups(s)
		return ok && n == 8
	}
	if strings.Contains(tail, "::") || strings.Contains(head, ".") {
		return false
	}
	h, okHead := ipv6Groups(head)
	t, okTail := ipv6Groups(tail)
	return okHead && okTail && h+t <= 7 // "::" stands for at least one group
}

// ipv6Groups counts the 16-bit groups of a run of them, such as "1:2:3",
// an IPv4 address at the end counting two.
func ipv6Groups(s string) (int, bool) {
	if s == "" {
		return 0, true
	}
	groups := strings.Split(s, ":")
	n := 0
	for i, g := range groups {
		switch {
		case i == len(groups)-1 && strings.Contains(g, "."):
			if !isIPv4(g) {
				return 0, false
			}
			n += 2
		case g == "" || len(g) > 4 || strings.Trim(g, "0123456789abcdef") != "":
			return 0, false
		default:
			n++
		}
	}
	return n, true
}

// isDNSName reports whether s is a lower-case DNS name as Go's resolver
// accepts one (RFC 1035 with '_', as used in practice): labels of 1 to 63
// bytes of [a-z0-9_-] not starting or ending with '-', at most 253 bytes in
// all, no trailing dot, and a last label that is not all digits, which
// keeps a malformed IPv4 address such as 10.0.0.256 out (RFC 3696 §2).
func isDNSName(s string) bool {
	if s == "" || len(s) > maxDNSName {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	last := s[strings.LastIndexByte(s, '.')+1:]
	return strings.Trim(last, "0123456789") != ""
}

// isPort reports whether s is a decimal port 1-65535 without leading zeros:
// URL ports are compared as strings, so "0443" would never match.
func isPort(s string) bool {
	if s == "" || len(s) > 5 || s[0] == '0' || strings.Trim(s, "0123456789") != "" {
		return false
	}
	n, err := strconv.Atoi(s)
	return err == nil && n <= 65535
}
