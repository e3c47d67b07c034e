package rules

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLevelAndStatusAreValidated(t *testing.T) {
	const body = "logsource: {category: proxy}\ndetection:\n  sel:\n    c-uri: /x\n  condition: sel\n"
	tests := []struct {
		name      string
		yaml      string
		wantLine  int
		wantErr   string
		wantLevel string
	}{
		{"typo in level", "title: x\nid: 1\nlevel: hgh\n" + body, 3, `level "hgh" is not one of informational, low, medium, high, critical`, ""},
		{"typo in status", "title: x\nid: 1\nstatus: stabel\nlevel: high\n" + body, 3, `status "stabel" is not one of stable, test, experimental, deprecated, unsupported`, ""},
		{"level as a number", "title: x\nid: 1\nlevel: 3\n" + body, 3, `level "3"`, ""},
		{"every valid level", "title: x\nid: 1\nlevel: informational\nstatus: experimental\n" + body, 0, "", "informational"},
		{"case is ignored", "title: x\nid: 1\nlevel: High\nstatus: Test\n" + body, 0, "", "high"},
		{"no level means medium", "title: x\nid: 1\n" + body, 0, "", "medium"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Parse("r.yml", []byte(tc.yaml))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse = %v; want no error", err)
				}
				if r.Level != tc.wantLevel {
					t.Errorf("Level = %q; want %q", r.Level, tc.wantLevel)
				}
				return
			}
			var le *LoadError
			if !errors.As(err, &le) {
				t.Fatalf("Parse = %v; want a *LoadError", err)
			}
			if le.File != "r.yml" || le.Line != tc.wantLine || !contains(le.Error(), tc.wantErr) {
				t.Errorf("Parse error = %v; want r.yml:%d: ...%s", err, tc.wantLine, tc.wantErr)
			}
		})
	}
}

func TestLoadFolderReportsSkipped(t *testing.T) {
	dir := t.TempDir()
	const body = "logsource: {category: proxy}\ndetection:\n  sel:\n    c-uri: /x\n  condition: sel\n"
	write(t, dir, "ok.yml", "title: Kept\nid: k\nstatus: test\n"+body)
	write(t, dir, "old.yml", "title: Old\nid: d\nlevel: low\nstatus: deprecated\n"+body)
	write(t, dir, "unsup.yml", "title: Unsupported\nid: u\nstatus: unsupported\n"+body)
	write(t, dir, "bad.yml", "title: Bad\nid: b\nlevel: hgh\n"+body)
	f, err := LoadFolder(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Rules) != 1 || f.Rules[0].ID != "k" {
		t.Errorf("Rules = %v; want only k", f.Rules)
	}
	want := []Skip{
		{File: filepath.Join(dir, "old.yml"), Line: 4, ID: "d", Title: "Old", Reason: "status deprecated"},
		{File: filepath.Join(dir, "unsup.yml"), Line: 3, ID: "u", Title: "Unsupported", Reason: "status unsupported"},
	}
	if diff := cmp.Diff(want, f.Skipped); diff != "" {
		t.Errorf("Skipped (-want +got):\n%s", diff)
	}
	if len(f.Problems) != 1 || f.Problems[0].File != filepath.Join(dir, "bad.yml") || f.Problems[0].Line != 3 {
		t.Errorf("Problems = %v; want bad.yml:3", f.Problems)
	}
	// LoadDir keeps its contract: rules and problems.
	rs, problems, err := LoadDir(dir)
	if err != nil || len(rs) != 1 || len(problems) != 1 {
		t.Errorf("LoadDir = %d rules, %v, %v; want 1 rule and 1 problem", len(rs), problems, err)
	}
}

// The filter examples of the Sigma filters specification
// (sigma-filters-specification.md and its tests), with their own fields.
const (
	specFilter = `title: Filter Administrator account
description: The valid administrator account start with adm_
logsource:
    category: process_creation
    product: windows
filter:
    rules:
        - 6f3e2987-db24-4c78-a860-b4f4095a7095 # Data Compressed - rar.exe
        - df0841c0-9846-4e9f-ad8a-7df91571771b # Login on jump host
    selection:
        User|startswith: 'adm_'
    condition: selection
`
	specFilterECS = `title: Filter google 
description: User use google
taxonomy: ecs
logsource:
    category: network
    service: dns
filter:
    rules:
        - 6f3e2987-db24-4c78-a860-b4f4095a7095 # rule 1
        - df0841c0-9846-4e9f-ad8a-7df91571771b # rule 2
    selection:
        dns.question.name|startswith: 'www.google.'
    condition: selection
`
)

func TestParseFilter(t *testing.T) {
	for _, src := range []string{specFilter, specFilterECS} {
		r, err := Parse("mf_x.yml", []byte(src))
		if err != nil {
			t.Fatalf("Parse(spec example) = %v", err)
		}
		if r.Kind() != KindFilter || r.Filter == nil || r.Detection == nil {
			t.Fatalf("Kind = %s, Filter %v; want a filter with a detection", r.Kind(), r.Filter)
		}
		want := []string{"6f3e2987-db24-4c78-a860-b4f4095a7095", "df0841c0-9846-4e9f-ad8a-7df91571771b"}
		if diff := cmp.Diff(want, r.Filter.Rules); diff != "" {
			t.Errorf("Filter.Rules (-want +got):\n%s", diff)
		}
		if r.ID == "" || r.Level != "" {
			t.Errorf("ID = %q, Level = %q; want a generated id and no level", r.ID, r.Level)
		}
		again, _ := Parse("mf_x.yml", []byte(src))
		if again.ID != r.ID {
			t.Errorf("generated id %q then %q; want a stable id", r.ID, again.ID)
		}
		if s := r.Detection.Searches["selection"]; s == nil || len(s.Maps) != 1 || s.Maps[0][0].Modifiers[0] != "startswith" {
			t.Errorf("selection = %+v; want one startswith matcher", s)
		}
	}
	bad := []struct {
		name, yaml, wantErr string
		wantLine            int
	}{
		{"no rules", "title: f\nlogsource: {category: proxy}\nfilter:\n  selection:\n    c-uri: /x\n  condition: selection\n", "filter lists no rules", 4},
		{"no condition", "title: f\nlogsource: {category: proxy}\nfilter:\n  rules: [a]\n  selection:\n    c-uri: /x\n", "no condition", 4},
		{"aggregation", "title: f\nlogsource: {category: proxy}\nfilter:\n  rules: [a]\n  selection:\n    c-uri: /x\n  timeframe: 1m\n  condition: selection | count() > 3\n", "cannot aggregate", 8},
		{"rules not a list", "title: f\nlogsource: {category: proxy}\nfilter:\n  rules: {a: b}\n  selection:\n    c-uri: /x\n  condition: selection\n", "want a list", 4},
	}
	for _, tc := range bad {
		_, err := Parse("f.yml", []byte(tc.yaml))
		var le *LoadError
		if !errors.As(err, &le) || le.Line != tc.wantLine || !contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: Parse = %v; want f.yml:%d: ...%s", tc.name, err, tc.wantLine, tc.wantErr)
		}
	}
}
