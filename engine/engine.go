// Package engine matches normalized events against the compiled rule set and
// turns matches into alerts.
//
// Rules are Sigma rules loaded by package rules. The engine compiles each
// into its own matcher (lowered needles, compiled regular expressions and
// wildcard patterns, fields resolved through the field mapping), extracts
// the literals a rule needs to match, and prefilters every event with one
// literal scan per value of the fields it reads, plus one scan of all the
// event's values at once (normalize's Event.Texts) for keyword literals
// (each literal indexed by its rarest three-byte gram), so that most rules
// are never evaluated on most events. A field matcher with a long list of plain values (equals,
// contains, startswith, endswith) tests them as one literal set: a hash
// set, tries and an Aho-Corasick automaton, whose cost depends on the
// event's value and not on the length of the list. Aggregations (count() by ... within a timeframe) and
// correlation rules keep sliding-window state with a bounded number of
// groups.
package engine

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math/bits"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/raywatch/raywatch/rules/alert"

	"github.com/raywatch/raywatch/engine/ioc"
	"github.com/raywatch/raywatch/normalize"
	"github.com/raywatch/raywatch/rules"
)

// DefaultMaxGroups is the default bound on the groups each aggregation or
// correlation rule keeps.
const DefaultMaxGroups = 10000

// Options configure an Engine.
type Options struct {
	// Mapping maps rule field names to event fields; nil means
	// rules.DefaultMapping().
	Mapping *rules.Mapping
	// Disabled are ids of rules that are loaded and listed but not
	// evaluated.
	Disabled []string
	// MaxGroups bounds the groups (distinct "by" values) that each
	// aggregation or correlation rule keeps; the least recently seen group
	// is forgotten first. 0 means DefaultMaxGroups.
	MaxGroups int
	// IOC returns the current indicator set for the intelligence-feed rule
	// (typically an ioc.Watcher's Current); nil means no IOC matching.
	IOC func() *ioc.Set
	// Now is the clock against which exceptions expire; nil means
	// time.Now.
	Now func() time.Time
	// EvalSampleEvery is how often the evaluation time of rules is
	// measured: on one event in EvalSampleEvery (per matching goroutine).
	// 0 means DefaultEvalSampleEvery.
	EvalSampleEvery int
}

// DefaultEvalSampleEvery is the default of Options.EvalSampleEvery.
const DefaultEvalSampleEvery = 1024

// Engine matches events against an immutable compiled rule set, which
// [Engine.SetRules] and [Engine.Reload] swap atomically. All methods are
// safe for concurrent use.
type Engine struct {
	opts     Options
	disabled map[string]bool
	set      atomic.Pointer[ruleSet]
	exc      atomic.Pointer[excSet] // nil when there are no exceptions
	pool     sync.Pool              // *matchCtx

	mu      sync.Mutex              // serializes rule and exception swaps; guards windows, stats and usage
	windows map[string]*window      // aggregation state, kept across reloads of an unchanged rule
	stats   map[string]*ruleCounter // by rule id, kept across reloads
	usage   map[string]*excUsage    // by exception id, kept across SetExceptions
}

// ruleCounter counts what a rule (or filter) did. Its fields are updated
// atomically on the match path.
type ruleCounter struct {
	hits       atomic.Int64 // alerts raised
	excepted   atomic.Int64 // events suppressed by exceptions
	filtered   atomic.Int64 // events suppressed by filters (for a filter: events it suppressed)
	evalNanos  atomic.Int64 // sampled evaluation time
	evalTimes  atomic.Int64 // sampled evaluations
	lastFilter atomic.Int64 // for a filter: unix ns of its last suppression
}

type ruleSet struct {
	rules   []*compiledRule // detection rules evaluated on events, by index
	status  []RuleStatus    // every rule, for Rules (counters filled on demand)
	statIDs []string
	byRef   map[string]*compiledRule // detection rules by id and by name
	corrs   []*compiledCorr
	slots   []slotDef
	pf      prefilter
	rangeKW bool // the keyword prefilter walks Event.Range instead of Event.Texts (tests)
	nwords  int
	intel   *compiledRule // the intelligence-feed rule, when enabled
}

type compiledRule struct {
	meta     rules.Rule
	ref      alert.RuleRef
	datasets []string
	searches []*cSearch
	conds    []cCond
	wins     []*window // per condition; nil when it has no aggregation
	alerts   bool      // raises its own single-event alerts
	links    []corrLink
	counter  *ruleCounter
	unable   bool              // cannot fire: listed, never evaluated
	filters  []*compiledFilter // Sigma filters that apply to the rule
}

// compiledCorr is a correlation rule.
type compiledCorr struct {
	meta    rules.Rule
	ref     alert.RuleRef
	spec    *windowSpec
	win     *window
	counter *ruleCounter
	filters []*compiledFilter
}

type corrLink struct {
	c  *compiledCorr
	ri int // position of the rule in the correlation's rule list
}

// RuleStatus describes a loaded rule (or filter) and how it has behaved.
// Its Kind method tells detections, correlations and filters apart.
type RuleStatus struct {
	rules.Rule
	Enabled bool `json:"enabled"`
	// Health says whether the rule can fire.
	Health Health `json:"health"`
	// Alerts are the alerts the engine raised (before the store groups
	// them).
	Alerts int64 `json:"alerts"`
	// Suppressed counts the events that matched the rule but raised no
	// alert: SuppressedByExceptions plus SuppressedByFilters. For a filter,
	// it counts the events the filter kept from alerting (any of its
	// rules), and LastSuppressed is when it last did.
	Suppressed             int64     `json:"suppressed"`
	SuppressedByExceptions int64     `json:"suppressed_by_exceptions"`
	SuppressedByFilters    int64     `json:"suppressed_by_filters"`
	LastSuppressed         time.Time `json:"last_suppressed,omitzero"`
	// AppliesTo lists, for a filter, the ids of the loaded rules it applies
	// to ("*" when it names every rule).
	AppliesTo []string `json:"applies_to,omitempty"`
	// EvalSeconds is the evaluation time of the rule measured on sampled
	// events (one in Options.EvalSampleEvery), and EvalShare its share of
	// the sampled evaluation time of all rules (0 to 1).
	EvalSeconds float64 `json:"eval_seconds_sampled"`
	EvalShare   float64 `json:"eval_share"`
	EvalErrors  int64   `json:"eval_errors"`
	LastError   string  `json:"last_error,omitempty"`
}

// New compiles rs with the default options and returns an Engine using
// them. It fails when a rule cannot be compiled, naming the rule's file and
// line.
func New(rs []rules.Rule) (*Engine, error) {
	return NewWithOptions(rs, Options{})
}

// NewWithOptions is [New] with options.
func NewWithOptions(rs []rules.Rule, opts Options) (*Engine, error) {
	e := newEngine(opts)
	if err := e.SetRules(rs); err != nil {
		return nil, err
	}
	return e, nil
}

// newEngine is an Engine without rules, its options defaulted.
func newEngine(opts Options) *Engine {
	if opts.Mapping == nil {
		opts.Mapping = rules.DefaultMapping()
	}
	if opts.MaxGroups <= 0 {
		opts.MaxGroups = DefaultMaxGroups
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.EvalSampleEvery <= 0 {
		opts.EvalSampleEvery = DefaultEvalSampleEvery
	}
	e := &Engine{opts: opts, disabled: map[string]bool{}, windows: map[string]*window{}, stats: map[string]*ruleCounter{}, usage: map[string]*excUsage{}}
	for _, id := range opts.Disabled {
		e.disabled[strings.TrimSpace(id)] = true
	}
	return e
}

// SetRules compiles rs and swaps them in atomically. When any rule fails to
// compile, the error lists every failing rule (as *rules.LoadError values
// joined) and the previous set stays in use.
func (e *Engine) SetRules(rs []rules.Rule) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	set, problems := e.compile(rs)
	if len(problems) > 0 {
		errs := make([]error, len(problems))
		for i, p := range problems {
			errs[i] = p
		}
		return errors.Join(errs...)
	}
	e.set.Store(set)
	return nil
}

// Reload compiles rs, skips the rules that fail (returning their errors,
// with file and line) and swaps the rest in atomically.
func (e *Engine) Reload(rs []rules.Rule) []*rules.LoadError {
	e.mu.Lock()
	defer e.mu.Unlock()
	set, problems := e.compile(rs)
	e.set.Store(set)
	return problems
}

// Check compiles rs with opts without running them and returns the
// problems, each naming the rule's file and line. Rules that compile but
// cannot fire are not problems here; see [Diagnose].
func Check(rs []rules.Rule, opts Options) []*rules.LoadError {
	_, problems := Diagnose(rs, opts)
	return problems
}

// Diagnose compiles rs with opts without running them and returns the
// status of every rule that compiles (its Health says whether it can fire)
// and the problems of those that do not, each naming the rule's file and
// line. It is what `raywatch rules check` reports.
func Diagnose(rs []rules.Rule, opts Options) ([]RuleStatus, []*rules.LoadError) {
	e := newEngine(opts)
	set, problems := e.compile(rs)
	return e.statuses(set), problems
}

// compile builds a rule set from rs, skipping (and reporting) the rules
// that fail. Rules that cannot fire are listed, not evaluated. e.mu must be
// held.
func (e *Engine) compile(rs []rules.Rule) (*ruleSet, []*rules.LoadError) {
	c := &compiler{opts: e.opts, mapping: e.opts.Mapping, slotIdx: map[string]int{}}
	set := &ruleSet{byRef: map[string]*compiledRule{}}
	var problems []*rules.LoadError
	var corrRules, filterRules []rules.Rule
	windows := map[string]*window{}
	for i := range rs {
		r := rs[i]
		switch r.Kind() {
		case rules.KindCorrelation:
			corrRules = append(corrRules, r)
			continue
		case rules.KindFilter:
			filterRules = append(filterRules, r)
			continue
		}
		if err := e.compileRule(c, set, r, windows); err != nil {
			problems = append(problems, err)
		}
	}
	corrs := map[string]*compiledCorr{}
	for i := range corrRules {
		r := corrRules[i]
		cc, err := e.compileCorrelation(c, &r, set.byRef, windows)
		if err != nil {
			problems = append(problems, err)
			continue
		}
		corrs[r.ID] = cc
		if r.Name != "" {
			corrs[r.Name] = cc
		}
		h := corrHealth(&r, set.byRef)
		set.status = append(set.status, RuleStatus{Rule: r, Enabled: !e.disabled[r.ID], Health: h})
		set.statIDs = append(set.statIDs, r.ID)
		if e.disabled[r.ID] || h.State == HealthUnable {
			continue
		}
		set.corrs = append(set.corrs, cc)
		for ri, name := range r.Correlation.Rules {
			base := set.byRef[name]
			base.links = append(base.links, corrLink{c: cc, ri: ri})
			if !r.Correlation.Generate {
				base.alerts = false
			}
		}
	}
	for i := range filterRules {
		if err := e.compileFilter(c, set, filterRules[i], corrs); err != nil {
			problems = append(problems, err)
		}
	}
	e.windows = windows
	set.slots = c.slots
	set.nwords = (len(set.rules) + 63) / 64
	set.pf = buildPrefilter(set.rules)
	return set, problems
}

// compileRule compiles the detection rule r into set: evaluated when it is
// enabled and can fire, listed in any case.
func (e *Engine) compileRule(c *compiler, set *ruleSet, r rules.Rule, windows map[string]*window) *rules.LoadError {
	if r.Detection == nil {
		return ruleError(&r, 0, "has no detection")
	}
	cr := &compiledRule{meta: r, ref: refOf(r), alerts: true, datasets: e.opts.Mapping.Datasets(r.Logsource), counter: e.counter(r.ID)}
	if err := c.compileDetection(&r, cr); err != nil {
		var le *rules.LoadError
		if errors.As(err, &le) {
			return le
		}
		return ruleError(&r, 0, "%v", err)
	}
	cr.wins = make([]*window, len(cr.conds))
	for ci, cc := range cr.conds {
		if cc.win != nil {
			key := fmt.Sprintf("%s#%d#%x", r.ID, ci, fnvHash(string(r.YAML)))
			w := e.windows[key]
			if w == nil {
				w = newWindow(cc.win, e.opts.MaxGroups)
			}
			windows[key] = w
			cr.wins[ci] = w
		}
	}
	h := e.health(&r)
	cr.unable = h.State == HealthUnable
	set.status = append(set.status, RuleStatus{Rule: r, Enabled: !e.disabled[r.ID], Health: h})
	set.statIDs = append(set.statIDs, r.ID)
	set.byRef[r.ID] = cr
	if r.Name != "" {
		set.byRef[r.Name] = cr
	}
	switch {
	case e.disabled[r.ID] || cr.unable:
	case r.ID == rules.IntelligenceFeedID:
		set.intel = cr // evaluated by the IOC matcher, not by its detection
	default:
		set.rules = append(set.rules, cr)
	}
	return nil
}

// literals returns the prefilter literals of the rule: one of them occurs
// in its field whenever the rule matches. ok is false when the rule must be
// evaluated on every event.
func (cr *compiledRule) literals() ([]lit, bool) {
	var out []lit
	for _, cc := range cr.conds {
		l, ok := cr.necessary(cc.root)
		if !ok {
			return nil, false
		}
		out = append(out, l...)
	}
	return out, len(out) > 0
}

func (e *Engine) compileCorrelation(c *compiler, r *rules.Rule, byRef map[string]*compiledRule, windows map[string]*window) (*compiledCorr, *rules.LoadError) {
	cor := r.Correlation
	for _, name := range cor.Rules {
		if byRef[name] == nil {
			return nil, ruleError(r, cor.Line, "correlation refers to rule %q, which is not loaded (or is itself a correlation)", name)
		}
	}
	spec := &windowSpec{span: cor.Timespan, op: cor.Op, threshold: cor.Threshold, valueSlot: -1, nrules: len(cor.Rules)}
	switch cor.Type {
	case "event_count":
		spec.kind = winEventCount
	case "value_count":
		spec.kind = winValueCount
		spec.valueSlot = c.slot(c.mapping.Fields(cor.Field)[0])
	case "temporal", "temporal_ordered":
		spec.kind = winTemporal
		spec.ordered = cor.Type == "temporal_ordered"
	}
	for _, f := range cor.GroupBy {
		spec.groupFields = append(spec.groupFields, f)
		spec.groupSlots = append(spec.groupSlots, c.slot(c.mapping.Fields(f)[0]))
	}
	key := fmt.Sprintf("%s#corr#%x", r.ID, fnvHash(string(r.YAML)))
	w := e.windows[key]
	if w == nil {
		w = newWindow(spec, e.opts.MaxGroups)
	}
	windows[key] = w
	return &compiledCorr{meta: *r, ref: refOf(*r), spec: spec, win: w, counter: e.counter(r.ID)}, nil
}

func (e *Engine) counter(id string) *ruleCounter {
	c := e.stats[id]
	if c == nil {
		c = &ruleCounter{}
		e.stats[id] = c
	}
	return c
}

func refOf(r rules.Rule) alert.RuleRef {
	return alert.RuleRef{ID: r.ID, Title: r.Title, Level: r.Level, Tags: r.Tags, Description: r.Description, References: r.References}
}

func fnvHash(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// Rules describes the rules in use, disabled ones, correlation rules,
// filters and rules unable to fire included, with their counters.
func (e *Engine) Rules() []RuleStatus {
	return e.statuses(e.set.Load())
}

// Match evaluates ev against every enabled rule and returns one alert per
// matching rule, attributed to the named intake, plus one alert per
// aggregation or correlation whose threshold ev crosses. received is used
// as the event time when the event has no time of its own.
func (e *Engine) Match(ev *normalize.Event, intake string, received time.Time) []alert.Alert {
	set := e.set.Load()
	c, _ := e.pool.Get().(*matchCtx)
	if c == nil || c.set != set {
		c = newMatchCtx(set)
		// A random start, so that contexts the pool drops early still
		// sample one event in EvalSampleEvery on average.
		c.untilSample = 1 + rand.IntN(e.opts.EvalSampleEvery)
	}
	c.reset(ev)
	c.prefilter()
	c.untilSample--
	sample := c.untilSample == 0
	if sample {
		c.untilSample = e.opts.EvalSampleEvery
	}
	var out []alert.Alert
	for w, word := range c.bits {
		for word != 0 {
			i := w*64 + bits.TrailingZeros64(word)
			word &= word - 1
			r := set.rules[i]
			if r.datasets != nil && !slices.Contains(r.datasets, ev.Dataset) {
				continue
			}
			if !sample {
				out = e.evalRule(c, r, ev, intake, received, out)
				continue
			}
			start := time.Now()
			out = e.evalRule(c, r, ev, intake, received, out)
			r.counter.evalNanos.Add(int64(time.Since(start)))
			r.counter.evalTimes.Add(1)
		}
	}
	if set.intel != nil && e.opts.IOC != nil {
		out = e.matchIOC(c, set.intel, ev, intake, received, out)
	}
	c.release()
	e.pool.Put(c)
	return out
}

// evalRule evaluates the conditions of r on the event in c and appends the
// alerts they raise to out.
func (e *Engine) evalRule(c *matchCtx, r *compiledRule, ev *normalize.Event, intake string, received time.Time, out []alert.Alert) []alert.Alert {
	matched, checked := false, false
	for ci := range r.conds {
		cc := &r.conds[ci]
		if !c.evalNode(r, cc.root) {
			continue
		}
		if !checked {
			// The rule holds: its filters and exceptions may still keep
			// the event from alerting (or counting in a window).
			checked = true
			if e.suppress(c, r.meta.ID, r.counter, r.filters, ev) {
				return out
			}
		}
		if cc.win == nil {
			matched = true
			continue
		}
		t := eventTime(ev, received)
		key, group := groupOf(c, cc.win)
		value := ""
		if cc.win.valueSlot >= 0 {
			vs, ok := c.values(cc.win.valueSlot)
			if !ok || len(vs) == 0 {
				continue
			}
			value = vs[0]
		}
		if f, ok := r.wins[ci].observe(key, t.UnixNano(), fnvHash(ev.Key), value, 0); ok {
			r.counter.hits.Add(1)
			out = append(out, groupAlert(r.ref, r.meta.ID, key, group, f, ev, intake, e.matches(c, r)))
		}
	}
	if !matched {
		return out
	}
	for _, l := range r.links {
		if e.suppress(c, l.c.meta.ID, l.c.counter, l.c.filters, ev) {
			continue
		}
		key, group := groupOf(c, l.c.spec)
		value := ""
		if l.c.spec.valueSlot >= 0 {
			vs, ok := c.values(l.c.spec.valueSlot)
			if !ok || len(vs) == 0 {
				continue
			}
			value = vs[0]
		}
		t := eventTime(ev, received)
		if f, ok := l.c.win.observe(key, t.UnixNano(), fnvHash(ev.Key), value, l.ri); ok {
			l.c.counter.hits.Add(1)
			out = append(out, groupAlert(l.c.ref, l.c.meta.ID, key, group, f, ev, intake, e.matches(c, r)))
		}
	}
	if !r.alerts {
		return out
	}
	r.counter.hits.Add(1)
	return append(out, eventAlert(r, ev, intake, received, e.matches(c, r)))
}

// eventAlert is the alert of rule r on the single event ev.
func eventAlert(r *compiledRule, ev *normalize.Event, intake string, received time.Time, matches []alert.Match) alert.Alert {
	t := eventTime(ev, received)
	return alert.Alert{
		ID:        alert.AlertID(ev.Time, r.meta.ID, ev.Key),
		Rule:      r.ref,
		Count:     1,
		FirstSeen: t,
		LastSeen:  t,
		Status:    alert.StatusNew,
		Intake:    intake,
		Dataset:   ev.Dataset,
		RecordKey: ev.Key,
		Matches:   matches,
		Event:     ev.Doc(),
	}
}

func eventTime(ev *normalize.Event, received time.Time) time.Time {
	if ev.Time.IsZero() {
		return received.UTC()
	}
	return ev.Time
}

// groupOf returns the group key of the event for a window and the group's
// field values.
func groupOf(c *matchCtx, w *windowSpec) (string, map[string]string) {
	if len(w.groupSlots) == 0 {
		return "", nil
	}
	group := make(map[string]string, len(w.groupSlots))
	var b strings.Builder
	for i, sl := range w.groupSlots {
		v := ""
		if vs, ok := c.values(sl); ok && len(vs) > 0 {
			v = vs[0]
		}
		group[w.groupFields[i]] = v
		if i > 0 {
			b.WriteByte(0)
		}
		b.WriteString(v)
	}
	return b.String(), group
}

func groupAlert(ref alert.RuleRef, ruleID, key string, group map[string]string, f firing, ev *normalize.Event, intake string, matches []alert.Match) alert.Alert {
	start := time.Unix(0, f.start).UTC()
	return alert.Alert{
		ID:        alert.AlertID(start, ruleID, "group\x00"+key),
		Rule:      ref,
		Count:     f.count,
		FirstSeen: time.Unix(0, f.first).UTC(),
		LastSeen:  eventTime(ev, start),
		Status:    alert.StatusNew,
		Intake:    intake,
		Dataset:   ev.Dataset,
		RecordKey: ev.Key,
		Group:     group,
		Matches:   matches,
		Event:     ev.Doc(),
	}
}

// matches lists, for the searches of r that hold on the event, the fields
// they test with the event's values. It runs only when r matched.
func (e *Engine) matches(c *matchCtx, r *compiledRule) []alert.Match {
	seen := map[string]bool{}
	var out []alert.Match
	for _, s := range r.searches {
		for _, m := range s.maps {
			if !c.evalMap(m) {
				continue
			}
			for _, ft := range m {
				if ft.keyword {
					if f, v, ok := c.evalKeyword(ft); ok && !seen[f] {
						seen[f] = true
						out = append(out, alert.Match{Field: f, Value: v})
					}
					continue
				}
				for _, sl := range ft.slots {
					name := c.set.slots[sl].name
					vs, ok := c.values(sl)
					if !ok || seen[name] {
						continue
					}
					seen[name] = true
					if len(vs) == 1 {
						out = append(out, alert.Match{Field: name, Value: vs[0]})
					} else {
						out = append(out, alert.Match{Field: name, Value: slices.Clone(vs)})
					}
				}
			}
		}
	}
	return out
}
