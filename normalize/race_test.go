//go:build race

package normalize

// raceEnabled reports whether the race detector is on; it changes
// allocation counts (sync.Pool drops items on purpose).
const raceEnabled = true
