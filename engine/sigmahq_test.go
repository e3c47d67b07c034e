package engine_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"regexp/syntax"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/raywatch/raywatch/engine"
	"github.com/raywatch/raywatch/normalize"
	"github.com/raywatch/raywatch/rules"
)

// sigmaHQDir is the SigmaHQ web/proxy/webserver snapshot shared by the
// project; it is read in place, never copied into the repository.
const sigmaHQDir = "../../shared/testdata/sigmahq/rules"

func loadSigmaHQ(tb testing.TB) []rules.Rule {
	tb.Helper()
	if _, err := os.Stat(sigmaHQDir); err != nil {
		tb.Skipf("SigmaHQ rules not present at %s (shared test data): %v", sigmaHQDir, err)
	}
	rs, problems, err := rules.LoadDir(sigmaHQDir)
	if err != nil {
		tb.Fatal(err)
	}
	for _, p := range problems {
		tb.Errorf("LoadDir: %v", p)
	}
	return rs
}

// testMapping is the default mapping plus cs-username, which Cloudflare
// http_requests records never carry, mapped to a request header so that the
// one rule that needs it can be exercised.
func testMapping(tb testing.TB) *rules.Mapping {
	tb.Helper()
	f := filepath.Join(tb.TempDir(), "mapping.yml")
	if err := os.WriteFile(f, []byte("fields:\n  cs-username: cloudflare.RequestHeaders.x-user\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	m, err := rules.LoadMapping(f)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

func TestSigmaHQRulesCompile(t *testing.T) {
	rs := loadSigmaHQ(t)
	if len(rs) != 145 {
		t.Errorf("loaded %d SigmaHQ rules; want 145", len(rs))
	}
	if problems := engine.Check(rs, engine.Options{}); len(problems) > 0 {
		for _, p := range problems {
			t.Errorf("Check: %v", p)
		}
	}
}

// TestSigmaHQFiresAndNearMisses builds, for every SigmaHQ rule, a Cloudflare
// record that must fire it (generated from the rule's detection) and a
// near miss (the same record with one tested field put back to ordinary
// traffic) that must not, so that a rule which loads but can never match,
// or matches everything, is caught.
func TestSigmaHQFiresAndNearMisses(t *testing.T) {
	rs := loadSigmaHQ(t)
	m := testMapping(t)
	e, err := engine.NewWithOptions(rs, engine.Options{Mapping: m})
	if err != nil {
		t.Fatal(err)
	}
	norm := normalize.New(normalize.Options{})
	fired := func(rec map[string]any, id string) bool {
		b, _ := json.Marshal(rec)
		ev, err := norm.Normalize("http_requests", b)
		if err != nil {
			t.Fatalf("normalize %s: %v", b, err)
		}
		for _, a := range e.Match(ev, "test", time.Now()) {
			if a.Rule.ID == id {
				return true
			}
		}
		return false
	}
	for _, r := range rs {
		t.Run(filepath.Base(r.File), func(t *testing.T) {
			plan, err := planRule(r, m)
			if err != nil {
				t.Fatalf("cannot build a record: %v", err)
			}
			rec := plan.record()
			if !fired(rec, r.ID) {
				t.Fatalf("generated record %v does not fire the rule", rec)
			}
			for _, miss := range plan.nearMisses() {
				if !fired(miss, r.ID) {
					return
				}
			}
			t.Errorf("no near miss of %v: every variant with one tested field reset still fires", rec)
		})
	}
}

// baseRecord is ordinary traffic.
func baseRecord() map[string]any {
	return map[string]any{
		"ClientIP":               "203.0.113.7",
		"ClientRequestHost":      "shop.example.test",
		"ClientRequestMethod":    "GET",
		"ClientRequestURI":       "/index.html",
		"ClientRequestPath":      "/index.html",
		"ClientRequestUserAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
		"ClientRequestReferer":   "https://shop.example.test/",
		"EdgeResponseStatus":     200,
		"EdgeStartTimestamp":     1658281671671000000,
		"RayID":                  "7f00c0ffee000001",
	}
}

// want is what the generator must put in one event field.
type want struct {
	eq               *string
	prefix, suffix   []string
	contains         []string
	absent           bool
	order            int // first use, to reset in near misses in rule order
	fromKeywordField bool
}

func (w *want) text() string {
	if w.eq != nil {
		return *w.eq
	}
	return strings.Join(w.prefix, "") + strings.Join(w.contains, "") + strings.Join(w.suffix, "")
}

type plan struct {
	fields map[string]*want // ECS field -> what it must hold
	n      int
}

func (p *plan) get(f string) *want {
	w := p.fields[f]
	if w == nil {
		p.n++
		w = &want{order: p.n}
		p.fields[f] = w
	}
	return w
}

// planRule chooses values satisfying the rule's first condition: the
// first alternative of every "or", every term of every "and", and nothing
// for "not" (ordinary traffic is expected not to match the filters).
func planRule(r rules.Rule, m *rules.Mapping) (*plan, error) {
	if r.Detection == nil {
		return nil, fmt.Errorf("not a detection rule")
	}
	p := &plan{fields: map[string]*want{}}
	kw := 0
	var walk func(e rules.Expr) error
	walk = func(e rules.Expr) error {
		switch x := e.(type) {
		case rules.Ident:
			return p.search(r.Detection.Searches[x.Name], m, &kw)
		case rules.And:
			for _, k := range x {
				if err := walk(k); err != nil {
					return err
				}
			}
		case rules.Or:
			return walk(x[0])
		case rules.Not:
		case rules.Of:
			if !x.All {
				return walk(rules.Ident{Name: x.Names[0]})
			}
			for _, n := range x.Names {
				if err := walk(rules.Ident{Name: n}); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(r.Detection.Conditions[0].Expr); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *plan) search(s *rules.Search, m *rules.Mapping, kw *int) error {
	for _, fm := range s.Maps[0] {
		field := "cloudflare.RequestHeaders.x-keyword-" + strconv.Itoa(*kw)
		if fm.Field != "" {
			field = m.Fields(fm.Field)[0]
		}
		op, all := "eq", false
		for _, mod := range fm.Modifiers {
			switch mod {
			case "all":
				all = true
			default:
				op = mod
			}
		}
		if fm.Field == "" && op == "eq" {
			op = "contains"
		}
		vals := fm.Values
		if !all {
			vals = vals[:1]
		}
		for _, v := range vals {
			if fm.Field == "" {
				field = "cloudflare.RequestHeaders.x-keyword-" + strconv.Itoa(*kw)
				*kw++
			}
			w := p.get(field)
			w.fromKeywordField = fm.Field == ""
			if v == nil {
				w.absent = true
				continue
			}
			text := fmt.Sprint(v)
			switch op {
			case "re":
				s, err := sampleRegexp(text)
				if err != nil {
					return err
				}
				w.contains = append(w.contains, s)
			case "cidr":
				pfx, err := netip.ParsePrefix(text)
				if err != nil {
					return err
				}
				s := pfx.Masked().Addr().Next().String()
				w.eq = &s
			case "contains":
				w.contains = append(w.contains, unglob(text))
			case "startswith":
				w.prefix = append(w.prefix, unglob(text))
			case "endswith":
				w.suffix = append(w.suffix, unglob(text))
			default:
				s := unglob(text)
				w.eq = &s
			}
		}
	}
	return nil
}

// unglob turns a Sigma wildcard value into one text it matches.
func unglob(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\' && i+1 < len(v) && strings.IndexByte(`*?\`, v[i+1]) >= 0:
			b.WriteByte(v[i+1])
			i++
		case c == '*':
		case c == '?':
			b.WriteByte('x')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// sampleRegexp returns a text the regular expression matches.
func sampleRegexp(expr string) (string, error) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	var gen func(re *syntax.Regexp)
	gen = func(re *syntax.Regexp) {
		switch re.Op {
		case syntax.OpLiteral:
			if re.Flags&syntax.FoldCase != 0 {
				b.WriteString(strings.ToLower(string(re.Rune)))
			} else {
				b.WriteString(string(re.Rune))
			}
		case syntax.OpCharClass:
			r := rune(-1)
			for i := 0; i+1 < len(re.Rune) && r < 0; i += 2 {
				if re.Rune[i] <= 'a' && 'a' <= re.Rune[i+1] {
					r = 'a'
				}
				for c := re.Rune[i]; c <= re.Rune[i+1] && r < 0; c++ {
					if unicode.IsPrint(c) {
						r = c
					}
				}
			}
			b.WriteRune(r)
		case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
			b.WriteByte('a')
		case syntax.OpCapture:
			gen(re.Sub[0])
		case syntax.OpPlus:
			gen(re.Sub[0])
		case syntax.OpRepeat:
			for i := 0; i < re.Min; i++ {
				gen(re.Sub[0])
			}
		case syntax.OpConcat:
			for _, s := range re.Sub {
				gen(s)
			}
		case syntax.OpAlternate:
			gen(re.Sub[0])
		}
	}
	gen(re)
	return b.String(), nil
}

// record builds the Cloudflare record of the plan.
func (p *plan) record() map[string]any {
	rec := baseRecord()
	names := make([]string, 0, len(p.fields))
	for f := range p.fields {
		names = append(names, f)
	}
	sort.Slice(names, func(i, j int) bool { return p.fields[names[i]].order < p.fields[names[j]].order })
	for _, f := range names {
		setField(rec, f, p.fields[f])
	}
	return rec
}

// nearMisses returns the plan's record with, in turn, each tested field put
// back to its ordinary value.
func (p *plan) nearMisses() []map[string]any {
	var out []map[string]any
	for f, w := range p.fields {
		if w.absent {
			continue
		}
		q := &plan{fields: maps.Clone(p.fields)}
		delete(q.fields, f)
		out = append(out, q.record())
	}
	return out
}

// setField writes an ECS field's wanted value into the Cloudflare record
// field it comes from.
func setField(rec map[string]any, field string, w *want) {
	v := w.text()
	del := w.absent
	set := func(key string) {
		if del {
			delete(rec, key)
		} else {
			rec[key] = v
		}
	}
	switch field {
	case "url.original":
		set("ClientRequestURI")
	case "url.path":
		set("ClientRequestPath")
	case "url.query":
		uri, _ := rec["ClientRequestURI"].(string)
		if i := strings.IndexByte(uri, '?'); i >= 0 {
			uri = uri[:i]
		}
		rec["ClientRequestURI"] = uri + "?" + v
	case "url.extension":
		rec["ClientRequestPath"] = "/download/file." + v
	case "user_agent.original":
		set("ClientRequestUserAgent")
	case "destination.address":
		set("ClientRequestHost")
	case "http.request.method":
		set("ClientRequestMethod")
	case "http.request.referrer":
		set("ClientRequestReferer")
	case "http.response.status_code":
		if n, err := strconv.Atoi(v); err == nil {
			rec["EdgeResponseStatus"] = n
		}
	case "source.ip":
		set("ClientIP")
	case "cloudflare.OriginIP":
		set("OriginIP")
	default:
		if h, ok := strings.CutPrefix(field, "cloudflare.RequestHeaders."); ok {
			hs, _ := rec["RequestHeaders"].(map[string]any)
			if hs == nil {
				hs = map[string]any{}
				rec["RequestHeaders"] = hs
			}
			if !del {
				hs[h] = v
			}
			return
		}
		panic("test: no record field for " + field)
	}
}
