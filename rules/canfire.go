package rules

import (
	"fmt"
	"slices"
	"strings"
)

// Unable says why a rule can never fire on raywatch's events: its logsource
// is not web traffic, or its detection needs a field that no event carries.
type Unable struct {
	// File and Line locate the cause: the logsource key, or the line of the
	// field in the detection.
	File string `json:"file"`
	Line int    `json:"line,omitempty"`
	// Field is the rule's field that has no mapping, "" for a logsource.
	Field  string `json:"field,omitempty"`
	Reason string `json:"reason"`
}

func (u *Unable) Error() string {
	if u.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", u.File, u.Line, u.Reason)
	}
	return fmt.Sprintf("%s: %s", u.File, u.Reason)
}

// WebTraffic reports whether logsource ls describes the traffic raywatch
// sees: it is empty, or it matches an entry of the mapping's logsources
// (by default category proxy or webserver, service apache or nginx, or
// product cloudflare).
func (m *Mapping) WebTraffic(ls Logsource) bool {
	if ls.Category == "" && ls.Product == "" && ls.Service == "" {
		return true
	}
	return m.Datasets(ls) != nil
}

// Mapped reports whether the rule field name stands for a field that
// raywatch's events may carry: one of its targets in the mapping (the name
// itself when the mapping does not list it) is known, or is derived from a
// known field. known tells the event fields the decoders produce.
func (m *Mapping) Mapped(name string, known func(field string) bool) bool {
	for _, f := range m.Fields(name) {
		if known(f) {
			return true
		}
		if d, ok := m.Derived(f); ok && known(d.From) {
			return true
		}
	}
	return false
}

// CanFire returns why rule r can never fire on raywatch's events, or nil
// when it may. known tells the event fields that raywatch's decoders
// produce (normalize's fields). A rule is unable to fire when its
// logsource is not web traffic ([Mapping.WebTraffic]), or when every one
// of its conditions is false on every event because it needs a value in
// a field that is never there: a field unmapped in an optional branch
// ("sel or sel_unmapped") does not stop a rule, nor does one tested for
// absence (null, exists: false).
//
// Correlation rules are judged by the engine, from the rules they
// correlate; CanFire returns nil for them.
func (m *Mapping) CanFire(r *Rule, known func(field string) bool) *Unable {
	if r.Correlation != nil || r.ID == IntelligenceFeedID {
		return nil
	}
	file := r.File
	if r.Source != "" && r.Source != SourceBuiltin {
		file = r.Source + "/" + r.File
	}
	if !m.WebTraffic(r.Logsource) {
		return &Unable{File: file, Line: r.LogsourceLine, Reason: fmt.Sprintf("logsource %s is not web traffic (category proxy or webserver, product cloudflare, or none)", describe(r.Logsource))}
	}
	if r.Detection == nil {
		return nil
	}
	a := fireCheck{m: m, known: known, det: r.Detection}
	var first *FieldMatcher
	for _, c := range r.Detection.Conditions {
		v, why := a.expr(c.Expr)
		if v != never {
			if c.Aggregation == nil || c.Aggregation.Field == "" || m.Mapped(c.Aggregation.Field, known) {
				return nil
			}
			return &Unable{File: file, Line: c.Line, Field: c.Aggregation.Field, Reason: fmt.Sprintf("aggregation field %q has no mapping to a Cloudflare field", c.Aggregation.Field)}
		}
		if why != nil && (first == nil || why.Line < first.Line) {
			first = why
		}
	}
	if first == nil {
		return &Unable{File: file, Reason: "no condition can hold"}
	}
	return &Unable{File: file, Line: first.Line, Field: first.Field, Reason: fmt.Sprintf("field %q has no mapping to a Cloudflare field", first.Field)}
}

func describe(ls Logsource) string {
	var parts []string
	for _, kv := range [][2]string{{"category", ls.Category}, {"product", ls.Product}, {"service", ls.Service}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+" "+kv[1])
		}
	}
	return strings.Join(parts, ", ")
}

// truth is what a part of a detection is on events that lack every
// unmapped field: never true, always true, or depending on the event.
type truth uint8

const (
	maybe truth = iota
	never
	always
)

// fireCheck evaluates a detection over the events raywatch can produce,
// knowing only which fields are never there.
type fireCheck struct {
	m     *Mapping
	known func(string) bool
	det   *Detection
}

// expr returns the truth of e and, when it is never true because of an
// unmapped field, the first such field matcher.
func (a *fireCheck) expr(e Expr) (truth, *FieldMatcher) {
	switch x := e.(type) {
	case Ident:
		return a.search(a.det.Searches[x.Name])
	case And:
		return a.and(len(x), func(i int) (truth, *FieldMatcher) { return a.expr(x[i]) })
	case Or:
		return a.or(len(x), func(i int) (truth, *FieldMatcher) { return a.expr(x[i]) })
	case Not:
		v, _ := a.expr(x.X)
		switch v {
		case never:
			return always, nil
		case always:
			return never, nil
		}
		return maybe, nil
	case Of:
		f := func(i int) (truth, *FieldMatcher) { return a.search(a.det.Searches[x.Names[i]]) }
		if x.All {
			return a.and(len(x.Names), f)
		}
		return a.or(len(x.Names), f)
	}
	return maybe, nil
}

func (a *fireCheck) and(n int, get func(int) (truth, *FieldMatcher)) (truth, *FieldMatcher) {
	out := always
	for i := 0; i < n; i++ {
		v, why := get(i)
		if v == never {
			return never, why
		}
		if v == maybe {
			out = maybe
		}
	}
	return out, nil
}

func (a *fireCheck) or(n int, get func(int) (truth, *FieldMatcher)) (truth, *FieldMatcher) {
	out := never
	var first *FieldMatcher
	for i := 0; i < n; i++ {
		v, why := get(i)
		switch v {
		case always:
			return always, nil
		case maybe:
			out = maybe
		case never:
			if first == nil || (why != nil && why.Line < first.Line) {
				first = why
			}
		}
	}
	if out != never {
		return out, nil
	}
	return never, first
}

func (a *fireCheck) search(s *Search) (truth, *FieldMatcher) {
	if s == nil {
		return maybe, nil
	}
	return a.or(len(s.Maps), func(i int) (truth, *FieldMatcher) {
		m := s.Maps[i]
		return a.and(len(m), func(j int) (truth, *FieldMatcher) { return a.field(&m[j]) })
	})
}

// field returns the truth of one field matcher.
func (a *fireCheck) field(fm *FieldMatcher) (truth, *FieldMatcher) {
	if fm.Field == "" {
		return maybe, nil // a keyword: any field
	}
	if !a.m.Mapped(fm.Field, a.known) {
		return a.absent(fm), fm
	}
	if slices.Contains(fm.Modifiers, "fieldref") {
		for _, v := range fm.Values {
			if s, ok := v.(string); ok && !a.m.Mapped(s, a.known) {
				// The compared value is never there: the matcher is
				// false unless it is negated.
				if slices.Contains(fm.Modifiers, "neq") {
					return always, nil
				}
				return never, &FieldMatcher{Field: s, Line: fm.Line}
			}
		}
	}
	return maybe, nil
}

// absent returns the truth of fm on an event without its field.
func (a *fireCheck) absent(fm *FieldMatcher) truth {
	if slices.Contains(fm.Modifiers, "exists") {
		if len(fm.Values) == 1 && fm.Values[0] == false {
			return always
		}
		return never
	}
	if slices.Contains(fm.Modifiers, "neq") {
		return always
	}
	nulls := 0
	for _, v := range fm.Values {
		if v == nil {
			nulls++
		}
	}
	switch {
	case nulls == 0:
		return never
	case slices.Contains(fm.Modifiers, "all") && nulls < len(fm.Values):
		return never
	}
	return always
}
