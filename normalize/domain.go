package normalize

//go:generate go run gen_psl.go -in /usr/share/publicsuffix/public_suffix_list.dat -out psl_table.go

import (
	"net/netip"
	"strings"
	"sync"
)

// Public Suffix List rule flags, by rule name without "*." or "!".
const (
	pslNormal    = 1 << iota // "name"
	pslWildcard              // "*.name"
	pslException             // "!name"
)

var pslRules = sync.OnceValue(func() map[string]uint8 {
	m := make(map[string]uint8, 7500)
	for _, r := range strings.Split(strings.TrimSuffix(pslICANN, "\n"), "\n") {
		switch {
		case strings.HasPrefix(r, "*."):
			m[r[2:]] |= pslWildcard
		case strings.HasPrefix(r, "!"):
			m[r[1:]] |= pslException
		default:
			m[r] |= pslNormal
		}
	}
	return m
})

// splitDomain splits a host name into its registered domain, public suffix
// (top-level domain) and subdomain the way tldextract does with the ICANN
// rules of the Public Suffix List and no default "*" rule (mapping spec
// R5): a name under an unlisted TLD has only a subdomain; case is kept; a
// scheme, user info, port, path, query or fragment around the host is
// ignored; IP addresses are not split. The results are substrings of name.
func splitDomain(name string) (registered, tld, subdomain string) {
	host := name
	if i := strings.Index(host, "://"); i >= 0 {
		host = host[i+3:]
	}
	host = strings.TrimPrefix(host, "//")
	if i := strings.IndexAny(host, "/?#"); i >= 0 {
		host = host[:i]
	}
	if i := strings.LastIndexByte(host, '@'); i >= 0 {
		host = host[i+1:]
	}
	if strings.HasPrefix(host, "[") {
		return "", "", "" // an IPv6 literal
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 && strings.IndexByte(host, ':') == i {
		host = host[:i]
	}
	host = strings.TrimSuffix(host, ".")
	if host == "" || len(host) > 253 {
		return "", "", ""
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return "", "", ""
	}

	var lower [253]byte
	for i := 0; i < len(host); i++ {
		c := host[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower[i] = c
	}
	lc := lower[:len(host)]
	rules := pslRules()
	// Find where the public suffix starts: the longest matching rule, an
	// exception taking one label off its rule.
	suffix := -1 // byte offset of the public suffix in host
	for start := 0; ; {
		dot := strings.IndexByte(host[start:], '.')
		rest := start + dot + 1 // the labels after the first one
		if f := rules[string(lc[start:])]; f&pslException != 0 {
			if dot >= 0 {
				suffix = rest
			}
			break
		} else if f&pslNormal != 0 {
			suffix = start
			break
		}
		if dot < 0 {
			break
		}
		if rules[string(lc[rest:])]&pslWildcard != 0 {
			suffix = start
			break
		}
		start = rest
	}
	if suffix < 0 {
		// No rule: no TLD, and the last label is the "domain".
		if i := strings.LastIndexByte(host, '.'); i >= 0 {
			return "", "", host[:i]
		}
		return "", "", ""
	}
	tld = host[suffix:]
	if suffix == 0 {
		return "", tld, ""
	}
	before := host[:suffix-1]
	i := strings.LastIndexByte(before, '.')
	registered = host[i+1:]
	if i >= 0 {
		subdomain = host[:i]
	}
	if before[i+1:] == "" {
		registered = ""
	}
	return registered, tld, subdomain
}
