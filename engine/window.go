package engine

import (
	"strings"
	"sync"
	"time"

	"github.com/raywatch/raywatch/rules"
)

// Window kinds.
const (
	winEventCount = iota // count() and event_count
	winValueCount        // count(field) and value_count
	winTemporal          // temporal and temporal_ordered
)

// windowSpec describes a sliding-window condition: an aggregation of a
// detection rule or a correlation rule.
type windowSpec struct {
	kind        int
	span        time.Duration
	op          string
	threshold   float64
	groupFields []string // as the rule names them, for alerts
	groupSlots  []int
	valueSlot   int // value_count: the counted field
	nrules      int // temporal: the number of correlated rules
	ordered     bool
}

// capacity is how many entries a group keeps: enough to decide the
// comparison exactly.
func (s *windowSpec) capacity() int {
	k := int(s.threshold) + 1
	if k < 1 {
		k = 1
	}
	if k > 1<<16 {
		k = 1 << 16
	}
	return k
}

// window is the state of one windowSpec: groups in least-recently-used
// order, at most max of them. It is safe for concurrent use.
type window struct {
	mu         sync.Mutex
	spec       *windowSpec
	max        int
	groups     map[string]*group
	head, tail *group // most and least recently used
	evicted    int64
}

type entry struct {
	t int64  // unix nanoseconds
	h uint64 // hash of the record key, to ignore a retried record
}

type valueSeen struct {
	last int64
	n    int
}

type group struct {
	key        string
	prev, next *group
	ring       []entry
	pos        int
	distinct   map[string]valueSeen
	seen       []int64 // temporal: last time each rule matched, 0 if never
	quietUntil int64   // no new alert before this time
}

func newWindow(spec *windowSpec, max int) *window {
	return &window{spec: spec, max: max, groups: map[string]*group{}}
}

// firing is the result of an observation that crossed the threshold.
type firing struct {
	count int   // contributing events (value_count: events of the counted values)
	first int64 // time of the oldest contributing event
	start int64 // start of the alert's window, for its ID
}

// observe records one matching event of group key at time t (record hash
// h; value for value_count; rule index ri for temporal) and reports a
// firing when the condition holds and no alert was raised for the group
// within the last span.
func (w *window) observe(key string, t int64, h uint64, value string, ri int) (firing, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	g := w.touch(key)
	span := int64(w.spec.span)
	in := func(x int64) bool { d := t - x; return d < span && d > -span }
	var count int
	var first = t
	switch w.spec.kind {
	case winEventCount:
		dup := false
		for _, e := range g.ring {
			if e.h == h && in(e.t) {
				dup = true
				break
			}
		}
		if !dup {
			if len(g.ring) < cap(g.ring) {
				g.ring = append(g.ring, entry{t, h})
			} else {
				g.ring[g.pos] = entry{t, h}
				g.pos = (g.pos + 1) % len(g.ring)
			}
		}
		for _, e := range g.ring {
			if in(e.t) {
				count++
				first = min(first, e.t)
			}
		}
		if !rules.Holds(w.spec.op, float64(count), w.spec.threshold) {
			return firing{}, false
		}
	case winValueCount:
		// The value points into the event, whose memory the caller may
		// reuse (normalize's Event.Reuse): the map keeps a copy. (Storing
		// to an existing string key replaces the key too, so the copy is
		// made whether or not the value is new.)
		value = strings.Clone(value)
		vs, ok := g.distinct[value]
		if !ok && len(g.distinct) >= w.spec.capacity() {
			// Forget the value seen longest ago.
			oldest, ot := "", int64(1<<62)
			for v, s := range g.distinct {
				if s.last < ot {
					oldest, ot = v, s.last
				}
			}
			delete(g.distinct, oldest)
		}
		if vs.last == 0 || !in(vs.last) {
			vs = valueSeen{}
		}
		vs.last = max(vs.last, t)
		vs.n++
		g.distinct[value] = vs
		distinct, events := 0, 0
		for _, s := range g.distinct {
			if in(s.last) {
				distinct++
				events += s.n
			}
		}
		if !rules.Holds(w.spec.op, float64(distinct), w.spec.threshold) {
			return firing{}, false
		}
		count = events
		first = t - span
	case winTemporal:
		if w.spec.ordered {
			for j := 0; j < ri; j++ {
				if g.seen[j] == 0 || !in(g.seen[j]) || g.seen[j] > t {
					return firing{}, false
				}
			}
		}
		g.seen[ri] = max(g.seen[ri], t)
		n := 0
		for _, s := range g.seen {
			if s != 0 && in(s) {
				n++
				first = min(first, s)
			}
		}
		if !rules.Holds(w.spec.op, float64(n), w.spec.threshold) {
			return firing{}, false
		}
		count = n
	}
	if t < g.quietUntil {
		return firing{}, false
	}
	g.quietUntil = t + span
	return firing{count: count, first: first, start: t - t%span}, true
}

// touch returns the group of key, creating it (and evicting the least
// recently used group when full), and marks it most recently used.
func (w *window) touch(key string) *group {
	g, ok := w.groups[key]
	if ok {
		w.unlink(g)
	} else {
		if len(w.groups) >= w.max && w.tail != nil {
			old := w.tail
			w.unlink(old)
			delete(w.groups, old.key)
			w.evicted++
		}
		g = &group{key: key}
		switch w.spec.kind {
		case winEventCount:
			g.ring = make([]entry, 0, w.spec.capacity())
		case winValueCount:
			g.distinct = map[string]valueSeen{}
		case winTemporal:
			g.seen = make([]int64, w.spec.nrules)
		}
		w.groups[key] = g
	}
	g.next = w.head
	if w.head != nil {
		w.head.prev = g
	}
	w.head = g
	if w.tail == nil {
		w.tail = g
	}
	return g
}

func (w *window) unlink(g *group) {
	if g.prev != nil {
		g.prev.next = g.next
	} else if w.head == g {
		w.head = g.next
	}
	if g.next != nil {
		g.next.prev = g.prev
	} else if w.tail == g {
		w.tail = g.prev
	}
	g.prev, g.next = nil, nil
}

// size returns the number of groups held.
func (w *window) size() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.groups)
}
