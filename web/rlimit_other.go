//go:build !unix

package web

// openFileLimit returns 0: the limit is unknown.
func openFileLimit() int { return 0 }
