// Package rules holds raywatch's built-in Sigma rules (embedded in the binary)
// and loads, validates and describes Sigma rule files.
//
// Callers see [Rule], raywatch's own description of a rule; the Sigma text is
// kept in [Rule.YAML] for the engine to compile.
package rules

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

//go:embed builtin/*.yml
var builtinFS embed.FS

// IntelligenceFeedID is the id of the built-in "Intelligence feed match"
// rule, which the engine's IOC matcher evaluates instead of its detection.
const IntelligenceFeedID = "294002c4-19e9-49b6-b4e2-92f3756e8c0e"

// SourceBuiltin is the [Rule.Source] of the rules embedded in the binary.
const SourceBuiltin = "builtin"

// Rule is one loaded Sigma rule.
type Rule struct {
	ID             string   `json:"id"`
	Title          string   `json:"title"`
	Description    string   `json:"description,omitempty"`
	Level          string   `json:"level"`
	Status         string   `json:"status,omitempty"`
	Author         string   `json:"author,omitempty"`
	References     []string `json:"references,omitempty"`
	Tags           []string `json:"tags,omitempty"`
	FalsePositives []string `json:"falsepositives,omitempty"`
	// Source is SourceBuiltin or the folder the rule was loaded from.
	Source string `json:"source"`
	// File is the rule's file name (within Source).
	File string `json:"file"`
	// YAML is the Sigma text of the rule's file (which may hold more than
	// one rule).
	YAML []byte `json:"-"`
	// Name is the rule's optional name, by which correlation rules may
	// refer to it.
	Name      string    `json:"name,omitempty"`
	Logsource Logsource `json:"logsource"`
	// Detection is the parsed detection; nil for a correlation rule.
	Detection *Detection `json:"-"`
	// Correlation is set for a correlation rule.
	Correlation *Correlation `json:"-"`
	// Filter is set for a Sigma filter; its Detection says which events
	// it keeps from alerting.
	Filter *Filter `json:"-"`
	// Line is the line where the rule's YAML document starts;
	// LogsourceLine and StatusLine those of its logsource and status keys
	// (0 when absent).
	Line          int `json:"-"`
	LogsourceLine int `json:"-"`
	StatusLine    int `json:"-"`
}

// Skipped reports whether a rule with this status is not loaded
// (deprecated and unsupported rules).
func Skipped(status string) bool {
	return status == "deprecated" || status == "unsupported"
}

// LoadError is a rule file that could not be loaded.
type LoadError struct {
	File string // path of the rule file
	Line int    // 1-based line of the problem, 0 when unknown
	Err  error
}

func (e *LoadError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

func (e *LoadError) Unwrap() error { return e.Err }

// Builtin returns the rules embedded in the binary, sorted by file name.
func Builtin() ([]Rule, error) {
	entries, err := fs.ReadDir(builtinFS, "builtin")
	if err != nil {
		return nil, fmt.Errorf("read embedded rules: %w", err)
	}
	var out []Rule
	for _, e := range entries {
		data, err := fs.ReadFile(builtinFS, "builtin/"+e.Name())
		if err != nil {
			return nil, fmt.Errorf("read embedded rule %s: %w", e.Name(), err)
		}
		rs, err := ParseAll(e.Name(), data)
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			if Skipped(r.Status) {
				continue
			}
			r.Source = SourceBuiltin
			out = append(out, r)
		}
	}
	return out, nil
}

// Skip is a rule that was read but not loaded, and why.
type Skip struct {
	// File is the path of the rule file; Line the line of the reason (the
	// status key), 0 when unknown.
	File   string `json:"file"`
	Line   int    `json:"line,omitempty"`
	ID     string `json:"id"`
	Title  string `json:"title"`
	Reason string `json:"reason"`
}

// Folder is what [LoadFolder] found in a rules folder.
type Folder struct {
	// Rules are the loaded rules (detections, correlations and filters).
	Rules []Rule
	// Problems are the files that failed to load, with file and line.
	Problems []*LoadError
	// Skipped are the rules read but not loaded: deprecated and
	// unsupported ones.
	Skipped []Skip
}

// LoadFolder loads every .yml and .yaml file below dir. Files that fail to
// load are reported in Problems and skipped; deprecated and unsupported
// rules are reported in Skipped. The error is non-nil only when dir itself
// cannot be read.
func LoadFolder(dir string) (Folder, error) {
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(path, ".yml") || strings.HasSuffix(path, ".yaml")) {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return Folder{}, fmt.Errorf("read rules folder %q: %w", dir, err)
	}
	sort.Strings(files)
	var f Folder
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Problems = append(f.Problems, &LoadError{File: path, Err: err})
			continue
		}
		rel, _ := filepath.Rel(dir, path)
		rs, err := ParseAll(rel, data)
		if err != nil {
			var le *LoadError
			if errors.As(err, &le) {
				le.File = path
				f.Problems = append(f.Problems, le)
			} else {
				f.Problems = append(f.Problems, &LoadError{File: path, Err: err})
			}
			continue
		}
		for _, r := range rs {
			if Skipped(r.Status) {
				f.Skipped = append(f.Skipped, Skip{File: path, Line: r.StatusLine, ID: r.ID, Title: r.Title, Reason: "status " + r.Status})
				continue
			}
			r.Source = dir
			f.Rules = append(f.Rules, r)
		}
	}
	return f, nil
}

// LoadDir is [LoadFolder] without the skipped rules: it returns the loaded
// rules and the problems.
func LoadDir(dir string) ([]Rule, []*LoadError, error) {
	f, err := LoadFolder(dir)
	return f.Rules, f.Problems, err
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// Parse parses and validates a Sigma file holding one rule. file names the
// rule in errors, which are *LoadError values carrying the line when known.
func Parse(file string, data []byte) (Rule, error) {
	rs, err := ParseAll(file, data)
	if err != nil {
		return Rule{}, err
	}
	if len(rs) != 1 {
		return Rule{}, &LoadError{File: file, Err: fmt.Errorf("file holds %d rules; want one", len(rs))}
	}
	return rs[0], nil
}

// Merge returns base with each rule of extra added, a rule of extra replacing
// the rule of base that has the same id.
func Merge(base, extra []Rule) []Rule {
	out := make([]Rule, 0, len(base)+len(extra))
	byID := make(map[string]int, len(base)+len(extra))
	for _, r := range append(append([]Rule(nil), base...), extra...) {
		if i, ok := byID[r.ID]; ok {
			out[i] = r
			continue
		}
		byID[r.ID] = len(out)
		out = append(out, r)
	}
	return out
}
