// Package baseline builds the yardstick raywatch's speed figures are measured
// against: sigma-go's own evaluator on the same rules and field mapping.
package baseline

import (
	sigma "github.com/bradleyjkemp/sigma-go"
	"github.com/bradleyjkemp/sigma-go/evaluator"

	"github.com/raywatch/raywatch/rules"
)

// SigmaGoEvaluators returns sigma-go's per-rule evaluators (ForRule) for
// the detection rules of rs, with raywatch's field mapping m given as a
// sigma-go config: the baseline that raywatch's speed figures are measured
// against. skipped counts the rules sigma-go's parser rejects and the
// correlation rules, which it cannot evaluate.
func SigmaGoEvaluators(rs []rules.Rule, m *rules.Mapping) (evals []*evaluator.RuleEvaluator, skipped int) {
	cfg := sigma.Config{FieldMappings: map[string]sigma.FieldMapping{}}
	for _, r := range rs {
		sr, err := sigma.ParseRule(r.YAML)
		if err != nil || r.Detection == nil {
			skipped++
			continue
		}
		for _, s := range r.Detection.Searches {
			for _, mp := range s.Maps {
				for _, fm := range mp {
					if fm.Field != "" {
						cfg.FieldMappings[fm.Field] = sigma.FieldMapping{TargetNames: m.Fields(fm.Field)}
					}
				}
			}
		}
		evals = append(evals, evaluator.ForRule(sr, evaluator.WithConfig(cfg)))
	}
	return evals, skipped
}
