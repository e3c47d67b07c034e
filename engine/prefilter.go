package engine

import (
	"slices"
	"sort"
	"unsafe"
)

// prefilter picks, for an event, the candidate rules: those without
// literals, and those one of whose literals occurs in its field. A rule
// that is not a candidate cannot match, so it is not evaluated.
//
// Without keyword rules the prefilter reads each field it has literals for
// (Event.Each) and scans its values. With keyword rules it must read every
// value of the event anyway (Event.Range), so it makes that the only pass:
// each value is scanned once, with the keyword literals plus those of its
// field when the field has any.
type prefilter struct {
	always  []uint64 // rules evaluated on every event
	filters []slotFilter
	kw      *litFilter // keyword literals, scanned over every field; nil when none
	// byLen lists, by length of the field name, the filters of the fields
	// that Range yields (derived fields come from their source's values).
	byLen [maxRangeName + 1][]int32
}

// maxRangeName bounds the names of the fields matched during Range.
const maxRangeName = 63

// slotFilter is the prefilter of one field.
type slotFilter struct {
	slot int
	name string
	ac   *litFilter // the field's literals; nil when none
	// kwac is ac plus the keyword literals, for Range.
	kwac *litFilter
	// exact maps lowered whole values to the rules that need them; nil
	// when none.
	exact map[string][]int32
	// sigs has bit exactSig(v) set for each exact value v.
	sigs [1 << exactSigBits / 64]uint64
	// derived are the filters of the fields derived from this one.
	derived []int32
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

// buildPrefilter builds the prefilter of rs, whose fields are slots.
func buildPrefilter(rs []*compiledRule, slots []slotDef) prefilter {
	nwords := (len(rs) + 63) / 64
	pf := prefilter{always: make([]uint64, nwords)}
	byslot, exact := collectLiterals(rs, pf.always)
	var kw *slotPats
	if p := byslot[-1]; p != nil {
		kw = p
		pf.kw = newLitFilter(p.pats, p.rules)
	}
	// One filter per field with literals, and for the sources of derived
	// fields with literals.
	index := map[int]int{}
	var add func(s int) int
	add = func(s int) int {
		if i, ok := index[s]; ok {
			return i
		}
		f := slotFilter{slot: s, name: slots[s].name}
		if p := byslot[s]; p != nil {
			f.ac = newLitFilter(p.pats, p.rules)
			if kw != nil {
				f.kwac = newLitFilter(append(slices.Clip(p.pats), kw.pats...), append(slices.Clip(p.rules), kw.rules...))
			}
		}
		if m := exact[s]; m != nil {
			f.exact = m
			for v := range m {
				h := exactSig(v)
				f.sigs[h>>6] |= 1 << (h & 63)
			}
		}
		i := len(pf.filters)
		pf.filters = append(pf.filters, f)
		index[s] = i
		if d := slots[s]; d.derived {
			src := add(d.from)
			pf.filters[src].derived = append(pf.filters[src].derived, int32(i))
		}
		return i
	}
	var need []int
	for s := range byslot {
		if s >= 0 {
			need = append(need, s)
		}
	}
	for s := range exact {
		need = append(need, s)
	}
	sort.Ints(need)
	for _, s := range need {
		add(s)
	}
	for i := range pf.filters {
		f := &pf.filters[i]
		if !slots[f.slot].derived && len(f.name) <= maxRangeName {
			pf.byLen[len(f.name)] = append(pf.byLen[len(f.name)], int32(i))
		}
	}
	return pf
}

// rangeable reports whether the Range pass can feed every filter: each
// field that is not derived has a name Range can be matched on.
func (pf *prefilter) rangeable(slots []slotDef) bool {
	for i := range pf.filters {
		if f := &pf.filters[i]; !slots[f.slot].derived && len(f.name) > maxRangeName {
			return false
		}
	}
	return true
}

// prefilter marks the candidate rules of the event in c.
func (c *matchCtx) prefilter() {
	pf := &c.set.pf
	copy(c.bits, pf.always)
	switch {
	case !c.set.rangePF:
		c.prefilterFields()
		if pf.kw != nil {
			c.ev.Range(c.scanKeywords)
		}
	case pf.kw != nil:
		c.ev.Range(c.scanAll)
	default:
		c.ev.Range(c.scanFields)
	}
}

// prefilterFields scans the values of each field with literals.
func (c *matchCtx) prefilterFields() {
	pf := &c.set.pf
	for i := range pf.filters {
		f := &pf.filters[i]
		if f.ac == nil && f.exact == nil {
			continue
		}
		vs, _ := c.values(f.slot)
		for _, v := range vs {
			c.filterValue(f, f.ac, v)
		}
	}
}

// filterValue applies the field filter f, scanning with ac, to one value.
func (c *matchCtx) filterValue(f *slotFilter, ac *litFilter, v string) {
	var nonASCII bool
	if ac != nil {
		nonASCII = ac.scan(v, c.bits)
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

// scanKeywords scans one value of the event for keyword literals.
func (c *matchCtx) scanKeywords(_, v string) bool {
	kw := c.set.pf.kw
	if len(v) >= kw.minLen && !c.seenText(v) {
		kw.scan(v, c.bits)
	}
	return true
}

// scanAll scans one value of the event for the keyword literals and, when
// its field has literals, for the field's.
func (c *matchCtx) scanAll(field, v string) bool {
	pf := &c.set.pf
	if len(field) <= maxRangeName {
		for _, fi := range pf.byLen[len(field)] {
			f := &pf.filters[fi]
			if f.name != field {
				continue
			}
			switch {
			case c.seenText(v): // already scanned for keywords
				c.filterValue(f, f.ac, v)
			case f.kwac != nil:
				c.filterValue(f, f.kwac, v)
			default:
				pf.kw.scan(v, c.bits)
				c.filterValue(f, nil, v)
			}
			for _, di := range f.derived {
				c.filterDerived(di, v)
			}
			return true
		}
	}
	if len(v) >= pf.kw.minLen && !c.seenText(v) {
		pf.kw.scan(v, c.bits)
	}
	return true
}

// scanFields scans one value of the event for the literals of its field,
// when it has any.
func (c *matchCtx) scanFields(field, v string) bool {
	pf := &c.set.pf
	if len(field) <= maxRangeName {
		for _, fi := range pf.byLen[len(field)] {
			f := &pf.filters[fi]
			if f.name != field {
				continue
			}
			c.filterValue(f, f.ac, v)
			for _, di := range f.derived {
				c.filterDerived(di, v)
			}
			return true
		}
	}
	return true
}

// filterDerived applies the filter of a derived field to the value it
// derives from the source value v.
func (c *matchCtx) filterDerived(fi int32, v string) {
	x, ok := extension(v)
	if !ok {
		return
	}
	f := &c.set.pf.filters[fi]
	c.filterValue(f, f.ac, x)
	for _, di := range f.derived {
		c.filterDerived(di, x)
	}
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
