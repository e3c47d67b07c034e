package engine

import (
	"maps"
	"slices"
	"unsafe"
)

// prefilter picks, for an event, the candidate rules: those without
// literals, and those one of whose literals occurs in its field. A rule
// that is not a candidate cannot match, so it is not evaluated.
//
// The prefilter reads each field it has literals for (Event.Each) and
// scans its values. The keyword literals, which may occur in any value,
// are searched for in one pass over the event's texts (Event.Texts: every
// value in one piece), so that the event's flat view is never walked.
type prefilter struct {
	always  []uint64 // rules evaluated on every event
	filters []slotFilter
	kw      *litFilter // keyword literals, scanned over every value; nil when none
}

// slotFilter is the prefilter of one field.
type slotFilter struct {
	slot int
	ac   *litFilter // the field's literals; nil when none
	// exact maps lowered whole values to the rules that need them; nil
	// when none.
	exact map[string][]int32
	// sigs has bit exactSig(v) set for each exact value v.
	sigs [1 << exactSigBits / 64]uint64
}

// mayEqual reports whether the ASCII text v may, lowered, be one of the
// exact values.
func (f *slotFilter) mayEqual(v string) bool {
	h := exactSig(v)
	return f.sigs[h>>6]&(1<<(h&63)) != 0
}

const exactSigBits = 12

// exactSig hashes the length and the last four bytes of v, with bit 0x20
// set in each, which folds ASCII case.
func exactSig(v string) uint32 {
	n := len(v)
	var t uint32
	if n >= 4 {
		t = uint32(v[n-4]) | uint32(v[n-3])<<8 | uint32(v[n-2])<<16 | uint32(v[n-1])<<24
	} else {
		for i := 0; i < n; i++ {
			t |= uint32(v[i]) << (8 * i)
		}
	}
	t |= 0x20202020
	return (t ^ uint32(n)*0x9E3779B1) * 0x85EBCA6B >> (32 - exactSigBits)
}

// slotPats are the substring literals of one field (slot -1: keywords)
// and the rules that need each.
type slotPats struct {
	idx   map[string]int
	pats  []string
	rules [][]int32
}

// collectLiterals gathers, per field, the rules' substring literals and
// exact values; a rule without literals is marked in always.
func collectLiterals(rs []*compiledRule, always []uint64) (map[int]*slotPats, map[int]map[string][]int32) {
	byslot := map[int]*slotPats{}
	exact := map[int]map[string][]int32{}
	for i, cr := range rs {
		lits, ok := cr.literals()
		if !ok {
			always[i>>6] |= 1 << (uint(i) & 63)
			continue
		}
		for _, l := range lits {
			if l.exact {
				m := exact[l.slot]
				if m == nil {
					m = map[string][]int32{}
					exact[l.slot] = m
				}
				if !slices.Contains(m[l.s], int32(i)) {
					m[l.s] = append(m[l.s], int32(i))
				}
				continue
			}
			p := byslot[l.slot]
			if p == nil {
				p = &slotPats{idx: map[string]int{}}
				byslot[l.slot] = p
			}
			j, ok := p.idx[l.s]
			if !ok {
				j = len(p.pats)
				p.idx[l.s] = j
				p.pats = append(p.pats, l.s)
				p.rules = append(p.rules, nil)
			}
			if !slices.Contains(p.rules[j], int32(i)) {
				p.rules[j] = append(p.rules[j], int32(i))
			}
		}
	}
	return byslot, exact
}

// buildPrefilter builds the prefilter of rs.
func buildPrefilter(rs []*compiledRule) prefilter {
	nwords := (len(rs) + 63) / 64
	pf := prefilter{always: make([]uint64, nwords)}
	byslot, exact := collectLiterals(rs, pf.always)
	if p := byslot[-1]; p != nil {
		pf.kw = newLitFilter(p.pats, p.rules)
	}
	// One filter per field with literals (a derived field reads its
	// source's values through matchCtx.values).
	need := map[int]bool{}
	for s := range byslot {
		if s >= 0 {
			need[s] = true
		}
	}
	for s := range exact {
		need[s] = true
	}
	for _, s := range slices.Sorted(maps.Keys(need)) {
		f := slotFilter{slot: s}
		if p := byslot[s]; p != nil {
			f.ac = newLitFilter(p.pats, p.rules)
		}
		if m := exact[s]; m != nil {
			f.exact = m
			for v := range m {
				h := exactSig(v)
				f.sigs[h>>6] |= 1 << (h & 63)
			}
		}
		pf.filters = append(pf.filters, f)
	}
	return pf
}

// prefilter marks the candidate rules of the event in c.
func (c *matchCtx) prefilter() {
	pf := &c.set.pf
	copy(c.bits, pf.always)
	c.prefilterFields()
	if pf.kw == nil {
		return
	}
	if c.set.rangeKW {
		c.ev.Range(c.scanKeywords)
		return
	}
	// One scan over every value: the texts are zero-separated, and a
	// match across two of them (which no value holds) only costs the
	// evaluation of a rule that then does not match.
	if t := c.ev.Texts(); len(t) >= pf.kw.minLen {
		pf.kw.scan(unsafe.String(unsafe.SliceData(t), len(t)), c.bits)
	}
}

// prefilterFields scans the values of each field with literals.
func (c *matchCtx) prefilterFields() {
	pf := &c.set.pf
	for i := range pf.filters {
		f := &pf.filters[i]
		vs, _ := c.values(f.slot)
		for _, v := range vs {
			c.filterValue(f, v)
		}
	}
}

// filterValue applies the field filter f to one value.
func (c *matchCtx) filterValue(f *slotFilter, v string) {
	var nonASCII bool
	if f.ac != nil {
		nonASCII = f.ac.scan(v, c.bits)
	} else if f.exact != nil {
		nonASCII = hasNonASCII(v)
	}
	// Unicode lowering may change the text beyond ASCII folding (the
	// Kelvin sign, three bytes, lowers to k): such values skip mayEqual.
	if f.exact != nil && (nonASCII || f.mayEqual(v)) {
		for _, r := range f.exact[c.lower(v)] {
			c.bits[r>>6] |= 1 << (uint(r) & 63)
		}
	}
}

// scanKeywords scans one value of the event for keyword literals: the
// prefilter from Event.Range, which tests compare with the one from
// Event.Texts.
func (c *matchCtx) scanKeywords(_, v string) bool {
	kw := c.set.pf.kw
	if len(v) >= kw.minLen && !c.seenText(v) {
		kw.scan(v, c.bits)
	}
	return true
}

// seenText reports whether the keyword prefilter has already scanned the
// text v in this event, and records it. Many fields share one string
// (url.original and cloudflare.ClientRequestURI), so each text is scanned
// once.
func (c *matchCtx) seenText(v string) bool {
	p := uintptr(unsafe.Pointer(unsafe.StringData(v)))
	e := &c.seen[(p>>3)&(uintptr(len(c.seen))-1)]
	if e.gen == c.gen && e.p == p && e.n == len(v) {
		return true
	}
	*e = seenText{p, len(v), c.gen}
	return false
}
