package normalize

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/valyala/fastjson"
)

// jsonCases are texts on which jparser must agree with fastjson.
var jsonCases = []string{
	``, ` `, `{}`, `[]`, ` {"a" : 1 , "b":[1, 2.5e-3,-0, "x"] } `, `{"a":1} x`, `{"a":1}{"b":2}`,
	`null`, `true`, `false`, `nul`, `tru`, `fals`, `"x"`, `"x`, `"\"`, `"\\"`, `"a\"b"`, `"a\\\"b"`,
	`{"a":NaN}`, `{"a":-Inf}`, `{"a":+inf}`, `{"a":nan}`, `{"a":-}`, `{"a":+}`, `{"a":1.2.3}`, `{"a":--1}`,
	`{"a":01}`, `{"a":.5}`, `{"a":1e}`, `{"a":infinity}`, `{"a":x}`, `{"a"}`, `{"a":}`, `{"a":1,}`, `[1,]`,
	`{a:1}`, `{"a":1 "b":2}`, `[1 2]`, `{"a":[}`, `{"a":{"b":{"c":[[[]]]}}}`, `[` + "\x01" + `]`,
	`"\u00e9\u20ac\ud83d\ude00"`, `"\ud83d"`, `"\ud83dx"`, `"\ud83d\u0041"`, `"\ud83d\uzzzz"`, `"\uzzzz"`,
	`"\u12"`, `"\x"`, `"\/\b\f\n\r\t"`, `"tab	and` + "\x00" + `nul"`, "\"\xff\xfe\"", `{"a\u0062":1,"ab":2}`,
	`{"k\"ey":"v\\"}`, "\t\r\n {\"a\":1}\n", "\x0b{}", `[1,2,3,[4,[5,[6]]],{"x":{}}]`,
	string(bytes.Repeat([]byte("["), 299)) + string(bytes.Repeat([]byte("]"), 299)),
	string(bytes.Repeat([]byte("["), 301)) + string(bytes.Repeat([]byte("]"), 301)),
	benchRecord,
}

// checkJSON fails t unless jparser and fastjson agree on raw: both reject
// it, or both accept it with the same values.
func checkJSON(t *testing.T, raw []byte) {
	t.Helper()
	var fp fastjson.Parser
	var jp jparser
	fv, ferr := fp.ParseBytes(raw)
	jv, jerr := jp.parse(raw)
	if (ferr == nil) != (jerr == nil) {
		t.Fatalf("parse(%q): jparser error %v, fastjson error %v", raw, jerr, ferr)
	}
	if ferr != nil {
		if got := jsonError(raw, jerr); got.Error() != ferr.Error() {
			t.Errorf("jsonError(%q) = %v; want %v", raw, got, ferr)
		}
		return
	}
	if diff := sameJSON(&jp, jv, fv); diff != "" {
		t.Errorf("parse(%q): %s", raw, diff)
	}
}

// sameJSON describes the first difference between a jparser value and a
// fastjson value, or returns "".
func sameJSON(p *jparser, j *jvalue, f *fastjson.Value) string {
	ft := f.Type()
	if j.t.String() != ft.String() {
		return fmt.Sprintf("type %s; fastjson %s", j.t, ft)
	}
	switch ft {
	case fastjson.TypeString:
		if s, _ := f.StringBytes(); j.s != string(s) {
			return fmt.Sprintf("string %q; fastjson %q", j.s, s)
		}
	case fastjson.TypeNumber:
		if s := f.String(); j.s != s {
			return fmt.Sprintf("number %q; fastjson %q", j.s, s)
		}
		jf, jerr := j.float()
		ff, ferr := f.Float64()
		if (jerr == nil) != (ferr == nil) || jerr == nil && fmt.Sprint(jf) != fmt.Sprint(ff) {
			return fmt.Sprintf("float %v %v; fastjson %v %v", jf, jerr, ff, ferr)
		}
	case fastjson.TypeArray:
		a, _ := f.Array()
		if int(j.n) != len(a) {
			return fmt.Sprintf("%d elements; fastjson %d", j.n, len(a))
		}
		c := p.child(j)
		for _, e := range a {
			if d := sameJSON(p, c, e); d != "" {
				return d
			}
			c = p.next(j, c)
		}
	case fastjson.TypeObject:
		o, _ := f.Object()
		if int(j.n) != o.Len() {
			return fmt.Sprintf("%d members; fastjson %d", j.n, o.Len())
		}
		c := p.child(j)
		var diff string
		o.Visit(func(k []byte, e *fastjson.Value) {
			if diff != "" {
				return
			}
			if c.key != string(k) {
				diff = fmt.Sprintf("key %q; fastjson %q", c.key, k)
				return
			}
			diff = sameJSON(p, c, e)
			c = p.next(j, c)
		})
		return diff
	}
	return ""
}

func TestJSONParser(t *testing.T) {
	for _, c := range jsonCases {
		checkJSON(t, []byte(c))
	}
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "normalize", "*.ndjson"))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for line := range bytes.SplitSeq(data, []byte("\n")) {
			checkJSON(t, line)
		}
	}
}

func FuzzJSONParser(f *testing.F) {
	for _, c := range jsonCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, raw []byte) { checkJSON(t, raw) })
}

func TestDatasetLookup(t *testing.T) {
	for _, ds := range datasetsByName {
		for want, key := range ds.names {
			if got, ok := ds.lookup(key); !ok || got != want {
				t.Errorf("%s.lookup(%q) = %d, %v; want %d, true", ds.name, key, got, ok, want)
			}
		}
		for _, key := range []string{"", "x", "NotAKey", "clientip", "ClientIP "} {
			if s, ok := ds.lookup(key); ok {
				t.Errorf("%s.lookup(%q) = %d, true; want false", ds.name, key, s)
			}
		}
	}
}
