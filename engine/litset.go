package engine

import "slices"

// longListMin is the number of plain literal values (equals, contains,
// startswith, endswith) from which a field matcher tests them as one
// [litSet] instead of one by one.
var longListMin = 32

// maxPrefilterList is the longest list whose values still feed the
// prefilter (see [fieldTest.necessary]); a longer one would only fill the
// prefilter's literal filter, so its rule is evaluated on every event.
const maxPrefilterList = 512

// litSet tests a value against many literals at once, at a cost that
// depends on the length of the value, not on the number of literals:
// equality by a hash set, prefixes and suffixes by walking a trie, and
// substrings by an Aho-Corasick automaton. It compares bytes: the caller
// passes lowered text when cased is false (the literals are lowered at
// compile time). A litSet is immutable and safe for concurrent use.
type litSet struct {
	cased bool // compare the event's raw text, not the lowered one
	eq    map[string]struct{}
	pre   *trie // prefixes
	suf   *trie // suffixes, reversed
	sub   *trie // substrings, with failure links
}

// litLists are the literals of a litSet under construction, by kind.
type litLists struct {
	eq, pre, suf, sub []string
}

func (l *litLists) add(vt *valueTest) {
	switch vt.kind {
	case vEq:
		l.eq = append(l.eq, vt.s)
	case vPrefix:
		l.pre = append(l.pre, vt.s)
	case vSuffix:
		l.suf = append(l.suf, reverse(vt.s))
	case vContains:
		l.sub = append(l.sub, vt.s)
	}
}

// build returns the litSet of the lists, or nil when they are empty.
func (l *litLists) build(cased bool) *litSet {
	if len(l.eq)+len(l.pre)+len(l.suf)+len(l.sub) == 0 {
		return nil
	}
	ls := &litSet{cased: cased}
	if len(l.eq) > 0 {
		ls.eq = make(map[string]struct{}, len(l.eq))
		for _, s := range l.eq {
			ls.eq[s] = struct{}{}
		}
	}
	if len(l.pre) > 0 {
		ls.pre = newTrie(l.pre, false)
	}
	if len(l.suf) > 0 {
		ls.suf = newTrie(l.suf, false)
	}
	if len(l.sub) > 0 {
		ls.sub = newTrie(l.sub, true)
	}
	return ls
}

// match reports whether v equals, starts with, ends with or contains one
// of the set's literals, as each literal asks.
func (ls *litSet) match(v string) bool {
	if ls.eq != nil {
		if _, ok := ls.eq[v]; ok {
			return true
		}
	}
	return ls.pre != nil && ls.pre.hasPrefixOf(v) ||
		ls.suf != nil && ls.suf.hasSuffixOf(v) ||
		ls.sub != nil && ls.sub.occursIn(v)
}

// splitLongList moves the plain literal tests of ft.vals (equality,
// contains, prefix, suffix, no fieldref) into literal sets, one per case
// mode, when there are at least longListMin of them. Up to
// maxPrefilterList of them, it keeps them in ft.pfVals for the prefilter.
func (ft *fieldTest) splitLongList() {
	n := 0
	for i := range ft.vals {
		if plainLiteral(&ft.vals[i]) {
			n++
		}
	}
	if n < longListMin {
		return
	}
	var folded, cased litLists
	rest := make([]valueTest, 0, len(ft.vals)-n)
	var moved []valueTest
	if n <= maxPrefilterList {
		moved = make([]valueTest, 0, n)
	}
	for i := range ft.vals {
		vt := &ft.vals[i]
		switch {
		case !plainLiteral(vt):
			rest = append(rest, *vt)
			continue
		case vt.cased:
			cased.add(vt)
		default:
			folded.add(vt)
		}
		if n <= maxPrefilterList {
			moved = append(moved, *vt)
		}
	}
	ft.vals, ft.pfVals = rest, moved
	for _, ls := range []*litSet{folded.build(false), cased.build(true)} {
		if ls != nil {
			ft.lists = append(ft.lists, ls)
		}
	}
}

// plainLiteral reports whether vt compares the value with one literal
// text, which a litSet can do.
func plainLiteral(vt *valueTest) bool {
	switch vt.kind {
	case vEq, vContains, vPrefix, vSuffix:
		return vt.ref < 0
	}
	return false
}

func reverse(s string) string {
	b := []byte(s)
	slices.Reverse(b)
	return string(b)
}

// trie is a byte trie of literals in compact form: nodes are numbered in
// breadth-first order (the root is 0) and the edges of node n are
// labels[first[n]:first[n+1]], sorted. Edge e leads to node e+1: in
// breadth-first order a node's children are numbered as its edges are. With
// failure links it is an Aho-Corasick automaton.
type trie struct {
	root   [256]uint32 // the root's edges, dense; 0: none
	first  []uint32
	labels []byte
	// fail is the longest proper suffix of a node's text that is a node;
	// nil for tries walked only from the start.
	fail []uint32
	// term has bit n set when a literal ends at node n (with failure
	// links: or at a suffix of the node's text).
	term []uint64
}

// newTrie builds the trie of lits, with failure links when substrings are
// to be found. It sorts lits in place.
func newTrie(lits []string, failureLinks bool) *trie {
	slices.Sort(lits)
	lits = slices.Compact(lits)
	// A node per distinct prefix: at most one per byte, plus the root.
	maxNodes := 1
	for _, l := range lits {
		maxNodes += len(l)
	}
	t := &trie{
		first:  make([]uint32, 1, maxNodes+1),
		labels: make([]byte, 0, maxNodes-1),
		term:   make([]uint64, 0, (maxNodes+63)/64),
	}
	// Each node covers the sorted literals lits[lo:hi] that share its
	// text, of length depth; a queue of them in breadth-first order.
	type span struct{ lo, hi, depth int32 }
	queue := make([]span, 1, maxNodes)
	queue[0] = span{0, int32(len(lits)), 0}
	for n := 0; n < len(queue); n++ {
		sp := queue[n]
		lo := sp.lo
		for lo < sp.hi && len(lits[lo]) == int(sp.depth) {
			lo++ // literals that end here sort first
		}
		if lo > sp.lo {
			t.setTerm(n)
		}
		for lo < sp.hi {
			c := lits[lo][sp.depth]
			hi := lo + 1
			for hi < sp.hi && lits[hi][sp.depth] == c {
				hi++
			}
			child := uint32(len(queue))
			queue = append(queue, span{lo, hi, sp.depth + 1})
			t.labels = append(t.labels, c)
			if n == 0 {
				t.root[c] = child
			}
			lo = hi
		}
		t.first = append(t.first, uint32(len(t.labels)))
	}
	t.first, t.labels = shrink(t.first), shrink(t.labels)
	if failureLinks {
		t.link(len(queue))
	}
	return t
}

// shrink returns s in an array of its length when the one it has is
// much bigger.
func shrink[T any](s []T) []T {
	if len(s) >= cap(s)*3/4 {
		return s
	}
	return slices.Clone(s)
}

func (t *trie) setTerm(n int) {
	for len(t.term) <= n>>6 {
		t.term = append(t.term, 0)
	}
	t.term[n>>6] |= 1 << (uint(n) & 63)
}

func (t *trie) isTerm(n uint32) bool {
	w := int(n >> 6)
	return w < len(t.term) && t.term[w]&(1<<(n&63)) != 0
}

// link sets the failure links of the trie's nodes nodes, in breadth-first
// order so that a node's link and its link's flags are final before its
// children need them.
func (t *trie) link(nodes int) {
	t.fail = make([]uint32, nodes)
	for n := 0; n < nodes; n++ {
		for e := t.first[n]; e < t.first[n+1]; e++ {
			child, c := e+1, t.labels[e]
			var f uint32
			if n != 0 {
				f = t.advance(t.fail[n], c)
			}
			t.fail[child] = f
			if t.isTerm(f) {
				t.setTerm(int(child))
			}
		}
	}
}

// step returns the child of node n by byte c, or 0 when there is none.
func (t *trie) step(n uint32, c byte) uint32 {
	if n == 0 {
		return t.root[c]
	}
	lo, hi := t.first[n], t.first[n+1]
	if hi-lo <= 8 {
		for e := lo; e < hi; e++ {
			if l := t.labels[e]; l >= c {
				if l == c {
					return e + 1
				}
				return 0
			}
		}
		return 0
	}
	ls := t.labels[lo:hi]
	if i, ok := slices.BinarySearch(ls, c); ok {
		return lo + uint32(i) + 1
	}
	return 0
}

// advance follows failure links from node n until one has an edge by c,
// and returns its child (the root when none has).
func (t *trie) advance(n uint32, c byte) uint32 {
	for {
		if next := t.step(n, c); next != 0 {
			return next
		}
		if n == 0 {
			return 0
		}
		n = t.fail[n]
	}
}

// occursIn reports whether a literal of the trie (built with failure
// links) occurs in s.
func (t *trie) occursIn(s string) bool {
	if t.isTerm(0) {
		return true // the empty literal
	}
	var n uint32
	for i := 0; i < len(s); i++ {
		n = t.advance(n, s[i])
		if t.isTerm(n) {
			return true
		}
	}
	return false
}

// hasPrefixOf reports whether a literal of the trie is a prefix of s.
func (t *trie) hasPrefixOf(s string) bool {
	var n uint32
	for i := 0; ; i++ {
		if t.isTerm(n) {
			return true
		}
		if i == len(s) {
			return false
		}
		if n = t.step(n, s[i]); n == 0 {
			return false
		}
	}
}

// hasSuffixOf reports whether the reverse of a literal of the trie is a
// suffix of s.
func (t *trie) hasSuffixOf(s string) bool {
	var n uint32
	for i := len(s); ; i-- {
		if t.isTerm(n) {
			return true
		}
		if i == 0 {
			return false
		}
		if n = t.step(n, s[i-1]); n == 0 {
			return false
		}
	}
}
