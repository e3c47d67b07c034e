//go:build unix

package web

import "syscall"

// openFileLimit returns how many files the process may open (the soft
// RLIMIT_NOFILE), or 0 if unknown.
func openFileLimit() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur > 1<<30 {
		return 0
	}
	return int(lim.Cur)
}
