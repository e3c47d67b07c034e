package exception

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Fields is what an exception is matched against: the values of an
// event's fields by dotted ECS name. Each calls fn with each value of
// field (stopping when fn returns false) and reports whether the field is
// present. raywatch's normalized events implement it; [Doc] adapts a
// stored alert's event document.
type Fields interface {
	Each(field string, fn func(value string) bool) bool
}

// Set is a compiled set of exceptions. It is immutable and safe for
// concurrent use; the engine swaps whole sets.
type Set struct {
	all    []Exception
	conds  [][]cond         // conds[i]: the conditions of all[i]
	byRule map[string][]int // rule id -> indexes into all; AnyRule for every rule
}

type cond struct {
	field string
	op    string
	vals  []string       // lowered, for text comparisons
	nets  []netip.Prefix // for IP fields and cidr
}

// Compile validates xs and compiles them into a Set. It fails on the first
// invalid exception, naming its id. xs is copied.
func Compile(xs []Exception) (*Set, error) {
	s := &Set{byRule: map[string][]int{}}
	for i := range xs {
		x := xs[i]
		if err := x.Validate(); err != nil {
			return nil, fmt.Errorf("exception %s: %w", x.ID, err)
		}
		s.all = append(s.all, x)
		rule := strings.TrimSpace(x.Rule)
		s.byRule[rule] = append(s.byRule[rule], len(s.all)-1)
	}
	s.compile()
	return s, nil
}

func (s *Set) compile() {
	s.conds = make([][]cond, len(s.all))
	for i := range s.all {
		x := &s.all[i]
		for _, key := range x.Keys() {
			field, op, _ := ParseKey(key)
			c := cond{field: field, op: op}
			for _, v := range x.Match[key] {
				if op == OpCIDR || (op == OpEquals && IPField(field)) {
					p, _ := ParseNet(v) // validated
					c.nets = append(c.nets, p)
					continue
				}
				c.vals = append(c.vals, strings.ToLower(v))
			}
			s.conds[i] = append(s.conds[i], c)
		}
	}
}

// Len returns the number of exceptions in the set (0 for a nil set).
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.all)
}

// At returns the i-th exception of the set, in the order given to
// [Compile].
func (s *Set) At(i int) Exception { return s.all[i] }

// Match returns the index of the first exception of the set that applies
// to rule at time now (not expired) and whose conditions ev meets, or -1.
// A nil set matches nothing.
func (s *Set) Match(rule string, ev Fields, now time.Time) int {
	if s == nil || len(s.all) == 0 {
		return -1
	}
	for _, list := range [2][]int{s.byRule[rule], s.byRule[AnyRule]} {
		for _, i := range list {
			if s.all[i].Active(now) && s.matches(i, ev) {
				return i
			}
		}
	}
	return -1
}

// Matches reports whether ev meets every condition of the i-th exception,
// whatever its rule and expiry.
func (s *Set) Matches(i int, ev Fields) bool { return s.matches(i, ev) }

func (s *Set) matches(i int, ev Fields) bool {
	for ci := range s.conds[i] {
		if !s.conds[i][ci].holds(ev) {
			return false
		}
	}
	return true
}

// holds reports whether any value of the event's field meets any value of
// the condition.
func (c *cond) holds(ev Fields) bool {
	found := false
	ev.Each(c.field, func(v string) bool {
		found = c.test(v)
		return !found
	})
	return found
}

func (c *cond) test(v string) bool {
	if len(c.nets) > 0 {
		a, err := netip.ParseAddr(strings.TrimSpace(v))
		if err != nil {
			return false
		}
		a = a.Unmap()
		for _, p := range c.nets {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	lv := strings.ToLower(v)
	for _, w := range c.vals {
		var ok bool
		switch c.op {
		case OpContains:
			ok = strings.Contains(lv, w)
		case OpStartsWith:
			ok = strings.HasPrefix(lv, w)
		case OpEndsWith:
			ok = strings.HasSuffix(lv, w)
		default:
			ok = lv == w
		}
		if ok {
			return true
		}
	}
	return false
}

// Doc adapts a nested ECS document (an alert's Event: maps, lists, strings,
// numbers, booleans) to [Fields].
type Doc map[string]any

// Each calls fn with the text of each value of the dotted field.
func (d Doc) Each(field string, fn func(string) bool) bool {
	v, ok := lookup(map[string]any(d), field)
	if !ok || v == nil {
		return false
	}
	each(v, fn)
	return true
}

func lookup(m map[string]any, field string) (any, bool) {
	if v, ok := m[field]; ok {
		return v, true
	}
	for i := 0; i < len(field); i++ {
		if field[i] != '.' {
			continue
		}
		sub, ok := m[field[:i]].(map[string]any)
		if !ok {
			continue
		}
		if v, ok := lookup(sub, field[i+1:]); ok {
			return v, true
		}
	}
	return nil, false
}

func each(v any, fn func(string) bool) bool {
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			if !each(e, fn) {
				return false
			}
		}
		return true
	case string:
		return fn(x)
	case json.Number:
		return fn(x.String())
	case float64:
		return fn(strconv.FormatFloat(x, 'f', -1, 64))
	case int:
		return fn(strconv.Itoa(x))
	case int64:
		return fn(strconv.FormatInt(x, 10))
	case bool:
		return fn(strconv.FormatBool(x))
	}
	return true
}
