package engine_test

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/raywatch/raywatch/engine"
	"github.com/raywatch/raywatch/normalize"
	"github.com/raywatch/raywatch/rules"
)

// listValues returns n distinct random values of 6 to 20 bytes drawn from
// URL-like text.
func listValues(rng *rand.Rand, n int) []string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-_./"
	seen := map[string]bool{}
	out := make([]string, 0, n)
	for len(out) < n {
		b := make([]byte, 6+rng.IntN(15))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		if s := string(b); !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// listRule is a rule testing field with modifier mod against values.
func listRule(t testing.TB, field, mod string, values []string) rules.Rule {
	t.Helper()
	var b strings.Builder
	b.WriteString("title: long list\nid: 6b1f0a52-long-list\nlogsource: {category: webserver}\nlevel: high\ndetection:\n  sel:\n    ")
	b.WriteString(field)
	if mod != "" {
		b.WriteString("|" + mod)
	}
	b.WriteString(":\n")
	for _, v := range values {
		fmt.Fprintf(&b, "      - '%s'\n", strings.ReplaceAll(v, "'", "''"))
	}
	b.WriteString("  condition: sel\n")
	r, err := rules.Parse("long.yml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// BenchmarkLongList matches ordinary events against one rule with a
// contains list of 10, 1,000 and 100,000 values: the cost per event must
// not grow with the list.
func BenchmarkLongList(b *testing.B) {
	evs, _ := benchEvents(b, 4096)
	now := time.Now()
	for _, n := range []int{10, 1000, 100000} {
		for _, mod := range []string{"contains", "startswith", "endswith", ""} {
			name := mod
			if name == "" {
				name = "equals"
			}
			b.Run(fmt.Sprintf("%s/%d", name, n), func(b *testing.B) {
				rng := rand.New(rand.NewPCG(uint64(n), 9))
				r := listRule(b, "cs-uri-query", mod, listValues(rng, n))
				e, err := engine.New([]rules.Rule{r})
				if err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				i := 0
				for b.Loop() {
					e.Match(evs[i%len(evs)].ev, "bench", now)
					i++
				}
			})
		}
	}
}

// TestLongListHeap reports the heap a rule with a 100,000-value contains
// list holds, parsed and then compiled (go test -run LongListHeap -v).
func TestLongListHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 100,000-value rule")
	}
	rng := rand.New(rand.NewPCG(1, 1))
	vals := listValues(rng, 100000)
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	h0 := heap()
	r := listRule(t, "cs-uri-query", "contains", vals)
	h1 := heap()
	e, err := engine.New([]rules.Rule{r})
	if err != nil {
		t.Fatal(err)
	}
	h2 := heap()
	t.Logf("heap: parsed rule %.1f MB, compiled engine %.1f MB more", float64(h1-h0)/1e6, float64(h2-h1)/1e6)
	runtime.KeepAlive(e)
	runtime.KeepAlive(r)
}

// TestLongListDifferential matches random values against random lists of
// each kind, short (tested one by one) and long (tested as a literal set),
// folded and cased, negated and as keywords, and checks each outcome
// against the Sigma semantics written naively.
func TestLongListDifferential(t *testing.T) {
	// A small alphabet with case pairs and a non-ASCII letter makes
	// matches, near misses and Unicode lowering frequent.
	const alphabet = "aAbBc./-éÉ"
	rng := rand.New(rand.NewPCG(7, 11))
	text := func(minLen, maxLen int) string {
		var b strings.Builder
		for range minLen + rng.IntN(maxLen-minLen+1) {
			r := []rune(alphabet)
			b.WriteRune(r[rng.IntN(len(r))])
		}
		return b.String()
	}
	naive := func(mod string, cased bool, lit, v string) bool {
		if !cased {
			lit, v = strings.ToLower(lit), strings.ToLower(v)
		}
		switch mod {
		case "contains":
			return strings.Contains(v, lit)
		case "startswith":
			return strings.HasPrefix(v, lit)
		case "endswith":
			return strings.HasSuffix(v, lit)
		}
		return v == lit
	}
	type event struct {
		ev      *normalize.Event
		ua      string
		present bool
	}
	var events []event
	for i := range 300 {
		ua := text(0, 12)
		over := map[string]any{"ClientRequestUserAgent": ua}
		if i%50 == 0 {
			over["ClientRequestUserAgent"] = nil // absent
		}
		events = append(events, event{httpEvent(t, over), ua, i%50 != 0})
	}
	// 5 values are tested one by one, 40 as a literal set behind the
	// prefilter, 600 as a literal set without it.
	for _, size := range []int{5, 40, 600} {
		for _, mod := range []string{"contains", "startswith", "endswith", ""} {
			for _, variant := range []string{"", "cased", "neq", "keyword"} {
				if variant == "keyword" && mod != "contains" {
					continue // keywords are contains tests
				}
				name := fmt.Sprintf("%s-%s-%d", mod, variant, size)
				t.Run(name, func(t *testing.T) {
					// Longer literals for longer lists, so that some
					// values still miss; keywords long enough to miss
					// the event's other fields.
					minLen, maxLen := 1, 4
					if size > 100 {
						minLen, maxLen = 3, 6
					}
					if variant == "keyword" {
						minLen, maxLen = 4, 6
					}
					lits := make([]string, size)
					for i := range lits {
						lits[i] = text(minLen, maxLen)
					}
					field, mods := "c-useragent", []string{}
					if mod != "" {
						mods = append(mods, mod)
					}
					if variant == "cased" || variant == "neq" {
						mods = append(mods, variant)
					}
					if variant == "keyword" {
						field, mods = "", nil
					}
					e, err := engine.New([]rules.Rule{listRuleMods(t, field, mods, lits)})
					if err != nil {
						t.Fatal(err)
					}
					hits := 0
					for _, x := range events {
						ev, ua := x.ev, x.ua
						want := false
						switch variant {
						case "keyword":
							ev.Range(func(_, v string) bool {
								for _, l := range lits {
									want = want || naive("contains", false, l, v)
								}
								return !want
							})
						default:
							for _, l := range lits {
								want = want || x.present && naive(mod, variant == "cased", l, ua)
							}
							if variant == "neq" {
								want = !want
							}
						}
						got := len(e.Match(ev, "t", time.Now())) > 0
						if got != want {
							t.Fatalf("user agent %q (present %v): Match = %v; want %v", ua, x.present, got, want)
						}
						if want {
							hits++
						}
					}
					if size > 5 && (hits == 0 || hits == 300) {
						t.Errorf("%d of 300 events match: the test does not tell matches from misses", hits)
					}
				})
			}
		}
	}
}

// listRuleMods is listRule with a list of modifiers; an empty field makes
// a keyword search.
func listRuleMods(t testing.TB, field string, mods []string, values []string) rules.Rule {
	t.Helper()
	var b strings.Builder
	b.WriteString("title: long list\nid: 6b1f0a52-long-list\nlogsource: {category: webserver}\nlevel: high\ndetection:\n  sel:\n")
	indent := "    - "
	if field != "" {
		b.WriteString("    " + field)
		for _, m := range mods {
			b.WriteString("|" + m)
		}
		b.WriteString(":\n")
		indent = "      - "
	}
	for _, v := range values {
		fmt.Fprintf(&b, "%s'%s'\n", indent, strings.ReplaceAll(v, "'", "''"))
	}
	b.WriteString("  condition: sel\n")
	r, err := rules.Parse("long.yml", []byte(b.String()))
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	return r
}
