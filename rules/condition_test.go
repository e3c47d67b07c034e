package rules

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestParseCondition(t *testing.T) {
	searches := []string{"_hidden", "filter_main_a", "filter_main_b", "keywords", "selection", "selection_1a", "selection_1b", "selection_exploit_2_uri", "selection_exploit_2_keyword"}
	tests := []struct {
		cond string
		want string
	}{
		{"selection", "{selection}"},
		{"selection and not keywords", "[{selection} {{keywords}}]"},
		{"selection or keywords and filter_main_a", "[{selection} [{keywords} {filter_main_a}]]"},
		{"all of selection_1*", "{true selection_1* [selection_1a selection_1b]}"},
		{"all of selection_exploit_2_*", "{true selection_exploit_2_* [selection_exploit_2_keyword selection_exploit_2_uri]}"},
		{"1 of filter_main_*", "{false filter_main_* [filter_main_a filter_main_b]}"},
		{"1 of selection", "{false selection [selection]}"},
		{"all of them", "{true them [filter_main_a filter_main_b keywords selection selection_1a selection_1b selection_exploit_2_keyword selection_exploit_2_uri]}"},
		{"NOT (selection OR keywords)", "{[{selection} {keywords}]}"},
	}
	for _, tt := range tests {
		e, agg, err := parseCondition(tt.cond, searches)
		if err != nil || agg != nil {
			t.Errorf("parseCondition(%q) error %v, aggregation %v", tt.cond, err, agg)
			continue
		}
		if got := fmt.Sprint(e); got != tt.want {
			t.Errorf("parseCondition(%q) = %s; want %s", tt.cond, got, tt.want)
		}
	}
}

func TestParseConditionAggregation(t *testing.T) {
	e, agg, err := parseCondition("selection | count(c-uri) by c-ip, cs-host >= 10", []string{"selection"})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(e) != "{selection}" || agg.Field != "c-uri" || strings.Join(agg.By, ",") != "c-ip,cs-host" || agg.Op != ">=" || agg.Threshold != 10 {
		t.Errorf("parseCondition = %v %+v", e, agg)
	}
}

func TestParseConditionErrors(t *testing.T) {
	for _, tt := range []struct{ cond, want string }{
		{"selection and", "ends too early"},
		{"nosuch", "no search named"},
		{"1 of nothing_*", "matches no search"},
		{"selection_*", "needs \"1 of\""},
		{"(selection", "missing )"},
		{"selection | count() < 3", "cannot fire"},
		{"selection | near keywords", "near"},
		{"selection # x", "unexpected character"},
	} {
		_, _, err := parseCondition(tt.cond, []string{"selection", "keywords"})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseCondition(%q) = %v; want an error saying %q", tt.cond, err, tt.want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"30s": 30 * time.Second, "10m": 10 * time.Minute, "1h": time.Hour, "2d": 48 * time.Hour, "1w": 7 * 24 * time.Hour, "1h30m": 90 * time.Minute} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0s", "-1m", "10x", "m"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) succeeded; want an error", in)
		}
	}
}

func TestParseAllDocumentsAndCorrelation(t *testing.T) {
	rs, err := ParseAll("c.yml", []byte("title: a\nid: a1\nname: a\ndetection:\n  s:\n    f: v\n  condition: s\n---\ntitle: c\nid: c1\ncorrelation:\n  type: value_count\n  rules: [a]\n  group-by: [ip]\n  timespan: 1h\n  condition:\n    field: user\n    gte: 5\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Kind() != "detection" || rs[1].Kind() != "correlation" {
		t.Fatalf("ParseAll = %d rules", len(rs))
	}
	c := rs[1].Correlation
	if c.Type != "value_count" || c.Field != "user" || c.Op != ">=" || c.Threshold != 5 || c.Timespan != time.Hour || c.GroupBy[0] != "ip" {
		t.Errorf("correlation = %+v", c)
	}
}

func TestLoadDirSkipsDeprecated(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "old.yml", "title: old\nid: o1\nstatus: deprecated\ndetection:\n  s:\n    f: v\n  condition: s\n")
	write(t, dir, "new.yml", "title: new\nid: n1\ndetection:\n  s:\n    f: v\n  condition: s\n")
	rs, problems, err := LoadDir(dir)
	if err != nil || len(problems) != 0 || len(rs) != 1 || rs[0].ID != "n1" {
		t.Errorf("LoadDir = %v, %v, %v; want only n1", rs, problems, err)
	}
}

func TestMapping(t *testing.T) {
	m := DefaultMapping()
	if got := m.Fields("cs-uri-query"); len(got) != 1 || got[0] != "url.original" {
		t.Errorf("Fields(cs-uri-query) = %v; want url.original", got)
	}
	if got := m.Fields("url.path"); got[0] != "url.path" {
		t.Errorf("Fields(url.path) = %v; want it unchanged", got)
	}
	if got := m.Datasets(Logsource{Category: "proxy"}); len(got) != 1 || got[0] != "http_requests" {
		t.Errorf("Datasets(proxy) = %v", got)
	}
	if got := m.Datasets(Logsource{Category: "process_creation", Product: "windows"}); got != nil {
		t.Errorf("Datasets(process_creation) = %v; want nil (every dataset)", got)
	}
	dir := t.TempDir()
	write(t, dir, "m.yml", "fields:\n  cs-host: [destination.address, url.domain]\n")
	m2, err := LoadMapping(dir + "/m.yml")
	if err != nil {
		t.Fatal(err)
	}
	if got := m2.Fields("cs-host"); len(got) != 2 {
		t.Errorf("override Fields(cs-host) = %v", got)
	}
	if got := m2.Fields("c-useragent"); got[0] != "user_agent.original" {
		t.Errorf("override lost the defaults: %v", got)
	}
	write(t, dir, "bad.yml", "fields:\n  cs-host: {a: b}\n")
	if _, err := LoadMapping(dir + "/bad.yml"); err == nil || !strings.Contains(err.Error(), "bad.yml:2") {
		t.Errorf("LoadMapping(bad) = %v; want an error at bad.yml:2", err)
	}
}
