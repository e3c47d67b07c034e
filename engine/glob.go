package engine

import (
	"strings"
	"unicode/utf8"
)

// globTok is one token of a Sigma wildcard pattern.
type globTok struct {
	kind byte // 'l' literal, '*' any run, '?' one character
	s    string
}

// parseGlob splits a Sigma value into literal runs and wildcards: * and ?
// are wildcards, and a backslash escapes *, ? and itself (any other
// backslash is literal).
func parseGlob(v string) []globTok {
	var toks []globTok
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			toks = append(toks, globTok{kind: 'l', s: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c == '\\' && i+1 < len(v) && (v[i+1] == '*' || v[i+1] == '?' || v[i+1] == '\\'):
			lit.WriteByte(v[i+1])
			i++
		case c == '*':
			flush()
			if len(toks) == 0 || toks[len(toks)-1].kind != '*' {
				toks = append(toks, globTok{kind: '*'})
			}
		case c == '?':
			flush()
			toks = append(toks, globTok{kind: '?'})
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	return toks
}

// literalGlob is the tokens of v taken literally (no wildcards).
func literalGlob(v string) []globTok {
	if v == "" {
		return nil
	}
	return []globTok{{kind: 'l', s: v}}
}

// globMatch reports whether s matches the whole pattern toks.
func globMatch(toks []globTok, s string) bool {
	ti, si := 0, 0
	starTi, starSi := -1, 0
	for {
		if ti < len(toks) {
			t := toks[ti]
			switch t.kind {
			case '*':
				if ti == len(toks)-1 {
					return true
				}
				starTi, starSi = ti, si
				ti++
				// Jump to the next occurrence of the following literal.
				if nt := toks[ti]; nt.kind == 'l' {
					j := strings.Index(s[si:], nt.s)
					if j < 0 {
						return false
					}
					si += j
					starSi = si
				}
				continue
			case '?':
				if si < len(s) {
					_, n := utf8.DecodeRuneInString(s[si:])
					si += n
					ti++
					continue
				}
			case 'l':
				if strings.HasPrefix(s[si:], t.s) {
					si += len(t.s)
					ti++
					continue
				}
			}
		} else if si == len(s) {
			return true
		}
		if starTi < 0 || starSi >= len(s) {
			return false
		}
		_, n := utf8.DecodeRuneInString(s[starSi:])
		starSi += n
		si = starSi
		ti = starTi + 1
	}
}
