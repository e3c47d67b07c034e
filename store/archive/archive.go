// Package archive keeps the Logpush batches raywatch has processed, still
// gzip'd as received, in a time-partitioned folder, so that past traffic
// can be searched again: a retro-hunt of indicators published later, or a
// rule added later.
//
// The layout is DIR/YYYYMMDD/HH/<received>_<intake>_<batch>.ndjson.gz
// (times in UTC; the intake name and batch id percent-encoded), so that a
// folder listing is in time order and `raywatch replay DIR` can read it as
// well. Each object is written to a temporary file, synced and renamed into
// place: a crash leaves no partial object under a final name. The archive
// is pruned by age and by total size, oldest first.
//
// The archive lives beside the alert store rather than in it: batches are
// large, written once and read rarely, which suits files better than
// bbolt pages, and the archive needs nothing of the store or the engine.
package archive

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/raywatch/raywatch/normalize"
)

// nameTime is the layout of the received time in object names.
const nameTime = "20060102T150405.000000000Z"

const (
	suffix    = ".ndjson.gz"
	tmpPrefix = ".tmp-"
)

// PruneEvery is how often [Archive.Run] applies the retention.
const PruneEvery = time.Minute

// Options configure [Open].
type Options struct {
	// Dir is the archive folder; it is created if needed.
	Dir string
	// Retention is how long objects are kept after they were received; 0
	// keeps them until MaxBytes pushes them out.
	Retention time.Duration
	// MaxBytes bounds the archive's size on disk (the gzip'd objects); the
	// oldest objects go first. 0 means no bound.
	MaxBytes int64
	// Now tells the time, for retention; default time.Now.
	Now func() time.Time
	// Logger receives a line per failed removal; default none.
	Logger *slog.Logger
}

// Object is one archived batch.
type Object struct {
	// Name is the object's path relative to the archive folder.
	Name string `json:"name"`
	// Received is when raywatch received the batch.
	Received time.Time `json:"received"`
	Intake   string    `json:"intake"`
	BatchID  string    `json:"batch_id"`
	// Size is the object's size on disk (gzip'd).
	Size int64 `json:"size"`
}

// Stats describe the archive, for the Overview.
type Stats struct {
	Bytes   int64 `json:"bytes"`
	Objects int   `json:"objects"`
	// Oldest and Newest are the received times of the oldest and newest
	// objects; zero when the archive is empty.
	Oldest time.Time `json:"oldest,omitzero"`
	Newest time.Time `json:"newest,omitzero"`
}

// Archive is an open archive folder. Its methods are safe for concurrent
// use.
type Archive struct {
	opts Options
	log  *slog.Logger

	mu      sync.Mutex
	objects []Object // in received order (then name)
	bytes   int64
}

// Open opens (creating if needed) the archive folder, indexes the objects
// in it and removes the temporary files of writes a crash interrupted.
// Files it does not recognise are left alone and not indexed.
func Open(opts Options) (*Archive, error) {
	if opts.Dir == "" {
		return nil, errors.New("archive: no folder")
	}
	if opts.Retention < 0 || opts.MaxBytes < 0 {
		return nil, fmt.Errorf("archive %q: negative retention or size", opts.Dir)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	a := &Archive{opts: opts, log: opts.Logger}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create archive %q: %w", opts.Dir, err)
	}
	err := filepath.WalkDir(opts.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !d.Type().IsRegular() {
			return nil
		}
		if strings.HasPrefix(d.Name(), tmpPrefix) {
			return os.Remove(p)
		}
		rel, _ := filepath.Rel(opts.Dir, p)
		obj, ok := parseName(filepath.ToSlash(rel))
		if !ok {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		obj.Size = fi.Size()
		a.objects = append(a.objects, obj)
		a.bytes += obj.Size
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read archive %q: %w", opts.Dir, err)
	}
	sort.Slice(a.objects, func(i, j int) bool { return less(a.objects[i], a.objects[j]) })
	return a, nil
}

func less(x, y Object) bool {
	if !x.Received.Equal(y.Received) {
		return x.Received.Before(y.Received)
	}
	return x.Name < y.Name
}

// objectName is the relative path of an object.
func objectName(received time.Time, intake, batchID string) string {
	t := received.UTC()
	return t.Format("20060102") + "/" + t.Format("15") + "/" + t.Format(nameTime) + "_" + escape(intake) + "_" + escape(batchID) + suffix
}

// parseName reads an object's relative path back.
func parseName(rel string) (Object, bool) {
	base := filepath.Base(rel)
	if !strings.HasSuffix(base, suffix) {
		return Object{}, false
	}
	parts := strings.Split(strings.TrimSuffix(base, suffix), "_")
	if len(parts) != 3 {
		return Object{}, false
	}
	t, err := time.Parse(nameTime, parts[0])
	if err != nil {
		return Object{}, false
	}
	intake, ok1 := unescape(parts[1])
	id, ok2 := unescape(parts[2])
	if !ok1 || !ok2 {
		return Object{}, false
	}
	return Object{Name: rel, Received: t, Intake: intake, BatchID: id}, true
}

// escape percent-encodes every byte other than letters, digits, '-' and
// '.', so that a name holds no '_' or '/' of its own.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' && i > 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

func unescape(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", false
		}
		v, err := hex.DecodeString(s[i+1 : i+3])
		if err != nil {
			return "", false
		}
		b.WriteByte(v[0])
		i += 2
	}
	return b.String(), true
}

// Put archives one batch received at received from intake: body is the
// batch as received, gzip'd (kept byte for byte) or plain (gzip'd here).
// batchID names it (the spool's id); "" draws a random one. The object is
// on disk, under its final name, when Put returns. The archive is then
// pruned to its retention and size bound.
func (a *Archive) Put(received time.Time, intake, batchID string, body io.Reader) (Object, error) {
	if received.IsZero() {
		received = a.opts.Now()
	}
	if batchID == "" {
		var b [8]byte
		rand.Read(b[:])
		batchID = hex.EncodeToString(b[:])
	}
	obj := Object{Name: objectName(received, intake, batchID), Received: received.UTC().Round(0), Intake: intake, BatchID: batchID}
	// The name holds nanoseconds: read the time back from it so that the
	// index and a reopened archive agree.
	if o, ok := parseName(obj.Name); ok {
		obj.Received = o.Received
	}
	final := filepath.Join(a.opts.Dir, filepath.FromSlash(obj.Name))
	if err := os.MkdirAll(filepath.Dir(final), 0o700); err != nil {
		return Object{}, fmt.Errorf("archive batch %s: %w", batchID, err)
	}
	f, err := os.CreateTemp(filepath.Dir(final), tmpPrefix+"*")
	if err != nil {
		return Object{}, fmt.Errorf("archive batch %s: %w", batchID, err)
	}
	size, err := writeGzip(f, body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), final)
	}
	if err != nil {
		os.Remove(f.Name())
		return Object{}, fmt.Errorf("archive batch %s: %w", batchID, err)
	}
	obj.Size = size
	a.mu.Lock()
	a.insert(obj)
	a.mu.Unlock()
	a.Prune()
	return obj, nil
}

// writeGzip copies body to w, gzip'ing it unless it already is, and
// returns the bytes written.
func writeGzip(w io.Writer, body io.Reader) (int64, error) {
	br := bufio.NewReaderSize(body, 64<<10)
	cw := &countWriter{w: w}
	if magic, _ := br.Peek(2); normalize.IsGzip(magic) {
		_, err := io.Copy(cw, br)
		return cw.n, err
	}
	zw, _ := gzip.NewWriterLevel(cw, gzip.BestSpeed)
	if _, err := io.Copy(zw, br); err != nil {
		return cw.n, err
	}
	err := zw.Close()
	return cw.n, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// insert adds obj to the index in order, replacing an object of the same
// name (a batch archived again after a crash overwrote its file). a.mu
// must be held.
func (a *Archive) insert(obj Object) {
	i := sort.Search(len(a.objects), func(i int) bool { return less(obj, a.objects[i]) })
	if i > 0 && a.objects[i-1].Name == obj.Name {
		a.bytes += obj.Size - a.objects[i-1].Size
		a.objects[i-1] = obj
		return
	}
	a.objects = append(a.objects, Object{})
	copy(a.objects[i+1:], a.objects[i:])
	a.objects[i] = obj
	a.bytes += obj.Size
}

// Prune removes the objects older than the retention, then the oldest
// objects while the archive is over its size bound, and returns how many
// it removed. Put prunes on its own; [Archive.Run] prunes when no batch
// comes.
func (a *Archive) Prune() int {
	now := a.opts.Now()
	a.mu.Lock()
	n := 0
	for n < len(a.objects) {
		o := a.objects[n]
		old := a.opts.Retention > 0 && o.Received.Before(now.Add(-a.opts.Retention))
		big := a.opts.MaxBytes > 0 && a.bytes > a.opts.MaxBytes
		if !old && !big {
			break
		}
		a.bytes -= o.Size
		n++
	}
	gone := append([]Object(nil), a.objects[:n]...)
	a.objects = append(a.objects[:0], a.objects[n:]...)
	a.mu.Unlock()
	for _, o := range gone {
		p := filepath.Join(a.opts.Dir, filepath.FromSlash(o.Name))
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			a.log.Warn("archive prune", "object", o.Name, "err", err)
			continue
		}
		// The hour and day folders go when they are empty.
		hour := filepath.Dir(p)
		if os.Remove(hour) == nil {
			os.Remove(filepath.Dir(hour))
		}
	}
	return len(gone)
}

// Run prunes the archive every [PruneEvery] until ctx ends, so that the
// retention holds when no batch comes. It returns nil.
func (a *Archive) Run(ctx context.Context) error {
	t := time.NewTicker(PruneEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			a.Prune()
		case <-ctx.Done():
			return nil
		}
	}
}

// Stats returns the archive's size and span.
func (a *Archive) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	st := Stats{Bytes: a.bytes, Objects: len(a.objects)}
	if len(a.objects) > 0 {
		st.Oldest = a.objects[0].Received
		st.Newest = a.objects[len(a.objects)-1].Received
	}
	return st
}

// Objects returns the objects received at or after since, oldest first.
func (a *Archive) Objects(since time.Time) []Object {
	a.mu.Lock()
	defer a.mu.Unlock()
	i := sort.Search(len(a.objects), func(i int) bool { return !a.objects[i].Received.Before(since) })
	return append([]Object(nil), a.objects[i:]...)
}

// Dir returns the archive folder.
func (a *Archive) Dir() string { return a.opts.Dir }

// Scan calls fn for each object received at or after since, oldest first,
// with its records (gunzipped NDJSON, as received). The objects are those
// archived when Scan starts; one pruned meanwhile is skipped. A corrupt or
// truncated object shows as a read error from r; fn decides whether that
// stops the scan. Scan stops at the first error fn returns, and returns it,
// or at the end of ctx.
func (a *Archive) Scan(ctx context.Context, since time.Time, fn func(obj Object, r io.Reader) error) error {
	for _, obj := range a.Objects(since) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := a.scanOne(obj, fn); err != nil {
			return err
		}
	}
	return nil
}

func (a *Archive) scanOne(obj Object, fn func(Object, io.Reader) error) error {
	f, err := os.Open(filepath.Join(a.opts.Dir, filepath.FromSlash(obj.Name)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil // pruned since the listing
	}
	if err != nil {
		return fn(obj, errReader{fmt.Errorf("open: %w", err)})
	}
	defer f.Close()
	zr, err := normalize.OpenBody(f, true)
	if err != nil {
		return fn(obj, errReader{err})
	}
	defer zr.Close()
	return fn(obj, zr)
}

// errReader fails every read.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
