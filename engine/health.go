package engine

import (
	"fmt"

	"github.com/raywatch/raywatch/normalize"
	"github.com/raywatch/raywatch/rules"
)

// Health states of a rule.
const (
	// HealthOK: the rule is evaluated (or would be, were it enabled).
	HealthOK = "ok"
	// HealthUnable: the rule can never fire on raywatch's events (its
	// logsource is not web traffic, or it needs a field that no event
	// carries); it is listed and never evaluated.
	HealthUnable = "unable_to_fire"
)

// Health says whether a rule can fire, and if not why, where.
type Health struct {
	// State is HealthOK or HealthUnable.
	State string `json:"state"`
	// Reason, File, Line and Field locate the cause of HealthUnable: the
	// rule file and line of the logsource or of the field, and the field
	// (the rule's own name for it).
	Reason string `json:"reason,omitempty"`
	File   string `json:"file,omitempty"`
	Line   int    `json:"line,omitempty"`
	Field  string `json:"field,omitempty"`
}

// String is "ok" or "unable_to_fire: FILE:LINE: REASON".
func (h Health) String() string {
	if h.State != HealthUnable {
		return h.State
	}
	loc := h.File
	if h.Line > 0 {
		loc = fmt.Sprintf("%s:%d", h.File, h.Line)
	}
	return fmt.Sprintf("%s: %s: %s", h.State, loc, h.Reason)
}

// health judges a detection rule or filter with the engine's mapping and
// the fields raywatch's decoders produce.
func (e *Engine) health(r *rules.Rule) Health {
	u := e.opts.Mapping.CanFire(r, normalize.HasField)
	if u == nil {
		return Health{State: HealthOK}
	}
	return Health{State: HealthUnable, Reason: u.Reason, File: u.File, Line: u.Line, Field: u.Field}
}

// corrHealth judges a correlation rule from the rules it correlates: a
// temporal correlation needs all of them, a count any of them.
func corrHealth(r *rules.Rule, byRef map[string]*compiledRule) Health {
	cor := r.Correlation
	unable := 0
	var first string
	for _, name := range cor.Rules {
		if base := byRef[name]; base != nil && base.unable {
			unable++
			if first == "" {
				first = name
			}
		}
	}
	temporal := cor.Type == "temporal" || cor.Type == "temporal_ordered"
	if unable == 0 || (!temporal && unable < len(cor.Rules)) {
		return Health{State: HealthOK}
	}
	return Health{State: HealthUnable, File: ruleFile(r), Line: cor.Line, Reason: fmt.Sprintf("correlates rule %q, which is unable to fire", first)}
}

// ruleFile is the path of r's file as errors name it.
func ruleFile(r *rules.Rule) string {
	if r.Source != "" && r.Source != rules.SourceBuiltin {
		return r.Source + "/" + r.File
	}
	return r.File
}
