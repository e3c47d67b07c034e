package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

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
	CoverageReport
	Fields  []string `json:"fields"`
	Message string   `json:"message,omitempty"`
	Fix     string   `json:"fix,omitempty"`
}

// coverageReports describes, per intake, which rules cannot fire because
// their fields are not in the records.
func coverageReports(eng *engine.Engine, cov *FieldCoverage) ([]coverageView, error) {
	needs, err := rulesNeeds(enabledRules(eng))
	if err != nil {
		return nil, err
	}
	out := []coverageView{}
	for _, rep := range cov.Reports(needs) {
		v := coverageView{CoverageReport: rep}
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
func ruleCoverageNotes(eng *engine.Engine, cov *FieldCoverage) map[string]map[string]any {
	needs, err := rulesNeeds(enabledRules(eng))
	if err != nil {
		return nil
	}
	out := map[string]map[string]any{}
	for _, rep := range cov.Reports(needs) {
		for _, rc := range cov.Rules(rep.Intake, needs) {
			m := out[rc.RuleID]
			if m == nil {
				m = map[string]any{"coverage": []RuleCoverage{}}
				out[rc.RuleID] = m
			}
			m["coverage"] = append(m["coverage"].([]RuleCoverage), rc)
		}
	}
	return out
}

// coverageFile is where serve keeps the fields each intake's records
// carry, for `raywatch rules list` to report blind rules.
func coverageFile(dataDir string) string { return filepath.Join(dataDir, "field-coverage.json") }

// saveCoverage writes the fields seen per intake to path, atomically.
func saveCoverage(path string, cov *FieldCoverage) error {
	snap := map[string][]string{}
	for _, rep := range cov.Reports(nil) {
		snap[rep.Intake], _ = cov.Fields(rep.Intake)
	}
	b, err := json.MarshalIndent(snap, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// loadCoverage reads what saveCoverage wrote; nil when there is none.
func loadCoverage(path string) *FieldCoverage {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var snap map[string][]string
	if json.Unmarshal(b, &snap) != nil {
		return nil
	}
	cov := NewFieldCoverage(CoverageOptions{})
	for intake, fields := range snap {
		cov.Observe(intake, slices.Values(fields))
	}
	return cov
}

// keepCoverage saves the coverage every interval until ctx ends, and once
// more at the end.
func keepCoverage(ctx context.Context, path string, cov *FieldCoverage, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := saveCoverage(path, cov); err != nil {
				log.Warn("save field coverage", "err", err)
			}
			return
		case <-t.C:
			if err := saveCoverage(path, cov); err != nil {
				log.Warn("save field coverage", "err", err)
			}
		}
	}
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

// jobPoller polls the state of the Logpush jobs that deliver to this
// raywatch, every interval, backing off (up to maxBackoff) while the API
// fails.
type jobPoller struct {
	client     *cfClient
	red        *redactor
	zone       string // "" means every zone the credentials can read
	keys       map[string]string
	activity   *intakeActivity
	interval   time.Duration
	maxBackoff time.Duration
	log        *slog.Logger

	mu      sync.Mutex
	jobs    []LogpushJobStatus
	checked time.Time
	lastErr string
}

// newJobPoller returns a poller when Cloudflare API credentials are in the
// environment, else nil.
func newJobPoller(keys map[string]string, activity *intakeActivity, log *slog.Logger) *jobPoller {
	if getenv("CLOUDFLARE_API_TOKEN") == "" && getenv("CLOUDFLARE_API_KEY") == "" {
		return nil
	}
	red := &redactor{}
	for _, k := range keys {
		red.add(k)
	}
	c, err := newCFClient(red)
	if err != nil {
		log.Warn("Logpush job health disabled", "err", red.replace(err.Error()))
		return nil
	}
	return &jobPoller{
		client: c, red: red, zone: getenv("RAYWATCH_CLOUDFLARE_ZONE"), keys: keys, activity: activity,
		interval: envDuration("RAYWATCH_CLOUDFLARE_POLL", 2*time.Minute), maxBackoff: 30 * time.Minute,
		log: log.With("component", "cloudflare"),
	}
}

func (p *jobPoller) run(ctx context.Context) {
	wait := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		jobs, err := p.client.allRaywatchJobs(ctx, p.zone, p.keys)
		p.mu.Lock()
		p.checked = time.Now()
		if err != nil {
			p.lastErr = p.red.replace(err.Error())
			wait = min(max(2*wait, p.interval), p.maxBackoff)
		} else {
			p.jobs, p.lastErr = jobs, ""
			wait = p.interval
		}
		p.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			p.log.Warn("poll Logpush jobs", "err", p.red.replace(err.Error()), "retry_in", wait)
		}
	}
}

// jobView is one Logpush job as GET /api/v1/jobs shows it.
type jobView struct {
	LogpushJobStatus
	LastBatch time.Time `json:"last_batch,omitzero"`
	Warning   string    `json:"warning,omitempty"`
}

// report is GET /api/v1/jobs.
func (p *jobPoller) report(context.Context) (any, error) {
	if p == nil {
		return map[string]any{"enabled": false, "jobs": []jobView{}}, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	views := make([]jobView, 0, len(p.jobs))
	now := time.Now()
	for _, j := range p.jobs {
		v := jobView{LogpushJobStatus: j}
		if j.Intake != "" {
			v.LastBatch = p.activity.lastBatch(j.Intake)
		}
		v.ErrorMessage = p.red.replace(v.ErrorMessage)
		v.Warning = jobWarning(v, now)
		views = append(views, v)
	}
	return map[string]any{"enabled": true, "checked": p.checked, "error": p.lastErr, "jobs": views}, nil
}

// jobWarning says what is wrong with a job, or "".
func jobWarning(v jobView, now time.Time) string {
	interval := v.MaxUploadInterval
	if interval <= 0 {
		interval = 30 * time.Second // Logpush's default
	}
	// Allow three intervals plus Logpush's own delay before crying wolf.
	quiet := 3*interval + 2*time.Minute
	switch {
	case !v.Enabled:
		return fmt.Sprintf("job %d is disabled; `raywatch cloudflare connect` re-enables it", v.ID)
	case v.Failing():
		return fmt.Sprintf("job %d's last upload failed (%s)", v.ID, v.ErrorMessage)
	case v.Intake == "":
		return fmt.Sprintf("job %d sends a key that no intake of this raywatch has", v.ID)
	case !v.LastComplete.IsZero() && now.Sub(v.LastComplete) > quiet:
		return fmt.Sprintf("job %d has pushed nothing since %s", v.ID, v.LastComplete.UTC().Format(time.RFC3339))
	case v.LastBatch.IsZero() || now.Sub(v.LastBatch) > quiet:
		if !v.LastComplete.IsZero() && now.Sub(v.LastComplete) <= quiet {
			return fmt.Sprintf("Cloudflare says job %d delivered at %s, but no batch reached intake %q for over %s: check the destination host", v.ID, v.LastComplete.UTC().Format(time.RFC3339), v.Intake, quiet.Round(time.Second))
		}
	}
	return ""
}
