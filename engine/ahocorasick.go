package engine

import (
	"strings"
)

// acMachine is an Aho-Corasick automaton over ASCII-lowercase patterns,
// compiled to a dense DFA over byte classes. Scanning folds ASCII case, so
// the text need not be lowered first. Each pattern carries the rule indexes
// it makes candidates. An acMachine is immutable and safe for concurrent
// use.
type acMachine struct {
	class  [256]int32 // byte -> class
	nclass int
	// next holds, at row offset state*nclass + class, the row offset of
	// the next state, with outFlag set when that state has outputs.
	next []int32
	out  [][]int32 // by state: rule indexes to mark (outputs merged along suffix links)
	// minLen is the length of the shortest pattern.
	minLen int
}

const outFlag = 1 << 30

// newACMachine builds the automaton of patterns (non-empty, ASCII,
// lowercase); rules[i] are the rule indexes of patterns[i].
func newACMachine(patterns []string, rules [][]int32) *acMachine {
	m := &acMachine{}
	// Byte classes: one per distinct pattern byte, 0 for every other byte.
	for _, p := range patterns {
		for i := 0; i < len(p); i++ {
			if m.class[p[i]] == 0 {
				m.nclass++
				m.class[p[i]] = int32(m.nclass)
			}
		}
	}
	m.nclass++
	for c := 'A'; c <= 'Z'; c++ {
		m.class[c] = m.class[c+'a'-'A']
	}
	// Trie.
	type tnode struct {
		next map[uint8]int32
		out  []int32
	}
	nodes := []tnode{{next: map[uint8]int32{}}}
	m.minLen = 1 << 30
	for pi, p := range patterns {
		m.minLen = min(m.minLen, len(p))
		st := int32(0)
		for i := 0; i < len(p); i++ {
			c := uint8(m.class[p[i]])
			nx, ok := nodes[st].next[c]
			if !ok {
				nx = int32(len(nodes))
				nodes = append(nodes, tnode{next: map[uint8]int32{}})
				nodes[st].next[c] = nx
			}
			st = nx
		}
		nodes[st].out = append(nodes[st].out, rules[pi]...)
	}
	// Breadth-first: failure links and the full transition table.
	n := len(nodes)
	delta := make([]int32, n*m.nclass)
	m.out = make([][]int32, n)
	fail := make([]int32, n)
	queue := make([]int32, 0, n)
	for c := 0; c < m.nclass; c++ {
		if nx, ok := nodes[0].next[uint8(c)]; ok {
			delta[c] = nx
			queue = append(queue, nx)
		}
	}
	m.out[0] = dedup(nodes[0].out)
	for len(queue) > 0 {
		st := queue[0]
		queue = queue[1:]
		m.out[st] = dedup(append(append([]int32(nil), nodes[st].out...), m.out[fail[st]]...))
		for c := 0; c < m.nclass; c++ {
			if nx, ok := nodes[st].next[uint8(c)]; ok {
				fail[nx] = delta[int(fail[st])*m.nclass+c]
				delta[int(st)*m.nclass+c] = nx
				queue = append(queue, nx)
			} else {
				delta[int(st)*m.nclass+c] = delta[int(fail[st])*m.nclass+c]
			}
		}
	}
	// Row offsets with output flags.
	m.next = make([]int32, len(delta))
	for i, st := range delta {
		x := st * int32(m.nclass)
		if m.out[st] != nil {
			x |= outFlag
		}
		m.next[i] = x
	}
	return m
}

func dedup(xs []int32) []int32 {
	if len(xs) == 0 {
		return nil
	}
	seen := map[int32]bool{}
	out := xs[:0]
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}

// scan marks in bits the rules of every pattern found in s, ASCII case
// folded. Text with non-ASCII bytes is also scanned lowered with Unicode
// rules, so that the prefilter never misses what the matcher would find.
func (m *acMachine) scan(s string, bits []uint64) {
	if len(s) < m.minLen {
		return
	}
	var acc byte
	st := int32(0)
	next, class := m.next, &m.class
	for i := 0; i < len(s); i++ {
		b := s[i]
		acc |= b
		x := next[st+class[b]]
		st = x &^ outFlag
		if x&outFlag != 0 {
			m.mark(st, bits)
		}
	}
	if acc >= 0x80 {
		m.scanLowered(strings.ToLower(s), bits)
	}
}

func (m *acMachine) mark(row int32, bits []uint64) {
	for _, r := range m.out[row/int32(m.nclass)] {
		bits[r>>6] |= 1 << (uint(r) & 63)
	}
}

func (m *acMachine) scanLowered(s string, bits []uint64) {
	st := int32(0)
	for i := 0; i < len(s); i++ {
		x := m.next[st+m.class[s[i]]]
		st = x &^ outFlag
		if x&outFlag != 0 {
			m.mark(st, bits)
		}
	}
}

// foldASCII maps ASCII upper-case letters to lower case.
var foldASCII = func() (t [256]byte) {
	for i := range t {
		t[i] = byte(i)
		if 'A' <= i && i <= 'Z' {
			t[i] = byte(i + 'a' - 'A')
		}
	}
	return t
}()

// anchorBits is the size of an anchor filter's bitmap (2^anchorBits).
const anchorBits = 18

// literalFilter finds which patterns occur in a text. Each pattern of four
// bytes or more has one 4-byte anchor, its rarest, whose hash sets a bit in
// a bitmap: scanning a text costs one independent bitmap load per byte, and
// only where a bit is set are the patterns of that anchor compared in
// place. Shorter patterns use an Aho-Corasick automaton. A literalFilter is
// immutable and safe for concurrent use.
type literalFilter struct {
	short   *acMachine // patterns shorter than 4 bytes, or nil
	anchor  []uint64
	byHash  map[uint32][]anchored
	minLen  int
	hasLong bool
}

// anchored is a pattern whose anchor ends end bytes into it.
type anchored struct {
	p     string
	end   int
	rules []int32
}

func newLiteralFilter(patterns []string, rules [][]int32) *literalFilter {
	f := &literalFilter{minLen: 1 << 30, byHash: map[uint32][]anchored{}}
	var sp []string
	var sr [][]int32
	for i, p := range patterns {
		f.minLen = min(f.minLen, len(p))
		if len(p) < 4 {
			sp, sr = append(sp, p), append(sr, rules[i])
			continue
		}
		if f.anchor == nil {
			f.anchor = make([]uint64, (1<<anchorBits)/64)
		}
		f.hasLong = true
		at, best := 0, -1
		for j := 0; j+4 <= len(p); j++ {
			if sc := rarity(p[j : j+4]); sc > best {
				at, best = j, sc
			}
		}
		h := anchorHash(p[at : at+4])
		f.anchor[h>>6] |= 1 << (h & 63)
		f.byHash[h] = append(f.byHash[h], anchored{p: p, end: at + 4, rules: rules[i]})
	}
	if len(sp) > 0 {
		f.short = newACMachine(sp, sr)
	}
	return f
}

// rarity scores how seldom a 4-byte text occurs in web traffic.
func rarity(s string) int {
	sc := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case strings.IndexByte("etaoinsrhl", c) >= 0:
			sc++
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			sc += 2
		case strings.IndexByte("/.-_=&?: ", c) >= 0:
			sc++
		default:
			sc += 3
		}
	}
	return sc
}

func anchorHash(s string) uint32 {
	w := uint32(foldASCII[s[0]]) | uint32(foldASCII[s[1]])<<8 | uint32(foldASCII[s[2]])<<16 | uint32(foldASCII[s[3]])<<24
	return (w * 0x9E3779B1) >> (32 - anchorBits)
}

// scan marks in bits the rules of the patterns found in s, ASCII case
// folded; a text with non-ASCII bytes is also scanned lowered with Unicode
// rules, so that the prefilter never misses what the matcher would find.
func (f *literalFilter) scan(s string, bits []uint64) {
	if len(s) < f.minLen {
		return
	}
	if f.short != nil {
		f.short.scan(s, bits)
	}
	if !f.hasLong || len(s) < 4 {
		return
	}
	if f.scanLong(s, bits) {
		f.scanLong(strings.ToLower(s), bits)
	}
}

// scanLong tests the anchored patterns and reports whether s has non-ASCII
// bytes.
func (f *literalFilter) scanLong(s string, bits []uint64) bool {
	acc := s[0] | s[1] | s[2]
	w := uint32(foldASCII[s[0]])<<8 | uint32(foldASCII[s[1]])<<16 | uint32(foldASCII[s[2]])<<24
	for i := 3; i < len(s); i++ {
		b := s[i]
		acc |= b
		w = w>>8 | uint32(foldASCII[b])<<24
		h := (w * 0x9E3779B1) >> (32 - anchorBits)
		if f.anchor[h>>6]&(1<<(h&63)) == 0 {
			continue
		}
		for _, a := range f.byHash[h] {
			start := i + 1 - a.end
			if start >= 0 && start+len(a.p) <= len(s) && equalFoldASCII(s[start:start+len(a.p)], a.p) {
				for _, r := range a.rules {
					bits[r>>6] |= 1 << (uint(r) & 63)
				}
			}
		}
	}
	return acc >= 0x80
}

// equalFoldASCII reports whether s equals the lower-case pattern p with
// ASCII letters of s folded.
func equalFoldASCII(s, p string) bool {
	for i := 0; i < len(p); i++ {
		if foldASCII[s[i]] != p[i] {
			return false
		}
	}
	return true
}
