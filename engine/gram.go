package engine

import (
	"encoding/binary"
	"strings"
	"sync"
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
// only where the bitmap says it may occur. Literals shorter than gramLen are
// searched for in each of their ASCII case variants. A litFilter is immutable and safe for
// concurrent use.
type litFilter struct {
	// bitmap has bit hash(g) set for the folded gram g of each literal.
	bitmap [1 << gramBits / 64]uint64
	// grams and lits are an open-addressing table from folded gram (0:
	// empty slot) to its literals.
	grams []uint32
	lits  [][]gramLit
	short []shortLit // literals shorter than gramLen
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
	f := &litFilter{minLen: 1 << 30}
	byGram := map[uint32][]gramLit{}
	for i, p := range patterns {
		f.minLen = min(f.minLen, len(p))
		if len(p) < gramLen {
			f.short = append(f.short, shortLit{variants: caseVariants(p), rules: rules[i]})
			continue
		}
		off := rarestGram(p)
		g := foldGram(p[off], p[off+1], p[off+2])
		h := gramHash(g)
		f.bitmap[h>>6] |= 1 << (h & 63)
		byGram[g] = append(byGram[g], gramLit{off: off, s: p, rules: rules[i]})
	}
	size := 8
	for size < 4*len(byGram) {
		size *= 2
	}
	f.grams = make([]uint32, size)
	f.lits = make([][]gramLit, size)
	for g, ls := range byGram {
		i := f.slotOf(g)
		f.grams[i], f.lits[i] = g, ls
	}
	return f
}

// foldGram packs three bytes, each with bit 0x20 set, little endian, as
// the scan loads them. Setting 0x20 folds ASCII upper case onto lower case
// (and merges some punctuation pairs, which only costs a verification).
func foldGram(a, b, c byte) uint32 {
	return (uint32(a) | uint32(b)<<8 | uint32(c)<<16) | 0x202020
}

// slotOf returns the slot of g in the gram table: its own, or the empty
// one where it would go.
func (f *litFilter) slotOf(g uint32) int {
	mask := len(f.grams) - 1
	i := int(g*0x85EBCA6B>>16) & mask
	for f.grams[i] != 0 && f.grams[i] != g {
		i = (i + 1) & mask
	}
	return i
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
// ordinary traffic: the one least frequent in trafficSample, then with the
// least common bytes.
func rarestGram(p string) int {
	counts := sampleGrams()
	best, bestScore := 0, 1<<62
	for i := 0; i+gramLen <= len(p); i++ {
		sc := counts[foldGram(p[i], p[i+1], p[i+2])] << 8
		for j := i; j < i+gramLen; j++ {
			sc += byteCommonness(p[j])
		}
		if sc < bestScore {
			best, bestScore = i, sc
		}
	}
	return best
}

// trafficSample is ordinary request text (browser and crawler user
// agents, hosts, paths, queries, referrers) whose grams a literal should
// avoid as its index.
const trafficSample = `Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0
Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Safari/605.1.15
Mozilla/5.0 (iPhone; CPU iPhone OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1
Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36
Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0
Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) curl/8.4.0 python-requests/2.31.0 okhttp/4.12.0
https://www.example.org/en-us/news/article-title?utm_source=newsletter&utm_medium=email&utm_campaign=spring&page=2&sort=desc&lang=en
/api/v2/users/12345/orders?limit=50&offset=100 /assets/js/main.min.js /static/css/style.css /images/logo.png /favicon.ico /robots.txt
/wp-content/uploads/2024/05/photo.jpg /index.php?id=42&action=view /login /search?q=shoes GET POST HEAD text/html application/json
`

var (
	sampleOnce   sync.Once
	sampleCounts map[uint32]int
)

// sampleGrams counts the folded grams of trafficSample.
func sampleGrams() map[uint32]int {
	sampleOnce.Do(func() {
		sampleCounts = map[uint32]int{}
		s := strings.ToLower(trafficSample)
		for i := 0; i+gramLen <= len(s); i++ {
			sampleCounts[foldGram(s[i], s[i+1], s[i+2])]++
		}
	})
	return sampleCounts
}

// shortLit is a literal shorter than gramLen.
type shortLit struct {
	variants []string // the literal with each ASCII case of its letters
	rules    []int32
}

// caseVariants returns p (ASCII lowercase) with each combination of ASCII
// cases of its letters.
func caseVariants(p string) []string {
	out := []string{p}
	for i := 0; i < len(p); i++ {
		if c := p[i]; 'a' <= c && c <= 'z' {
			for _, v := range out {
				b := []byte(v)
				b[i] = c - 'a' + 'A'
				out = append(out, string(b))
			}
		}
	}
	return out
}

// scan marks in bits the rules of every literal found in s, ASCII case
// folded. Text with non-ASCII bytes is also scanned lowered with Unicode
// rules, so that the prefilter never misses what the matcher would find.
// It reports whether s has non-ASCII bytes.
func (f *litFilter) scan(s string, bits []uint64) bool {
	if len(s) < f.minLen {
		return hasNonASCII(s)
	}
	if !f.scanASCII(s, bits) {
		return false
	}
	f.scanASCII(strings.ToLower(s), bits)
	return true
}

// scanASCII is scan without the Unicode rescan; it reports whether s has
// non-ASCII bytes.
func (f *litFilter) scanASCII(s string, bits []uint64) bool {
	for i := range f.short {
		l := &f.short[i]
		for _, v := range l.variants {
			if strings.Contains(s, v) {
				for _, r := range l.rules {
					bits[r>>6] |= 1 << (uint(r) & 63)
				}
				break
			}
		}
	}
	return f.scanGrams(s, bits)
}

// scanGrams finds the literals of gramLen bytes or more; it reports
// whether s has non-ASCII bytes.
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
	for _, l := range f.lits[f.slotOf(g)] {
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
