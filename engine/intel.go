package engine

import (
	"time"

	"github.com/raywatch/raywatch/rules/alert"

	"github.com/raywatch/raywatch/normalize"
)

// matchIOC runs the current indicator set over ev for the intelligence-feed
// rule r and appends its alert, one per event, listing every indicator hit,
// unless a filter of the rule or an exception holds on the event (in c).
func (e *Engine) matchIOC(c *matchCtx, r *compiledRule, ev *normalize.Event, intake string, received time.Time, out []alert.Alert) []alert.Alert {
	set := e.opts.IOC()
	if set == nil {
		return out
	}
	hits := set.Match(ev, nil) // nil when nothing matches: no allocation
	if len(hits) == 0 || e.suppress(c, r.meta.ID, r.counter, r.filters, ev) {
		return out
	}
	matches := make([]alert.Match, len(hits))
	for i, h := range hits {
		matches[i] = alert.Match{Field: h.Field, Value: h.Value, Indicator: h.Indicator}
	}
	r.counter.hits.Add(1)
	return append(out, eventAlert(r, ev, intake, received, matches))
}
