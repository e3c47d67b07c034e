package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/raywatch/raywatch/normalize"
)

// reader takes batches from a source, splits their bodies into records and
// hands chunks of them both to a worker and, in order, to the sink.
type reader struct {
	p       *Pipeline
	ordered chan<- *Chunk
	todo    chan<- *Chunk
	free    chan *Chunk
	c       *Chunk // being filled
}

// run reads src to its end. It returns nil at io.EOF, ctx's error when ctx
// ends, or src's error.
func (r *reader) run(ctx context.Context, src Source) error {
	for {
		b, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := r.batch(ctx, b); err != nil {
			return err
		}
	}
}

// newChunk takes a chunk from the free list, or makes one.
func (r *reader) newChunk(b *Batch) *Chunk {
	var c *Chunk
	select {
	case c = <-r.free:
	default:
		c = &Chunk{buf: make([]byte, 0, 256<<10), items: make([]item, 0, ChunkRecords)}
	}
	c.Batch, c.ready = b, make(chan struct{})
	return c
}

// send hands the chunk being filled to the writer and a worker.
func (r *reader) send(ctx context.Context) error {
	c := r.c
	r.c = nil
	select {
	case r.ordered <- c:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case r.todo <- c:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// add appends a record (raw, or the reason it is malformed) to the chunk
// being filled, sending the chunk when it is full.
func (r *reader) add(ctx context.Context, b *Batch, it item, raw []byte) error {
	if r.c == nil {
		r.c = r.newChunk(b)
	}
	c := r.c
	c.Records++
	it.off = len(c.buf)
	c.buf = append(c.buf, raw...)
	it.end = len(c.buf)
	c.items = append(c.items, it)
	if len(c.items) >= ChunkRecords {
		return r.send(ctx)
	}
	return nil
}

// batch splits one batch into chunks. The batch's last chunk has Last set;
// a batch that cannot be opened is one chunk with Err set. It returns an
// error only when ctx ends.
func (r *reader) batch(ctx context.Context, b *Batch) error {
	body, closeFn, err := r.open(b)
	if err != nil {
		r.c = r.newChunk(b)
		r.c.Err, r.c.Last = err, true
		return r.send(ctx)
	}
	defer closeFn()
	opts := r.p.opts
	records := 0
	var addErr error
	err = normalize.Split(body, normalize.SplitOptions{
		MaxLineBytes: opts.MaxLineBytes,
		OnError: func(n int, _ error) {
			records++
			if addErr == nil {
				addErr = r.add(ctx, b, item{n: n, err: fmt.Errorf("%w: over %d bytes", normalize.ErrRecordTooLong, opts.MaxLineBytes)}, nil)
			}
		},
	}, func(n int, raw []byte) error {
		if addErr != nil {
			return addErr
		}
		if len(raw) <= 256 && bytes.Contains(raw, []byte(`"content"`)) && normalize.IsValidationProbe(raw) {
			return nil // Logpush's validation upload, passed on by a bridge
		}
		records++
		switch {
		case opts.MaxRecords > 0 && records > opts.MaxRecords:
			return r.add(ctx, b, item{n: n, err: fmt.Errorf("over the limit of %d records per batch", opts.MaxRecords)}, nil)
		case len(raw) > 0 && raw[0] == '#':
			return r.add(ctx, b, item{n: n, err: ErrCommentLine}, nil)
		}
		return r.add(ctx, b, item{n: n}, raw)
	})
	if err == nil {
		err = addErr
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The intake checked the framing before its 2xx, so this is a JSON
		// array that breaks off, damage on disk or a truncated file: keep
		// what was read, and say so.
		records++
		if err := r.add(ctx, b, item{n: records, err: fmt.Errorf("body unreadable after record %d: %w", records-1, err)}, nil); err != nil {
			return err
		}
	}
	if r.c == nil {
		r.c = r.newChunk(b)
	}
	r.c.Last = true
	return r.send(ctx)
}

// open opens a batch's body, gunzipped, within its size bound.
func (r *reader) open(b *Batch) (io.Reader, func(), error) {
	rc, err := b.Open()
	if err != nil {
		return nil, nil, err
	}
	var body io.Reader = rc
	closeFn := func() { rc.Close() }
	if !b.Decoded {
		ob, err := normalize.OpenBody(rc, b.Gzip)
		if err != nil {
			rc.Close()
			return nil, nil, err
		}
		body = ob
		closeFn = func() { ob.Close(); rc.Close() }
	}
	if b.MaxBytes > 0 {
		body = &limitedReader{r: body, n: b.MaxBytes}
	}
	return body, closeFn, nil
}

// errTooBig is returned when a body inflates beyond its batch's MaxBytes.
var errTooBig = errors.New("over the decompressed size limit")

// limitedReader fails with errTooBig past n bytes.
type limitedReader struct {
	r io.Reader
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errTooBig
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}
