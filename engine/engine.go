// Package engine matches normalized events against the compiled rule set and
// turns matches into alerts.
package engine

import (
	"context"
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	sigma "github.com/bradleyjkemp/sigma-go"
	"github.com/bradleyjkemp/sigma-go/evaluator"

	"github.com/raywatch/raywatch/normalize"
	"github.com/raywatch/raywatch/rules"
)

// Engine matches events against an immutable compiled rule set, which
// [Engine.SetRules] swaps atomically. All methods are safe for concurrent use.
type Engine struct {
	set atomic.Pointer[ruleSet]
}

type ruleSet struct {
	rules []*compiledRule
}

type compiledRule struct {
	meta   rules.Rule
	ref    RuleRef
	sigma  sigma.Rule
	eval   *evaluator.RuleEvaluator
	errors atomic.Int64 // evaluation errors seen
	hits   atomic.Int64 // alerts produced
	last   atomic.Pointer[string]
}

// RuleStatus describes a loaded rule and how it has behaved.
type RuleStatus struct {
	rules.Rule
	Enabled    bool   `json:"enabled"`
	Alerts     int64  `json:"alerts"`
	EvalErrors int64  `json:"eval_errors"`
	LastError  string `json:"last_error,omitempty"`
}

// New compiles rs and returns an Engine using them. It fails when a rule
// cannot be compiled, naming the rule's file.
func New(rs []rules.Rule) (*Engine, error) {
	e := &Engine{}
	if err := e.SetRules(rs); err != nil {
		return nil, err
	}
	return e, nil
}

// SetRules compiles rs and swaps them in atomically. On error the previous
// set stays in use.
func (e *Engine) SetRules(rs []rules.Rule) error {
	set := &ruleSet{}
	for _, r := range rs {
		sr, err := sigma.ParseRule(r.YAML)
		if err != nil {
			return fmt.Errorf("compile rule %s (%s): %w", r.ID, r.File, err)
		}
		set.rules = append(set.rules, &compiledRule{
			meta:  r,
			sigma: sr,
			eval:  evaluator.ForRule(sr),
			ref: RuleRef{
				ID:          r.ID,
				Title:       r.Title,
				Level:       r.Level,
				Tags:        r.Tags,
				Description: r.Description,
				References:  r.References,
			},
		})
	}
	e.set.Store(set)
	return nil
}

// Rules describes the rules in use.
func (e *Engine) Rules() []RuleStatus {
	set := e.set.Load()
	out := make([]RuleStatus, 0, len(set.rules))
	for _, r := range set.rules {
		st := RuleStatus{Rule: r.meta, Enabled: true, Alerts: r.hits.Load(), EvalErrors: r.errors.Load()}
		if p := r.last.Load(); p != nil {
			st.LastError = *p
		}
		out = append(out, st)
	}
	return out
}

// Match evaluates ev against every rule and returns one alert per matching
// rule, attributed to the named intake. received is used as the alert time
// when the event has no time of its own.
func (e *Engine) Match(ev *normalize.Event, intake string, received time.Time) []Alert {
	set := e.set.Load()
	var out []Alert
	ctx := context.Background()
	flat := ev.FlatMap()
	for _, r := range set.rules {
		res, err := r.eval.Matches(ctx, flat)
		if err != nil {
			r.errors.Add(1)
			msg := err.Error()
			r.last.Store(&msg)
			continue
		}
		if !res.Match {
			continue
		}
		r.hits.Add(1)
		t := ev.Time
		if t.IsZero() {
			t = received.UTC()
		}
		out = append(out, Alert{
			ID:        AlertID(ev.Time, r.meta.ID, ev.Key),
			Rule:      r.ref,
			Count:     1,
			FirstSeen: t,
			LastSeen:  t,
			Status:    StatusNew,
			Intake:    intake,
			Dataset:   ev.Dataset,
			RecordKey: ev.Key,
			Matches:   matchedFields(r.sigma, res.SearchResults, flat),
			Event:     ev.Doc(),
		})
	}
	return out
}

// matchedFields lists, for the searches that matched, the event fields they
// test, with the event's values.
func matchedFields(sr sigma.Rule, searches map[string]bool, flat map[string]any) []Match {
	seen := map[string]bool{}
	var out []Match
	names := make([]string, 0, len(searches))
	for name, ok := range searches {
		if ok {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		for _, em := range sr.Detection.Searches[name].EventMatchers {
			for _, fm := range em {
				v, ok := flat[fm.Field]
				if !ok || seen[fm.Field] {
					continue
				}
				seen[fm.Field] = true
				out = append(out, Match{Field: fm.Field, Value: v})
			}
		}
	}
	return out
}
