package rules

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Expr is a node of a parsed Sigma condition: [Ident], [And], [Or], [Not] or
// [Of]. Patterns ("1 of selection_*", "all of them") are resolved to the
// search names they cover when the rule is loaded.
type Expr interface{ expr() }

// Ident is a reference to one search of the rule.
type Ident struct{ Name string }

// And is true when every one of its terms is.
type And []Expr

// Or is true when any one of its terms is.
type Or []Expr

// Not negates X.
type Not struct{ X Expr }

// Of is "1 of ..." (All false) or "all of ..." (All true) over the searches
// named in Names (sorted). Pattern is the text of the condition
// ("selection_*", "them").
type Of struct {
	All     bool
	Pattern string
	Names   []string
}

func (Ident) expr() {}
func (And) expr()   {}
func (Or) expr()    {}
func (Not) expr()   {}
func (Of) expr()    {}

// Aggregation is the part of a condition after "|": count() or count(field),
// optionally "by" fields, compared with a threshold.
type Aggregation struct {
	// Func is "count".
	Func string
	// Field is the field whose distinct values are counted; empty counts
	// events.
	Field string
	// By are the fields that split the events into groups.
	By []string
	// Op is one of ">", ">=", "=" (see [Aggregation.Holds]).
	Op        string
	Threshold float64
}

// Holds reports whether n satisfies the aggregation's comparison.
func (a *Aggregation) Holds(n int) bool { return Holds(a.Op, float64(n), a.Threshold) }

// Holds reports whether n compares to threshold as op says (">", ">=",
// "=" or "=="), the comparisons of aggregations and correlations.
func Holds(op string, n, threshold float64) bool {
	switch op {
	case ">":
		return n > threshold
	case ">=":
		return n >= threshold
	case "=", "==":
		return n == threshold
	}
	return false
}

// Condition is one parsed condition line of a rule.
type Condition struct {
	Expr        Expr
	Aggregation *Aggregation // nil when the condition has none
	Text        string
	Line        int
}

// parseCondition parses the Sigma condition text s and resolves its "of"
// patterns against the search names of the rule.
func parseCondition(s string, searches []string) (Expr, *Aggregation, error) {
	toks, err := lexCondition(s)
	if err != nil {
		return nil, nil, err
	}
	p := &condParser{toks: toks, searches: searches}
	e, err := p.or()
	if err != nil {
		return nil, nil, err
	}
	var agg *Aggregation
	if p.peek() == "|" {
		p.next()
		agg, err = p.aggregation()
		if err != nil {
			return nil, nil, err
		}
	}
	if t := p.peek(); t != "" {
		return nil, nil, fmt.Errorf("condition %q: unexpected %q", s, t)
	}
	return e, agg, nil
}

func lexCondition(s string) ([]string, error) {
	var toks []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(' || c == ')' || c == '|' || c == ',':
			toks = append(toks, s[i:i+1])
			i++
		case c == '<' || c == '>' || c == '=' || c == '!':
			j := i + 1
			if j < len(s) && s[j] == '=' {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		case isIdentByte(c):
			j := i
			for j < len(s) && isIdentByte(s[j]) {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		default:
			return nil, fmt.Errorf("condition %q: unexpected character %q", s, c)
		}
	}
	return toks, nil
}

func isIdentByte(c byte) bool {
	return c == '_' || c == '*' || c == '-' || c == '.' || c == '?' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

type condParser struct {
	toks     []string
	pos      int
	searches []string
}

func (p *condParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *condParser) next() string {
	t := p.peek()
	p.pos++
	return t
}

func (p *condParser) or() (Expr, error) {
	var terms Or
	for {
		e, err := p.and()
		if err != nil {
			return nil, err
		}
		terms = append(terms, e)
		if !strings.EqualFold(p.peek(), "or") {
			break
		}
		p.next()
	}
	if len(terms) == 1 {
		return terms[0], nil
	}
	return terms, nil
}

func (p *condParser) and() (Expr, error) {
	var terms And
	for {
		e, err := p.not()
		if err != nil {
			return nil, err
		}
		terms = append(terms, e)
		if !strings.EqualFold(p.peek(), "and") {
			break
		}
		p.next()
	}
	if len(terms) == 1 {
		return terms[0], nil
	}
	return terms, nil
}

func (p *condParser) not() (Expr, error) {
	if strings.EqualFold(p.peek(), "not") {
		p.next()
		e, err := p.not()
		if err != nil {
			return nil, err
		}
		return Not{X: e}, nil
	}
	return p.primary()
}

func (p *condParser) primary() (Expr, error) {
	t := p.next()
	switch {
	case t == "":
		return nil, errors.New("condition ends too early")
	case t == "(":
		e, err := p.or()
		if err != nil {
			return nil, err
		}
		if p.next() != ")" {
			return nil, errors.New("condition: missing )")
		}
		return e, nil
	case t == "1" || strings.EqualFold(t, "any") || strings.EqualFold(t, "all"):
		if !strings.EqualFold(p.peek(), "of") {
			return nil, fmt.Errorf("condition: %q must be followed by \"of\"", t)
		}
		p.next()
		pat := p.next()
		if pat == "" || !isName(pat) {
			return nil, fmt.Errorf("condition: \"%s of\" needs a search name, a pattern or them", t)
		}
		names := p.resolve(pat)
		if len(names) == 0 {
			return nil, fmt.Errorf("condition: %q matches no search", pat)
		}
		return Of{All: strings.EqualFold(t, "all"), Pattern: pat, Names: names}, nil
	case isName(t) && !isKeyword(t):
		if strings.ContainsAny(t, "*?") {
			return nil, fmt.Errorf("condition: pattern %q needs \"1 of\" or \"all of\"", t)
		}
		if !p.has(t) {
			return nil, fmt.Errorf("condition: no search named %q", t)
		}
		return Ident{Name: t}, nil
	}
	return nil, fmt.Errorf("condition: unexpected %q", t)
}

func isName(t string) bool { return t != "" && isIdentByte(t[0]) }

func isKeyword(t string) bool {
	switch strings.ToLower(t) {
	case "and", "or", "not", "of", "them":
		return true
	}
	return false
}

func (p *condParser) has(name string) bool {
	for _, s := range p.searches {
		if s == name {
			return true
		}
	}
	return false
}

// resolve returns the searches a "1 of"/"all of" target covers: "them" is
// every search not starting with "_", a pattern its glob matches, a name
// itself.
func (p *condParser) resolve(pat string) []string {
	var out []string
	for _, s := range p.searches {
		switch {
		case strings.EqualFold(pat, "them"):
			if !strings.HasPrefix(s, "_") {
				out = append(out, s)
			}
		case strings.ContainsAny(pat, "*?"):
			if ok, _ := path.Match(pat, s); ok {
				out = append(out, s)
			}
		case s == pat:
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

func (p *condParser) aggregation() (*Aggregation, error) {
	fn := strings.ToLower(p.next())
	if fn != "count" {
		if fn == "near" {
			return nil, errors.New("condition: near aggregations are not supported; use a temporal correlation rule")
		}
		return nil, fmt.Errorf("condition: aggregation %q is not supported (only count)", fn)
	}
	a := &Aggregation{Func: fn}
	if p.next() != "(" {
		return nil, errors.New("condition: count needs ( )")
	}
	if t := p.peek(); t != ")" {
		a.Field = p.next()
	}
	if p.next() != ")" {
		return nil, errors.New("condition: count(...) missing )")
	}
	if strings.EqualFold(p.peek(), "by") {
		p.next()
		for {
			f := p.next()
			if !isName(f) {
				return nil, errors.New("condition: by needs a field")
			}
			a.By = append(a.By, f)
			if p.peek() != "," {
				break
			}
			p.next()
		}
	}
	a.Op = p.next()
	switch a.Op {
	case ">", ">=", "=", "==":
	case "<", "<=", "!=":
		return nil, fmt.Errorf("condition: aggregation comparison %q cannot fire on a stream; use > or >=", a.Op)
	default:
		return nil, fmt.Errorf("condition: aggregation needs a comparison, got %q", a.Op)
	}
	n, err := strconv.ParseFloat(p.next(), 64)
	if err != nil {
		return nil, fmt.Errorf("condition: aggregation threshold: %w", err)
	}
	a.Threshold = n
	return a, nil
}

// ParseDuration parses a Sigma timeframe or timespan: a number followed by
// s, m, h, d or w ("10m", "1d"), or a Go duration.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty duration")
	}
	i := strings.IndexFunc(s, func(r rune) bool { return !unicode.IsDigit(r) })
	if i > 0 && i == len(s)-1 {
		n, err := strconv.ParseInt(s[:i], 10, 64)
		if err == nil && n > 0 {
			unit := map[byte]time.Duration{'s': time.Second, 'm': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour, 'w': 7 * 24 * time.Hour}[s[i]]
			if unit != 0 {
				return time.Duration(n) * unit, nil
			}
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("bad duration %q: want for example 30s, 10m, 1h or 1d", s)
	}
	return d, nil
}
