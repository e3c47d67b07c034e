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
