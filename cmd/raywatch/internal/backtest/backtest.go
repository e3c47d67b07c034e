// Package backtest runs rules against example records, for `raywatch rules
// test`: CASES_DIR/<rule id>/match/*.ndjson must each raise that rule's
// alert, CASES_DIR/<rule id>/nomatch/*.ndjson must not. The results print
// as a table and as JUnit XML for CI pipelines that keep rules in git.
//
// A case file holds Cloudflare Logpush records, one JSON object a line (a
// .ndjson.gz file is gunzipped). It passes as a match when its records
// raise at least one alert of the rule (an aggregation fires once its
// threshold is crossed), as a nomatch when they raise none. Each file runs
// through a new engine holding only its rule (and, for a correlation, the
// rules it correlates), so that aggregation state never leaks from one case
// into another.
//
// The intelligence-feed rule matches indicators, not a detection: its
// cases use the indicators of CASES_DIR/<rule id>/iocs/ when that folder
// exists, else those of Options.IOCDir (--ioc-dir); with neither, its cases
// are skipped with a note saying so.
package backtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/raywatch/raywatch/engine"
	"github.com/raywatch/raywatch/engine/ioc"
	"github.com/raywatch/raywatch/normalize"
	"github.com/raywatch/raywatch/rules"
)

// Case kinds: the folders of a rule's cases.
const (
	KindMatch   = "match"
	KindNoMatch = "nomatch"
)

// Case outcomes.
const (
	Pass = "pass"
	Fail = "fail"
	Skip = "skip"
)

// Options configure [Run].
type Options struct {
	// Rules are the rules loaded (built-ins merged with --rules-dir).
	Rules []rules.Rule
	// Mapping maps rule fields; nil means the default.
	Mapping *rules.Mapping
	// IOCDir holds the indicators for the intelligence-feed rule's cases
	// that have no iocs/ folder of their own; "" for none.
	IOCDir string
	// Dataset names the Logpush dataset of the records; "" means "auto".
	Dataset string
	// Now is the time indicators' expiry is judged at; default time.Now.
	Now func() time.Time
}

// Result is the outcome of one case file.
type Result struct {
	// Rule and Title name the rule (Rule is the case folder's name when
	// no loaded rule has that id).
	Rule  string `json:"rule"`
	Title string `json:"title"`
	// Kind is KindMatch or KindNoMatch.
	Kind string `json:"kind"`
	// File is the case file's path relative to the cases folder.
	File    string `json:"file"`
	Records int    `json:"records"`
	// Alerts counts the rule's alerts the records raised.
	Alerts int `json:"alerts"`
	// Outcome is Pass, Fail or Skip; Reason says why for Fail and Skip.
	Outcome  string        `json:"outcome"`
	Reason   string        `json:"reason,omitempty"`
	Duration time.Duration `json:"duration"`
}

// Report is the outcome of a run.
type Report struct {
	// Results are ordered by rule folder, kind (match first) and file.
	Results []Result `json:"results"`
	// Uncovered lists the loaded rules that have no cases, by id.
	Uncovered []string `json:"uncovered,omitempty"`
}

// Count returns the number of results with the given outcome.
func (r *Report) Count(outcome string) int {
	n := 0
	for _, res := range r.Results {
		if res.Outcome == outcome {
			n++
		}
	}
	return n
}

// OK reports whether no case failed.
func (r *Report) OK() bool { return r.Count(Fail) == 0 }

// Run runs every case below casesDir. A folder that names no loaded rule,
// a case file that cannot be read or holds a malformed record, and a rule
// that does not compile are failures of the cases concerned, not errors:
// the error is non-nil only when casesDir cannot be read or ctx ends.
func Run(ctx context.Context, casesDir string, opts Options) (*Report, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Dataset == "" {
		opts.Dataset = "auto"
	}
	entries, err := os.ReadDir(casesDir)
	if err != nil {
		return nil, fmt.Errorf("read cases folder: %w", err)
	}
	byID := make(map[string]*rules.Rule, len(opts.Rules))
	for i := range opts.Rules {
		byID[opts.Rules[i].ID] = &opts.Rules[i]
	}
	r := &runner{opts: opts, dir: casesDir, byID: byID, norm: normalize.New(normalize.Options{})}
	rep := &Report{}
	covered := map[string]bool{}
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		covered[e.Name()] = true
		rep.Results = append(rep.Results, r.rule(e.Name())...)
	}
	for _, rule := range opts.Rules {
		if !covered[rule.ID] {
			rep.Uncovered = append(rep.Uncovered, rule.ID)
		}
	}
	sort.Strings(rep.Uncovered)
	return rep, nil
}

type runner struct {
	opts Options
	dir  string
	byID map[string]*rules.Rule
	norm *normalize.Normalizer
}

// caseFile is a case file found below a rule's folder.
type caseFile struct {
	kind, rel, path string
}

// rule runs the cases of one rule folder.
func (r *runner) rule(id string) []Result {
	files, err := r.caseFiles(id)
	if err != nil {
		return []Result{{Rule: id, Kind: "-", File: id, Outcome: Fail, Reason: err.Error()}}
	}
	rule := r.byID[id]
	title := ""
	if rule != nil {
		title = rule.Title
	}
	results := make([]Result, len(files))
	for i, f := range files {
		results[i] = Result{Rule: id, Title: title, Kind: f.kind, File: f.rel}
	}
	fail := func(reason string) []Result {
		for i := range results {
			results[i].Outcome, results[i].Reason = Fail, reason
		}
		return results
	}
	if len(files) == 0 {
		return []Result{{Rule: id, Title: title, Kind: "-", File: id, Outcome: Fail, Reason: "no case files in match/ or nomatch/"}}
	}
	if rule == nil {
		return fail(fmt.Sprintf("no loaded rule has the id %q", id))
	}
	set, note, err := r.indicators(id)
	if err != nil {
		return fail(err.Error())
	}
	if note != "" {
		for i := range results {
			results[i].Outcome, results[i].Reason = Skip, note
		}
		return results
	}
	rs := r.ruleSet(rule)
	for i, f := range files {
		start := time.Now()
		e, err := engine.NewWithOptions(rs, engine.Options{Mapping: r.opts.Mapping, IOC: func() *ioc.Set { return set }})
		if err != nil {
			return fail(fmt.Sprintf("rule does not compile: %v", err))
		}
		r.runCase(e, rule.ID, f, &results[i])
		results[i].Duration = time.Since(start)
	}
	return results
}

// caseFiles lists the match/ then nomatch/ files of a rule folder.
func (r *runner) caseFiles(id string) ([]caseFile, error) {
	var out []caseFile
	for _, kind := range []string{KindMatch, KindNoMatch} {
		entries, err := os.ReadDir(filepath.Join(r.dir, id, kind))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s/%s: %w", id, kind, err)
		}
		for _, e := range entries {
			name := e.Name()
			if e.IsDir() || !(strings.HasSuffix(name, ".ndjson") || strings.HasSuffix(name, ".ndjson.gz")) {
				continue
			}
			out = append(out, caseFile{kind: kind, rel: id + "/" + kind + "/" + name, path: filepath.Join(r.dir, id, kind, name)})
		}
	}
	return out, nil
}

// indicators returns the indicator set for a rule's cases: none for a
// detection rule; for the intelligence-feed rule, that of its iocs/ folder
// or of Options.IOCDir, or a note saying it needs one. A folder with a
// broken file is an error naming the file and line.
func (r *runner) indicators(id string) (*ioc.Set, string, error) {
	if id != rules.IntelligenceFeedID {
		return nil, "", nil
	}
	dir := filepath.Join(r.dir, id, "iocs")
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		if r.opts.IOCDir == "" {
			return nil, "needs indicators: add " + id + "/iocs/ to the cases or pass --ioc-dir", nil
		}
		dir = r.opts.IOCDir
	}
	set, status, err := ioc.LoadDir(dir, r.opts.Now())
	if err != nil {
		return nil, "", fmt.Errorf("load indicators: %w", err)
	}
	for _, st := range status {
		if st.LastError != "" {
			return nil, "", fmt.Errorf("indicators %s: %s", filepath.Join(dir, st.File), st.LastError)
		}
		if len(st.LineErrors) > 0 {
			return nil, "", fmt.Errorf("indicators %s", st.LineErrors[0].Error())
		}
	}
	return set, "", nil
}

// ruleSet is the rule and, for a correlation, the rules it refers to.
func (r *runner) ruleSet(rule *rules.Rule) []rules.Rule {
	rs := []rules.Rule{*rule}
	if rule.Correlation == nil {
		return rs
	}
	for _, ref := range rule.Correlation.Rules {
		for _, other := range r.opts.Rules {
			if (other.ID == ref || other.Name != "" && other.Name == ref) && !slices.ContainsFunc(rs, func(x rules.Rule) bool { return x.ID == other.ID }) {
				rs = append(rs, other)
			}
		}
	}
	return rs
}

// runCase runs one case file through e and fills res.
func (r *runner) runCase(e *engine.Engine, ruleID string, f caseFile, res *Result) {
	rc, err := openCase(f.path)
	if err != nil {
		res.Outcome, res.Reason = Fail, err.Error()
		return
	}
	defer rc.Close()
	var ev normalize.Event
	received := r.opts.Now()
	first := 0 // the first record that raised an alert
	err = normalize.Split(rc, normalize.SplitOptions{}, func(no int, raw []byte) error {
		res.Records++
		if err := r.norm.NormalizeInto(&ev, r.opts.Dataset, raw); err != nil {
			return fmt.Errorf("record %d: %w", no, err)
		}
		for _, a := range e.Match(&ev, "rules-test", received) {
			if a.Rule.ID == ruleID {
				res.Alerts++
				if first == 0 {
					first = no
				}
			}
		}
		return nil
	})
	switch {
	case err != nil:
		res.Outcome, res.Reason = Fail, err.Error()
	case res.Records == 0:
		res.Outcome, res.Reason = Fail, "no records"
	case f.kind == KindMatch && res.Alerts == 0:
		res.Outcome, res.Reason = Fail, fmt.Sprintf("no alert: none of its %d records matched the rule", res.Records)
	case f.kind == KindNoMatch && res.Alerts > 0:
		res.Outcome, res.Reason = Fail, fmt.Sprintf("raised %d alert(s), the first on record %d", res.Alerts, first)
	default:
		res.Outcome = Pass
	}
}

// openCase opens a case file, gunzipping a .gz one (or one that starts
// with gzip's magic bytes).
func openCase(path string) (io.ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	body, err := normalize.OpenBody(f, strings.HasSuffix(path, ".gz"))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return struct {
		io.Reader
		io.Closer
	}{body, f}, nil
}
