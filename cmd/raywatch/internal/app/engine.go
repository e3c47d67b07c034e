package app

import (
	"strings"

	"github.com/raywatch/raywatch/engine"
	"github.com/raywatch/raywatch/engine/ioc"
	"github.com/raywatch/raywatch/rules"
)

// EngineOptions returns the engine options of the configuration; iocs
// gives the current IOC set (nil: no IOC matching).
func (c *Config) EngineOptions(iocs func() *ioc.Set) (engine.Options, error) {
	opts := engine.Options{MaxGroups: c.MaxGroups, IOC: iocs}
	for _, id := range strings.Split(c.DisableRules, ",") {
		if id = strings.TrimSpace(id); id != "" {
			opts.Disabled = append(opts.Disabled, id)
		}
	}
	if c.FieldMapping != "" {
		m, err := rules.LoadMapping(c.FieldMapping)
		if err != nil {
			return opts, err
		}
		opts.Mapping = m
	}
	return opts, nil
}

// NewEngine compiles the built-in rules plus those of cfg.RulesDir, with
// the IOC set iocs gives (nil: none). Broken drop-in rules are returned as
// problems and left out.
func NewEngine(cfg Config, iocs func() *ioc.Set) (*engine.Engine, []*rules.LoadError, error) {
	e, rep, err := LoadEngine(cfg, iocs)
	return e, rep.Problems, err
}

// RuleReport is what loading the rules found besides the rules: the files
// and rules that failed to load and the rules that were read but not
// loaded.
type RuleReport struct {
	Problems []*rules.LoadError
	Skipped  []rules.Skip
}

// LoadEngine is [NewEngine] with the skipped rules (deprecated and
// unsupported ones of cfg.RulesDir) reported too.
func LoadEngine(cfg Config, iocs func() *ioc.Set) (*engine.Engine, RuleReport, error) {
	opts, err := cfg.EngineOptions(iocs)
	if err != nil {
		return nil, RuleReport{}, err
	}
	f, err := engine.LoadRuleFolder(cfg.RulesDir)
	if err != nil {
		return nil, RuleReport{}, err
	}
	e, err := engine.NewWithOptions(nil, opts)
	if err != nil {
		return nil, RuleReport{}, err
	}
	rep := RuleReport{Problems: append(f.Problems, e.Reload(f.Rules)...), Skipped: f.Skipped}
	return e, rep, nil
}

// Unable returns the enabled rules (and filters) of eng that can never
// fire on raywatch's events, each with its Health saying why.
func Unable(eng *engine.Engine) []engine.RuleStatus {
	var out []engine.RuleStatus
	for _, r := range eng.Rules() {
		if r.Enabled && r.Health.State == engine.HealthUnable {
			out = append(out, r)
		}
	}
	return out
}
