package rules

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	sigma "github.com/bradleyjkemp/sigma-go"
	"gopkg.in/yaml.v3"
)

// Logsource is the logsource of a rule.
type Logsource struct {
	Category string `json:"category,omitempty"`
	Product  string `json:"product,omitempty"`
	Service  string `json:"service,omitempty"`
}

// Detection is the parsed detection section of a rule.
type Detection struct {
	// Searches by name.
	Searches map[string]*Search
	// Conditions: the rule matches when any of them holds (Sigma allows a
	// list of conditions).
	Conditions []Condition
	// Timeframe is the window of the conditions' aggregations.
	Timeframe time.Duration
}

// Search is one named search of a detection. It matches an event when any
// of its Maps does; a map matches when every one of its field matchers
// does. A keyword list (unnamed strings) is one map holding one
// FieldMatcher with an empty Field.
type Search struct {
	Name string
	Line int
	Maps [][]FieldMatcher
}

// FieldMatcher tests one field (or, with an empty Field, every field: a
// keyword search) against values.
type FieldMatcher struct {
	Field     string
	Modifiers []string
	// Values are string, int, float64, bool, or nil for YAML null (the
	// field is absent).
	Values []any
	Line   int
}

// Correlation is a Sigma correlation rule (a meta-rule over the matches of
// other rules).
type Correlation struct {
	// Type is event_count, value_count, temporal or temporal_ordered.
	Type string
	// Rules are the ids or names of the correlated rules.
	Rules   []string
	GroupBy []string
	// Timespan is the sliding window.
	Timespan time.Duration
	// Op and Threshold: the comparison of the count (event_count,
	// value_count; temporal: the number of distinct rules, by default all).
	Op        string
	Threshold float64
	// Field is the field whose distinct values value_count counts.
	Field string
	// Generate: the correlated rules still raise their own alerts.
	Generate bool
	Line     int
}

// Filter is a Sigma filter (the specification's meta-rule type "filter"):
// its detection, in [Rule.Detection], names the events that the rules it
// lists must not alert on.
type Filter struct {
	// Rules are the ids, names or titles of the rules the filter applies to.
	Rules []string
	// Line is the line of the filter section.
	Line int
}

// Rule kinds, as [Rule.Kind] returns them.
const (
	KindDetection   = "detection"
	KindCorrelation = "correlation"
	KindFilter      = "filter"
)

// Kind tells detection rules from correlation rules and filters.
func (r *Rule) Kind() string {
	switch {
	case r.Correlation != nil:
		return KindCorrelation
	case r.Filter != nil:
		return KindFilter
	}
	return KindDetection
}

// Levels are the valid values of a rule's level, lowest first.
var Levels = []string{"informational", "low", "medium", "high", "critical"}

// Statuses are the valid values of a rule's status.
var Statuses = []string{"stable", "test", "experimental", "deprecated", "unsupported"}

// ruleDoc is the part of a Sigma document read into Rule's metadata.
type ruleDoc struct {
	Title          string    `yaml:"title"`
	ID             string    `yaml:"id"`
	Name           string    `yaml:"name"`
	Status         string    `yaml:"status"`
	Description    string    `yaml:"description"`
	Author         string    `yaml:"author"`
	Level          string    `yaml:"level"`
	References     []string  `yaml:"references"`
	Tags           []string  `yaml:"tags"`
	FalsePositives yaml.Node `yaml:"falsepositives"`
	Logsource      Logsource `yaml:"logsource"`
	Detection      yaml.Node `yaml:"detection"`
	Correlation    yaml.Node `yaml:"correlation"`
	Filter         yaml.Node `yaml:"filter"`
}

// ParseAll parses every YAML document of a Sigma file: detection rules and
// correlation rules. file names the rule in errors, which are *LoadError
// values carrying the line when known.
func ParseAll(file string, data []byte) ([]Rule, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []Rule
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, yamlError(file, err)
		}
		if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
			return nil, &LoadError{File: file, Line: doc.Line, Err: errors.New("a rule must be a YAML mapping")}
		}
		r, err := parseDoc(file, doc.Content[0])
		if err != nil {
			return nil, err
		}
		r.YAML = data
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, &LoadError{File: file, Err: errors.New("no rule in file")}
	}
	return out, nil
}

func yamlError(file string, err error) *LoadError {
	le := &LoadError{File: file, Err: fmt.Errorf("parse sigma rule: %w", err)}
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		le.Line, _ = strconv.Atoi(m[1])
	}
	return le
}

func parseDoc(file string, n *yaml.Node) (Rule, error) {
	var d ruleDoc
	if err := n.Decode(&d); err != nil {
		return Rule{}, yamlError(file, err)
	}
	fail := func(line int, format string, args ...any) (Rule, error) {
		return Rule{}, &LoadError{File: file, Line: line, Err: fmt.Errorf(format, args...)}
	}
	isFilter := d.Filter.Kind != 0 && d.Detection.Kind == 0 && d.Correlation.Kind == 0
	switch {
	case strings.TrimSpace(d.Title) == "":
		return fail(0, "missing title")
	case strings.TrimSpace(d.ID) == "" && !isFilter:
		return fail(0, "missing id")
	case d.Detection.Kind == 0 && d.Correlation.Kind == 0 && d.Filter.Kind == 0:
		return fail(n.Line, "rule has neither detection, correlation nor filter")
	}
	r := Rule{
		ID:            d.ID,
		Name:          d.Name,
		Title:         d.Title,
		Description:   strings.TrimSpace(d.Description),
		Level:         strings.ToLower(d.Level),
		Status:        strings.ToLower(d.Status),
		Author:        d.Author,
		References:    d.References,
		Tags:          d.Tags,
		Logsource:     d.Logsource,
		File:          file,
		Line:          n.Line,
		LogsourceLine: keyLine(n, "logsource"),
		StatusLine:    keyLine(n, "status"),
	}
	if r.Level != "" && !slices.Contains(Levels, r.Level) {
		return fail(keyLine(n, "level"), "level %q is not one of %s", d.Level, strings.Join(Levels, ", "))
	}
	if r.Status != "" && !slices.Contains(Statuses, r.Status) {
		return fail(r.StatusLine, "status %q is not one of %s", d.Status, strings.Join(Statuses, ", "))
	}
	if r.Level == "" && !isFilter {
		r.Level = "medium"
	}
	switch d.FalsePositives.Kind {
	case yaml.SequenceNode:
		for _, c := range d.FalsePositives.Content {
			r.FalsePositives = append(r.FalsePositives, c.Value)
		}
	case yaml.ScalarNode:
		r.FalsePositives = []string{d.FalsePositives.Value}
	}
	var err error
	switch {
	case d.Correlation.Kind != 0:
		r.Correlation, err = parseCorrelation(&d.Correlation)
	case d.Detection.Kind != 0:
		r.Detection, err = parseDetection(&d.Detection)
	default:
		r.Filter, r.Detection, err = parseFilter(&d.Filter)
		if err == nil && r.ID == "" {
			r.ID = filterID(file, r.Title)
		}
	}
	if err != nil {
		var le *LoadError
		if errors.As(err, &le) {
			le.File = file
			return Rule{}, le
		}
		return Rule{}, &LoadError{File: file, Err: err}
	}
	return r, nil
}

// keyLine returns the line of key in mapping n, 0 when it is absent.
func keyLine(n *yaml.Node, key string) int {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i].Line
		}
	}
	return 0
}

// filterID is the id given to a filter that has none (the specification
// makes it optional): stable for a file and title.
func filterID(file, title string) string {
	h := sha256.Sum256([]byte(file + "\x00" + title))
	return "filter-" + hex.EncodeToString(h[:8])
}

// parseFilter parses the filter section of a Sigma filter: rules (a list
// of rule ids, names or titles), searches and a condition without
// aggregation.
func parseFilter(n *yaml.Node) (*Filter, *Detection, error) {
	if n.Kind != yaml.MappingNode {
		return nil, nil, lineErr(n.Line, "filter must be a mapping")
	}
	f := &Filter{Line: n.Line}
	det := &yaml.Node{Kind: yaml.MappingNode, Line: n.Line, Column: n.Column}
	found := false
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		if key.Value != "rules" {
			det.Content = append(det.Content, key, val)
			continue
		}
		found = true
		switch val.Kind {
		case yaml.ScalarNode:
			f.Rules = []string{val.Value}
		case yaml.SequenceNode:
			for _, c := range val.Content {
				if c.Kind != yaml.ScalarNode || strings.TrimSpace(c.Value) == "" {
					return nil, nil, lineErr(c.Line, "filter rules: want rule ids, names or titles")
				}
				f.Rules = append(f.Rules, strings.TrimSpace(c.Value))
			}
		default:
			return nil, nil, lineErr(val.Line, "filter rules: want a list of rule ids, names or titles")
		}
	}
	if !found || len(f.Rules) == 0 {
		return nil, nil, lineErr(n.Line, "filter lists no rules")
	}
	d, err := parseDetection(det)
	if err != nil {
		return nil, nil, err
	}
	for _, c := range d.Conditions {
		if c.Aggregation != nil {
			return nil, nil, lineErr(c.Line, "a filter condition cannot aggregate")
		}
	}
	return f, d, nil
}

func lineErr(line int, format string, args ...any) *LoadError {
	return &LoadError{Line: line, Err: fmt.Errorf(format, args...)}
}

func parseDetection(n *yaml.Node) (*Detection, error) {
	if n.Kind != yaml.MappingNode {
		return nil, lineErr(n.Line, "detection must be a mapping")
	}
	det := &Detection{Searches: map[string]*Search{}}
	var condNode, tfNode *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i], n.Content[i+1]
		switch key.Value {
		case "condition":
			condNode = val
		case "timeframe":
			tfNode = val
		default:
			s, err := parseSearch(key, val)
			if err != nil {
				return nil, err
			}
			det.Searches[key.Value] = s
		}
	}
	if condNode == nil {
		return nil, lineErr(n.Line, "detection has no condition")
	}
	if len(det.Searches) == 0 {
		return nil, lineErr(n.Line, "detection has no search")
	}
	if tfNode != nil {
		d, err := ParseDuration(tfNode.Value)
		if err != nil {
			return nil, lineErr(tfNode.Line, "timeframe: %v", err)
		}
		det.Timeframe = d
	}
	names := make([]string, 0, len(det.Searches))
	for name := range det.Searches {
		names = append(names, name)
	}
	sort.Strings(names)
	var conds []*yaml.Node
	switch condNode.Kind {
	case yaml.ScalarNode:
		conds = []*yaml.Node{condNode}
	case yaml.SequenceNode:
		conds = condNode.Content
	default:
		return nil, lineErr(condNode.Line, "condition must be a string or a list of strings")
	}
	for _, c := range conds {
		if c.Kind != yaml.ScalarNode {
			return nil, lineErr(c.Line, "condition must be a string")
		}
		e, agg, err := parseCondition(c.Value, names)
		if err != nil {
			return nil, lineErr(c.Line, "%v", err)
		}
		if agg != nil && det.Timeframe == 0 {
			return nil, lineErr(c.Line, "aggregation %q needs a timeframe", c.Value)
		}
		det.Conditions = append(det.Conditions, Condition{Expr: e, Aggregation: agg, Text: c.Value, Line: c.Line})
	}
	return det, nil
}

// parseSearch decodes one search with sigma-go's model and converts it.
func parseSearch(key, val *yaml.Node) (*Search, error) {
	var ss sigma.Search
	if err := ss.UnmarshalYAML(val); err != nil {
		return nil, lineErr(key.Line, "search %s: %v", key.Value, err)
	}
	s := &Search{Name: key.Value, Line: key.Line}
	if ss.Keywords != nil {
		// A keyword list: sigma-go decodes it as strings, which turns null
		// into "". Read the values ourselves to keep numbers and nulls.
		var vals []any
		if err := val.Decode(&vals); err != nil {
			return nil, lineErr(key.Line, "search %s: %v", key.Value, err)
		}
		s.Maps = [][]FieldMatcher{{{Values: vals, Line: key.Line}}}
		return s, nil
	}
	for _, em := range ss.EventMatchers {
		var m []FieldMatcher
		for _, fm := range em {
			line, _ := fm.Position()
			for _, v := range fm.Values {
				switch v.(type) {
				case nil, string, int, int64, uint64, float64, bool:
				default:
					return nil, lineErr(line+1, "field %s: values must be scalars or a list of scalars", fm.Field)
				}
			}
			m = append(m, FieldMatcher{Field: fm.Field, Modifiers: fm.Modifiers, Values: fm.Values, Line: line + 1})
		}
		if len(m) == 0 {
			return nil, lineErr(key.Line, "search %s is empty", key.Value)
		}
		s.Maps = append(s.Maps, m)
	}
	if len(s.Maps) == 0 {
		return nil, lineErr(key.Line, "search %s is empty", key.Value)
	}
	return s, nil
}

func parseCorrelation(n *yaml.Node) (*Correlation, error) {
	var d struct {
		Type      string         `yaml:"type"`
		Rules     []string       `yaml:"rules"`
		GroupBy   []string       `yaml:"group-by"`
		Timespan  string         `yaml:"timespan"`
		Timeframe string         `yaml:"timeframe"`
		Generate  bool           `yaml:"generate"`
		Condition map[string]any `yaml:"condition"`
		Aliases   map[string]any `yaml:"aliases"`
	}
	if err := n.Decode(&d); err != nil {
		return nil, lineErr(n.Line, "correlation: %v", err)
	}
	c := &Correlation{Type: d.Type, Rules: d.Rules, GroupBy: d.GroupBy, Generate: d.Generate, Line: n.Line}
	switch d.Type {
	case "event_count", "value_count", "temporal", "temporal_ordered":
	default:
		return nil, lineErr(n.Line, "correlation type %q is not supported (event_count, value_count, temporal, temporal_ordered)", d.Type)
	}
	if len(d.Aliases) > 0 {
		return nil, lineErr(n.Line, "correlation aliases are not supported")
	}
	if len(d.Rules) == 0 {
		return nil, lineErr(n.Line, "correlation lists no rules")
	}
	span := d.Timespan
	if span == "" {
		span = d.Timeframe
	}
	var err error
	if c.Timespan, err = ParseDuration(span); err != nil {
		return nil, lineErr(n.Line, "correlation timespan: %v", err)
	}
	if f, ok := d.Condition["field"].(string); ok {
		c.Field = f
	}
	ops := 0
	for k, v := range d.Condition {
		op, ok := map[string]string{"gt": ">", "gte": ">=", "eq": "="}[k]
		if !ok {
			if k == "field" {
				continue
			}
			if k == "lt" || k == "lte" || k == "neq" {
				return nil, lineErr(n.Line, "correlation condition %s cannot fire on a stream; use gt, gte or eq", k)
			}
			return nil, lineErr(n.Line, "correlation condition %q is not supported", k)
		}
		var th float64
		switch x := v.(type) {
		case int:
			th = float64(x)
		case float64:
			th = x
		default:
			return nil, lineErr(n.Line, "correlation condition %s: want a number", k)
		}
		c.Op, c.Threshold = op, th
		ops++
	}
	switch {
	case ops > 1:
		return nil, lineErr(n.Line, "correlation condition has more than one comparison")
	case ops == 0 && (c.Type == "event_count" || c.Type == "value_count"):
		return nil, lineErr(n.Line, "%s correlation needs a condition (gt, gte or eq)", c.Type)
	case ops == 0:
		c.Op, c.Threshold = ">=", float64(len(c.Rules))
	}
	if c.Type == "value_count" && c.Field == "" {
		return nil, lineErr(n.Line, "value_count correlation needs condition.field")
	}
	return c, nil
}
