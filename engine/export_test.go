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
