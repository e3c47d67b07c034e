package app

import (
	"errors"
	"flag"
)

// TuningConfig is the configuration of the tuning features of serve
// (issue 15): the runaway-rule guard. Exceptions live in the store and
// Sigma filters in the rules folder; neither has a flag.
type TuningConfig struct {
	// RuleAlertBudget bounds the new alerts one rule may create in one
	// minute (store.Options.RuleAlertBudget); 0 means no bound.
	RuleAlertBudget int
}

// DefaultRuleAlertBudget is the default of --rule-alert-budget.
const DefaultRuleAlertBudget = 100

func (c *TuningConfig) flags(fs *flag.FlagSet, env Env) {
	fs.IntVar(&c.RuleAlertBudget, "rule-alert-budget", int(env.Int("RAYWATCH_RULE_ALERT_BUDGET", DefaultRuleAlertBudget)),
		"new alerts one rule may create in a minute; beyond it the rule stops creating new ones for that minute (matches still count into its existing alerts) and a warning shows; 0 means no limit (RAYWATCH_RULE_ALERT_BUDGET)")
}

func (c *TuningConfig) validate() []error {
	if c.RuleAlertBudget < 0 {
		return []error{errors.New("--rule-alert-budget cannot be negative (0 means no limit)")}
	}
	return nil
}
