package engine

import (
	"encoding/binary"
	"strings"
	"unsafe"
)

// gramLen is the length of the substrings (grams) a litFilter indexes.
const gramLen = 3

// gramBits is log2 of the size, in bits, of a litFilter's gram bitmap.
const gramBits = 15

// litFilter finds which of a set of ASCII-lowercase literals occur in a
// text, ASCII case folded, and marks their rules. Each literal of at least
// gramLen bytes is indexed by one of its grams (the one least likely to
// occur in ordinary traffic); a scan tests the gram at every position of
// the text against a small bitmap and verifies the literals of that gram
// only where the bitmap says it may occur. Literals shorter than gramLen go
// to an Aho-Corasick automaton. A litFilter is immutable and safe for
// concurrent use.
type litFilter struct {
	// bitmap has bit hash(g) set for the folded gram g of each literal.
	bitmap [1 << gramBits / 64]uint64
	// byGram lists the literals of each folded gram.
	byGram map[uint32][]gramLit
	short  *acMachine // literals shorter than gramLen, or nil
	// minLen is the length of the shortest literal.
	minLen int
}

// gramLit is a literal indexed by the gram at offset off.
type gramLit struct {
	off   int
	s     string
	rules []int32
}

// newLitFilter builds the filter of patterns (non-empty, ASCII, lowercase);
// rules[i] are the rule indexes of patterns[i].
func newLitFilter(patterns []string, rules [][]int32) *litFilter {
	f := &litFilter{byGram: map[uint32][]gramLit{}, minLen: 1 << 30}
	var short []string
	var shortRules [][]int32
	for i, p := range patterns {
		f.minLen = min(f.minLen, len(p))
		if len(p) < gramLen {
			short = append(short, p)
			shortRules = append(shortRules, rules[i])
			continue
		}
		off := rarestGram(p)
		g := foldGram(p[off], p[off+1], p[off+2])
		h := gramHash(g)
		f.bitmap[h>>6] |= 1 << (h & 63)
		f.byGram[g] = append(f.byGram[g], gramLit{off: off, s: p, rules: rules[i]})
	}
	if len(short) > 0 {
		f.short = newACMachine(short, shortRules)
	}
	return f
}

// foldGram packs three bytes, each with bit 0x20 set, little endian, as
// the scan loads them. Setting 0x20 folds ASCII upper case onto lower case
// (and merges some punctuation pairs, which only costs a verification).
func foldGram(a, b, c byte) uint32 {
	return (uint32(a) | uint32(b)<<8 | uint32(c)<<16) | 0x202020
}

func gramHash(g uint32) uint32 {
	return (g * 0x9E3779B1) >> (32 - gramBits)
}

// byteCommonness ranks how often a byte occurs in ordinary request fields
// (URLs, user agents, hosts): letters and digits most, then URL and
// user-agent punctuation, then everything else.
func byteCommonness(c byte) int {
	switch {
	case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		return 4
	case strings.IndexByte("/.-_ ;,:()=&?+", c) >= 0:
		return 3
	case c == '%':
		return 2
	}
	return 0
}

// rarestGram returns the offset of the gram of p least likely to occur in
// ordinary traffic.
func rarestGram(p string) int {
	best, bestScore := 0, 1<<30
	for i := 0; i+gramLen <= len(p); i++ {
		sc := 0
		for j := i; j < i+gramLen; j++ {
			sc += byteCommonness(p[j])
		}
		if sc < bestScore {
			best, bestScore = i, sc
		}
	}
	return best
}

// scan marks in bits the rules of every literal found in s, ASCII case
// folded. Text with non-ASCII bytes is also scanned lowered with Unicode
// rules, so that the prefilter never misses what the matcher would find.
func (f *litFilter) scan(s string, bits []uint64) {
	if len(s) < f.minLen {
		return
	}
	if f.short != nil {
		f.short.scan(s, bits)
	}
	if f.scanGrams(s, bits) {
		f.scanGrams(strings.ToLower(s), bits)
	}
}

// scanGrams is scan without the Unicode rescan and the short literals; it
// reports whether s has non-ASCII bytes.
func (f *litFilter) scanGrams(s string, bits []uint64) bool {
	n := len(s)
	if n < gramLen {
		return hasNonASCII(s)
	}
	p := unsafe.Pointer(unsafe.StringData(s))
	var acc uint32
	bm := &f.bitmap
	for i := 0; i+4 <= n; i++ {
		// A fixed-size array view: one unaligned load where the
		// architecture allows it, no bounds check.
		v := binary.LittleEndian.Uint32((*[4]byte)(unsafe.Add(p, i))[:])
		acc |= v
		g := (v | 0x20202020) & 0xffffff
		if h := gramHash(g); bm[h>>6&uint32(len(bm)-1)]&(1<<(h&63)) != 0 {
			f.verify(s, i, g, bits)
		}
	}
	// The last gram, which a 4-byte load would overrun.
	i := n - gramLen
	acc |= uint32(s[i]) | uint32(s[i+1]) | uint32(s[i+2])
	g := foldGram(s[i], s[i+1], s[i+2])
	if h := gramHash(g); bm[h>>6&uint32(len(bm)-1)]&(1<<(h&63)) != 0 {
		f.verify(s, i, g, bits)
	}
	return acc&0x80808080 != 0
}

// verify marks the rules of the literals of gram g that occur in s with
// that gram at position i.
func (f *litFilter) verify(s string, i int, g uint32, bits []uint64) {
	for _, l := range f.byGram[g] {
		start := i - l.off
		if start < 0 || start+len(l.s) > len(s) || !hasFoldedPrefix(s[start:], l.s) {
			continue
		}
		for _, r := range l.rules {
			bits[r>>6] |= 1 << (uint(r) & 63)
		}
	}
}

// hasFoldedPrefix reports whether s starts with the lowercase ASCII text
// p, ASCII case folded.
func hasFoldedPrefix(s, p string) bool {
	if len(s) < len(p) {
		return false
	}
	for j := 0; j < len(p); j++ {
		c := s[j]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != p[j] {
			return false
		}
	}
	return true
}

func hasNonASCII(s string) bool {
	i := 0
	if len(s) >= 8 {
		p := unsafe.Pointer(unsafe.StringData(s))
		var acc uint64
		for ; i+8 <= len(s); i += 8 {
			acc |= binary.LittleEndian.Uint64((*[8]byte)(unsafe.Add(p, i))[:])
		}
		if acc&0x8080808080808080 != 0 {
			return true
		}
	}
	for ; i < len(s); i++ {
		if s[i] >= 0x80 {
			return true
		}
	}
	return false
}
