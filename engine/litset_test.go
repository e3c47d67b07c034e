package engine

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/raywatch/raywatch/rules"
)

// TestTrie checks the tries of litSet against strings.Contains,
// HasPrefix and HasSuffix on random literal sets and texts over a small
// alphabet, where overlaps (the failure links' work) are frequent.
func TestTrie(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	text := func(maxLen int) string {
		b := make([]byte, rng.IntN(maxLen+1))
		for i := range b {
			b[i] = "abc\xe9"[rng.IntN(4)]
		}
		return string(b)
	}
	for round := range 300 {
		lits := make([]string, 1+rng.IntN(20))
		for i := range lits {
			lits[i] = text(5)
		}
		if round%10 != 0 {
			for i := range lits {
				if lits[i] == "" {
					lits[i] = "a" // the empty literal matches everything
				}
			}
		}
		var l litLists
		for _, s := range lits {
			for _, k := range []uint8{vContains, vPrefix, vSuffix} {
				l.add(&valueTest{kind: k, s: s, ref: -1})
			}
		}
		ls := l.build(false)
		for range 50 {
			v := text(12)
			var sub, pre, suf bool
			for _, s := range lits {
				sub = sub || strings.Contains(v, s)
				pre = pre || strings.HasPrefix(v, s)
				suf = suf || strings.HasSuffix(v, s)
			}
			if got := ls.sub.occursIn(v); got != sub {
				t.Fatalf("literals %q: occursIn(%q) = %v; want %v", lits, v, got, sub)
			}
			if got := ls.pre.hasPrefixOf(v); got != pre {
				t.Fatalf("literals %q: hasPrefixOf(%q) = %v; want %v", lits, v, got, pre)
			}
			if got := ls.suf.hasSuffixOf(v); got != suf {
				t.Fatalf("literals %q: hasSuffixOf(%q) = %v; want %v", lits, v, got, suf)
			}
		}
	}
	// The textbook case of failure links.
	var l litLists
	for _, s := range []string{"he", "she", "his", "hers"} {
		l.add(&valueTest{kind: vContains, s: s, ref: -1})
	}
	ls := l.build(false)
	for v, want := range map[string]bool{"ushers": true, "shi": false, "ahishe": true, "hhs": false, "xhersx": true} {
		if got := ls.sub.occursIn(v); got != want {
			t.Errorf("occursIn(%q) = %v; want %v", v, got, want)
		}
	}
}

// TestLongListCompiles checks that a long list compiles into literal sets
// (one per case mode, the other values left as they are) and stays out of
// the prefilter, and that a short list does not.
func TestLongListCompiles(t *testing.T) {
	var b strings.Builder
	b.WriteString("title: t\nid: t1\nlogsource: {category: webserver}\nlevel: high\ndetection:\n  sel:\n    c-useragent|contains:\n")
	for i := range maxPrefilterList + 1 {
		fmt.Fprintf(&b, "      - 'agent-%d'\n", i)
	}
	b.WriteString("      - 'x*y'\n  cased:\n    c-useragent|contains|cased:\n      - 'One'\n      - 'Two'\n  condition: sel or cased\n")
	r, err := rules.Parse("t.yml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	e, err := New([]rules.Rule{r})
	if err != nil {
		t.Fatal(err)
	}
	cr := e.set.Load().rules[0]
	for _, s := range cr.searches {
		ft := s.maps[0][0]
		switch s.name {
		case "sel":
			if len(ft.lists) != 1 || ft.lists[0].cased || ft.lists[0].sub == nil || len(ft.vals) != 1 || ft.vals[0].kind != vGlob {
				t.Errorf("sel: %d lists, %d values; want one folded set and the glob", len(ft.lists), len(ft.vals))
			}
		case "cased":
			if len(ft.lists) != 0 || len(ft.vals) != 2 {
				t.Errorf("cased: %d lists, %d values; want none and 2", len(ft.lists), len(ft.vals))
			}
		}
	}
	if _, ok := cr.literals(); ok {
		t.Errorf("literals() ok for a rule with a list too long for the prefilter; want it evaluated on every event")
	}
}
