package retro

import (
	"net/netip"
	"strings"
	"time"

	"github.com/raywatch/raywatch/engine"
	"github.com/raywatch/raywatch/engine/ioc"
	"github.com/raywatch/raywatch/normalize"
	"github.com/raywatch/raywatch/rules"
	"github.com/raywatch/raywatch/rules/alert"
	"github.com/raywatch/raywatch/store/archive"
)

// matcher is what a hunt looks for.
type matcher interface {
	// wants reports whether a raw record may match; false skips its
	// normalization.
	wants(raw []byte) bool
	// match appends the alerts of ev (read from obj) to out.
	match(ev *normalize.Event, obj archive.Object, out []alert.Alert) []alert.Alert
}

func (h *Hunter) matcher(hu *hunt) (matcher, error) {
	if hu.rule != nil {
		e, err := engine.NewWithOptions([]rules.Rule{*hu.rule}, engine.Options{Mapping: h.opts.Mapping})
		if err != nil {
			return nil, err
		}
		return &ruleMatcher{eng: e}, nil
	}
	return newIOCMatcher(hu.inds, h.intel, h.opts.Now()), nil
}

// iocMatcher matches a small set of new indicators: not a re-detection of
// every rule and indicator.
type iocMatcher struct {
	set   *ioc.Set
	intel alert.RuleRef
	// needles, when not nil, are texts of which a record must hold one
	// (ignoring ASCII case) to match any indicator: most records are then
	// skipped without being normalized.
	needles [][]byte
	hits    []ioc.Hit
}

func newIOCMatcher(inds []ioc.Indicator, intel alert.RuleRef, now time.Time) *iocMatcher {
	m := &iocMatcher{intel: intel}
	for _, ind := range inds {
		n, ok := needle(ind)
		if !ok {
			m.needles = nil
			break
		}
		m.needles = append(m.needles, []byte(n))
	}
	m.set = ioc.NewSet(inds, now)
	return m
}

// needle returns a text that a raw record matching ind holds, in lower
// case, or false when there is none safe to rely on: ranges match
// addresses not written in the record, and IPv6 addresses, user-agents and
// URL paths may be written differently (compressed zeros, JSON escapes).
func needle(ind ioc.Indicator) (string, bool) {
	key, ok := ioc.MatchKey(ind.Type, ind.Value)
	if !ok {
		return "", false
	}
	kind, v, _ := strings.Cut(key, ":")
	switch kind {
	case "ip":
		p, err := netip.ParsePrefix(v)
		if err != nil || !p.Addr().Is4() || p.Bits() != 32 {
			return "", false
		}
		return p.Addr().String(), true
	case "domain", "ja3":
		return v, true
	case "url":
		host, _, _ := strings.Cut(v, "/")
		if host == "" || strings.HasPrefix(host, "[") {
			return "", false
		}
		return host, true
	}
	return "", false
}

func (m *iocMatcher) wants(raw []byte) bool {
	if m.needles == nil {
		return true
	}
	for _, n := range m.needles {
		if bytesContainsFold(raw, n) {
			return true
		}
	}
	return false
}

// match raises one alert per indicator that ev matches, keyed by the
// record and the indicator's match key: the same indicator hunted again
// gives the same alert, another indicator on the same record another one.
func (m *iocMatcher) match(ev *normalize.Event, obj archive.Object, out []alert.Alert) []alert.Alert {
	m.hits = m.set.Match(ev, m.hits[:0])
	if len(m.hits) == 0 {
		return out
	}
	t := eventTime(ev, obj)
	rk := recordKey(ev)
	var doc map[string]any
	start := len(out)
	for _, h := range m.hits {
		key, _ := ioc.MatchKey(h.Indicator.Type, h.Indicator.Value)
		match := alert.Match{Field: h.Field, Value: h.Value, Indicator: h.Indicator}
		k := rk + "#retro:" + key
		found := false
		for i := start; i < len(out); i++ {
			if out[i].RecordKey == k {
				out[i].Matches = append(out[i].Matches, match)
				found = true
				break
			}
		}
		if found {
			continue
		}
		if doc == nil {
			doc = ev.Doc()
		}
		out = append(out, alert.Alert{
			ID:        alert.AlertID(t, m.intel.ID, k),
			Rule:      m.intel,
			Count:     1,
			FirstSeen: t,
			LastSeen:  t,
			Status:    alert.StatusNew,
			Intake:    obj.Intake,
			Dataset:   ev.Dataset,
			RecordKey: k,
			Retro:     true,
			Matches:   []alert.Match{match},
			Event:     doc,
		})
	}
	return out
}

// ruleMatcher runs one rule.
type ruleMatcher struct {
	eng *engine.Engine
}

func (m *ruleMatcher) wants([]byte) bool { return true }

// match raises the rule's alerts with the record key and ID the live
// pipeline gives them, so that a record the rule already alerted on live
// is not counted twice by the store.
func (m *ruleMatcher) match(ev *normalize.Event, obj archive.Object, out []alert.Alert) []alert.Alert {
	as := m.eng.Match(ev, obj.Intake, obj.Received)
	rk := recordKey(ev)
	for i := range as {
		a := &as[i]
		if a.Group == nil && rk != a.RecordKey {
			a.RecordKey = rk
			a.ID = alert.AlertID(ev.Time, a.Rule.ID, rk)
		}
		a.Retro = true
	}
	return append(out, as...)
}
