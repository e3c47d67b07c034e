package app

import (
	"context"
	"sync"
	"time"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/coverage"
	"github.com/raywatch/raywatch/engine"
	"github.com/raywatch/raywatch/engine/ioc"
	"github.com/raywatch/raywatch/rules"
	"github.com/raywatch/raywatch/web"
)

// intakeActivity remembers when each intake last delivered a batch.
type intakeActivity struct {
	mu   sync.Mutex
	last map[string]time.Time
}

func (a *intakeActivity) saw(intake string, t time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.last == nil {
		a.last = map[string]time.Time{}
	}
	if t.After(a.last[intake]) {
		a.last[intake] = t
	}
}

func (a *intakeActivity) lastBatch(intake string) time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last[intake]
}

// enabledRules returns the enabled rules of eng.
func enabledRules(eng *engine.Engine) []rules.Rule {
	var rs []rules.Rule
	for _, st := range eng.Rules() {
		if st.Enabled {
			rs = append(rs, st.Rule)
		}
	}
	return rs
}

// coverageView is one intake's field coverage as the API shows it.
type coverageView struct {
	coverage.Report
	Fields  []string `json:"fields"`
	Message string   `json:"message,omitempty"`
	Fix     string   `json:"fix,omitempty"`
}

// coverageReports describes, per intake, which rules cannot fire because
// their fields are not in the records.
func coverageReports(eng *engine.Engine, cov *coverage.Tracker) ([]coverageView, error) {
	needs, err := coverage.Needs(enabledRules(eng))
	if err != nil {
		return nil, err
	}
	out := []coverageView{}
	for _, rep := range cov.Reports(needs) {
		v := coverageView{Report: rep}
		v.Fields, _ = cov.Fields(rep.Intake)
		if len(rep.Blind) > 0 {
			v.Message = rep.Message()
			v.Fix = rep.FixCommand("", "")
		}
		out = append(out, v)
	}
	return out, nil
}

// ruleCoverageNotes returns, per rule id, its coverage on every intake that
// has received records: the "coverage" member of /api/v1/rules.
func ruleCoverageNotes(eng *engine.Engine, cov *coverage.Tracker) map[string]map[string]any {
	needs, err := coverage.Needs(enabledRules(eng))
	if err != nil {
		return nil
	}
	out := map[string]map[string]any{}
	for _, rep := range cov.Reports(needs) {
		for _, rc := range cov.Rules(rep.Intake, needs) {
			m := out[rc.RuleID]
			if m == nil {
				m = map[string]any{"coverage": []coverage.RuleState{}}
				out[rc.RuleID] = m
			}
			m["coverage"] = append(m["coverage"].([]coverage.RuleState), rc)
		}
	}
	return out
}

// iocReport is GET /api/v1/iocs.
func iocReport(w *ioc.Watcher) web.Reporter {
	return func(context.Context) (any, error) {
		if w == nil {
			return map[string]any{"enabled": false, "files": []ioc.FileStatus{}, "counts": map[ioc.Type]int{}, "total": 0}, nil
		}
		set := w.Current()
		return map[string]any{"enabled": true, "files": w.Status(), "counts": set.Counts(), "total": set.Len()}, nil
	}
}

// EnabledRules returns the enabled rules of eng.
func EnabledRules(eng *engine.Engine) []rules.Rule { return enabledRules(eng) }
