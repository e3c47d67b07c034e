package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/raywatch/raywatch/normalize"
	"github.com/raywatch/raywatch/rules"
	"github.com/raywatch/raywatch/rules/exception"
)

// compiledFilter is a Sigma filter: when its conditions hold on an event
// that one of its rules matched, the rule does not alert.
type compiledFilter struct {
	*compiledRule // searches and conditions; meta is the filter
}

// holds reports whether the filter's condition holds on the event in c.
func (f *compiledFilter) holds(c *matchCtx) bool {
	for ci := range f.conds {
		if c.evalNode(f.compiledRule, f.conds[ci].root) {
			return true
		}
	}
	return false
}

// compileFilter compiles the filter r, lists it, and attaches it to the
// rules it names (by id, name or title; "*" names every rule) unless it
// cannot fire.
func (e *Engine) compileFilter(c *compiler, set *ruleSet, r rules.Rule, corrs map[string]*compiledCorr) *rules.LoadError {
	cr := &compiledRule{meta: r, counter: e.counter(r.ID)}
	if err := c.compileDetection(&r, cr); err != nil {
		var le *rules.LoadError
		if errors.As(err, &le) {
			return le
		}
		return ruleError(&r, 0, "%v", err)
	}
	f := &compiledFilter{cr}
	h := e.health(&r)
	var targets []*compiledRule
	var targetCorrs []*compiledCorr
	var applies, missing []string
	for _, name := range r.Filter.Rules {
		n := len(targets) + len(targetCorrs)
		if name == "*" {
			applies = append(applies, "*")
			for _, id := range set.statIDs {
				if base := set.byRef[id]; base != nil && !slices.Contains(targets, base) {
					targets = append(targets, base)
				}
			}
			for _, cc := range corrs {
				if !slices.Contains(targetCorrs, cc) {
					targetCorrs = append(targetCorrs, cc)
				}
			}
			continue
		}
		if base := set.byRef[name]; base != nil && !slices.Contains(targets, base) {
			targets = append(targets, base)
		}
		if cc := corrs[name]; cc != nil && !slices.Contains(targetCorrs, cc) {
			targetCorrs = append(targetCorrs, cc)
		}
		for _, id := range set.statIDs { // by title
			if base := set.byRef[id]; base != nil && base.meta.Title == name && !slices.Contains(targets, base) {
				targets = append(targets, base)
			}
		}
		for _, cc := range corrs {
			if cc.meta.Title == name && !slices.Contains(targetCorrs, cc) {
				targetCorrs = append(targetCorrs, cc)
			}
		}
		if len(targets)+len(targetCorrs) == n {
			missing = append(missing, name)
		}
	}
	if h.State == HealthOK && len(targets)+len(targetCorrs) == 0 {
		h = Health{State: HealthUnable, File: ruleFile(&r), Line: r.Filter.Line, Reason: fmt.Sprintf("names no loaded rule (%q)", missing)}
	}
	if slices.Contains(applies, "*") {
		applies = []string{"*"}
	} else {
		for _, t := range targets {
			applies = append(applies, t.meta.ID)
		}
		for _, t := range targetCorrs {
			applies = append(applies, t.meta.ID)
		}
	}
	set.status = append(set.status, RuleStatus{Rule: r, Enabled: !e.disabled[r.ID], Health: h, AppliesTo: applies})
	set.statIDs = append(set.statIDs, r.ID)
	if e.disabled[r.ID] || h.State != HealthOK {
		return nil
	}
	for _, t := range targets {
		t.filters = append(t.filters, f)
	}
	for _, t := range targetCorrs {
		t.filters = append(t.filters, f)
	}
	return nil
}

// excSet is the compiled exceptions in use, with the usage counter of
// each (usage[i] counts set.At(i)).
type excSet struct {
	set   *exception.Set
	usage []*excUsage
}

// excUsage counts the events one exception suppressed since it was last
// drained. Usage entries are never deleted (there are as many as
// exceptions were ever set, a few bytes each): a match that loaded the
// previous set may still count into the entry of an exception just
// removed, and that count must not be lost before it is drained.
type excUsage struct {
	n    atomic.Int64
	last atomic.Int64 // unix ns of the last suppression, 0 for none
}

func (u *excUsage) add(t time.Time) {
	u.n.Add(1)
	u.seen(t)
}

// seen records a suppression at t if it is the latest.
func (u *excUsage) seen(t time.Time) {
	ns := t.UnixNano()
	for {
		old := u.last.Load()
		if old >= ns || u.last.CompareAndSwap(old, ns) {
			return
		}
	}
}

// SetExceptions compiles xs and swaps them in atomically: from the next
// event on, an event that an exception matches raises no alert of the
// exception's rule (or of any rule) and is not counted in its aggregations
// and correlations, until the exception expires. An invalid exception
// fails the whole call (the error names it) and the previous exceptions
// stay in use. Suppression counts not yet drained by
// [Engine.DrainExceptionUsage] are kept for the exceptions still present.
// Safe for concurrent use.
func (e *Engine) SetExceptions(xs []exception.Exception) error {
	set, err := exception.Compile(xs)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if set.Len() == 0 {
		e.exc.Store(nil) // nothing to check on the match path
		return nil
	}
	es := &excSet{set: set, usage: make([]*excUsage, set.Len())}
	for i := range es.usage {
		id := set.At(i).ID
		u := e.usage[id]
		if u == nil {
			u = &excUsage{}
			e.usage[id] = u
		}
		es.usage[i] = u
	}
	e.exc.Store(es)
	return nil
}

// ValidateException checks x as [exception.Exception.Validate] does, and
// that every field it tests is one that raywatch's events carry (an
// exception on another field would never apply).
func ValidateException(x exception.Exception) error {
	if err := x.Validate(); err != nil {
		return err
	}
	for _, f := range x.Fields() {
		if !normalize.HasField(f) {
			return fmt.Errorf("match: %q is not a field of raywatch's events (use ECS names such as source.ip, url.path, user_agent.original)", f)
		}
	}
	return nil
}

// suppress reports whether the event in c, which rule id matched, must not
// alert because a filter of the rule or an exception holds on it, and
// counts it.
func (e *Engine) suppress(c *matchCtx, id string, counter *ruleCounter, filters []*compiledFilter, ev *normalize.Event) bool {
	for _, f := range filters {
		if f.holds(c) {
			counter.filtered.Add(1)
			f.counter.filtered.Add(1)
			f.counter.lastFilter.Store(e.opts.Now().UnixNano())
			return true
		}
	}
	es := e.exc.Load()
	if es == nil {
		return false
	}
	now := e.opts.Now()
	if i := es.set.Match(id, ev, now); i >= 0 {
		counter.excepted.Add(1)
		es.usage[i].add(now)
		return true
	}
	return false
}

// statuses returns the status of every rule of set with its counters.
func (e *Engine) statuses(set *ruleSet) []RuleStatus {
	out := make([]RuleStatus, len(set.status))
	copy(out, set.status)
	e.mu.Lock()
	defer e.mu.Unlock()
	var total int64
	for i := range out {
		c := e.stats[set.statIDs[i]]
		if c == nil {
			continue
		}
		st := &out[i]
		st.Alerts = c.hits.Load()
		st.SuppressedByExceptions = c.excepted.Load()
		st.SuppressedByFilters = c.filtered.Load()
		st.Suppressed = st.SuppressedByExceptions + st.SuppressedByFilters
		if ns := c.lastFilter.Load(); ns > 0 {
			st.LastSuppressed = time.Unix(0, ns).UTC()
		}
		ns := c.evalNanos.Load()
		st.EvalSeconds = float64(ns) / 1e9
		total += ns
	}
	if total > 0 {
		for i := range out {
			out[i].EvalShare = out[i].EvalSeconds * 1e9 / float64(total)
		}
	}
	return out
}

// DrainExceptionUsage returns the suppressions counted for each exception
// since the last drain (only exceptions with some) and starts counting
// them from zero. LastSuppressed is the time of the latest suppression.
// Safe for concurrent use; see [Engine.RunExceptionUsage] for the usual
// caller.
func (e *Engine) DrainExceptionUsage() []exception.Exception {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []exception.Exception
	for id, u := range e.usage {
		n := u.n.Swap(0)
		if n == 0 {
			continue
		}
		out = append(out, exception.Exception{ID: id, Suppressed: n, LastSuppressed: time.Unix(0, u.last.Load()).UTC()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// undrain gives back counts that could not be stored.
func (e *Engine) undrain(us []exception.Exception) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, x := range us {
		u := e.usage[x.ID]
		if u == nil {
			u = &excUsage{}
			e.usage[x.ID] = u
		}
		u.n.Add(x.Suppressed)
		u.seen(x.LastSuppressed)
	}
}

// AddPendingUsage adds to each of xs the suppressions the engine counted
// and has not drained yet, so that a listing of stored exceptions shows
// up-to-date counts.
func (e *Engine) AddPendingUsage(xs []exception.Exception) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := range xs {
		u := e.usage[xs[i].ID]
		if u == nil {
			continue
		}
		xs[i].Suppressed += u.n.Load()
		if ns := u.last.Load(); ns > 0 {
			if t := time.Unix(0, ns).UTC(); t.After(xs[i].LastSuppressed) {
				xs[i].LastSuppressed = t
			}
		}
	}
}

// UsageSink persists exception suppression counts; the store's
// AddExceptionUsage implements it.
type UsageSink interface {
	// AddExceptionUsage adds each Suppressed to the stored count of the
	// exception with that ID and keeps the later LastSuppressed.
	AddExceptionUsage(ctx context.Context, usage []exception.Exception) error
}

// RunExceptionUsage drains the exceptions' suppression counts into sink
// every interval until ctx is done, then once more (with a short timeout
// of its own), and returns. Counts that sink fails to take are kept for
// the next round and the failure is logged. Run it in a goroutine that the
// caller waits for after the pipeline has stopped matching.
func (e *Engine) RunExceptionUsage(ctx context.Context, sink UsageSink, interval time.Duration, log *slog.Logger) {
	if interval <= 0 {
		interval = 10 * time.Second
	}
	flush := func(ctx context.Context) {
		us := e.DrainExceptionUsage()
		if len(us) == 0 {
			return
		}
		if err := sink.AddExceptionUsage(ctx, us); err != nil {
			e.undrain(us)
			if log != nil {
				log.Warn("store exception suppression counts", "exceptions", len(us), "err", err)
			}
		}
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			flush(final)
			cancel()
			return
		case <-t.C:
			flush(ctx)
		}
	}
}
