package web

import (
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/raywatch/raywatch/rules/attack"
)

// techniqueTag matches a Sigma ATT&CK technique tag: attack.t1071 or
// attack.t1071.001.
var techniqueTag = regexp.MustCompile(`^attack\.(t\d{4}(?:\.\d{3})?)$`)

// tacticTag matches a Sigma ATT&CK tactic tag such as
// attack.command-and-control (technique, group and software tags excluded).
var tacticTag = regexp.MustCompile(`^attack\.([a-z]+(?:[-_][a-z]+)*)$`)

// navigatorLayer is an ATT&CK Navigator layer (format 4.5).
type navigatorLayer struct {
	Name                          string               `json:"name"`
	Versions                      map[string]string    `json:"versions"`
	Domain                        string               `json:"domain"`
	Description                   string               `json:"description"`
	Sorting                       int                  `json:"sorting"`
	HideDisabled                  bool                 `json:"hideDisabled"`
	Techniques                    []navigatorTechnique `json:"techniques"`
	Gradient                      map[string]any       `json:"gradient"`
	LegendItems                   []any                `json:"legendItems"`
	Metadata                      []navigatorMeta      `json:"metadata"`
	SelectTechniquesAcrossTactics bool                 `json:"selectTechniquesAcrossTactics"`
	SelectSubtechniquesWithParent bool                 `json:"selectSubtechniquesWithParent"`
}

type navigatorTechnique struct {
	TechniqueID       string          `json:"techniqueID"`
	Score             *int            `json:"score,omitempty"`
	Comment           string          `json:"comment,omitempty"`
	Enabled           bool            `json:"enabled"`
	ShowSubtechniques bool            `json:"showSubtechniques"`
	Metadata          []navigatorMeta `json:"metadata,omitempty"`
}

type navigatorMeta struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// attackLayer builds the Navigator layer of the enabled rules that can
// fire (filters and rules unable to fire left out): one
// technique per ATT&CK technique tag, scored by the number of enabled
// rules that carry it, with its name, its own tactics (from the enterprise
// ATT&CK table, so that T1041 is exfiltration only whatever else its rules
// are tagged with) and the rule titles as metadata. A technique the table
// does not know keeps the tactic tags of its rules.
func (s *Server) attackLayer() navigatorLayer {
	techs, enabled := s.coveredTechniques()
	ids := make([]string, 0, len(techs))
	for id := range techs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	version, _, _ := strings.Cut(attack.Version, ".")
	layer := navigatorLayer{
		Name:                          "raywatch: enabled rules",
		Versions:                      map[string]string{"attack": version, "navigator": "5.1.0", "layer": "4.5"},
		Domain:                        "enterprise-attack",
		Description:                   "ATT&CK techniques covered by the enabled raywatch rules; the score is the number of rules.",
		Sorting:                       3,
		Techniques:                    []navigatorTechnique{},
		LegendItems:                   []any{},
		Metadata:                      []navigatorMeta{{Name: "enabled rules", Value: strconv.Itoa(enabled)}},
		SelectTechniquesAcrossTactics: true,
	}
	maxScore := 1
	parents := map[string]bool{}
	for _, id := range ids {
		t := techs[id]
		sort.Strings(t.rules)
		score := len(t.rules)
		maxScore = max(maxScore, score)
		nt := navigatorTechnique{TechniqueID: id, Score: &score, Comment: strings.Join(t.rules, "; "), Enabled: true}
		var tactics []string
		if info, ok := attack.Lookup(id); ok {
			nt.Metadata = append(nt.Metadata, navigatorMeta{Name: "technique", Value: info.Name})
			tactics = info.Tactics
		} else {
			for tc := range t.tactics {
				tactics = append(tactics, tc)
			}
			sort.Strings(tactics)
		}
		for _, tc := range tactics {
			nt.Metadata = append(nt.Metadata, navigatorMeta{Name: "tactic", Value: tc})
		}
		for _, r := range t.rules {
			nt.Metadata = append(nt.Metadata, navigatorMeta{Name: "rule", Value: r})
		}
		layer.Techniques = append(layer.Techniques, nt)
		if parent, _, ok := strings.Cut(id, "."); ok {
			parents[parent] = true
		}
	}
	// Expand the parents of sub-techniques so that they show.
	for p := range parents {
		if techs[p] == nil {
			nt := navigatorTechnique{TechniqueID: p, Enabled: true, ShowSubtechniques: true}
			if info, ok := attack.Lookup(p); ok {
				nt.Metadata = []navigatorMeta{{Name: "technique", Value: info.Name}}
			}
			layer.Techniques = append(layer.Techniques, nt)
		}
	}
	for i := range layer.Techniques {
		if parents[layer.Techniques[i].TechniqueID] {
			layer.Techniques[i].ShowSubtechniques = true
		}
	}
	sort.SliceStable(layer.Techniques, func(i, j int) bool { return layer.Techniques[i].TechniqueID < layer.Techniques[j].TechniqueID })
	layer.Gradient = map[string]any{"colors": []string{"#ffe766", "#ff6666"}, "minValue": 0, "maxValue": maxScore}
	return layer
}

// layerTech is a technique the enabled rules cover: their titles, and
// their tactic tags (used for techniques the ATT&CK table does not know).
type layerTech struct {
	rules   []string
	tactics map[string]bool
}

// coveredTechniques returns the techniques of the enabled rules that can
// fire, by id, and the number of those rules.
func (s *Server) coveredTechniques() (techs map[string]*layerTech, enabled int) {
	techs = map[string]*layerTech{}
	if s.opts.Rules == nil {
		return techs, 0
	}
	for _, r := range s.opts.Rules.Rules() {
		// Filters detect nothing, and a rule unable to fire covers
		// nothing.
		if !r.Enabled || r.Kind == "filter" || r.Health.State == HealthUnable {
			continue
		}
		enabled++
		var ids, tactics []string
		for _, tag := range r.Tags {
			tag = strings.ToLower(strings.TrimSpace(tag))
			if m := techniqueTag.FindStringSubmatch(tag); m != nil && !slices.Contains(ids, strings.ToUpper(m[1])) {
				ids = append(ids, strings.ToUpper(m[1]))
			} else if m := tacticTag.FindStringSubmatch(tag); m != nil {
				tactics = append(tactics, strings.ReplaceAll(m[1], "_", "-"))
			}
		}
		for _, id := range ids {
			t := techs[id]
			if t == nil {
				t = &layerTech{tactics: map[string]bool{}}
				techs[id] = t
			}
			t.rules = append(t.rules, r.Title)
			for _, tc := range tactics {
				t.tactics[tc] = true
			}
		}
	}
	return techs, enabled
}

// handleAttackLayer serves GET /api/v1/attack/layer: the ATT&CK Navigator
// layer of the enabled rules, as a download.
func (s *Server) handleAttackLayer(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Disposition", `attachment; filename="raywatch-attack-layer.json"`)
	writeJSON(w, http.StatusOK, s.attackLayer())
}
