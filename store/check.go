package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// A damaged alerts.db is found three ways. [Open] reads the file's page
// structure with plain reads before bbolt maps it, so that a truncated
// file or overwritten pages are refused with an error that names the file
// and the fix, instead of a SIGBUS or a panic later. Every transaction of
// an open [Store] runs with runtime/debug.SetPanicOnFault and recovers
// panics, so that damage Open could not see fails a request, not the
// server. [Check] reports every problem, and [Recover] copies what is
// readable into a new database.

// ErrDamaged is matched (errors.Is) by the errors of a damaged database:
// [*DamagedError] values.
var ErrDamaged = errors.New("database damaged")

// DamagedError reports a damaged database file: found by [Open], or met
// by a transaction that panicked or faulted on a bad page.
type DamagedError struct {
	Path     string
	Problems []string // what is wrong, each naming a page or a bucket
	// Panic is the value a transaction panicked with, when the damage was
	// met at run time.
	Panic  any
	inFunc bool // the panic was in a transaction's function
}

func (e *DamagedError) Error() string {
	dir := filepath.Dir(e.Path)
	fix := fmt.Sprintf("run `raywatch store check --data-dir %s` for the details, then `raywatch store recover --data-dir %s` to copy what is readable into a new database", dir, dir)
	if e.Panic != nil {
		return fmt.Sprintf("%s: a transaction failed on a bad page (%v); the file may be damaged: %s", e.Path, e.Panic, fix)
	}
	what := "damaged"
	if len(e.Problems) > 0 {
		what += " (" + e.Problems[0]
		if n := len(e.Problems) - 1; n > 0 {
			what += fmt.Sprintf("; %d more problems", n)
		}
		what += ")"
	}
	return fmt.Sprintf("%s is %s: %s", e.Path, what, fix)
}

// Is makes a DamagedError match [ErrDamaged].
func (e *DamagedError) Is(target error) bool { return target == ErrDamaged }

// bbolt's file format (go.etcd.io/bbolt/internal/common), read here
// without mapping the file: a page starts with its id (8 bytes), flags
// (2), element count (2) and number of overflow pages (4); elements follow.
const (
	boltMagic       = 0xED0CDAED
	boltVersion     = 2
	pageHeaderSize  = 16
	elementSize     = 16 // leaf and branch elements alike
	bucketHeader    = 16 // a bucket value: root page id and sequence
	branchPageFlag  = 0x01
	leafPageFlag    = 0x02
	metaPageFlag    = 0x04
	freelistFlag    = 0x10
	bucketLeafFlag  = 0x01
	noFreelist      = ^uint64(0)
	maxTreeDepth    = 64
	metaChecksumOff = 56 // bytes of the meta covered by its checksum
)

// Pages are written in the machine's byte order; raywatch's platforms are
// little endian.
var le = binary.LittleEndian

// boltMeta is the part of a meta page the reader uses.
type boltMeta struct {
	pageSize uint32
	root     uint64
	freelist uint64
	pgid     uint64 // high-water mark: pages in use are below it
	txid     uint64
}

// parseMeta parses the meta at the start of b (after the page header).
func parseMeta(b []byte) (boltMeta, error) {
	if len(b) < metaChecksumOff+8 {
		return boltMeta{}, errors.New("short meta page")
	}
	if le.Uint32(b[0:]) != boltMagic {
		return boltMeta{}, errors.New("not a bbolt meta page")
	}
	if v := le.Uint32(b[4:]); v != boltVersion {
		return boltMeta{}, fmt.Errorf("bbolt format version %d, want %d", v, boltVersion)
	}
	h := fnv.New64a()
	h.Write(b[:metaChecksumOff])
	if h.Sum64() != le.Uint64(b[metaChecksumOff:]) {
		return boltMeta{}, errors.New("meta page checksum mismatch")
	}
	m := boltMeta{pageSize: le.Uint32(b[8:]), root: le.Uint64(b[16:]), freelist: le.Uint64(b[32:]), pgid: le.Uint64(b[40:]), txid: le.Uint64(b[48:])}
	switch {
	case m.pageSize < 512 || m.pageSize > 1<<24 || m.pageSize&(m.pageSize-1) != 0:
		return m, fmt.Errorf("page size %d", m.pageSize)
	case m.pgid < 4:
		return m, fmt.Errorf("high-water mark %d", m.pgid)
	case m.root < 2 || m.root >= m.pgid:
		return m, fmt.Errorf("root page %d outside [2, %d)", m.root, m.pgid)
	case m.freelist != noFreelist && (m.freelist < 2 || m.freelist >= m.pgid):
		return m, fmt.Errorf("freelist page %d outside [2, %d)", m.freelist, m.pgid)
	}
	return m, nil
}

// dbFile reads a bbolt file, checking every offset and length against the
// page and the file, so that no damage can make it read out of bounds or
// panic. It maps the file where it can (reading pages then costs no system
// call): its readers must then run under [guard], since an I/O error
// while reading a mapped page is a fault. It is not safe for concurrent
// use.
type dbFile struct {
	path  string
	f     *os.File
	size  int64
	data  []byte // the mapped file; nil when read with ReadAt
	unmap func() error
	meta  boltMeta
	// notes are oddities that are not damage (an older meta page in use).
	notes []string
}

// openDBFile opens path and reads its meta pages. A file without a valid
// meta page is an error wrapping [ErrDamaged].
func openDBFile(path string) (*dbFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	d := &dbFile{path: path, f: f, size: st.Size()}
	if err := d.readMeta(); err != nil {
		f.Close()
		return nil, &DamagedError{Path: path, Problems: []string{err.Error()}}
	}
	d.data, d.unmap, _ = mapFile(f, d.size) // else ReadAt
	return d, nil
}

func (d *dbFile) Close() error {
	if d.unmap != nil {
		d.unmap()
		d.data, d.unmap = nil, nil
	}
	return d.f.Close()
}

// read returns n bytes at off (within the file: the caller checks).
func (d *dbFile) read(off, n int64) ([]byte, error) {
	if d.data != nil {
		return d.data[off : off+n : off+n], nil
	}
	b := make([]byte, n)
	if _, err := d.f.ReadAt(b, off); err != nil {
		return nil, err
	}
	return b, nil
}

// readMeta picks the valid meta page with the highest transaction id, as
// bbolt does. The second meta page is at one page size from the start;
// when the first is invalid, each possible page size is tried.
func (d *dbFile) readMeta() error {
	var metas []boltMeta
	var errs []string
	try := func(off int64) (boltMeta, bool) {
		b := make([]byte, pageHeaderSize+metaChecksumOff+8)
		if n, _ := d.f.ReadAt(b, off); n < len(b) {
			errs = append(errs, fmt.Sprintf("meta page at byte %d: beyond the end of the file", off))
			return boltMeta{}, false
		}
		if flags := le.Uint16(b[8:]); flags != metaPageFlag {
			errs = append(errs, fmt.Sprintf("meta page at byte %d: page type %#x", off, flags))
			return boltMeta{}, false
		}
		m, err := parseMeta(b[pageHeaderSize:])
		if err != nil {
			errs = append(errs, fmt.Sprintf("meta page at byte %d: %v", off, err))
			return boltMeta{}, false
		}
		return m, true
	}
	if m, ok := try(0); ok {
		metas = append(metas, m)
		if m1, ok := try(int64(m.pageSize)); ok && m1.pageSize == m.pageSize {
			metas = append(metas, m1)
		}
	} else {
		for i := 0; i <= 14; i++ {
			if m1, ok := try(1024 << i); ok && m1.pageSize == 1024<<i {
				metas = append(metas, m1)
				break
			}
		}
	}
	if len(metas) == 0 {
		return fmt.Errorf("no valid meta page (%s)", strings.Join(errs, "; "))
	}
	d.meta = metas[0]
	if len(metas) == 2 && metas[1].txid > metas[0].txid {
		d.meta = metas[1]
	}
	if len(metas) < 2 {
		d.notes = append(d.notes, "one meta page is invalid; bbolt uses the other (an interrupted commit leaves this)")
	}
	return nil
}

// page is a page read from the file, with its overflow.
type page struct {
	id    uint64
	flags uint16
	count uint16
	data  []byte // the whole page, header included
}

// readPage reads page id and its overflow pages, checking that they lie
// below the high-water mark and within the file, and that the page names
// itself.
func (d *dbFile) readPage(id uint64) (page, error) {
	ps := int64(d.meta.pageSize)
	if id < 2 || id >= d.meta.pgid {
		return page{}, fmt.Errorf("page %d: outside the database's pages [2, %d)", id, d.meta.pgid)
	}
	off := int64(id) * ps
	if off+ps > d.size {
		return page{}, fmt.Errorf("page %d: beyond the end of the file (%d bytes; the file is truncated)", id, d.size)
	}
	head, err := d.read(off, ps)
	if err != nil {
		return page{}, fmt.Errorf("page %d: %w", id, err)
	}
	p := page{id: le.Uint64(head), flags: le.Uint16(head[8:]), count: le.Uint16(head[10:]), data: head}
	if p.id != id {
		return p, fmt.Errorf("page %d: its header says page %d (overwritten?)", id, p.id)
	}
	overflow := uint64(le.Uint32(head[12:]))
	if overflow == 0 {
		return p, nil
	}
	if id+overflow >= d.meta.pgid || off+int64(overflow+1)*ps > d.size {
		return p, fmt.Errorf("page %d: %d overflow pages run beyond the database", id, overflow)
	}
	if p.data, err = d.read(off, int64(overflow+1)*ps); err != nil {
		return p, fmt.Errorf("page %d: %w", id, err)
	}
	return p, nil
}

// pages returns the number of pages page p spans.
func (p *page) pages(pageSize uint32) uint64 {
	return uint64(len(p.data)) / uint64(pageSize)
}

// element is one key of a branch or leaf page.
type element struct {
	key, value []byte // value: leaf pages only
	child      uint64 // branch pages only
	bucket     bool   // the value is a nested bucket
}

// elements parses the elements of a branch or leaf page, checking that
// each lies within the page and that the keys are in order.
func (p *page) elements() ([]element, error) {
	if p.flags != branchPageFlag && p.flags != leafPageFlag {
		return nil, fmt.Errorf("page %d: type %#x, want a branch or leaf page (overwritten?)", p.id, p.flags)
	}
	n := uint64(len(p.data))
	if uint64(pageHeaderSize)+uint64(p.count)*elementSize > n {
		return nil, fmt.Errorf("page %d: %d elements do not fit in the page", p.id, p.count)
	}
	out := make([]element, 0, p.count)
	for i := uint64(0); i < uint64(p.count); i++ {
		e := pageHeaderSize + i*elementSize
		var el element
		var pos, ksize, vsize uint64
		if p.flags == leafPageFlag {
			el.bucket = le.Uint32(p.data[e:])&bucketLeafFlag != 0
			pos, ksize, vsize = uint64(le.Uint32(p.data[e+4:])), uint64(le.Uint32(p.data[e+8:])), uint64(le.Uint32(p.data[e+12:]))
		} else {
			pos, ksize, el.child = uint64(le.Uint32(p.data[e:])), uint64(le.Uint32(p.data[e+4:])), le.Uint64(p.data[e+8:])
		}
		k := e + pos
		if k+ksize+vsize > n {
			return nil, fmt.Errorf("page %d: element %d runs past the end of the page", p.id, i)
		}
		el.key = p.data[k : k+ksize]
		if p.flags == leafPageFlag {
			el.value = p.data[k+ksize : k+ksize+vsize]
		}
		if len(out) > 0 && bytes.Compare(out[len(out)-1].key, el.key) >= 0 {
			return nil, fmt.Errorf("page %d: keys out of order at element %d", p.id, i)
		}
		out = append(out, el)
	}
	return out, nil
}

// walker walks the bucket trees of a dbFile, reporting each key and value
// to visit and each problem to problems. A damaged page costs its subtree,
// not the walk.
type walker struct {
	d        *dbFile
	reached  pageSet // pages of the trees, overflow included
	free     pageSet // pages of the freelist, once read
	problems []string
	// visit, if set, receives each key of each bucket (path names the
	// bucket, outermost first). v is nil for a nested bucket. The slices
	// are valid until visit returns.
	visit func(path []string, k, v []byte)
}

func newWalker(d *dbFile) *walker {
	// Only pages within the file can be read, and so reached.
	n := min(d.meta.pgid, uint64(d.size)/uint64(d.meta.pageSize)+1)
	return &walker{d: d, reached: newPageSet(n), free: newPageSet(n)}
}

// pageSet is a set of page ids below a bound; ids beyond it are never in.
type pageSet []uint64

func newPageSet(n uint64) pageSet { return make(pageSet, (n+63)/64) }

func (s pageSet) has(id uint64) bool {
	return id/64 < uint64(len(s)) && s[id/64]&(1<<(id%64)) != 0
}

func (s pageSet) add(id uint64) {
	if id/64 < uint64(len(s)) {
		s[id/64] |= 1 << (id % 64)
	}
}

func (w *walker) problem(path []string, err error) {
	where := "root bucket"
	if len(path) > 0 {
		where = "bucket " + strings.Join(path, "/")
	}
	w.problems = append(w.problems, where+": "+err.Error())
}

// walk walks every bucket from the meta page's root.
func (w *walker) walk() {
	w.tree(nil, w.d.meta.root, 0)
}

// tree walks the subtree at page id of the bucket at path.
func (w *walker) tree(path []string, id uint64, depth int) {
	if depth > maxTreeDepth {
		w.problem(path, fmt.Errorf("page %d: tree deeper than %d (a loop?)", id, maxTreeDepth))
		return
	}
	if w.reached.has(id) {
		w.problem(path, fmt.Errorf("page %d: reached twice", id))
		return
	}
	p, err := w.d.readPage(id)
	if err != nil {
		w.problem(path, err)
		return
	}
	for i := uint64(0); i < p.pages(w.d.meta.pageSize); i++ {
		w.reached.add(id + i)
	}
	els, err := p.elements()
	if err != nil {
		w.problem(path, err)
		return
	}
	if p.flags == branchPageFlag {
		for _, el := range els {
			w.tree(path, el.child, depth+1)
		}
		return
	}
	w.leaf(path, els, depth)
}

// leaf reports the keys of a leaf page's elements and walks its nested
// buckets.
func (w *walker) leaf(path []string, els []element, depth int) {
	for _, el := range els {
		if !el.bucket {
			if w.visit != nil {
				w.visit(path, el.key, el.value)
			}
			continue
		}
		if w.visit != nil {
			w.visit(path, el.key, nil)
		}
		sub := append(path[:len(path):len(path)], string(el.key))
		if len(el.value) < bucketHeader {
			w.problem(sub, errors.New("bucket header too short"))
			continue
		}
		if root := le.Uint64(el.value); root != 0 {
			w.tree(sub, root, depth+1)
			continue
		}
		// An inline bucket: its page follows the header.
		inline := page{data: el.value[bucketHeader:]}
		if len(inline.data) < pageHeaderSize {
			w.problem(sub, errors.New("inline bucket too short"))
			continue
		}
		inline.flags, inline.count = le.Uint16(inline.data[8:]), le.Uint16(inline.data[10:])
		els, err := inline.elements()
		if err != nil || inline.flags != leafPageFlag {
			w.problem(sub, fmt.Errorf("inline bucket: %v", err))
			continue
		}
		w.leaf(sub, els, depth+1)
	}
}

// freelist checks the freelist page against the pages the trees reach:
// free pages must lie within the database, once each, and not be in use.
func (w *walker) freelist() {
	id := w.d.meta.freelist
	if id == noFreelist {
		return
	}
	fail := func(format string, args ...any) {
		w.problems = append(w.problems, "freelist: "+fmt.Sprintf(format, args...))
	}
	p, err := w.d.readPage(id)
	if err != nil {
		fail("%v", err)
		return
	}
	if p.flags != freelistFlag {
		fail("page %d: type %#x, want the freelist (overwritten?)", id, p.flags)
		return
	}
	for i := uint64(0); i < p.pages(w.d.meta.pageSize); i++ {
		if w.reached.has(id + i) {
			fail("page %d: also in a bucket's tree", id+i)
			return
		}
	}
	start, count := uint64(pageHeaderSize), uint64(p.count)
	if count == 0xFFFF {
		if len(p.data) < pageHeaderSize+8 {
			fail("page %d: no count", id)
			return
		}
		count, start = le.Uint64(p.data[pageHeaderSize:]), pageHeaderSize+8
	}
	if count > (uint64(len(p.data))-start)/8 {
		fail("page %d: %d ids do not fit in the page", id, count)
		return
	}
	for i := uint64(0); i < count; i++ {
		f := le.Uint64(p.data[start+8*i:])
		switch {
		case f < 2 || f >= w.d.meta.pgid:
			fail("free page %d outside the database's pages [2, %d)", f, w.d.meta.pgid)
			return
		case w.free.has(f):
			fail("page %d freed twice", f)
			return
		case w.reached.has(f):
			fail("page %d is free and in use", f)
			return
		}
		w.free.add(f)
	}
}

// inspect reads the structure of the bbolt file at path (meta pages,
// every bucket's pages, the freelist) without mapping it. It returns a
// [*DamagedError] listing the problems, or nil for a sound file.
func inspect(path string) error {
	d, err := openDBFile(path)
	if err != nil {
		return err
	}
	defer d.Close()
	w := newWalker(d)
	if err := guard(path, func() error { w.walk(); w.freelist(); return nil }); err != nil {
		return err
	}
	if len(w.problems) > 0 {
		return &DamagedError{Path: path, Problems: w.problems}
	}
	return nil
}

// CheckReport is what [Check] found.
type CheckReport struct {
	Path     string `json:"path"`
	Bytes    int64  `json:"bytes"`
	PageSize int    `json:"page_size"`
	Pages    uint64 `json:"pages"` // the high-water mark
	// Buckets counts the keys of each top-level bucket that could be
	// read.
	Buckets map[string]int `json:"buckets"`
	// Alerts counts the stored alerts that decode.
	Alerts int `json:"alerts"`
	// Problems lists the damage, each naming a page, bucket or key; empty
	// for a sound database.
	Problems []string `json:"problems"`
	// Notes are oddities that are not damage.
	Notes []string `json:"notes,omitempty"`
}

// OK reports whether the database is sound.
func (r *CheckReport) OK() bool { return len(r.Problems) == 0 }

// String describes the report for a person, one fact a line.
func (r *CheckReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d bytes, %d pages of %d bytes, %d alerts readable\n", r.Path, r.Bytes, r.Pages, r.PageSize, r.Alerts)
	names := make([]string, 0, len(r.Buckets))
	for name := range r.Buckets {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		fmt.Fprintf(&b, "bucket %s: %d keys\n", name, r.Buckets[name])
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	if r.OK() {
		b.WriteString("no problem found\n")
		return b.String()
	}
	fmt.Fprintf(&b, "%d problems:\n", len(r.Problems))
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "  %s\n", p)
	}
	dir := filepath.Dir(r.Path)
	fmt.Fprintf(&b, "the database is damaged: stop raywatch and run `raywatch store recover --data-dir %s` to copy what is readable into a new database\n", dir)
	return b.String()
}

// Check verifies the alert database at path without changing it: its meta
// pages, every page of every bucket's tree and the freelist (read with
// plain reads, so that damage cannot crash it), every key and value (each
// alert must decode), and, when that structure is sound, bbolt's own
// consistency check (tx.Check). The report lists the problems; the error
// is for a file that cannot be checked at all (missing, unreadable, or in
// use by a running raywatch: Check waits up to timeout for its lock, 0
// meaning 5 seconds).
func Check(path string, timeout time.Duration) (*CheckReport, error) {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	// A shared lock: a running raywatch holds an exclusive one, and the
	// file must not change while it is read.
	lock, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: timeout})
	switch {
	case errors.Is(err, os.ErrNotExist) || isTimeout(err):
		return nil, fmt.Errorf("check %s: %w", path, lockError(path, err))
	case err != nil:
		// bbolt refuses the file (its meta pages, its size): the reader
		// below says why.
		lock = nil
	default:
		defer lock.Close()
	}
	rep := &CheckReport{Path: path, Buckets: map[string]int{}}
	d, err := openDBFile(path)
	var de *DamagedError
	if errors.As(err, &de) {
		rep.Problems = de.Problems
		return rep, nil
	}
	if err != nil {
		return nil, fmt.Errorf("check %s: %w", path, err)
	}
	defer d.Close()
	rep.Bytes, rep.PageSize, rep.Pages, rep.Notes = d.size, int(d.meta.pageSize), d.meta.pgid, d.notes
	w := newWalker(d)
	w.visit = func(path []string, k, v []byte) {
		if len(path) == 1 {
			rep.Buckets[path[0]]++
		}
		if len(path) == 1 && path[0] == string(bucketAlerts) && v != nil {
			if a, err := decodeAlert(v); err != nil {
				rep.Problems = append(rep.Problems, fmt.Sprintf("alert %q: %v", k, err))
			} else if a.ID != string(k) {
				rep.Problems = append(rep.Problems, fmt.Sprintf("alert %q: holds alert %q", k, a.ID))
			} else {
				rep.Alerts++
			}
		}
	}
	if err := guard(path, func() error { w.walk(); w.freelist(); return nil }); err != nil {
		rep.Problems = append(rep.Problems, err.Error())
	}
	rep.Problems = append(rep.Problems, w.problems...)
	if len(w.problems) == 0 && lock != nil {
		// Sound pages: bbolt's own check cannot fault on them.
		rep.Problems = append(rep.Problems, boltCheck(lock)...)
	}
	sort.Strings(rep.Problems)
	return rep, nil
}

// boltCheck runs bbolt's consistency check.
func boltCheck(db *bolt.DB) []string {
	var out []string
	err := db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			out = append(out, "bbolt check: "+err.Error())
		}
		return nil
	})
	if err != nil {
		out = append(out, "bbolt check: "+err.Error())
	}
	return out
}

func isTimeout(err error) bool {
	return errors.Is(err, berrors.ErrTimeout)
}

// lockError explains a failure to lock the database file at path: a
// timeout means another process (another raywatch on the same data folder)
// holds it, reported as [ErrLocked] naming the file.
func lockError(path string, err error) error {
	if isTimeout(err) {
		return fmt.Errorf("%w %s (its lock is taken: stop the other raywatch, or give this one another --data-dir)", ErrLocked, path)
	}
	return err
}
