//go:build !unix

package store

import (
	"errors"
	"os"
)

// mapFile is not available here: [dbFile] reads each page.
func mapFile(f *os.File, size int64) (data []byte, unmap func() error, err error) {
	return nil, nil, errors.New("no mmap")
}
