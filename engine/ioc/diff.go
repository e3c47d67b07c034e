package ioc

import (
	"strings"
)

// MatchKey returns the key under which [Set.Match] compares an indicator of
// type t and value v: two indicators with the same key match the same
// events. Addresses and ranges are keyed by their canonical prefix,
// domains by their lower-case refanged form, URLs by host (lower case) plus
// path and query, JA3 hashes in lower case, user-agents as they are. ok is
// false for a value that the set would not index.
func MatchKey(t Type, v string) (key string, ok bool) {
	switch t {
	case TypeIPv4, TypeIPv6, TypeCIDR:
		p, _, valid := parseIPOrPrefix(refang(v))
		if !valid {
			return "", false
		}
		return "ip:" + p.String(), true
	case TypeDomain:
		k := domainKey(v)
		if !validDomain(k) {
			return "", false
		}
		return "domain:" + k, true
	case TypeURL:
		k, valid := urlKey(v)
		if !valid {
			return "", false
		}
		return "url:" + k, true
	case TypeUA:
		return "ua:" + v, true
	case TypeJA3:
		if !isMD5(v) {
			return "", false
		}
		return "ja3:" + strings.ToLower(v), true
	}
	return "", false
}

// NewOnly returns the indicators of s that old lacks: those whose
// [MatchKey] no indicator of old has. It is what a set gained when its
// folder changed (a file added or grown); an indicator that only moved to
// another file or line is not new. Each key is returned once, with the
// file and line of its first indicator in s (files in name order). A nil
// old has no indicators.
func (s *Set) NewOnly(old *Set) []Indicator {
	if s == nil {
		return nil
	}
	have := make(map[string]bool, old.Len())
	if old != nil {
		old.eachRef(func(g *indGroup, i uint32) {
			if k, ok := MatchKey(g.typeOf(i), g.value(i)); ok {
				have[k] = true
			}
		})
	}
	var out []Indicator
	s.eachRef(func(g *indGroup, i uint32) {
		k, ok := MatchKey(g.typeOf(i), g.value(i))
		if !ok || have[k] {
			return
		}
		have[k] = true
		out = append(out, *g.indicator(i))
	})
	return out
}

// eachRef calls fn with every indexed indicator of s, segment by segment,
// in index order.
func (s *Set) eachRef(fn func(g *indGroup, i uint32)) {
	for _, seg := range s.segs {
		for _, ref := range seg.refs {
			fn(seg.group(ref), ref.i)
		}
	}
}
