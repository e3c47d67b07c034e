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
	opts, err := cfg.EngineOptions(iocs)
	if err != nil {
		return nil, nil, err
	}
	rs, problems, err := engine.LoadRules(cfg.RulesDir)
	if err != nil {
		return nil, nil, err
	}
	e, err := engine.NewWithOptions(nil, opts)
	if err != nil {
		return nil, nil, err
	}
	problems = append(problems, e.Reload(rs)...)
	return e, problems, nil
}
