//go:build unix

package store

import (
	"errors"
	"os"
	"syscall"
)

// mapFile maps size bytes of f read-only, for [dbFile] to read pages
// without a system call each; unmap releases the mapping.
func mapFile(f *os.File, size int64) (data []byte, unmap func() error, err error) {
	if size <= 0 || int64(int(size)) != size {
		return nil, nil, errors.New("cannot map the file")
	}
	b, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	return b, func() error { return syscall.Munmap(b) }, nil
}
