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

// FieldPrefilter makes e prefilter by reading each field with literals
// (Event.Each), as it does without keyword rules, instead of from one
// Event.Range pass.
func FieldPrefilter(e *Engine) {
	set := *e.set.Load()
	set.rangePF = false
	e.set.Store(&set)
}
