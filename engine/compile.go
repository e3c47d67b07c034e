package engine

import (
	"encoding/base64"
	"fmt"
	"net/netip"
	"regexp"
	"regexp/syntax"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"

	"github.com/raywatch/raywatch/normalize"
	"github.com/raywatch/raywatch/rules"
)

// Value test kinds.
const (
	vNull     = iota // the field is absent
	vAny             // the field is present ("*")
	vEq              // equality
	vContains        // substring
	vPrefix
	vSuffix
	vGlob // general wildcard pattern
	vRe
	vCIDR
	vNum // gt, gte, lt, lte
)

// valueTest is one compiled value of a field matcher.
type valueTest struct {
	kind  uint8
	cased bool // compare the raw text, not the lowered one
	s     string
	glob  []globTok
	re    *regexp.Regexp
	nets  []netip.Prefix
	op    string
	num   float64
	ref   int // slot of the fieldref field, or -1
}

// fieldTest is one compiled field matcher: a field (or every field, for a
// keyword search) against its values.
type fieldTest struct {
	field   string // rule's field name, for errors
	slots   []int  // event field slots; the test holds if it holds on any
	keyword bool   // every field of the event
	all     bool   // every value must match (else any)
	exists  int8   // -1: no exists modifier; 0: must be absent; 1: present
	neq     bool   // holds when no value matches (or the field is absent)
	lowCard bool   // a field with few distinct values: a weak prefilter
	vals    []valueTest
	// lists hold the plain literal values of a long list (at most one set
	// per case mode), tested at a cost independent of their number; the
	// test holds on a value when a test of vals or a set holds.
	lists []*litSet
	// pfVals are the values moved into lists, kept for the prefilter when
	// the list is not too long for it (nil otherwise).
	pfVals []valueTest
}

type cSearch struct {
	name string
	maps [][]*fieldTest
}

// Condition node kinds.
const (
	nSearch = iota
	nAnd
	nOr
	nNot
)

type cnode struct {
	kind   uint8
	search int
	kids   []*cnode
}

type cCond struct {
	root *cnode
	agg  *rules.Aggregation
	win  *windowSpec // for aggregations
}

// slotDef is one event field the rule set reads.
type slotDef struct {
	name    string
	field   normalize.Field // name, resolved
	derived bool
	from    int // source slot of a derived field
}

// lit is a literal that must occur (ASCII case folded) in a field for a
// rule to match: part of the rule's prefilter.
type lit struct {
	slot  int // -1: any field (keyword)
	s     string
	exact bool // the field's whole lowered value equals s
	// lowCardinality: the field has few distinct values (method, status).
	lowCardinality bool
}

type compiler struct {
	opts    Options
	mapping *rules.Mapping
	slots   []slotDef
	slotIdx map[string]int
}

func (c *compiler) slot(name string) int {
	if i, ok := c.slotIdx[name]; ok {
		return i
	}
	d := slotDef{name: name, field: normalize.FieldOf(name), from: -1}
	if dv, ok := c.mapping.Derived(name); ok {
		d.derived = true
		d.from = c.slot(dv.From)
	}
	c.slotIdx[name] = len(c.slots)
	c.slots = append(c.slots, d)
	return len(c.slots) - 1
}

// ruleError is a compile error of rule r at line.
func ruleError(r *rules.Rule, line int, format string, args ...any) *rules.LoadError {
	file := r.File
	if r.Source != "" && r.Source != rules.SourceBuiltin {
		file = r.Source + "/" + r.File
	}
	return &rules.LoadError{File: file, Line: line, Err: fmt.Errorf("rule %s: "+format, append([]any{r.ID}, args...)...)}
}

// compileDetection compiles the searches and conditions of r into cr.
func (c *compiler) compileDetection(r *rules.Rule, cr *compiledRule) error {
	det := r.Detection
	names := make([]string, 0, len(det.Searches))
	for name := range det.Searches {
		names = append(names, name)
	}
	sort.Strings(names)
	index := map[string]int{}
	for _, name := range names {
		s := det.Searches[name]
		cs := &cSearch{name: name}
		for _, m := range s.Maps {
			var fts []*fieldTest
			for _, fm := range m {
				ft, err := c.fieldTest(r, fm)
				if err != nil {
					return err
				}
				fts = append(fts, ft)
			}
			cs.maps = append(cs.maps, fts)
		}
		index[name] = len(cr.searches)
		cr.searches = append(cr.searches, cs)
	}
	for _, cond := range det.Conditions {
		cc := cCond{root: buildNode(cond.Expr, index), agg: cond.Aggregation}
		if cond.Aggregation != nil {
			w := &windowSpec{span: det.Timeframe, op: cond.Aggregation.Op, threshold: cond.Aggregation.Threshold, valueSlot: -1}
			for _, f := range cond.Aggregation.By {
				w.groupFields = append(w.groupFields, f)
				w.groupSlots = append(w.groupSlots, c.slot(c.mapping.Fields(f)[0]))
			}
			if f := cond.Aggregation.Field; f != "" {
				w.kind = winValueCount
				w.valueSlot = c.slot(c.mapping.Fields(f)[0])
			}
			cc.win = w
		}
		cr.conds = append(cr.conds, cc)
	}
	return nil
}

func buildNode(e rules.Expr, index map[string]int) *cnode {
	switch x := e.(type) {
	case rules.Ident:
		return &cnode{kind: nSearch, search: index[x.Name]}
	case rules.And:
		n := &cnode{kind: nAnd}
		for _, k := range x {
			n.kids = append(n.kids, buildNode(k, index))
		}
		return n
	case rules.Or:
		n := &cnode{kind: nOr}
		for _, k := range x {
			n.kids = append(n.kids, buildNode(k, index))
		}
		return n
	case rules.Not:
		return &cnode{kind: nNot, kids: []*cnode{buildNode(x.X, index)}}
	case rules.Of:
		n := &cnode{kind: nOr}
		if x.All {
			n.kind = nAnd
		}
		for _, name := range x.Names {
			n.kids = append(n.kids, &cnode{kind: nSearch, search: index[name]})
		}
		return n
	}
	panic(fmt.Sprintf("engine: unknown condition node %T", e))
}

// lowCardinality are event fields with few distinct values.
var lowCardinality = map[string]bool{"http.request.method": true, "http.response.status_code": true, "network.protocol": true}

var transforms = map[string]bool{"base64": true, "base64offset": true, "utf16le": true, "utf16be": true, "utf16": true, "wide": true, "windash": true}

// fieldTest compiles one field matcher with its modifiers.
func (c *compiler) fieldTest(r *rules.Rule, fm rules.FieldMatcher) (*fieldTest, error) {
	fail := func(format string, args ...any) (*fieldTest, error) {
		return nil, ruleError(r, fm.Line, "field %q: "+format, append([]any{fm.Field}, args...)...)
	}
	ft := &fieldTest{field: fm.Field, exists: -1, keyword: fm.Field == ""}
	mods, err := parseModifiers(fm.Modifiers, ft)
	if err != nil {
		return fail("%v", err)
	}
	op, reFlags, trans := mods.op, mods.reFlags, mods.trans
	cased, expand, fieldref := mods.cased, mods.expand, mods.fieldref
	if ft.keyword && (fieldref || op == "exists" || op == "cidr") {
		return fail("modifier %s needs a field", op)
	}
	if ft.keyword && op == "" {
		op = "contains" // a keyword occurs anywhere in a value
	}
	if !ft.keyword {
		for _, f := range c.mapping.Fields(fm.Field) {
			ft.slots = append(ft.slots, c.slot(f))
			ft.lowCard = ft.lowCard || lowCardinality[f]
		}
	}
	if op == "exists" {
		if len(fm.Values) != 1 {
			return fail("exists takes one value, true or false")
		}
		b, ok := fm.Values[0].(bool)
		if !ok {
			return fail("exists takes true or false")
		}
		ft.exists = 0
		if b {
			ft.exists = 1
		}
		return ft, nil
	}
	if len(fm.Values) == 0 {
		return fail("no value")
	}
	for _, v := range fm.Values {
		if v == nil {
			if op != "" || len(trans) > 0 || fieldref {
				return fail("null cannot take modifiers")
			}
			ft.vals = append(ft.vals, valueTest{kind: vNull, ref: -1})
			continue
		}
		str := valueText(v)
		texts := []string{str}
		if expand {
			var err error
			if texts, err = c.expand(str); err != nil {
				return fail("%v", err)
			}
		}
		for _, text := range texts {
			variants := []string{text}
			for _, t := range trans {
				variants = applyTransform(t, variants)
			}
			literal := len(trans) > 0 && !(len(trans) == 1 && trans[0] == "windash")
			for _, vv := range variants {
				vt, err := c.valueTest(op, vv, fieldref, cased || literal, literal, reFlags, v)
				if err != nil {
					return fail("%v", err)
				}
				ft.vals = append(ft.vals, vt)
			}
		}
	}
	if !ft.all {
		ft.splitLongList()
	}
	return ft, nil
}

// fieldModifiers are the modifiers of a field matcher, parsed.
type fieldModifiers struct {
	op, reFlags             string
	trans                   []string
	cased, expand, fieldref bool
}

// parseModifiers parses a field matcher's modifiers; "all" and "neq" are
// set on ft. The error says which modifiers conflict.
func parseModifiers(mods []string, ft *fieldTest) (fieldModifiers, error) {
	var m fieldModifiers
	for _, mod := range mods {
		switch mod {
		case "contains", "startswith", "endswith":
			if m.op != "" && m.op != "fieldref" {
				return m, fmt.Errorf("modifiers %s and %s cannot be combined", m.op, mod)
			}
			m.op = mod
		case "re", "cidr", "gt", "gte", "lt", "lte", "exists":
			if m.op != "" {
				return m, fmt.Errorf("modifiers %s and %s cannot be combined", m.op, mod)
			}
			m.op = mod
		case "fieldref":
			if m.op != "" && m.op != "contains" && m.op != "startswith" && m.op != "endswith" {
				return m, fmt.Errorf("modifiers %s and fieldref cannot be combined", m.op)
			}
			m.fieldref = true
		case "i", "m", "s":
			if m.op != "re" {
				return m, fmt.Errorf("modifier %s applies only after re", mod)
			}
			m.reFlags += mod
		case "all":
			ft.all = true
		case "cased":
			m.cased = true
		case "neq":
			ft.neq = true
		case "expand":
			m.expand = true
		default:
			if transforms[mod] {
				m.trans = append(m.trans, mod)
				continue
			}
			return m, fmt.Errorf("unknown modifier %q", mod)
		}
	}
	return m, nil
}

func valueText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	return fmt.Sprint(v)
}

var placeholderRE = regexp.MustCompile(`%[A-Za-z0-9_.-]+%`)

// expand replaces the %name% placeholders of s with each of their values.
func (c *compiler) expand(s string) ([]string, error) {
	out := []string{s}
	for _, ph := range placeholderRE.FindAllString(s, -1) {
		vals, ok := c.mapping.Placeholder(strings.Trim(ph, "%"))
		if !ok {
			return nil, fmt.Errorf("placeholder %s has no values in the field mapping", ph)
		}
		var next []string
		for _, o := range out {
			for _, v := range vals {
				next = append(next, strings.Replace(o, ph, v, 1))
			}
		}
		out = next
	}
	return out, nil
}

func (c *compiler) valueTest(op, v string, fieldref, cased, literal bool, reFlags string, raw any) (valueTest, error) {
	vt := valueTest{ref: -1, cased: cased}
	if fieldref {
		vt.ref = c.slot(c.mapping.Fields(v)[0])
		switch op {
		case "contains":
			vt.kind = vContains
		case "startswith":
			vt.kind = vPrefix
		case "endswith":
			vt.kind = vSuffix
		default:
			vt.kind = vEq
		}
		return vt, nil
	}
	switch op {
	case "re":
		flags := ""
		if reFlags != "" {
			flags = "(?" + reFlags + ")"
		}
		re, err := regexp.Compile(flags + v)
		if err != nil {
			return vt, fmt.Errorf("regular expression %q: %w", v, err)
		}
		vt.kind, vt.re, vt.s = vRe, re, v
		return vt, nil
	case "cidr":
		p, err := netip.ParsePrefix(v)
		if err != nil {
			a, aerr := netip.ParseAddr(v)
			if aerr != nil {
				return vt, fmt.Errorf("cidr %q: %w", v, err)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		vt.kind, vt.nets = vCIDR, []netip.Prefix{p.Masked()}
		return vt, nil
	case "gt", "gte", "lt", "lte":
		var n float64
		switch x := raw.(type) {
		case int:
			n = float64(x)
		case float64:
			n = x
		default:
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return vt, fmt.Errorf("%s needs a number, got %q", op, v)
			}
			n = f
		}
		vt.kind, vt.op, vt.num = vNum, op, n
		return vt, nil
	}
	var toks []globTok
	if literal {
		toks = literalGlob(v)
	} else {
		toks = parseGlob(v)
	}
	if !cased {
		for i := range toks {
			toks[i].s = strings.ToLower(toks[i].s)
		}
	}
	star := []globTok{{kind: '*'}}
	switch op {
	case "contains":
		toks = append(append(star, toks...), star...)
	case "startswith":
		toks = append(toks, star...)
	case "endswith":
		toks = append(star, toks...)
	}
	toks = mergeStars(toks)
	vt.glob = toks
	switch {
	case len(toks) == 0:
		vt.kind, vt.s = vEq, ""
	case len(toks) == 1 && toks[0].kind == 'l':
		vt.kind, vt.s = vEq, toks[0].s
	case len(toks) == 1 && toks[0].kind == '*':
		vt.kind = vAny
	case len(toks) == 2 && toks[0].kind == 'l' && toks[1].kind == '*':
		vt.kind, vt.s = vPrefix, toks[0].s
	case len(toks) == 2 && toks[0].kind == '*' && toks[1].kind == 'l':
		vt.kind, vt.s = vSuffix, toks[1].s
	case len(toks) == 3 && toks[0].kind == '*' && toks[1].kind == 'l' && toks[2].kind == '*':
		vt.kind, vt.s = vContains, toks[1].s
	default:
		vt.kind = vGlob
	}
	return vt, nil
}

func mergeStars(toks []globTok) []globTok {
	out := toks[:0:0]
	for _, t := range toks {
		if t.kind == '*' && len(out) > 0 && out[len(out)-1].kind == '*' {
			continue
		}
		out = append(out, t)
	}
	return out
}

// applyTransform applies a value-transforming modifier to each value.
func applyTransform(t string, vals []string) []string {
	var out []string
	for _, v := range vals {
		switch t {
		case "base64":
			out = append(out, base64.StdEncoding.EncodeToString([]byte(v)))
		case "base64offset":
			for i := 0; i < 3; i++ {
				enc := base64.StdEncoding.EncodeToString(append(make([]byte, i), v...))
				start := [3]int{0, 2, 3}[i]
				end := len(enc) - [3]int{0, 3, 2}[(len(v)+i)%3]
				if start < end {
					out = append(out, enc[start:end])
				}
			}
		case "utf16le", "wide":
			out = append(out, utf16Text(v, false, false))
		case "utf16be":
			out = append(out, utf16Text(v, true, false))
		case "utf16":
			out = append(out, utf16Text(v, false, true))
		case "windash":
			out = append(out, windash(v)...)
		}
	}
	return out
}

func utf16Text(s string, bigEndian, bom bool) string {
	var b []byte
	if bom {
		b = append(b, 0xff, 0xfe)
	}
	for _, u := range utf16.Encode([]rune(s)) {
		if bigEndian {
			b = append(b, byte(u>>8), byte(u))
		} else {
			b = append(b, byte(u), byte(u>>8))
		}
	}
	return string(b)
}

// windash returns s with each option dash ("-" or "/" at the start of a
// word) written as each of -, /, en dash, em dash and horizontal bar.
func windash(s string) []string {
	var pos []int
	for i := 0; i < len(s); i++ {
		if (s[i] == '-' || s[i] == '/') && (i == 0 || !isWordByte(s[i-1])) && i+1 < len(s) && isWordByte(s[i+1]) {
			pos = append(pos, i)
		}
	}
	if len(pos) == 0 {
		return []string{s}
	}
	var out []string
	for _, d := range []string{"-", "/", "\u2013", "\u2014", "\u2015"} {
		var b strings.Builder
		last := 0
		for _, p := range pos {
			b.WriteString(s[last:p])
			b.WriteString(d)
			last = p + 1
		}
		b.WriteString(s[last:])
		out = append(out, b.String())
	}
	return out
}

func isWordByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// Prefilter literals.

// necessary returns literals at least one of which occurs in its field
// whenever e holds, or ok=false when no such set is known.
func (cr *compiledRule) necessary(n *cnode) ([]lit, bool) {
	switch n.kind {
	case nSearch:
		return cr.searches[n.search].necessary()
	case nOr:
		var out []lit
		for _, k := range n.kids {
			l, ok := cr.necessary(k)
			if !ok {
				return nil, false
			}
			out = append(out, l...)
		}
		return out, true
	case nAnd:
		return best(len(n.kids), func(i int) ([]lit, bool) { return cr.necessary(n.kids[i]) })
	}
	return nil, false
}

func (s *cSearch) necessary() ([]lit, bool) {
	var out []lit
	for _, m := range s.maps {
		l, ok := best(len(m), func(i int) ([]lit, bool) { return m[i].necessary() })
		if !ok {
			return nil, false
		}
		out = append(out, l...)
	}
	return out, true
}

func (ft *fieldTest) necessary() ([]lit, bool) {
	// A list too long for the prefilter is matched by its literal sets
	// only, at a cost independent of its length.
	if ft.neq || ft.exists >= 0 || len(ft.lists) > 0 && ft.pfVals == nil {
		return nil, false
	}
	slots := ft.slots
	if ft.keyword {
		slots = []int{-1}
	}
	one := func(v *valueTest) ([]lit, bool) {
		if v.kind == vEq && v.ref < 0 && !ft.keyword {
			var out []lit
			for _, sl := range slots {
				out = append(out, lit{slot: sl, s: strings.ToLower(v.s), exact: true, lowCardinality: ft.lowCard})
			}
			return out, true
		}
		ss := v.literals()
		if len(ss) == 0 {
			return nil, false
		}
		var out []lit
		for _, sl := range slots {
			for _, s := range ss {
				out = append(out, lit{slot: sl, s: s, lowCardinality: ft.lowCard})
			}
		}
		return out, true
	}
	if ft.all {
		return best(len(ft.vals), func(i int) ([]lit, bool) { return one(&ft.vals[i]) })
	}
	var out []lit
	for _, vals := range [][]valueTest{ft.vals, ft.pfVals} {
		for i := range vals {
			l, ok := one(&vals[i])
			if !ok {
				return nil, false
			}
			out = append(out, l...)
		}
	}
	return out, true
}

// literals returns lowercase ASCII texts one of which the field's value
// must contain, case folded, for the test to hold; nil if there are none.
func (v *valueTest) literals() []string {
	if v.ref >= 0 {
		return nil
	}
	var out []string
	switch v.kind {
	case vContains, vPrefix, vSuffix:
		out = []string{v.s}
	case vGlob:
		s := ""
		for _, t := range v.glob {
			if t.kind == 'l' && len(t.s) > len(s) {
				s = t.s
			}
		}
		out = []string{s}
	case vRe:
		re, err := syntax.Parse(v.re.String(), syntax.Perl)
		if err != nil {
			return nil
		}
		out, _ = reLiterals(re.Simplify())
	}
	for i, s := range out {
		s = strings.ToLower(s)
		if s == "" {
			return nil
		}
		for j := 0; j < len(s); j++ {
			if s[j] >= 0x80 {
				return nil
			}
		}
		out[i] = s
	}
	return out
}

// reLiterals returns texts one of which occurs in every match of re; ok is
// false when none is known.
func reLiterals(re *syntax.Regexp) ([]string, bool) {
	switch re.Op {
	case syntax.OpLiteral:
		return []string{string(re.Rune)}, true
	case syntax.OpCapture, syntax.OpPlus:
		return reLiterals(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return reLiterals(re.Sub[0])
		}
	case syntax.OpConcat:
		// Adjacent literals join; keep the best single requirement.
		var bestSet []string
		bestLen := 0
		run := ""
		consider := func(set []string) {
			m := 1 << 30
			for _, s := range set {
				m = min(m, len(s))
			}
			if m > bestLen {
				bestLen, bestSet = m, set
			}
		}
		for _, sub := range re.Sub {
			if sub.Op == syntax.OpLiteral {
				run += string(sub.Rune)
				continue
			}
			if run != "" {
				consider([]string{run})
				run = ""
			}
			if set, ok := reLiterals(sub); ok {
				consider(set)
			}
		}
		if run != "" {
			consider([]string{run})
		}
		return bestSet, bestSet != nil
	case syntax.OpAlternate:
		var out []string
		for _, sub := range re.Sub {
			set, ok := reLiterals(sub)
			if !ok {
				return nil, false
			}
			out = append(out, set...)
		}
		return out, true
	}
	return nil, false
}

// strength estimates how rarely a literal occurs in ordinary traffic.
func (l lit) strength() int {
	n := len(l.s)
	if l.exact {
		n = 24 // a whole-value match is rare
		if l.s == "" {
			n = 8
		}
	}
	if l.lowCardinality {
		n = 1 // methods and status codes: most events have the common ones
	}
	return n
}

// best picks, among n alternatives that must all hold, the literal set
// most likely to be absent: the one whose shortest literal is longest.
func best(n int, get func(int) ([]lit, bool)) ([]lit, bool) {
	var out []lit
	score := -1
	for i := 0; i < n; i++ {
		l, ok := get(i)
		if !ok || len(l) == 0 {
			continue
		}
		weakest := 1 << 30
		for _, x := range l {
			weakest = min(weakest, x.strength())
		}
		sc := weakest*64 - len(l)
		if sc > score {
			score, out = sc, l
		}
	}
	return out, score >= 0
}
