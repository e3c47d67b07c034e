package engine

import (
	"net/netip"
	"strconv"
	"strings"
	"unsafe"

	"github.com/raywatch/raywatch/normalize"
)

// matchCtx is the per-event scratch space of a match: the event's values of
// the fields the rule set reads, fetched and lowered on first use, and the
// candidate bitset. Contexts are pooled so the common path does not
// allocate; one context serves one goroutine at a time.
type matchCtx struct {
	set     *ruleSet
	ev      *normalize.Event
	fetched []bool
	present []bool
	vals    [][]string
	lowered []bool
	lows    [][]string
	bits    []uint64
	arena   []byte
	seen    [256]seenText // texts already scanned by the keyword prefilter, by address
	gen     uint32
	// untilSample counts down the events until one whose rule
	// evaluations are timed.
	untilSample int
}

func newMatchCtx(set *ruleSet) *matchCtx {
	n := len(set.slots)
	return &matchCtx{
		set:     set,
		fetched: make([]bool, n),
		present: make([]bool, n),
		vals:    make([][]string, n),
		lowered: make([]bool, n),
		lows:    make([][]string, n),
		bits:    make([]uint64, set.nwords),
		arena:   make([]byte, 0, 4096),
	}
}

func (c *matchCtx) reset(ev *normalize.Event) {
	c.ev = ev
	clear(c.fetched)
	clear(c.lowered)
	clear(c.bits)
	c.arena = c.arena[:0]
	c.gen++
	if c.gen == 0 {
		c.seen = [256]seenText{}
		c.gen = 1
	}
}

// seenText is a slot of the keyword prefilter's table of scanned texts.
// It holds the text's address as an integer: entries from earlier events
// (other generations) are never compared, so they need not keep their
// texts alive.
type seenText struct {
	p   uintptr
	n   int
	gen uint32
}

// release drops references to the event so the pool does not keep it.
func (c *matchCtx) release() {
	c.ev = nil
	for i := range c.vals {
		clear(c.vals[i])
		c.vals[i] = c.vals[i][:0]
		clear(c.lows[i])
		c.lows[i] = c.lows[i][:0]
	}
}

// values returns the event's values of slot and whether the field is
// present.
func (c *matchCtx) values(slot int) ([]string, bool) {
	if c.fetched[slot] {
		return c.vals[slot], c.present[slot]
	}
	c.fetched[slot] = true
	d := &c.set.slots[slot]
	vs := c.vals[slot][:0]
	present := false
	if d.derived {
		src, ok := c.values(d.from)
		if ok {
			for _, v := range src {
				if x, ok := extension(v); ok {
					vs = append(vs, x)
					present = true
				}
			}
		}
	} else {
		present = c.ev.EachField(d.field, func(v string) bool {
			vs = append(vs, v)
			return true
		})
	}
	c.vals[slot], c.present[slot] = vs, present
	return vs, present
}

// extension returns the file extension of the last segment of a URL path.
func extension(p string) (string, bool) {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		p = p[i+1:]
	}
	i := strings.LastIndexByte(p, '.')
	if i < 0 || i == len(p)-1 {
		return "", false
	}
	return p[i+1:], true
}

// lowerValues returns the lowered values of slot.
func (c *matchCtx) lowerValues(slot int) []string {
	vs, _ := c.values(slot)
	if c.lowered[slot] {
		return c.lows[slot]
	}
	c.lowered[slot] = true
	ls := c.lows[slot][:0]
	for _, v := range vs {
		ls = append(ls, c.lower(v))
	}
	c.lows[slot] = ls
	return ls
}

// lower returns s in lower case, without allocating when s is ASCII.
func (c *matchCtx) lower(s string) string {
	upper := false
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b >= 0x80 {
			return strings.ToLower(s)
		}
		if 'A' <= b && b <= 'Z' {
			upper = true
		}
	}
	if !upper {
		return s
	}
	start := len(c.arena)
	for i := 0; i < len(s); i++ {
		b := s[i]
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		c.arena = append(c.arena, b)
	}
	b := c.arena[start:]
	return unsafe.String(unsafe.SliceData(b), len(b))
}

func (c *matchCtx) evalNode(r *compiledRule, n *cnode) bool {
	switch n.kind {
	case nSearch:
		return c.evalSearch(r.searches[n.search])
	case nAnd:
		for _, k := range n.kids {
			if !c.evalNode(r, k) {
				return false
			}
		}
		return true
	case nOr:
		for _, k := range n.kids {
			if c.evalNode(r, k) {
				return true
			}
		}
		return false
	case nNot:
		return !c.evalNode(r, n.kids[0])
	}
	return false
}

func (c *matchCtx) evalSearch(s *cSearch) bool {
	for _, m := range s.maps {
		if c.evalMap(m) {
			return true
		}
	}
	return false
}

func (c *matchCtx) evalMap(m []*fieldTest) bool {
	for _, ft := range m {
		if !c.evalField(ft) {
			return false
		}
	}
	return true
}

func (c *matchCtx) evalField(ft *fieldTest) bool {
	if ft.keyword {
		_, _, ok := c.evalKeyword(ft)
		return ok
	}
	for _, sl := range ft.slots {
		if c.evalSlot(ft, sl) {
			return true
		}
	}
	return false
}

func (c *matchCtx) evalSlot(ft *fieldTest, sl int) bool {
	_, present := c.values(sl)
	if ft.exists >= 0 {
		return present == (ft.exists == 1)
	}
	if ft.neq {
		if !present {
			return true
		}
		for i := range ft.vals {
			if c.test(&ft.vals[i], sl, present) {
				return false
			}
		}
		return !c.testLists(ft, sl, present)
	}
	if ft.all {
		for i := range ft.vals {
			if !c.test(&ft.vals[i], sl, present) {
				return false
			}
		}
		return true
	}
	for i := range ft.vals {
		if c.test(&ft.vals[i], sl, present) {
			return true
		}
	}
	return c.testLists(ft, sl, present)
}

// testLists reports whether any value of slot is in a literal set of ft.
func (c *matchCtx) testLists(ft *fieldTest, sl int, present bool) bool {
	if !present {
		return false
	}
	for _, ls := range ft.lists {
		vs := c.vals[sl]
		if !ls.cased {
			vs = c.lowerValues(sl)
		}
		for _, v := range vs {
			if ls.match(v) {
				return true
			}
		}
	}
	return false
}

// test reports whether any value of slot passes vt.
func (c *matchCtx) test(vt *valueTest, sl int, present bool) bool {
	if vt.kind == vNull {
		return !present
	}
	if !present {
		return false
	}
	if vt.kind == vAny {
		return true
	}
	raw := c.vals[sl]
	vs := raw
	if vt.folds() {
		vs = c.lowerValues(sl)
	}
	for i, v := range vs {
		if vt.ref >= 0 {
			if c.testRef(vt, v) {
				return true
			}
			continue
		}
		if testValue(vt, v, raw[i]) {
			return true
		}
	}
	return false
}

// folds reports whether vt compares lowered text.
func (vt *valueTest) folds() bool {
	switch vt.kind {
	case vEq, vContains, vPrefix, vSuffix, vGlob:
		return !vt.cased
	}
	return false
}

// testValue tests one value: v is the text to compare (lowered when vt
// folds case), raw the event's text.
func testValue(vt *valueTest, v, raw string) bool {
	switch vt.kind {
	case vAny:
		return true
	case vEq:
		return v == vt.s
	case vContains:
		return strings.Contains(v, vt.s)
	case vPrefix:
		return strings.HasPrefix(v, vt.s)
	case vSuffix:
		return strings.HasSuffix(v, vt.s)
	case vGlob:
		return globMatch(vt.glob, v)
	case vRe:
		return vt.re.MatchString(raw)
	case vCIDR:
		a, err := netip.ParseAddr(raw)
		if err != nil {
			return false
		}
		a = a.Unmap()
		for _, p := range vt.nets {
			if p.Contains(a) {
				return true
			}
		}
		return false
	case vNum:
		f, err := strconv.ParseFloat(strings.TrimSpace(raw), 64)
		if err != nil {
			return false
		}
		switch vt.op {
		case "gt":
			return f > vt.num
		case "gte":
			return f >= vt.num
		case "lt":
			return f < vt.num
		case "lte":
			return f <= vt.num
		}
	}
	return false
}

// testRef compares v with the values of the fieldref field.
func (c *matchCtx) testRef(vt *valueTest, v string) bool {
	refs, ok := c.values(vt.ref)
	if !ok {
		return false
	}
	if !vt.cased {
		refs = c.lowerValues(vt.ref)
	}
	for _, r := range refs {
		switch vt.kind {
		case vEq:
			if v == r {
				return true
			}
		case vContains:
			if strings.Contains(v, r) {
				return true
			}
		case vPrefix:
			if strings.HasPrefix(v, r) {
				return true
			}
		case vSuffix:
			if strings.HasSuffix(v, r) {
				return true
			}
		}
	}
	return false
}

// evalKeyword tests a keyword search over every value of the event. It
// returns the field and value that satisfied it (the last one for "all").
func (c *matchCtx) evalKeyword(ft *fieldTest) (string, string, bool) {
	var field, value string
	if !ft.all {
		found := false
		c.ev.Range(func(f, v string) bool {
			lv := c.lower(v)
			for i := range ft.vals {
				vt := &ft.vals[i]
				x := v
				if vt.folds() {
					x = lv
				}
				if vt.kind != vNull && testValue(vt, x, v) {
					field, value, found = f, v, true
					return false
				}
			}
			for _, ls := range ft.lists {
				x := lv
				if ls.cased {
					x = v
				}
				if ls.match(x) {
					field, value, found = f, v, true
					return false
				}
			}
			return true
		})
		return field, value, found
	}
	var done []bool
	if len(ft.vals) <= 64 {
		var mask, want uint64
		want = 1<<uint(len(ft.vals)) - 1
		if len(ft.vals) == 64 {
			want = ^uint64(0)
		}
		c.ev.Range(func(f, v string) bool {
			lv := c.lower(v)
			for i := range ft.vals {
				vt := &ft.vals[i]
				if mask&(1<<uint(i)) != 0 || vt.kind == vNull {
					continue
				}
				x := v
				if vt.folds() {
					x = lv
				}
				if testValue(vt, x, v) {
					mask |= 1 << uint(i)
					field, value = f, v
				}
			}
			return mask != want
		})
		return field, value, mask == want
	}
	done = make([]bool, len(ft.vals))
	left := len(ft.vals)
	c.ev.Range(func(f, v string) bool {
		lv := c.lower(v)
		for i := range ft.vals {
			vt := &ft.vals[i]
			if done[i] {
				continue
			}
			x := v
			if vt.folds() {
				x = lv
			}
			if testValue(vt, x, v) {
				done[i] = true
				left--
				field, value = f, v
			}
		}
		return left > 0
	})
	return field, value, left == 0
}
