// Package coverage tells which Logpush fields each intake's records carry
// and which rules cannot fire because a field they need is missing.
package coverage

import (
	"fmt"
	"iter"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/valyala/fastjson"

	"github.com/raywatch/raywatch/normalize"
)

// Tracker records, per intake, which top-level Logpush fields recent
// records carried, and tells which rules cannot fire because a field they
// need is not arriving (a Logpush job whose field_names leave out
// ClientRequestUserAgent blinds every user-agent rule without an error
// anywhere).
//
// It looks at one record in [Options.SampleEvery] (and always at
// the first record of an intake), so [Tracker.Observe] costs an
// atomic increment for most records. "Recent" is counted in sampled
// records, not time: a field is missing when none of the last
// [Options.Window] sampled records of the intake had it, so an idle
// intake keeps its last verdict instead of drifting into false alarms.
//
// All methods are safe for concurrent use. The zero value is not usable;
// call [New].
type Tracker struct {
	opts Options

	mu      sync.RWMutex
	intakes map[string]*intakeFields
}

// Options configures a [Tracker]. Zero fields take the
// defaults.
type Options struct {
	// SampleEvery makes Observe look at one record in SampleEvery
	// (default 16; 1 looks at every record).
	SampleEvery int
	// Window is how many sampled records a field may be absent from before
	// it counts as missing (default 64, that is about 1000 records with the
	// default sampling).
	Window int
	// MaxFields bounds the distinct field names remembered per intake
	// (default 512; http_requests has about 130).
	MaxFields int
	// MaxIntakes bounds the intakes tracked (default 256); records of
	// further intakes are ignored.
	MaxIntakes int
}

// intakeFields is the coverage state of one intake.
type intakeFields struct {
	offered atomic.Uint64 // records passed to Observe

	mu      sync.Mutex
	sampled uint64         // records looked at
	idx     map[string]int // field name → index in last
	last    []uint64       // sampled count when the field was last seen
}

// New returns an empty tracker.
func New(opts Options) *Tracker {
	if opts.SampleEvery <= 0 {
		opts.SampleEvery = 16
	}
	if opts.Window <= 0 {
		opts.Window = 64
	}
	if opts.MaxFields <= 0 {
		opts.MaxFields = 512
	}
	if opts.MaxIntakes <= 0 {
		opts.MaxIntakes = 256
	}
	return &Tracker{opts: opts, intakes: map[string]*intakeFields{}}
}

// sample counts a record of intake and returns the intake's state, locked,
// when this record is to be looked at; otherwise nil.
func (c *Tracker) sample(intake string) *intakeFields {
	c.mu.RLock()
	st := c.intakes[intake]
	c.mu.RUnlock()
	if st == nil {
		c.mu.Lock()
		st = c.intakes[intake]
		if st == nil {
			if len(c.intakes) >= c.opts.MaxIntakes {
				c.mu.Unlock()
				return nil
			}
			st = &intakeFields{idx: map[string]int{}}
			c.intakes[intake] = st
		}
		c.mu.Unlock()
	}
	if (st.offered.Add(1)-1)%uint64(c.opts.SampleEvery) != 0 {
		return nil
	}
	st.mu.Lock()
	st.sampled++
	return st
}

// see records that the current sampled record has field name; st.mu is
// held.
func (c *Tracker) see(st *intakeFields, name string) {
	if i, ok := st.idx[name]; ok {
		st.last[i] = st.sampled
		return
	}
	if len(st.last) >= c.opts.MaxFields {
		return
	}
	st.idx[name] = len(st.last)
	st.last = append(st.last, st.sampled)
}

// Observe counts one record of intake; when the record is sampled, it
// ranges over fields, the record's top-level field names. Call it once per
// record, validation uploads excepted.
func (c *Tracker) Observe(intake string, fields iter.Seq[string]) {
	st := c.sample(intake)
	if st == nil {
		return
	}
	defer st.mu.Unlock()
	for name := range fields {
		c.see(st, name)
	}
}

var coverageParsers fastjson.ParserPool

// ObserveJSON is [Tracker.Observe] for a raw record (one JSON
// object); the record is parsed only when sampled. A sampled record that
// is not a JSON object, or is Logpush's validation upload, tells nothing
// and is not counted as sampled.
func (c *Tracker) ObserveJSON(intake string, record []byte) {
	st := c.sample(intake)
	if st == nil {
		return
	}
	defer st.mu.Unlock()
	p := coverageParsers.Get()
	defer coverageParsers.Put(p)
	v, err := p.ParseBytes(record)
	if err != nil {
		st.sampled--
		return
	}
	obj, err := v.Object()
	if err != nil || normalize.IsValidationProbe(record) {
		st.sampled--
		return
	}
	obj.Visit(func(key []byte, _ *fastjson.Value) {
		if i, ok := st.idx[string(key)]; ok { // no allocation
			st.last[i] = st.sampled
			return
		}
		c.see(st, string(key))
	})
}

// present reports whether field was in one of the last Window sampled
// records; st.mu is held.
func (c *Tracker) present(st *intakeFields, field string) bool {
	i, ok := st.idx[field]
	return ok && st.sampled-st.last[i] < uint64(c.opts.Window)
}

// Fields returns the fields recent records of intake carried, sorted, and
// how many records were looked at (0: none yet, nothing is known).
func (c *Tracker) Fields(intake string) (fields []string, sampled uint64) {
	c.mu.RLock()
	st := c.intakes[intake]
	c.mu.RUnlock()
	if st == nil {
		return nil, 0
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	for name := range st.idx {
		if c.present(st, name) {
			fields = append(fields, name)
		}
	}
	slices.Sort(fields)
	return fields, st.sampled
}

// Coverage states of a rule on an intake.
const (
	OK      = "ok"      // every field the rule needs is arriving
	Blind   = "blind"   // a field it needs is not in the records: it cannot fire
	Unknown = "unknown" // no record has arrived on the intake yet
)

// RuleState says whether one rule can fire on one intake.
type RuleState struct {
	Intake string `json:"intake"`
	RuleID string `json:"rule_id"`
	Title  string `json:"title"`
	State  string `json:"state"` // OK, Blind or Unknown
	// Missing are the needs not met, as Logpush field names
	// ("ClientRequestUserAgent", "ClientRequestPath or ClientRequestURI").
	Missing []string `json:"missing,omitempty"`
}

// Rules returns the coverage of each rule on intake, in the order given.
func (c *Tracker) Rules(intake string, rules []RuleNeeds) []RuleState {
	out := make([]RuleState, len(rules))
	for i, r := range rules {
		out[i] = RuleState{Intake: intake, RuleID: r.ID, Title: r.Title, State: Unknown}
	}
	c.mu.RLock()
	st := c.intakes[intake]
	c.mu.RUnlock()
	if st == nil {
		return out
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.sampled == 0 {
		return out
	}
	for i, r := range rules {
		out[i].State = OK
		for _, n := range r.Needs {
			if !slices.ContainsFunc(n.AnyOf, func(f string) bool { return c.present(st, f) }) {
				out[i].State = Blind
				out[i].Missing = append(out[i].Missing, n.String())
			}
		}
	}
	return out
}

// Report sums up the blind rules of one intake.
type Report struct {
	Intake string `json:"intake"`
	// Sampled is the number of records looked at; 0 means nothing is known
	// yet.
	Sampled uint64 `json:"sampled_records"`
	// Blind are the rules that cannot fire on the intake.
	Blind []RuleState `json:"blind_rules"`
	// Missing is the union of the blind rules' missing fields, in order of
	// how many rules each blinds (most first), then by name.
	Missing []string `json:"missing_fields"`
}

// Report sums up the coverage of rules on intake.
func (c *Tracker) Report(intake string, rules []RuleNeeds) Report {
	rep := Report{Intake: intake, Blind: []RuleState{}, Missing: []string{}}
	_, rep.Sampled = c.Fields(intake)
	count := map[string]int{}
	for _, rc := range c.Rules(intake, rules) {
		if rc.State != Blind {
			continue
		}
		rep.Blind = append(rep.Blind, rc)
		for _, m := range rc.Missing {
			if count[m] == 0 {
				rep.Missing = append(rep.Missing, m)
			}
			count[m]++
		}
	}
	slices.SortFunc(rep.Missing, func(a, b string) int {
		if d := count[b] - count[a]; d != 0 {
			return d
		}
		return strings.Compare(a, b)
	})
	return rep
}

// Reports returns the report of every intake that has received records,
// sorted by intake name.
func (c *Tracker) Reports(rules []RuleNeeds) []Report {
	c.mu.RLock()
	names := make([]string, 0, len(c.intakes))
	for name := range c.intakes {
		names = append(names, name)
	}
	c.mu.RUnlock()
	slices.Sort(names)
	out := make([]Report, 0, len(names))
	for _, name := range names {
		if rep := c.Report(name, rules); rep.Sampled > 0 {
			out = append(out, rep)
		}
	}
	return out
}

// Message is the warning for the dashboard and the logs, for example
// `4 rules cannot fire on intake "default": ClientRequestUserAgent is not
// in the records`; it is "" when no rule is blind.
func (r Report) Message() string {
	if len(r.Blind) == 0 {
		return ""
	}
	rules := "rules cannot"
	if len(r.Blind) == 1 {
		rules = "rule cannot"
	}
	items := make([]string, len(r.Missing))
	for i, m := range r.Missing {
		if strings.Contains(m, " or ") && len(r.Missing) > 1 {
			m = "(" + m + ")"
		}
		items[i] = m
	}
	verb := "is"
	if len(items) > 1 {
		verb = "are"
	}
	return fmt.Sprintf("%d %s fire on intake %q: %s %s not in the records", len(r.Blind), rules, r.Intake, joinAnd(items), verb)
}

// FixCommand is the command that makes the intake's Logpush job carry the
// missing fields. zone and publicURL fill its --zone and --url; when empty,
// placeholders stand in.
func (r Report) FixCommand(zone, publicURL string) string {
	if zone == "" {
		zone = "ZONE_ID"
	}
	if publicURL == "" {
		publicURL = "https://YOUR-RAYWATCH-HOST"
	}
	cmd := "raywatch cloudflare connect --zone " + shellQuote(zone) + " --url " + shellQuote(publicURL)
	if r.Intake != "default" {
		cmd += " --intake " + shellQuote(r.Intake)
	}
	return cmd
}

// joinAnd joins "a", "b", "c" as "a, b and c".
func joinAnd(items []string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/=@%+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
