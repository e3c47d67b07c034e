package rules

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestParseErrorsNameTheLine(t *testing.T) {
	tests := []struct {
		name     string
		yaml     string
		wantLine int
		wantErr  string
	}{
		{"bad yaml", "title: x\nid: 1\ndetection:\n  sel:\n    a: [\n  condition: sel\n", -1, "parse sigma rule"},
		{"no title", "id: 1\ndetection:\n  sel:\n    a: b\n  condition: sel\n", 0, "missing title"},
		{"no id", "title: x\ndetection:\n  sel:\n    a: b\n  condition: sel\n", 0, "missing id"},
		{"no condition", "title: x\nid: 1\ndetection:\n  sel:\n    a: b\n", 4, "no condition"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("r.yml", []byte(tt.yaml))
			var le *LoadError
			if !errors.As(err, &le) {
				t.Fatalf("Parse = %v; want a *LoadError", err)
			}
			lineOK := le.Line == tt.wantLine || (tt.wantLine == -1 && le.Line > 0) // -1: yaml's own line
			if !lineOK || le.File != "r.yml" {
				t.Errorf("Parse error at %s:%d; want r.yml:%d (%v)", le.File, le.Line, tt.wantLine, err)
			}
			if !contains(err.Error(), tt.wantErr) {
				t.Errorf("Parse error %q; want it to say %q", err, tt.wantErr)
			}
		})
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestLoadDirMergesOverBuiltin(t *testing.T) {
	base, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	override := "title: My LokiBot\nid: " + base[0].ID + "\nlevel: low\nlogsource: {category: webserver}\ndetection:\n  sel:\n    url.path: /x\n  condition: sel\n"
	os.WriteFile(filepath.Join(dir, "override.yml"), []byte(override), 0o600)
	os.WriteFile(filepath.Join(dir, "broken.yaml"), []byte("title: [\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a rule"), 0o600)
	extra, problems, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(extra) != 1 || len(problems) != 1 || filepath.Base(problems[0].File) != "broken.yaml" {
		t.Fatalf("LoadDir = %d rules, problems %v; want 1 rule and broken.yaml reported", len(extra), problems)
	}
	merged := Merge(base, extra)
	if len(merged) != len(base) {
		t.Fatalf("Merge = %d rules; want %d (the override replaces)", len(merged), len(base))
	}
	if merged[0].Title != "My LokiBot" || merged[0].Source != dir {
		t.Errorf("merged[0] = %q from %q; want the drop-in override", merged[0].Title, merged[0].Source)
	}
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
