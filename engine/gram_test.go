package engine

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// TestLitFilterFindsEveryLiteral checks the prefilter's literal scan
// against strings.Contains on the texts the matcher compares: the ASCII
// lowered text and the Unicode lowered one.
func TestLitFilterFindsEveryLiteral(t *testing.T) {
	pats := []string{"=", "ab", "=${", "abc", "select ", "kill", "/etc/passwd", "@(", "`a", "{{", "[x", "zzz", "k\\", "0a9"}
	rules := make([][]int32, len(pats))
	for i := range rules {
		rules[i] = []int32{int32(i)}
	}
	f := newLitFilter(pats, rules)
	alphabet := []string{"a", "b", "c", "A", "B", "C", "=", "$", "{", "[", "@", "`", "(", "x", "X", "z", "Z", "0", "9", "\u212a", "\u0130", "ill", "ILL", "\\", "/etc/", "PASSWD", "Select", " ", "k", "K"}
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 20000; n++ {
		var b strings.Builder
		for k := rng.IntN(12); k > 0; k-- {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
		}
		s := b.String()
		bits := make([]uint64, 1)
		f.scan(s, bits)
		ascii, unicode := asciiLower(s), strings.ToLower(s)
		for i, p := range pats {
			want := strings.Contains(ascii, p) || strings.Contains(unicode, p)
			if got := bits[0]&(1<<i) != 0; got != want {
				t.Fatalf("scan(%q) marks %q = %v; want %v", s, p, got, want)
			}
		}
	}
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
