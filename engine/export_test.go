package engine

// WindowGroups returns the number of groups held by all aggregation and
// correlation windows of e (for tests).
func WindowGroups(e *Engine) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, w := range e.windows {
		n += w.size()
	}
	return n
}

// WithoutPrefilter makes e evaluate every rule on every event (for tests
// that check the prefilter never drops a rule that matches).
func WithoutPrefilter(e *Engine) {
	set := *e.set.Load()
	set.pf = prefilter{always: make([]uint64, set.nwords)}
	for i := range set.rules {
		set.pf.always[i>>6] |= 1 << (uint(i) & 63)
	}
	e.set.Store(&set)
}

// RangePrefilter makes e search for keyword literals value by value
// (Event.Range), as it did before Event.Texts, instead of in one pass over
// the event's texts.
func RangePrefilter(e *Engine) {
	set := *e.set.Load()
	set.rangeKW = true
	e.set.Store(&set)
}
