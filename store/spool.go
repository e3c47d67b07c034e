package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The spool is a folder of files, one per batch, rather than a bbolt
// bucket: a batch may be tens of megabytes, which bbolt would copy into its
// pages (and never give back to the file system), and every spooled batch
// would contend with alert commits for bbolt's single writer. A file is
// written once, fsync'd, renamed into place (then the folder is fsync'd),
// read once, and unlinked; the disk budget is the sum of the file sizes.

// Spool errors.
var (
	// ErrSpoolFull is returned when accepting a batch would take the spool
	// over its disk budget.
	ErrSpoolFull = errors.New("spool over its disk budget")
	// ErrSpoolClosed is returned by [Spool.Next] once the spool is drained
	// or closed.
	ErrSpoolClosed = errors.New("spool closed")
	// ErrStorage is matched (errors.Is) by every spool error that comes
	// from the disk rather than from the batch or the budget: a full file
	// system or quota, an I/O error, a failed write, fsync, close or
	// rename. The batch is fine; the caller should ask for it again later
	// (503 with Retry-After). Such errors are [*StorageError] values.
	ErrStorage = errors.New("spool storage failure")
)

// StorageError is a failed disk operation of the spool. It matches
// [ErrStorage] with errors.Is and unwraps to the operating system's error
// (syscall.ENOSPC, syscall.EIO, ...). Its message names the file, so it is
// for logs, not for answers to clients.
type StorageError struct {
	Op   string // create, write, sync, close, rename or syncdir
	Path string
	Err  error
}

func (e *StorageError) Error() string {
	return fmt.Sprintf("spool: %s %s: %v", e.Op, e.Path, e.Err)
}

func (e *StorageError) Unwrap() error { return e.Err }

// Is makes a StorageError match [ErrStorage].
func (e *StorageError) Is(target error) bool { return target == ErrStorage }

const (
	spoolMagic  = "RWSPOOL1\n"
	headerSize  = 512
	batchSuffix = ".batch"
	tmpPrefix   = "tmp-"
)

// SpoolOptions configures [OpenSpool].
type SpoolOptions struct {
	// Dir is the spool folder; it is created if needed.
	Dir string
	// MaxBytes is the disk budget; 0 means 1 GiB.
	MaxBytes int64
	// Done, if set, reports whether a batch id has been processed already;
	// such a batch is not spooled again (see [SpoolWriter.Commit]).
	Done func(id string) (bool, error)
	// MaxMemoryBytes bounds the decompressed copies of queued batches kept
	// in memory (see [SpoolWriter.Decoded]), so that a worker need not
	// read and inflate the file again; 0 means 128 MiB, negative none.
	// Batches beyond it are read from their files.
	MaxMemoryBytes int64
	// Fault, if set, is called before each disk operation that receives a
	// batch (op is "create", "write", "sync", "close", "rename" or
	// "syncdir"; path is the file or folder); an error it returns is that
	// operation's failure. It lets tests play a full or failing disk.
	Fault func(op, path string) error
}

// SpooledBatch is a batch waiting in the spool.
type SpooledBatch struct {
	ID       string    `json:"id"`
	Intake   string    `json:"intake"`
	Received time.Time `json:"received"`
	Lines    int       `json:"lines"`
	Size     int64     `json:"-"`
	path     string
	decoded  *bytes.Buffer // the decompressed body, when kept in memory
}

// Spool holds accepted batches durably until they are processed. Its
// methods are safe for concurrent use.
type Spool struct {
	opts    SpoolOptions
	mu      sync.Mutex
	pending map[string]*SpooledBatch // spooled, by id (also those being committed)
	queue   []*SpooledBatch          // waiting for a worker, oldest first
	bytes   int64                    // on disk, including writes in progress
	memory  int64                    // decoded copies held in memory
	free    []*bytes.Buffer          // recycled buffers of decoded copies
	freeCap int64                    // their capacity
	hint    int64                    // the length of the last decoded copy, for new buffers
	seq     uint64
	notify  chan struct{}
	drain   bool
	closed  bool
}

// OpenSpool opens the spool folder: it removes the partial files of batches
// that were never acknowledged and queues the spooled ones, oldest first.
func OpenSpool(opts SpoolOptions) (*Spool, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 1 << 30
	}
	if opts.MaxMemoryBytes == 0 {
		opts.MaxMemoryBytes = 128 << 20
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create spool %q: %w", opts.Dir, err)
	}
	s := &Spool{opts: opts, pending: map[string]*SpooledBatch{}, notify: make(chan struct{}, 1)}
	entries, err := os.ReadDir(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("read spool %q: %w", opts.Dir, err)
	}
	for _, e := range entries {
		path := filepath.Join(opts.Dir, e.Name())
		switch {
		case strings.HasPrefix(e.Name(), tmpPrefix):
			// Never acknowledged: the client got no 2xx and will retry.
			if err := os.Remove(path); err != nil {
				return nil, fmt.Errorf("clean spool: %w", err)
			}
		case strings.HasSuffix(e.Name(), batchSuffix):
			b, err := readHeader(path)
			if err != nil {
				return nil, fmt.Errorf("spooled batch %s: %w", e.Name(), err)
			}
			seq, _ := strconv.ParseUint(strings.SplitN(e.Name(), "-", 2)[0], 16, 64)
			s.seq = max(s.seq, seq)
			s.pending[b.ID] = b
			s.queue = append(s.queue, b)
			s.bytes += b.Size
		}
	}
	sort.Slice(s.queue, func(i, j int) bool { return s.queue[i].path < s.queue[j].path })
	return s, nil
}

// readHeader reads the header of a spooled batch file.
func readHeader(path string) (*SpooledBatch, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	h := make([]byte, headerSize)
	if _, err := io.ReadFull(f, h); err != nil {
		return nil, fmt.Errorf("read header: %w", err)
	}
	if !bytes.HasPrefix(h, []byte(spoolMagic)) {
		return nil, errors.New("not a spool file")
	}
	var b SpooledBatch
	if err := json.Unmarshal(bytes.TrimSpace(h[len(spoolMagic):]), &b); err != nil {
		return nil, fmt.Errorf("decode header: %w", err)
	}
	b.Size, b.path = st.Size(), path
	return &b, nil
}

// Stats returns the number of batches spooled (waiting or in progress) and
// the bytes they take, including batches being received.
func (s *Spool) Stats() (batches int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending), s.bytes
}

// reserve accounts n more bytes on disk, failing when over budget.
func (s *Spool) reserve(n int64) error {
	if !s.take(&s.bytes, s.opts.MaxBytes, n) {
		return ErrSpoolFull
	}
	return nil
}

func (s *Spool) release(n int64) { s.give(&s.bytes, n) }

// take adds n to *used, guarded by s.mu, unless that would pass limit.
func (s *Spool) take(used *int64, limit, n int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if *used+n > limit {
		return false
	}
	*used += n
	return true
}

// give takes n back from *used.
func (s *Spool) give(used *int64, n int64) {
	s.mu.Lock()
	*used -= n
	s.mu.Unlock()
}

// disk runs the disk operation op on path (through SpoolOptions.Fault
// first), turning its failure into a [*StorageError].
func (s *Spool) disk(op, path string, do func() error) error {
	var err error
	if s.opts.Fault != nil {
		err = s.opts.Fault(op, path)
	}
	if err == nil {
		err = do()
	}
	if err == nil {
		return nil
	}
	var pe *os.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		err = pe.Err // the path is the StorageError's
	case errors.As(err, &le):
		err = le.Err
	}
	return &StorageError{Op: op, Path: path, Err: err}
}

// Begin starts receiving a batch for intake. The caller writes the body as
// received and then calls Commit or Abort. Begin fails with ErrSpoolFull
// when the spool is over its budget, and with a [*StorageError] when the
// disk fails.
func (s *Spool) Begin(intake string) (*SpoolWriter, error) {
	if err := s.reserve(headerSize); err != nil {
		return nil, err
	}
	var f *os.File
	err := s.disk("create", s.opts.Dir, func() (err error) {
		f, err = os.CreateTemp(s.opts.Dir, tmpPrefix+"*")
		return err
	})
	if err != nil {
		s.release(headerSize)
		return nil, err
	}
	w := &SpoolWriter{s: s, f: f, n: headerSize, intake: intake, received: time.Now().UTC()}
	err = s.disk("write", f.Name(), func() error {
		_, err := f.Write(make([]byte, headerSize))
		return err
	})
	if err != nil {
		w.Abort()
		return nil, err
	}
	return w, nil
}

// SpoolWriter receives one batch into the spool. It is not safe for
// concurrent use.
type SpoolWriter struct {
	s        *Spool
	f        *os.File
	n        int64
	intake   string
	received time.Time
	done     bool
	dec      decodedWriter
}

// Decoded returns a writer for the decompressed body. What it receives is
// kept in memory with the batch, within the spool's MaxMemoryBytes, and
// handed to the worker by [Spool.Decoded]; past the budget the copy is
// dropped and the worker reads the file. Writes never fail.
func (w *SpoolWriter) Decoded() io.Writer {
	if w.dec.s == nil && w.s.opts.MaxMemoryBytes > 0 {
		w.dec = decodedWriter{s: w.s, buf: w.s.getBuffer()}
	}
	return &w.dec
}

// decodedWriter accumulates a decompressed body within the memory budget.
type decodedWriter struct {
	s        *Spool
	buf      *bytes.Buffer // nil once dropped
	reserved int64
}

func (d *decodedWriter) Write(p []byte) (int, error) {
	if d.buf == nil {
		return len(p), nil
	}
	if !d.s.reserveMemory(int64(len(p))) {
		d.drop()
		return len(p), nil
	}
	d.reserved += int64(len(p))
	d.buf.Write(p)
	return len(p), nil
}

// drop gives the copy and its budget back.
func (d *decodedWriter) drop() {
	if d.s == nil {
		return
	}
	d.s.mu.Lock()
	d.s.memory -= d.reserved
	d.reserved = 0
	if d.buf != nil {
		d.s.putBufferLocked(d.buf)
		d.buf = nil
	}
	d.s.mu.Unlock()
}

// take hands the copy over to a batch.
func (d *decodedWriter) take() *bytes.Buffer {
	b := d.buf
	d.buf, d.reserved = nil, 0
	if b != nil {
		d.s.mu.Lock()
		d.s.hint = int64(b.Len())
		d.s.mu.Unlock()
	}
	return b
}

// maxRecycled is the largest buffer kept for reuse: beyond it a batch was
// unusual, and its memory goes back to the collector.
const maxRecycled = 16 << 20

// getBuffer returns a buffer for a decoded copy: a recycled one, or a new
// one the size of the last copy (growing a buffer by doubling from empty
// for each batch, in fresh memory the kernel must fault in, cost a tenth
// to a fifth of the whole path's time when batches queued up).
func (s *Spool) getBuffer() *bytes.Buffer {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.free); n > 0 {
		b := s.free[n-1]
		s.free[n-1] = nil
		s.free = s.free[:n-1]
		s.freeCap -= int64(b.Cap())
		return b
	}
	b := new(bytes.Buffer)
	if s.hint > 0 {
		b.Grow(int(min(s.hint+s.hint/8, maxRecycled)))
	}
	return b
}

// putBufferLocked recycles b while the buffers kept stay within
// MaxMemoryBytes. A buffer is made only when none is kept, so the buffers
// in use and kept together stay near the most ever in use at once, which
// the budget bounds. s.mu must be held.
func (s *Spool) putBufferLocked(b *bytes.Buffer) {
	c := int64(b.Cap())
	if c > maxRecycled || s.freeCap+c > s.opts.MaxMemoryBytes {
		return
	}
	b.Reset()
	s.free = append(s.free, b)
	s.freeCap += c
}

func (s *Spool) reserveMemory(n int64) bool { return s.take(&s.memory, s.opts.MaxMemoryBytes, n) }

// Write appends body bytes. It fails with ErrSpoolFull when they take the
// spool over its budget, and with a [*StorageError] when the disk fails.
func (w *SpoolWriter) Write(p []byte) (int, error) {
	if err := w.s.reserve(int64(len(p))); err != nil {
		return 0, err
	}
	var n int
	err := w.s.disk("write", w.f.Name(), func() (err error) {
		n, err = w.f.Write(p)
		return err
	})
	w.n += int64(len(p))
	return n, err
}

// Abort discards the batch. It is safe to call after Commit (it then does
// nothing).
func (w *SpoolWriter) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.f.Close()
	os.Remove(w.f.Name())
	w.s.release(w.n)
	w.dec.drop()
}

// Commit makes the batch durable under id (a digest of its content that
// the caller computed) and queues it for processing. When it returns nil the
// batch survives a crash. If a batch with the same id is spooled already, or
// was processed (SpoolOptions.Done), the bytes are discarded and duplicate
// is true. A failure of the disk is a [*StorageError]; the batch is then
// discarded (not acknowledged) unless only the folder's fsync failed, in
// which case it stays queued.
func (w *SpoolWriter) Commit(id string, lines int) (duplicate bool, err error) {
	if w.done {
		return false, errors.New("spool: batch already committed or aborted")
	}
	s := w.s
	b := &SpooledBatch{ID: id, Intake: w.intake, Received: w.received, Lines: lines, Size: w.n}
	h, err := json.Marshal(b)
	if err != nil || len(spoolMagic)+len(h)+1 > headerSize {
		w.Abort()
		return false, fmt.Errorf("spool: batch header too large")
	}
	header := bytes.Repeat([]byte{' '}, headerSize)
	copy(header, spoolMagic)
	copy(header[len(spoolMagic):], h)
	header[headerSize-1] = '\n'
	name := w.f.Name()
	err = s.disk("write", name, func() error {
		_, err := w.f.WriteAt(header, 0)
		return err
	})
	if err == nil {
		err = s.disk("sync", name, w.f.Sync)
	}
	if err == nil {
		err = s.disk("close", name, w.f.Close)
	}
	if err != nil {
		w.Abort()
		return false, err
	}

	s.mu.Lock()
	if _, dup := s.pending[id]; dup || s.closed {
		s.mu.Unlock()
		w.Abort()
		if !dup {
			return false, ErrSpoolClosed
		}
		return true, nil
	}
	if s.opts.Done != nil {
		done, err := s.opts.Done(id)
		if err != nil || done {
			s.mu.Unlock()
			w.Abort()
			return done, err
		}
	}
	s.seq++
	b.path = filepath.Join(s.opts.Dir, fmt.Sprintf("%016x-%s%s", s.seq, id, batchSuffix))
	s.pending[id] = b // claims the id while the rename is made durable
	s.mu.Unlock()

	if err := s.disk("rename", b.path, func() error { return os.Rename(name, b.path) }); err != nil {
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
		w.Abort()
		return false, err
	}
	w.done = true
	b.decoded = w.dec.take()
	if err := s.disk("syncdir", s.opts.Dir, func() error { return syncDir(s.opts.Dir) }); err != nil {
		// The file is complete; only its name may not survive a power loss.
		// Keep it queued but do not acknowledge.
		s.enqueue(b)
		return false, err
	}
	s.enqueue(b)
	return false, nil
}

func (s *Spool) enqueue(b *SpooledBatch) {
	s.mu.Lock()
	s.queue = append(s.queue, b)
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Next returns the oldest batch waiting for processing, waiting for one if
// needed. It returns ctx's error when ctx ends, and ErrSpoolClosed once the
// spool is closed, or drained (see [Spool.Drain]) and empty.
func (s *Spool) Next(ctx context.Context) (*SpooledBatch, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			s.wake()
			return nil, ErrSpoolClosed
		}
		if len(s.queue) > 0 {
			b := s.queue[0]
			s.queue[0] = nil
			s.queue = s.queue[1:]
			more := len(s.queue) > 0
			s.mu.Unlock()
			if more { // wake another worker
				select {
				case s.notify <- struct{}{}:
				default:
				}
			}
			return b, nil
		}
		drain := s.drain
		s.mu.Unlock()
		if drain {
			s.wake()
			return nil, ErrSpoolClosed
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.notify:
		}
	}
}

func (s *Spool) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Drain makes [Spool.Next] return ErrSpoolClosed, instead of waiting, once
// no batch is left; call it after the intake has stopped.
func (s *Spool) Drain() {
	s.mu.Lock()
	s.drain = true
	s.mu.Unlock()
	s.wake()
}

// Close stops handing out batches. Spooled batches stay on disk for the
// next start. It is safe to call more than once.
func (s *Spool) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.wake()
	return nil
}

// Open returns the body of a spooled batch as it was received.
func (s *Spool) Open(b *SpooledBatch) (io.ReadCloser, error) {
	f, err := os.Open(b.path)
	if err != nil {
		return nil, fmt.Errorf("open spooled batch %s: %w", b.ID, err)
	}
	if _, err := f.Seek(headerSize, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("open spooled batch %s: %w", b.ID, err)
	}
	return f, nil
}

// Decoded returns the decompressed body of a batch when the intake kept
// it in memory (see [SpoolWriter.Decoded]); otherwise ok is false and the
// body is read with [Spool.Open]. The bytes stay valid until Remove.
func (s *Spool) Decoded(b *SpooledBatch) (body []byte, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b.decoded == nil {
		return nil, false
	}
	return b.decoded.Bytes(), true
}

// Remove deletes a processed batch from the spool. Call it only after the
// batch's alerts are committed; the bytes from Decoded are recycled.
func (s *Spool) Remove(b *SpooledBatch) error {
	if err := os.Remove(b.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove spooled batch %s: %w", b.ID, err)
	}
	s.mu.Lock()
	if s.pending[b.ID] == b {
		delete(s.pending, b.ID)
		s.bytes -= b.Size
	}
	if d := b.decoded; d != nil {
		b.decoded = nil
		s.memory -= int64(d.Len())
		s.putBufferLocked(d)
	}
	s.mu.Unlock()
	return nil
}

// Retry puts a batch whose processing failed back at the end of the queue.
func (s *Spool) Retry(b *SpooledBatch) { s.enqueue(b) }
