package block

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/raywatch/raywatch/rules/alert"
)

// Address returns the list entry of an address: the address itself for
// IPv4 (an IPv4-mapped IPv6 address counts as IPv4), its /64 for IPv6 (an
// attacker usually holds a whole /64, and rotates within it). s may also
// be an IPv4 /32 or an IPv6 /64. The string form of the prefix is what
// the list and the state hold: "203.0.113.7" or "2001:db8:1:2::/64".
func Address(s string) (netip.Prefix, string, error) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return addrPrefix(a.WithZone(""))
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, "", fmt.Errorf("%q is not an IP address", s)
	}
	a := p.Addr().Unmap()
	switch {
	case a.Is4() && (p.Bits() == 32 || p.Addr().Is4In6() && p.Bits() == 128):
		return addrPrefix(a)
	case a.Is6() && p.Bits() == 64:
		return addrPrefix(a)
	}
	return netip.Prefix{}, "", fmt.Errorf("%q: give an address (IPv6 addresses are listed as their /64)", s)
}

func addrPrefix(a netip.Addr) (netip.Prefix, string, error) {
	a = a.Unmap()
	if a.Is4() {
		return netip.PrefixFrom(a, 32), a.String(), nil
	}
	p, err := a.Prefix(64)
	if err != nil {
		return netip.Prefix{}, "", err
	}
	return p, p.String(), nil
}

// sourceFields are where an alert's event holds the client's address.
var sourceFields = []string{"source.ip", "client.ip", "cloudflare.ClientIP"}

// SourceAddress returns the client address of an alert's event, "" when
// it has none.
func SourceAddress(ev map[string]any) string {
	return alert.Field(ev, sourceFields...)
}

// exclusion is a range never listed, and why.
type exclusion struct {
	p      netip.Prefix
	reason string
}

// specialRanges are the addresses that are not a remote client on the
// Internet: listing them would block this network, a proxy, or nothing.
var specialRanges = mustExclusions(map[string]string{
	"0.0.0.0/8":          "a \"this network\" address",
	"10.0.0.0/8":         "a private address",
	"100.64.0.0/10":      "a carrier-grade NAT address",
	"127.0.0.0/8":        "a loopback address",
	"169.254.0.0/16":     "a link-local address",
	"172.16.0.0/12":      "a private address",
	"192.168.0.0/16":     "a private address",
	"224.0.0.0/4":        "a multicast address",
	"240.0.0.0/4":        "a reserved address",
	"::/128":             "the unspecified address",
	"::1/128":            "a loopback address",
	"fc00::/7":           "a private (unique local) address",
	"fe80::/10":          "a link-local address",
	"ff00::/8":           "a multicast address",
	"::ffff:0.0.0.0/96":  "an IPv4-mapped address",
	"64:ff9b:1::/48":     "a local NAT64 address",
	"255.255.255.255/32": "the broadcast address",
})

func mustExclusions(m map[string]string) []exclusion {
	var out []exclusion
	for s, reason := range m {
		out = append(out, exclusion{netip.MustParsePrefix(s), reason})
	}
	return out
}

// cloudflareExclusions are Cloudflare's own ranges.
var cloudflareExclusions = func() []exclusion {
	var out []exclusion
	for _, s := range append(append([]string{}, CloudflareIPv4...), CloudflareIPv6...) {
		out = append(out, exclusion{netip.MustParsePrefix(s), "one of Cloudflare's own addresses (" + s + ")"})
	}
	return out
}()

// ParseNever parses --block-never: comma-separated addresses and CIDR
// ranges.
func ParseNever(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	var errs []error
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if a, err := netip.ParseAddr(item); err == nil {
			a = a.WithZone("").Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(item)
		if err != nil {
			errs = append(errs, fmt.Errorf("--block-never %q: not an address or CIDR range", item))
			continue
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, errors.Join(errs...)
}
