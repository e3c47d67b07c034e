package app

import (
	"sync"
	"time"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/cloudflare"
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

// enabledRules returns the enabled detection and correlation rules of eng
// that can fire: those whose fields the coverage follows (a filter
// detects nothing, and a rule unable to fire is reported as such).
func enabledRules(eng *engine.Engine) []rules.Rule {
	var rs []rules.Rule
	for _, st := range eng.Rules() {
		if st.Enabled && st.Kind() != rules.KindFilter && st.Health.State != engine.HealthUnable {
			rs = append(rs, st.Rule)
		}
	}
	return rs
}

// coverageReports describes, per intake, which rules cannot fire because
// their fields are not in the records: GET /api/v1/coverage.
func coverageReports(eng *engine.Engine, cov *coverage.Tracker) ([]web.IntakeCoverage, error) {
	needs, err := coverage.Needs(enabledRules(eng))
	if err != nil {
		return nil, err
	}
	out := []web.IntakeCoverage{}
	for _, rep := range cov.Reports(needs) {
		v := web.IntakeCoverage{Intake: rep.Intake, Sampled: rep.Sampled, Blind: webRuleCoverage(rep.Blind), Missing: rep.Missing}
		v.Fields, _ = cov.Fields(rep.Intake)
		if len(rep.Blind) > 0 {
			v.Message = rep.Message()
			v.Fix = rep.FixCommand("", "")
		}
		out = append(out, v)
	}
	return out, nil
}

func webRuleCoverage(rs []coverage.RuleState) []web.RuleCoverage {
	out := make([]web.RuleCoverage, len(rs))
	for i, r := range rs {
		out[i] = web.RuleCoverage{Intake: r.Intake, RuleID: r.RuleID, Title: r.Title, State: r.State, Missing: r.Missing}
	}
	return out
}

// ruleCoverage returns, per rule id, its coverage on every intake that has
// received records: the "coverage" member of /api/v1/rules.
func ruleCoverage(eng *engine.Engine, cov *coverage.Tracker) map[string][]web.RuleCoverage {
	needs, err := coverage.Needs(enabledRules(eng))
	if err != nil {
		return nil
	}
	out := map[string][]web.RuleCoverage{}
	for _, rep := range cov.Reports(needs) {
		for _, rc := range webRuleCoverage(cov.Rules(rep.Intake, needs)) {
			out[rc.RuleID] = append(out[rc.RuleID], rc)
		}
	}
	return out
}

// iocReport is GET /api/v1/iocs; w is nil without --ioc-dir, dir is the
// folder.
func iocReport(w *ioc.Watcher, dir string) web.IOCReport {
	if w == nil {
		return web.IOCReport{Files: []web.IOCFile{}, Counts: map[ioc.Type]int{}}
	}
	set := w.Current()
	rep := web.IOCReport{Enabled: true, Dir: dir, Files: []web.IOCFile{}, Counts: set.Counts(), Total: set.Len()}
	for _, f := range w.Status() {
		lines := make([]web.IOCLineError, len(f.LineErrors))
		for i, le := range f.LineErrors {
			lines[i] = web.IOCLineError{File: le.File, Line: le.Line, Msg: le.Msg}
		}
		rep.Files = append(rep.Files, web.IOCFile{
			File: f.File, Format: f.Format, Indicators: f.Indicators, Total: f.Total, Expired: f.Expired,
			Superseded: f.Superseded, Skipped: f.Skipped, BadLines: f.BadLines, LineErrors: lines,
			LastLoad: f.LastLoad, LastError: f.LastError, LastErrorTime: f.LastErrorTime,
			Warning: f.Warning, WarningTime: f.WarningTime,
		})
	}
	return rep
}

// jobsReport is GET /api/v1/jobs; p is nil without Cloudflare
// credentials.
func jobsReport(p *cloudflare.Poller) web.JobsReport {
	r := p.Report()
	out := web.JobsReport{Enabled: r.Enabled, Checked: r.Checked, Error: r.Error, Jobs: make([]web.Job, len(r.Jobs))}
	for i, j := range r.Jobs {
		out.Jobs[i] = web.Job{
			Zone: j.Zone, ZoneName: j.ZoneName, ID: j.ID, Name: j.Name, Dataset: j.Dataset, Host: j.Host, Intake: j.Intake,
			Enabled: j.Enabled, LastComplete: j.LastComplete, LastError: j.LastError, ErrorMessage: j.ErrorMessage,
			MaxUploadInterval: j.MaxUploadInterval, LastBatch: j.LastBatch, Warning: j.Warning,
		}
	}
	return out
}

// EnabledRules returns the enabled rules of eng that can fire, filters
// left out.
func EnabledRules(eng *engine.Engine) []rules.Rule { return enabledRules(eng) }
