package ioc

import (
	"net/netip"
	"strings"
)

// How an indicator answers a [Set.Lookup] query.
const (
	// FoundEqual: the indicator's value is the query (ignoring case).
	FoundEqual = "equal"
	// FoundCovers: the indicator matches the query as an event value: an
	// address range that holds the queried address, or a domain of which
	// the queried host is a subdomain.
	FoundCovers = "covers"
	// FoundContains: the indicator's value holds the query (ignoring
	// case).
	FoundContains = "contains"
)

// Found is an indicator that [Set.Lookup] found, and how it answers the
// query (FoundEqual, FoundCovers or FoundContains).
type Found struct {
	Indicator
	How string `json:"how"`
}

// Lookup answers "which file and line holds this value": it returns the
// indicators of s (those in use: expired and superseded ones are not in a
// Set) whose value is q, whose range or domain would match q as an event
// value, or whose value holds q, ignoring case; equal and covering ones
// first, then by file and line. At most limit are returned (limit <= 0
// means 100), and more reports that others were found. It reads every
// indicator: a million take tens of milliseconds. q is refanged ("[.]"
// and the like) first.
func (s *Set) Lookup(q string, limit int) (found []Found, more bool) {
	if limit <= 0 {
		limit = 100
	}
	q = strings.TrimSpace(refang(q))
	if s == nil || q == "" {
		return nil, false
	}
	lq := strings.ToLower(q)
	addr, err := netip.ParseAddr(q)
	isAddr := err == nil && addr.Zone() == ""
	addr = addr.Unmap()
	var first, rest []Found
	total := 0
	s.eachRef(func(g *indGroup, i uint32) {
		v := g.value(i)
		how := lookupHow(g.typeOf(i), v, q, lq, addr, isAddr)
		if how == "" {
			return
		}
		total++
		if how == FoundContains {
			if len(rest) < limit {
				rest = append(rest, Found{Indicator: *g.indicator(i), How: how})
			}
			return
		}
		if len(first) < limit {
			first = append(first, Found{Indicator: *g.indicator(i), How: how})
		}
	})
	found = append(first, rest...)
	if len(found) > limit {
		found = found[:limit]
	}
	return found, total > len(found)
}

// lookupHow says how the indicator of type t and value v answers the query
// q (lq in lower case; addr when isAddr), or "".
func lookupHow(t Type, v, q, lq string, addr netip.Addr, isAddr bool) string {
	if strings.EqualFold(v, q) {
		return FoundEqual
	}
	switch t {
	case TypeIPv4, TypeIPv6, TypeCIDR:
		if isAddr {
			if p, _, ok := parseIPOrPrefix(v); ok && p.Contains(addr) {
				return FoundCovers
			}
		}
	case TypeDomain:
		if k := domainKey(v); k != "" && strings.HasSuffix(lq, "."+k) {
			return FoundCovers
		}
	}
	if len(v) >= len(lq) && containsFold(v, lq) {
		return FoundContains
	}
	return ""
}

// containsFold reports whether s holds lower (lower case), ignoring the
// case of s, without allocating for ASCII.
func containsFold(s, lower string) bool {
	n := len(lower)
	for i := 0; i+n <= len(s); i++ {
		if strings.EqualFold(s[i:i+n], lower) {
			return true
		}
	}
	return false
}
