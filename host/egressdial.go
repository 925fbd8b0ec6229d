package host

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// Resolver looks up the addresses of a host name; *net.Resolver is one.
// Tests inject one that answers test names with loopback addresses.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// errAddressDenied marks a dial refused because an allowed host name
// resolved to an address the instance may not reach.
var errAddressDenied = errors.New("address not allowed")

// Special address ranges an allowed name must not lead to (SPEC.md §4).
var (
	// privateRanges are reachable with Config.AllowPrivateEgress.
	privateRanges = prefixes("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
	// refusedRanges are reachable only when the allow-list names the
	// address: this host, link-local (cloud metadata at 169.254.169.254),
	// unspecified, multicast, reserved and broadcast, and their IPv6
	// counterparts.
	refusedRanges = prefixes("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4",
		"::/128", "::1/128", "fe80::/10", "fec0::/10", "ff00::/8")
	// nat64Prefix embeds an IPv4 address (RFC 6052), checked as such.
	nat64Prefix = netip.MustParsePrefix("64:ff9b::/96")
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// addressClass names the kind of a special address, or "" for an ordinary
// one; private tells whether Config.AllowPrivateEgress admits it.
func addressClass(ip netip.Addr) (class string, private bool) {
	ip = ip.Unmap()
	if nat64Prefix.Contains(ip) {
		b := ip.As16()
		ip = netip.AddrFrom4([4]byte(b[12:]))
	}
	for _, p := range refusedRanges {
		if p.Contains(ip) {
			switch {
			case ip.IsLoopback():
				return "loopback", false
			case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
				return "link-local", false
			case ip.IsUnspecified():
				return "unspecified", false
			case ip.IsMulticast():
				return "multicast", false
			}
			return "reserved", false
		}
	}
	for _, p := range privateRanges {
		if p.Contains(ip) {
			return "private", true
		}
	}
	return "", false
}

// egressDialer dials for one Instance: it resolves the host name itself
// and checks every address before connecting to one, so a name on the
// allow-list that resolves (or is rebound between lookups) to a loopback,
// link-local, private or otherwise special address is refused. It connects
// to the checked address, never resolving the name again.
type egressDialer struct {
	dialer       *net.Dialer
	resolver     Resolver
	rules        []egressRule
	allowPrivate bool
}

// DialContext is http.Transport's DialContext.
func (d *egressDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else if ips, err = d.resolver.LookupNetIP(ctx, "ip", host); err != nil {
		return nil, err
	}
	for _, ip := range ips {
		if err := d.check(ip); err != nil {
			return nil, fmt.Errorf("host %q: %w", host, err)
		}
	}
	var errs []error
	for _, ip := range ips {
		c, err := d.dialer.DialContext(ctx, network, net.JoinHostPort(ip.Unmap().String(), port))
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("host %q: no addresses", host)
	}
	return nil, errors.Join(errs...)
}

// check refuses a special address unless the allow-list names it or, for
// a private one, allowPrivate is set.
func (d *egressDialer) check(ip netip.Addr) error {
	class, private := addressClass(ip)
	if class == "" || private && d.allowPrivate {
		return nil
	}
	canon := ip.Unmap().String()
	if slices.ContainsFunc(d.rules, func(r egressRule) bool { return !r.wildcard && r.host == canon }) {
		return nil
	}
	article := "a"
	if strings.IndexByte("aeiou", class[0]) >= 0 {
		article = "an"
	}
	return fmt.Errorf("%w: %s is %s %s address, which the allow-list does not name", errAddressDenied, canon, article, class)
}
