package engine

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/raywatch/raywatch/rules"
)

// Collector returns a prometheus collector of the per-rule quality
// counters, read from [Engine.Rules] on each scrape, for the caller to
// register:
//
//	raywatch_rule_detections_total{rule}            alerts the engine raised (before grouping)
//	raywatch_rule_suppressed_total{rule,by}         events a rule matched that exceptions or filters (by) suppressed
//	raywatch_rule_eval_seconds_sampled_total{rule}  evaluation time measured on sampled events
//	raywatch_rule_eval_share{rule}                  the rule's share of the sampled evaluation time
//	raywatch_filter_suppressed_total{filter}        events each Sigma filter suppressed
//	raywatch_rules{kind,state}                      loaded rules by kind and health (ok, unable_to_fire, disabled)
func (e *Engine) Collector() prometheus.Collector {
	return &collector{
		e:          e,
		detections: prometheus.NewDesc("raywatch_rule_detections_total", "Alerts raised by the engine, by rule, before the store groups them.", []string{"rule"}, nil),
		suppressed: prometheus.NewDesc("raywatch_rule_suppressed_total", "Events a rule matched that raised no alert, by rule and by what suppressed them (exception or filter).", []string{"rule", "by"}, nil),
		evalSec:    prometheus.NewDesc("raywatch_rule_eval_seconds_sampled_total", "Evaluation time of a rule, measured on sampled events.", []string{"rule"}, nil),
		evalShare:  prometheus.NewDesc("raywatch_rule_eval_share", "A rule's share (0 to 1) of the sampled evaluation time of all rules.", []string{"rule"}, nil),
		filtered:   prometheus.NewDesc("raywatch_filter_suppressed_total", "Events each Sigma filter kept from alerting.", []string{"filter"}, nil),
		rulesDesc:  prometheus.NewDesc("raywatch_rules", "Loaded rules by kind (detection, correlation, filter) and state (ok, unable_to_fire, disabled).", []string{"kind", "state"}, nil),
	}
}

type collector struct {
	e                                                               *Engine
	detections, suppressed, evalSec, evalShare, filtered, rulesDesc *prometheus.Desc
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.detections, c.suppressed, c.evalSec, c.evalShare, c.filtered, c.rulesDesc} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	type ks struct{ kind, state string }
	counts := map[ks]int{}
	for _, r := range c.e.Rules() {
		state := r.Health.State
		if state == HealthOK && !r.Enabled {
			state = "disabled"
		}
		counts[ks{r.Kind(), state}]++
		if r.Kind() == rules.KindFilter {
			ch <- prometheus.MustNewConstMetric(c.filtered, prometheus.CounterValue, float64(r.SuppressedByFilters), r.ID)
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.detections, prometheus.CounterValue, float64(r.Alerts), r.ID)
		ch <- prometheus.MustNewConstMetric(c.suppressed, prometheus.CounterValue, float64(r.SuppressedByExceptions), r.ID, "exception")
		ch <- prometheus.MustNewConstMetric(c.suppressed, prometheus.CounterValue, float64(r.SuppressedByFilters), r.ID, "filter")
		ch <- prometheus.MustNewConstMetric(c.evalSec, prometheus.CounterValue, r.EvalSeconds, r.ID)
		ch <- prometheus.MustNewConstMetric(c.evalShare, prometheus.GaugeValue, r.EvalShare, r.ID)
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.rulesDesc, prometheus.GaugeValue, float64(n), k.kind, k.state)
	}
}
