package engine_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raywatch/raywatch/engine"
	"github.com/raywatch/raywatch/normalize"
	"github.com/raywatch/raywatch/rules"
)

// ruleYAML wraps a detection body (indented by four spaces) into a rule.
func ruleYAML(id, detection string) string {
	return "title: test " + id + "\nid: " + id + "\nlogsource: {category: webserver}\nlevel: high\ndetection:\n" + detection
}

// httpEvent normalizes a Cloudflare record made of base fields plus over.
func httpEvent(t testing.TB, over map[string]any) *normalize.Event {
	t.Helper()
	rec := map[string]any{
		"ClientIP":               "203.0.113.7",
		"ClientRequestHost":      "shop.example.test",
		"ClientRequestMethod":    "GET",
		"ClientRequestURI":       "/index.html",
		"ClientRequestPath":      "/index.html",
		"ClientRequestUserAgent": "Mozilla/5.0 Chrome/131",
		"EdgeResponseStatus":     200,
		"EdgeStartTimestamp":     1764115200000000000,
		"RayID":                  "8e0001",
	}
	for k, v := range over {
		if v == nil {
			delete(rec, k)
			continue
		}
		rec[k] = v
	}
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := normalize.New(normalize.Options{}).Normalize("http_requests", b)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func compileOne(t testing.TB, yaml string) *engine.Engine {
	t.Helper()
	r, err := rules.Parse("test.yml", []byte(yaml))
	if err != nil {
		t.Fatalf("Parse: %v\n%s", err, yaml)
	}
	e, err := engine.New([]rules.Rule{r})
	if err != nil {
		t.Fatalf("New: %v\n%s", err, yaml)
	}
	return e
}

func TestSemantics(t *testing.T) {
	ua := func(s string) map[string]any { return map[string]any{"ClientRequestUserAgent": s} }
	uri := func(s string) map[string]any {
		p, _, _ := strings.Cut(s, "?")
		return map[string]any{"ClientRequestURI": s, "ClientRequestPath": p}
	}
	tests := []struct {
		name      string
		detection string
		event     map[string]any
		want      bool
	}{
		// Equality is case-insensitive; cased makes it exact.
		{"equal folds case", "  sel:\n    c-useragent: 'mozilla/5.0 chrome/131'\n  condition: sel\n", nil, true},
		{"equal whole value", "  sel:\n    c-useragent: 'Mozilla'\n  condition: sel\n", nil, false},
		{"cased equal", "  sel:\n    c-useragent|cased: 'mozilla/5.0 chrome/131'\n  condition: sel\n", nil, false},
		{"cased contains", "  sel:\n    c-useragent|contains|cased: 'Chrome'\n  condition: sel\n", nil, true},
		// Wildcards * and ?, with escapes.
		{"star wildcard", "  sel:\n    c-useragent: '*(Charon; Inferno)'\n  condition: sel\n", ua("Mozilla/4.08 (Charon; Inferno)"), true},
		{"star in middle", "  sel:\n    c-useragent: 'Mozilla/*Inferno)'\n  condition: sel\n", ua("Mozilla/4.08 (Charon; Inferno)"), true},
		{"question wildcard", "  sel:\n    c-uri: '/a?c'\n  condition: sel\n", uri("/abc"), true},
		{"question one char", "  sel:\n    c-uri: '/a?c'\n  condition: sel\n", uri("/abbc"), false},
		{"escaped star literal", "  sel:\n    c-uri: '/a\\*c'\n  condition: sel\n", uri("/abc"), false},
		{"escaped star matches star", "  sel:\n    c-uri: '/a\\*c'\n  condition: sel\n", uri("/a*c"), true},
		{"escaped question", "  sel:\n    c-uri|endswith: '\\?manifest=wac'\n  condition: sel\n", uri("/x?manifest=wac"), true},
		{"escaped question not wildcard", "  sel:\n    c-uri|endswith: '\\?manifest=wac'\n  condition: sel\n", uri("/x/manifest=wac"), false},
		// contains, startswith, endswith, all (in any position).
		{"contains", "  sel:\n    c-uri|contains: 'ETC/passwd'\n  condition: sel\n", uri("/../../etc/passwd"), true},
		{"startswith", "  sel:\n    c-uri|startswith: '/admin'\n  condition: sel\n", uri("/Admin/x"), true},
		{"startswith miss", "  sel:\n    c-uri|startswith: '/admin'\n  condition: sel\n", uri("/x/admin"), false},
		{"endswith", "  sel:\n    c-uri|endswith: '.PHP'\n  condition: sel\n", uri("/shell.php"), true},
		{"contains all", "  sel:\n    c-uri|contains|all: ['/a', '/b']\n  condition: sel\n", uri("/a/b"), true},
		{"contains all miss", "  sel:\n    c-uri|contains|all: ['/a', '/c']\n  condition: sel\n", uri("/a/b"), false},
		{"all before contains", "  sel:\n    c-uri|all|contains: ['/a', '/b']\n  condition: sel\n", uri("/a/b"), true},
		// re with i, m, s; unanchored, case-sensitive by default.
		{"re", "  sel:\n    c-uri|re: '/x[0-9]+$'\n  condition: sel\n", uri("/a/x42"), true},
		{"re case-sensitive", "  sel:\n    c-uri|re: '/X[0-9]+'\n  condition: sel\n", uri("/x42"), false},
		{"re i", "  sel:\n    c-uri|re|i: '/X[0-9]+'\n  condition: sel\n", uri("/x42"), true},
		{"re m", "  sel:\n    c-useragent|re|m: '^b$'\n  condition: sel\n", ua("a\nb"), true},
		{"re s", "  sel:\n    c-useragent|re|s: 'a.b'\n  condition: sel\n", ua("a\nb"), true},
		{"re without s", "  sel:\n    c-useragent|re: 'a.b'\n  condition: sel\n", ua("a\nb"), false},
		// cidr.
		{"cidr v4", "  sel:\n    c-ip|cidr: '203.0.113.0/24'\n  condition: sel\n", nil, true},
		{"cidr miss", "  sel:\n    c-ip|cidr: ['10.0.0.0/8', 'fc00::/7']\n  condition: sel\n", nil, false},
		{"cidr v6", "  sel:\n    c-ip|cidr: 'fc00::/7'\n  condition: sel\n", map[string]any{"ClientIP": "fd00::1"}, true},
		// base64, base64offset, utf16le/be, wide, windash.
		{"base64", "  sel:\n    c-uri|base64|contains: 'whoami'\n  condition: sel\n", uri("/x?c=d2hvYW1p"), true},
		{"base64 cased", "  sel:\n    c-uri|base64|contains: 'whoami'\n  condition: sel\n", uri("/x?c=D2HVYW1P"), false},
		{"base64offset 0", "  sel:\n    c-uri|base64offset|contains: 'whoami'\n  condition: sel\n", uri("/x?c=d2hvYW1p"), true},
		{"base64offset 1", "  sel:\n    c-uri|base64offset|contains: 'whoami'\n  condition: sel\n", uri("/x?c=eHdob2FtaQ"), true},
		{"base64offset 2", "  sel:\n    c-uri|base64offset|contains: 'whoami'\n  condition: sel\n", uri("/x?c=eHh3aG9hbWk"), true},
		{"utf16le base64", "  sel:\n    c-uri|utf16le|base64|contains: 'id'\n  condition: sel\n", uri("/x?c=aQBkAA=="), true},
		{"wide base64", "  sel:\n    c-uri|wide|base64|contains: 'id'\n  condition: sel\n", uri("/x?c=aQBkAA=="), true},
		{"utf16be base64", "  sel:\n    c-uri|utf16be|base64|contains: 'id'\n  condition: sel\n", uri("/x?c=AGkAZA=="), true},
		{"utf16 base64 (BOM)", "  sel:\n    c-uri|utf16|base64|contains: 'id'\n  condition: sel\n", uri("/x?c=//5pAGQA"), true},
		{"windash slash", "  sel:\n    c-useragent|windash|contains: ' -enc '\n  condition: sel\n", ua("ps /enc x"), true},
		{"windash other text", "  sel:\n    c-useragent|windash|contains: ' -enc '\n  condition: sel\n", ua("ps +enc x"), false},
		{"windash dash form", "  sel:\n    c-useragent|windash|contains: ' -enc'\n  condition: sel\n", ua("powershell /enc x"), true},
		{"windash en dash", "  sel:\n    c-useragent|windash|contains: ' -enc'\n  condition: sel\n", ua("powershell \u2013enc x"), true},
		// exists, neq, numbers.
		{"exists true", "  sel:\n    cs-referer|exists: true\n  condition: sel\n", map[string]any{"ClientRequestReferer": "https://a/"}, true},
		{"exists false", "  sel:\n    cs-referer|exists: false\n  condition: sel\n", nil, true},
		{"exists true absent", "  sel:\n    cs-referer|exists: true\n  condition: sel\n", nil, false},
		{"neq", "  sel:\n    cs-method|neq: 'POST'\n  condition: sel\n", nil, true},
		{"neq same", "  sel:\n    cs-method|neq: 'get'\n  condition: sel\n", nil, false},
		{"gt", "  sel:\n    sc-status|gt: 199\n  condition: sel\n", nil, true},
		{"gte", "  sel:\n    sc-status|gte: 200\n  condition: sel\n", nil, true},
		{"lt", "  sel:\n    sc-status|lt: 200\n  condition: sel\n", nil, false},
		{"lte", "  sel:\n    sc-status|lte: 200\n  condition: sel\n", nil, true},
		{"number equality", "  sel:\n    sc-status: 200\n  condition: sel\n", nil, true},
		// fieldref.
		{"fieldref", "  sel:\n    cs-host|fieldref: cs-referer\n  condition: sel\n", map[string]any{"ClientRequestReferer": "SHOP.example.test"}, true},
		{"fieldref differs", "  sel:\n    cs-host|fieldref: cs-referer\n  condition: sel\n", map[string]any{"ClientRequestReferer": "other"}, false},
		{"fieldref contains", "  sel:\n    cs-referer|fieldref|contains: cs-host\n  condition: sel\n", map[string]any{"ClientRequestReferer": "https://shop.example.test/a"}, true},
		// Keywords: unnamed lists over every field, contains, case-insensitive.
		{"keyword any field", "  keywords:\n    - 'EXAMPLE.test'\n  condition: keywords\n", nil, true},
		{"keyword in a number", "  keywords:\n    - '200'\n  condition: keywords\n", nil, true},
		{"keyword miss", "  keywords:\n    - 'union select'\n  condition: keywords\n", nil, false},
		{"keyword wildcard", "  keywords:\n    - 'chrome/1*1'\n  condition: keywords\n", nil, true},
		{"keyword all", "  keywords:\n    '|all':\n      - 'GET'\n      - 200\n      - 'index.html'\n  condition: keywords\n", nil, true},
		{"keyword all miss", "  keywords:\n    '|all':\n      - 'POST'\n      - 'index.html'\n  condition: keywords\n", nil, false},
		// null and empty string.
		{"null absent", "  sel:\n    cs-referer: null\n  condition: sel\n", nil, true},
		{"null present", "  sel:\n    cs-referer: null\n  condition: sel\n", map[string]any{"ClientRequestReferer": "x"}, false},
		{"null not empty", "  sel:\n    c-useragent: null\n  condition: sel\n", ua(""), false},
		{"empty string", "  sel:\n    c-useragent: ''\n  condition: sel\n", ua(""), true},
		{"empty string absent", "  sel:\n    c-useragent: ''\n  condition: sel\n", map[string]any{"ClientRequestUserAgent": nil}, false},
		{"missing is not <nil>", "  sel:\n    cs-referer|contains: 'nil'\n  condition: sel\n", nil, false},
		{"not over missing", "  sel:\n    cs-method: GET\n  filter:\n    cs-referer|contains: 'x'\n  condition: sel and not filter\n", nil, true},
		// List of maps: OR of maps.
		{"list of maps", "  sel:\n    - cs-method: POST\n    - c-uri: '/index.html'\n  condition: sel\n", nil, true},
		{"list of maps miss", "  sel:\n    - cs-method: POST\n    - c-uri: '/x'\n  condition: sel\n", nil, false},
		// Conditions.
		{"and or not parens", "  a:\n    cs-method: GET\n  b:\n    c-uri: '/x'\n  c:\n    sc-status: 200\n  condition: a and (b or c) and not (b and c)\n", nil, true},
		{"not binds tighter than and", "  a:\n    cs-method: GET\n  b:\n    c-uri: '/x'\n  condition: not b and a\n", nil, true},
		{"and binds tighter than or", "  a:\n    cs-method: POST\n  b:\n    c-uri: '/x'\n  c:\n    sc-status: 200\n  condition: a and b or c\n", nil, true},
		{"1 of x", "  sel:\n    cs-method: GET\n  condition: 1 of sel\n", nil, true},
		{"all of x", "  sel:\n    cs-method: GET\n  condition: all of sel\n", nil, true},
		{"1 of x*", "  sel_a:\n    cs-method: POST\n  sel_b:\n    sc-status: 200\n  condition: 1 of sel_*\n", nil, true},
		{"all of x*", "  sel_a:\n    cs-method: POST\n  sel_b:\n    sc-status: 200\n  condition: all of sel_*\n", nil, false},
		{"all of selection_1*", "  selection_1a:\n    cs-method: GET\n  selection_1b:\n    sc-status: 200\n  selection_2:\n    cs-method: POST\n  condition: all of selection_1*\n", nil, true},
		{"1 of them", "  a:\n    cs-method: POST\n  b:\n    sc-status: 200\n  condition: 1 of them\n", nil, true},
		{"all of them", "  a:\n    cs-method: POST\n  b:\n    sc-status: 200\n  condition: all of them\n", nil, false},
		{"them excludes _", "  a:\n    cs-method: GET\n  _b:\n    cs-method: POST\n  condition: all of them\n", nil, true},
		{"condition list", "  a:\n    cs-method: POST\n  b:\n    sc-status: 200\n  condition:\n    - a\n    - b\n", nil, true},
		// Field names the mapping does not know are used as they are.
		{"ECS field", "  sel:\n    url.path: '/index.html'\n  condition: sel\n", nil, true},
		{"derived extension", "  sel:\n    c-uri-extension: 'php'\n  condition: sel\n", uri("/a/shell.PHP?x=1"), true},
		{"percent literal", "  sel:\n    c-uri|contains: '%comspec%'\n  condition: sel\n", uri("/x?c=%comspec%"), true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := fmt.Sprintf("sem-%d", i)
			e := compileOne(t, ruleYAML(id, tt.detection))
			got := len(e.Match(httpEvent(t, tt.event), "t", time.Now())) > 0
			if got != tt.want {
				t.Errorf("Match(%v) = %v; want %v\n%s", tt.event, got, tt.want, tt.detection)
			}
		})
	}
}

func TestExpandPlaceholders(t *testing.T) {
	f := filepath.Join(t.TempDir(), "m.yml")
	os.WriteFile(f, []byte("placeholders:\n  admin_paths: ['/wp-admin', '/administrator']\n"), 0o600)
	m, err := rules.LoadMapping(f)
	if err != nil {
		t.Fatal(err)
	}
	r, err := rules.Parse("x.yml", []byte(ruleYAML("exp", "  sel:\n    c-uri|expand|startswith: '%admin_paths%'\n  condition: sel\n")))
	if err != nil {
		t.Fatal(err)
	}
	e, err := engine.NewWithOptions([]rules.Rule{r}, engine.Options{Mapping: m})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		uri  string
		want bool
	}{{"/administrator/index.php", true}, {"/wp-admin/", true}, {"/blog", false}} {
		got := len(e.Match(httpEvent(t, map[string]any{"ClientRequestURI": tt.uri}), "t", time.Now())) > 0
		if got != tt.want {
			t.Errorf("Match(%s) = %v; want %v", tt.uri, got, tt.want)
		}
	}
	// Without a value for the placeholder, the rule does not compile.
	if _, err := engine.New([]rules.Rule{r}); err == nil || !strings.Contains(err.Error(), "admin_paths") {
		t.Errorf("New without placeholder values = %v; want an error naming it", err)
	}
}

func TestCompileErrorsNameFileAndLine(t *testing.T) {
	tests := []struct {
		detection string
		wantLine  int
		wantErr   string
	}{
		{"  sel:\n    c-uri|re: 'a(b'\n  condition: sel\n", 7, "regular expression"},
		{"  sel:\n    c-uri|nosuch: 'a'\n  condition: sel\n", 7, "unknown modifier"},
		{"  sel:\n    c-uri|i: 'a'\n  condition: sel\n", 7, "applies only after re"},
		{"  sel:\n    c-ip|cidr: 'x/99'\n  condition: sel\n", 7, "cidr"},
		{"  sel:\n    sc-status|gt: abc\n  condition: sel\n", 7, "number"},
	}
	for _, tt := range tests {
		r, err := rules.Parse("bad.yml", []byte(ruleYAML("bad", tt.detection)))
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		problems := engine.Check([]rules.Rule{r}, engine.Options{})
		if len(problems) != 1 || problems[0].Line != tt.wantLine || !strings.Contains(problems[0].Error(), tt.wantErr) || !strings.Contains(problems[0].Error(), "bad.yml") {
			t.Errorf("Check(%q) = %v; want bad.yml:%d ... %s", tt.detection, problems, tt.wantLine, tt.wantErr)
		}
	}
}
