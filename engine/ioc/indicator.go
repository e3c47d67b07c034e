package ioc

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/raywatch/raywatch/rules/alert"
)

// Type is the kind of an indicator, which decides the event fields it is
// matched against.
type Type = alert.IndicatorType

// The indicator types. An address or range of either family has type
// TypeIPv4, TypeIPv6 or TypeCIDR; the others are compared as normalised
// strings (see [Set.Match]).
const (
	TypeIPv4   = alert.TypeIPv4
	TypeIPv6   = alert.TypeIPv6
	TypeCIDR   = alert.TypeCIDR
	TypeDomain = alert.TypeDomain
	TypeURL    = alert.TypeURL
	TypeUA     = alert.TypeUA
	TypeJA3    = alert.TypeJA3
)

// Types lists every indicator type in a stable order.
var Types = alert.IndicatorTypes

// Indicator is one indicator of compromise read from a file in the IOC
// folder (see [alert.Indicator]). Indicators are immutable once loaded: a
// [Set] and every [Hit] share them, and callers must not modify them.
type Indicator = alert.Indicator

// Meta is the metadata of an indicator (see [alert.IndicatorMeta]).
type Meta = alert.IndicatorMeta

// LineError is a part of a file that is not an indicator. The rest of the
// file still loads.
type LineError struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Msg  string `json:"error"`
}

func (e LineError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// errUnsupported marks an indicator the source gives that raywatch cannot
// match on Cloudflare logs (a file hash, an e-mail address, a bare URI). Such
// entries are counted as skipped, not reported as errors.
type errUnsupported string

func (e errUnsupported) Error() string { return string(e) }

// typeNames maps the type words the files may use (our own, as "ua:"
// prefixes or CSV type columns, MISP attribute types and Zeek intel types)
// to a type; the empty Type means "infer from the value".
var typeNames = map[string]Type{
	"ip": "", "ipv4": "", "ipv6": "", "cidr": "", "subnet": "", "ip-src": "", "ip-dst": "", "ip-src|port": "", "ip-dst|port": "",
	"addr": "", "intel::addr": "", "intel::subnet": "",
	"domain": TypeDomain, "hostname": TypeDomain, "host": TypeDomain, "fqdn": TypeDomain, "domain-name": TypeDomain,
	"hostname|port": TypeDomain, "intel::domain": TypeDomain,
	"url": TypeURL, "uri": TypeURL, "link": TypeURL, "intel::url": TypeURL,
	"ua": TypeUA, "user-agent": TypeUA, "useragent": TypeUA, "user_agent": TypeUA, "intel::software": TypeUA,
	"ja3": TypeJA3, "ja3-fingerprint-md5": TypeJA3, "ja3_hash": TypeJA3, "ja3hash": TypeJA3,
}

// ipTypeNames are the type words that accept only an address or a range.
var ipTypeNames = map[string]bool{
	"ip": true, "ipv4": true, "ipv6": true, "cidr": true, "subnet": true, "ip-src": true, "ip-dst": true,
	"ip-src|port": true, "ip-dst|port": true, "addr": true, "intel::addr": true, "intel::subnet": true,
}

// classify checks and normalises value as an indicator of the type named by
// typeName (a key of typeNames, lower case; "" to infer). It returns the
// type and the value to keep (value itself when it needs no change, so that
// it shares the caller's memory).
func classify(typeName, value string) (Type, string, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return "", "", fmt.Errorf("empty value")
	}
	t, known := typeNames[typeName]
	if !known && typeName != "" {
		return "", "", errUnsupported("unsupported type " + typeName)
	}
	switch typeName {
	case "ip-src|port", "ip-dst|port":
		value, _, _ = strings.Cut(value, "|")
	case "hostname|port":
		value, _, _ = strings.Cut(value, "|")
	case "uri":
		// A MISP uri is a path without a host: nothing to match it with.
		if !strings.Contains(value, "://") {
			return "", "", errUnsupported("uri without host")
		}
	}
	if t == "" {
		t = inferType(value)
		if t == "" {
			return "", "", fmt.Errorf("%q is not an IP address, CIDR range, domain or URL (prefix it with ua: or ja3: for those)", value)
		}
		if ipTypeNames[typeName] && t != TypeIPv4 && t != TypeIPv6 && t != TypeCIDR {
			return "", "", fmt.Errorf("%q is not an IP address or CIDR range", value)
		}
		if t != TypeURL {
			return t, value, nil // inferType checked it
		}
	}
	if err := check(t, value); err != nil {
		return "", "", err
	}
	return t, value, nil
}

// inferType guesses the type of a bare value: an address, a range, a URL or
// a domain; "" when it is none of those. An address, range or domain it
// returns is valid; a URL still needs [check].
func inferType(v string) Type {
	v = refang(v)
	if strings.Contains(v, "://") {
		return TypeURL
	}
	// Only a value that could be an address is parsed as one: a failed
	// parse allocates its error.
	if v != "" && ('0' <= v[0] && v[0] <= '9' || strings.IndexByte(v, ':') >= 0) {
		if strings.IndexByte(v, '/') < 0 {
			if a, err := netip.ParseAddr(v); err == nil {
				if a.Zone() != "" {
					return ""
				}
				if a.Unmap().Is4() {
					return TypeIPv4
				}
				return TypeIPv6
			}
		} else if _, _, ok := parseIPOrPrefix(v); ok {
			return TypeCIDR
		}
	}
	if i := strings.IndexAny(v, "/?"); i > 0 {
		h := strings.ToLower(hostOnly(v[:i]))
		if validDomain(h) || validIP(h) {
			return TypeURL
		}
	}
	if validDomain(domainKey(v)) {
		return TypeDomain
	}
	return ""
}

// validIP reports whether h is an IPv4 address.
func validIP(h string) bool {
	if h == "" || h[0] < '0' || h[0] > '9' {
		return false
	}
	_, err := netip.ParseAddr(h)
	return err == nil
}

// check reports whether v is a valid value of type t.
func check(t Type, v string) error {
	switch t {
	case TypeIPv4, TypeIPv6, TypeCIDR:
		if _, _, ok := parseIPOrPrefix(refang(v)); !ok {
			return fmt.Errorf("%q is not an IP address or CIDR range", v)
		}
	case TypeDomain:
		if !validDomain(domainKey(v)) {
			return fmt.Errorf("%q is not a domain name", v)
		}
	case TypeURL:
		k, ok := urlKey(v)
		if !ok || !validHost(k[:strings.IndexByte(k, '/')]) {
			return fmt.Errorf("%q is not a URL", v)
		}
	case TypeJA3:
		if !isMD5(v) {
			return fmt.Errorf("%q is not a JA3 hash (32 hex digits)", v)
		}
	case TypeUA:
	default:
		return fmt.Errorf("unknown type %q", t)
	}
	return nil
}

// parseIPOrPrefix parses an address or a CIDR range. An address comes back
// as a full-length prefix with isAddr set; IPv4-mapped IPv6 is unmapped and
// host bits of a range are cleared.
func parseIPOrPrefix(v string) (p netip.Prefix, isAddr, ok bool) {
	if a, err := netip.ParseAddr(v); err == nil {
		if a.Zone() != "" {
			return netip.Prefix{}, false, false
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), true, true
	}
	p, err := netip.ParsePrefix(v)
	if err != nil {
		return netip.Prefix{}, false, false
	}
	if a := p.Addr(); a.Is4In6() {
		bits := p.Bits() - 96
		if bits < 0 {
			return netip.Prefix{}, false, false
		}
		p = netip.PrefixFrom(a.Unmap(), bits)
	}
	return p.Masked(), false, true
}

// refang undoes the usual defanging of shared indicators: "hxxp://",
// "[.]", "(.)", "[:]".
func refang(v string) string {
	if strings.IndexByte(v, '[') < 0 && strings.IndexByte(v, '(') < 0 && !strings.HasPrefix(v, "hxxp") {
		return v
	}
	r := strings.NewReplacer("[.]", ".", "(.)", ".", "[dot]", ".", "[:]", ":", "[://]", "://")
	v = r.Replace(v)
	if strings.HasPrefix(v, "hxxp") {
		v = "http" + v[4:]
	}
	return v
}

// domainKey normalises a domain indicator: refanged, lower case, without a
// leading "*." or "." and without a trailing dot.
func domainKey(v string) string {
	v = strings.ToLower(refang(v))
	v = strings.TrimPrefix(v, "*.")
	v = strings.TrimPrefix(v, ".")
	return strings.TrimSuffix(v, ".")
}

// validDomain reports whether d (lower case) is a host name with at least
// two labels: letters, digits, '-' and '_' in labels of 1 to 63 bytes, the
// last one not all digits (so that "300.1.2.3" is no domain).
func validDomain(d string) bool {
	if len(d) == 0 || len(d) > 253 || strings.IndexByte(d, '.') < 0 {
		return false
	}
	label, digits := 0, 0
	for i := 0; i < len(d); i++ {
		c := d[i]
		switch {
		case c == '.':
			if label == 0 {
				return false
			}
			label, digits = 0, 0
			continue
		case '0' <= c && c <= '9':
			digits++
		case 'a' <= c && c <= 'z', c == '-', c == '_':
		default:
			return false
		}
		label++
		if label > 63 {
			return false
		}
	}
	return label > 0 && digits < label
}

// validHost reports whether h (lower case, no port) may be the host of a
// URL: a domain, a single-label name, an IPv4 address or a bracketed IPv6
// address.
func validHost(h string) bool {
	if h == "" {
		return false
	}
	if h[0] == '[' && h[len(h)-1] == ']' {
		_, err := netip.ParseAddr(h[1 : len(h)-1])
		return err == nil
	}
	if _, err := netip.ParseAddr(h); err == nil {
		return true
	}
	if strings.IndexByte(h, '.') < 0 {
		return validDomain(h + ".x") // a single label, "localhost"
	}
	return validDomain(h)
}

// hostOnly strips userinfo and port from a URL authority.
func hostOnly(auth string) string {
	if i := strings.LastIndexByte(auth, '@'); i >= 0 {
		auth = auth[i+1:]
	}
	if strings.HasPrefix(auth, "[") {
		if i := strings.IndexByte(auth, ']'); i > 0 {
			return auth[:i+1]
		}
		return auth
	}
	if i := strings.IndexByte(auth, ':'); i >= 0 {
		return auth[:i]
	}
	return auth
}

// urlKey normalises a URL indicator for matching: the scheme, userinfo,
// port and fragment are dropped, the host is lower case without a trailing
// dot, and an empty path becomes "/". The path and query keep their case
// and their percent-encoding. ok is false when there is no host.
func urlKey(v string) (key string, ok bool) {
	v = refang(strings.TrimSpace(v))
	if i := strings.Index(v, "://"); i >= 0 {
		v = v[i+3:]
	} else {
		v = strings.TrimPrefix(v, "//")
	}
	end := strings.IndexAny(v, "/?#")
	if end < 0 {
		end = len(v)
	}
	host := hostOnly(v[:end])
	if host == "" {
		return "", false
	}
	b := appendURLKey(make([]byte, 0, len(v)+1), host, v[end:])
	return string(b), true
}

// appendURLKey appends the match key of the URL with the given host
// (without port) and rest (path, query and fragment) to dst.
func appendURLKey(dst []byte, host, rest string) []byte {
	host = strings.TrimSuffix(host, ".")
	return appendRest(appendLower(dst, host), rest)
}

// appendRest appends the path and query of a URL key: rest without its
// fragment, with a leading '/'.
func appendRest(dst []byte, rest string) []byte {
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		rest = rest[:i]
	}
	if rest == "" || rest[0] != '/' {
		dst = append(dst, '/')
	}
	return append(dst, rest...)
}

// appendLower appends s in ASCII lower case.
func appendLower(dst []byte, s string) []byte {
	n := len(dst)
	dst = append(dst, s...)
	for i := n; i < len(dst); i++ {
		if c := dst[i]; 'A' <= c && c <= 'Z' {
			dst[i] = c + 'a' - 'A'
		}
	}
	return dst
}

// isMD5 reports whether v is 32 hexadecimal digits.
func isMD5(v string) bool {
	if len(v) != 32 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
