package cftest

import (
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"
)

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// ruleFields are the members of a rule the fake keeps from a request.
var ruleFields = []string{"action", "action_parameters", "description", "enabled", "expression", "logging", "ref"}

// newRule makes a rule of the ruleset from a request's body.
func (s *Server) newRule(body map[string]any) map[string]any {
	rule := map[string]any{"id": s.newID(), "version": "1", "enabled": true, "last_updated": time.Now().UTC().Format(time.RFC3339Nano)}
	for _, k := range ruleFields {
		if v, ok := body[k]; ok {
			rule[k] = v
		}
	}
	if _, ok := rule["ref"]; !ok {
		rule["ref"] = rule["id"]
	}
	return rule
}

// bump raises the ruleset's version, as every change does.
func (s *Server) bump() {
	v, _ := strconv.Atoi(s.Ruleset["version"].(string))
	s.Ruleset["version"] = strconv.Itoa(v + 1)
	s.Ruleset["last_updated"] = time.Now().UTC().Format(time.RFC3339Nano)
}

func (s *Server) rules() []any {
	rs, _ := s.Ruleset["rules"].([]any)
	return rs
}

// CustomRules returns the rules of the zone's custom-rules entry point
// (nil before it exists).
func (s *Server) CustomRules() []map[string]any {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	var out []map[string]any
	for _, r := range s.rules() {
		out = append(out, maps.Clone(r.(map[string]any)))
	}
	return out
}

// AddCustomRule seeds a rule in the zone's custom-rules entry point,
// creating it if needed.
func (s *Server) AddCustomRule(rule map[string]any) {
	s.Mu.Lock()
	defer s.Mu.Unlock()
	if s.Ruleset == nil {
		s.Ruleset = map[string]any{"id": s.newID(), "name": "default", "kind": "zone", "phase": customRulesPhase, "version": "1", "rules": []any{}}
	}
	s.Ruleset["rules"] = append(s.rules(), s.newRule(rule))
	s.bump()
}

func (s *Server) getEntrypoint(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("phase") != customRulesPhase || s.Ruleset == nil {
		Reply(w, http.StatusNotFound, nil, 10003, "could not find entrypoint ruleset in the "+r.PathValue("phase")+" phase")
		return
	}
	Reply(w, http.StatusOK, s.Ruleset, 0, "")
}

func (s *Server) createRuleset(w http.ResponseWriter, r *http.Request) {
	body := objectBody(r)
	switch {
	case body["kind"] != "zone" || body["phase"] != customRulesPhase:
		Reply(w, http.StatusBadRequest, nil, 20021, "the fake knows only zone rulesets of the "+customRulesPhase+" phase")
		return
	case s.Ruleset != nil:
		Reply(w, http.StatusBadRequest, nil, 20217, "a ruleset of this kind and phase already exists")
		return
	}
	s.Ruleset = map[string]any{"id": s.newID(), "name": body["name"], "description": body["description"], "kind": "zone",
		"phase": customRulesPhase, "version": "1", "last_updated": time.Now().UTC().Format(time.RFC3339Nano), "rules": []any{}}
	rules, _ := body["rules"].([]any)
	for _, x := range rules {
		m, _ := x.(map[string]any)
		s.Ruleset["rules"] = append(s.rules(), s.newRule(m))
	}
	Reply(w, http.StatusOK, s.Ruleset, 0, "")
}

func (s *Server) createRule(w http.ResponseWriter, r *http.Request) {
	if s.Ruleset == nil || s.Ruleset["id"] != r.PathValue("ruleset") {
		Reply(w, http.StatusNotFound, nil, 10003, "could not find ruleset")
		return
	}
	s.Ruleset["rules"] = append(s.rules(), s.newRule(objectBody(r)))
	s.bump()
	Reply(w, http.StatusOK, s.Ruleset, 0, "")
}

func (s *Server) editRule(w http.ResponseWriter, r *http.Request) {
	if s.Ruleset == nil || s.Ruleset["id"] != r.PathValue("ruleset") {
		Reply(w, http.StatusNotFound, nil, 10003, "could not find ruleset")
		return
	}
	rules := s.rules()
	i := slices.IndexFunc(rules, func(x any) bool { return x.(map[string]any)["id"] == r.PathValue("rule") })
	if i < 0 {
		Reply(w, http.StatusNotFound, nil, 10003, "could not find rule")
		return
	}
	rule := rules[i].(map[string]any)
	body := objectBody(r)
	for _, k := range ruleFields {
		if v, ok := body[k]; ok {
			rule[k] = v
		}
	}
	v, _ := strconv.Atoi(rule["version"].(string))
	rule["version"] = strconv.Itoa(v + 1)
	s.bump()
	Reply(w, http.StatusOK, s.Ruleset, 0, "")
}
