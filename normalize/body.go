package normalize

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
)

// IsGzip reports whether head, the first bytes of a body, starts with
// gzip's magic bytes.
func IsGzip(head []byte) bool {
	return len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b
}

// Body is a Logpush body opened by [OpenBody]: its decompressed bytes.
// It is not safe for concurrent use; the caller closes it.
type Body struct {
	io.Reader
	// Gzip reports whether the body was gzip'd.
	Gzip bool
	zr   *gzip.Reader
}

// Close releases the gzip reader, if any. It does not close the reader
// given to [OpenBody].
func (b *Body) Close() error {
	if b.zr != nil {
		return b.zr.Close()
	}
	return nil
}

// OpenBody returns the content of r, gunzipped (every gzip member, one
// after the other) when gzipped is true (a Content-Encoding header said
// so) or when r starts with gzip's magic bytes, whatever its name or
// headers say. It is the one place raywatch sniffs for gzip. It inflates
// with github.com/klauspost/compress/gzip, which takes about 70% of
// compress/gzip's time on a Logpush batch (BenchmarkOpenBody). An error
// means the gzip header is damaged; it wraps gzip's error. Reading past
// the gzip stream's end is left to the caller, on r. An error reading the
// first bytes of r is returned as it is (not as a gzip error): dropped, it
// would end the body early and a truncated batch would be acknowledged.
func OpenBody(r io.Reader, gzipped bool) (*Body, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(2)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if !gzipped && !IsGzip(magic) {
		return &Body{Reader: br}, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	return &Body{Reader: zr, Gzip: true, zr: zr}, nil
}
