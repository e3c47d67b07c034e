package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/raywatch/raywatch/rules/alert"

	bolt "go.etcd.io/bbolt"
)

// RecoverOptions configures [Recover].
type RecoverOptions struct {
	// Timeout bounds the wait for the database's lock (a running
	// raywatch holds it); 0 means 5 seconds.
	Timeout time.Duration
	// Now names the damaged file moved aside; zero means time.Now().
	Now time.Time
}

// RecoverReport is what [Recover] copied and what it could not.
type RecoverReport struct {
	// Path is the new database, at the path of the damaged one.
	Path string `json:"path"`
	// DamagedPath is where the damaged file was moved.
	DamagedPath string `json:"damaged_path"`
	// Alerts counts the alerts copied; Salvaged counts those of them
	// found on pages that damage had cut off from the alerts tree.
	Alerts   int `json:"alerts"`
	Salvaged int `json:"salvaged"`
	// AlertsLost counts the alerts the damaged file said it held that
	// could not be read; -1 when its counter could not be read either.
	// Undecodable counts stored alerts whose bytes were found but do not
	// decode.
	AlertsLost  int `json:"alerts_lost"`
	Undecodable int `json:"undecodable"`
	// Buckets counts the keys copied into each other top-level bucket.
	// The alert indexes (by_rule, by_status) and the alert counter are
	// rebuilt from the alerts, not copied.
	Buckets map[string]int `json:"buckets"`
	// Problems lists the damage met.
	Problems []string `json:"problems"`
}

// String describes the report for a person, one fact a line.
func (r *RecoverReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "damaged database moved to %s\n", r.DamagedPath)
	fmt.Fprintf(&b, "new database %s: %d alerts copied", r.Path, r.Alerts)
	if r.Salvaged > 0 {
		fmt.Fprintf(&b, " (%d of them from pages cut off from the alerts tree)", r.Salvaged)
	}
	b.WriteString("\n")
	switch {
	case r.AlertsLost < 0:
		b.WriteString("alerts lost: unknown (the alert counter was unreadable)\n")
	default:
		fmt.Fprintf(&b, "alerts lost: %d\n", r.AlertsLost)
	}
	if r.Undecodable > 0 {
		fmt.Fprintf(&b, "alerts found but undecodable (dropped): %d\n", r.Undecodable)
	}
	names := make([]string, 0, len(r.Buckets))
	for name := range r.Buckets {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		fmt.Fprintf(&b, "bucket %s: %d keys copied\n", name, r.Buckets[name])
	}
	if len(r.Problems) > 0 {
		fmt.Fprintf(&b, "damage met:\n")
		for _, p := range r.Problems {
			fmt.Fprintf(&b, "  %s\n", p)
		}
	}
	return b.String()
}

// maxReportedProblems bounds the problems a report lists.
const maxReportedProblems = 200

// Recover copies everything readable from the damaged alert database at
// path into a new database, then moves the damaged file aside (to
// path.damaged-<UTC time>) and puts the new one at path. It reads the
// damaged file with plain reads (it cannot crash on it): every bucket's
// tree as far as its pages are sound, then every page the trees no longer
// reach, for alerts cut off by a damaged branch page (when the freelist is
// unreadable too, such pages may hold alerts that retention had deleted,
// which then come back). Alert indexes and the alert counter are rebuilt. raywatch must not be running on the file:
// Recover takes its lock and fails if it cannot within the timeout. When
// Recover fails, the damaged file is left where it was.
func Recover(path string, opts RecoverOptions) (*RecoverReport, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("recover %s: %w", path, err)
	}
	lock, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: opts.Timeout})
	if isTimeout(err) {
		return nil, fmt.Errorf("recover %s: %w", path, lockError(path, err))
	}
	if err == nil {
		defer lock.Close()
	}
	rep := &RecoverReport{Path: path, Buckets: map[string]int{}}
	d, err := openDBFile(path)
	var de *DamagedError
	if errors.As(err, &de) {
		// No valid meta page: no tree to walk, but the pages may still
		// hold alerts.
		rep.Problems = append(rep.Problems, de.Problems...)
		d, err = openForScan(path)
	}
	if err != nil {
		return nil, fmt.Errorf("recover %s: %w", path, err)
	}
	defer d.Close()

	tmp := path + ".recovering"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("recover %s: %w", path, err)
	}
	out, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: opts.Timeout})
	if err != nil {
		return nil, fmt.Errorf("recover %s: create %s: %w", path, tmp, err)
	}
	c := &copier{db: out, rep: rep, salvaged: map[string]salvagedAlert{}}
	err = c.copyAll(d)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("recover %s: %w", path, err)
	}
	rep.DamagedPath = fmt.Sprintf("%s.damaged-%s", path, opts.Now.UTC().Format("20060102T150405Z"))
	if err := os.Rename(path, rep.DamagedPath); err != nil {
		os.Remove(tmp)
		return nil, fmt.Errorf("recover %s: move the damaged file aside: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("recover %s: the damaged file is now %s, the recovered database %s: %w", path, rep.DamagedPath, tmp, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("recover %s: %w", path, err)
	}
	if len(rep.Problems) > maxReportedProblems {
		n := len(rep.Problems) - maxReportedProblems
		rep.Problems = append(rep.Problems[:maxReportedProblems], fmt.Sprintf("... and %d more", n))
	}
	return rep, nil
}

// openForScan opens a file whose meta pages are unreadable, to scan its
// pages of the usual size for alerts.
func openForScan(path string) (*dbFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	const pageSize = 4096
	d := &dbFile{path: path, f: f, size: st.Size(), meta: boltMeta{pageSize: pageSize, pgid: uint64(st.Size() / pageSize)}}
	d.notes = append(d.notes, "no valid meta page: pages scanned for alerts only")
	return d, nil
}

// copier writes what Recover reads into the new database, in
// transactions of bounded size.
type copier struct {
	db       *bolt.DB
	rep      *RecoverReport
	pending  []entry
	size     int
	expected int // the damaged file's alert counter; -1 when unreadable
	salvaged map[string]salvagedAlert
}

// entry is a key to write: into bucket path, a value or (v nil) a nested
// bucket (a top-level one when path is empty); alerts carry their rule and
// status for the indexes.
type entry struct {
	path  []string
	k, v  []byte
	alert *alert.Alert
	loose bool // an alert found outside the trees
}

// salvagedAlert is an alert found outside the trees; of two copies, the
// one with the higher count, then the later last event, is kept.
type salvagedAlert struct {
	count int
	last  time.Time
}

const (
	copyBatchEntries = 10000
	copyBatchBytes   = 16 << 20
)

// copyAll copies the trees of d, then the alerts on pages they no longer
// reach, and sets the alert counter.
func (c *copier) copyAll(d *dbFile) error {
	c.expected = -1
	err := c.db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	w := newWalker(d)
	var werr error
	w.visit = func(path []string, k, v []byte) {
		if werr == nil {
			werr = c.visit(path, k, v)
		}
	}
	err = guard(d.path, func() error {
		if d.meta.root != 0 {
			w.walk()
			w.freelist()
		}
		if werr != nil {
			return werr
		}
		c.rep.Problems = append(c.rep.Problems, w.problems...)
		return c.scanLoosePages(d, w)
	})
	if err != nil {
		return err
	}
	if err := c.flush(); err != nil {
		return err
	}
	switch {
	case c.expected < 0:
		c.rep.AlertsLost = -1
	case c.expected > c.rep.Alerts:
		c.rep.AlertsLost = c.expected - c.rep.Alerts
	}
	return c.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(metaAlerts, u64bytes(uint64(c.rep.Alerts)))
	})
}

// visit takes one key of the damaged file's trees.
func (c *copier) visit(path []string, k, v []byte) error {
	if len(path) == 0 {
		if v != nil {
			return nil // bbolt keeps only buckets at the top
		}
		return c.add(entry{k: bytes.Clone(k)})
	}
	top := path[0]
	switch {
	case len(path) == 1 && top == string(bucketAlerts):
		if v == nil {
			return nil // not an alert
		}
		a, ok := c.decode(k, v, false)
		if !ok {
			return nil
		}
		return c.add(entry{path: path, k: bytes.Clone(k), v: bytes.Clone(v), alert: a})
	case top == string(bucketByRule) || top == string(bucketByStatus):
		return nil // rebuilt from the alerts
	case len(path) == 1 && top == string(bucketMeta) && bytes.Equal(k, metaAlerts):
		if len(v) == 8 {
			c.expected = int(u64(v))
		}
		return nil // set from the alerts copied
	}
	if len(path) == 1 {
		c.rep.Buckets[top]++
	}
	var val []byte
	if v != nil {
		val = bytes.Clone(v)
	}
	return c.add(entry{path: path, k: bytes.Clone(k), v: val})
}

// decode decodes a stored alert, counting it as undecodable when it does
// not decode as the alert its key names. Loose values that are not
// alerts at all are not counted.
func (c *copier) decode(k, v []byte, loose bool) (*alert.Alert, bool) {
	if loose && (len(v) == 0 || v[0] != '{') {
		return nil, false
	}
	a, err := decodeAlert(v)
	if err == nil && a.ID == string(k) {
		return &a, true
	}
	if !loose {
		c.rep.Undecodable++
		c.rep.Problems = append(c.rep.Problems, fmt.Sprintf("alert %q: does not decode", k))
	}
	return nil, false
}

// scanLoosePages reads the leaf pages that neither the trees nor the
// freelist reach (cut off by a damaged page) for alerts.
func (c *copier) scanLoosePages(d *dbFile, w *walker) error {
	for id := uint64(2); id < d.meta.pgid; {
		if w.reached.has(id) || w.free.has(id) {
			id++
			continue
		}
		p, err := d.readPage(id)
		if err != nil || p.flags != leafPageFlag {
			id++
			continue
		}
		id += p.pages(d.meta.pageSize)
		els, err := p.elements()
		if err != nil {
			continue
		}
		for _, el := range els {
			if el.bucket {
				continue
			}
			if a, ok := c.decode(el.key, el.value, true); ok {
				if err := c.add(entry{path: []string{string(bucketAlerts)}, k: bytes.Clone(el.key), v: bytes.Clone(el.value), alert: a, loose: true}); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (c *copier) add(e entry) error {
	c.pending = append(c.pending, e)
	c.size += len(e.k) + len(e.v)
	if len(c.pending) >= copyBatchEntries || c.size >= copyBatchBytes {
		return c.flush()
	}
	return nil
}

// flush writes the pending entries in one transaction.
func (c *copier) flush() error {
	if len(c.pending) == 0 {
		return nil
	}
	err := c.db.Update(func(tx *bolt.Tx) error {
		for i := range c.pending {
			if err := c.put(tx, &c.pending[i]); err != nil {
				return err
			}
		}
		return nil
	})
	c.pending, c.size = c.pending[:0], 0
	return err
}

// put writes one entry; an alert also gets its index keys.
func (c *copier) put(tx *bolt.Tx, e *entry) error {
	if len(e.path) == 0 {
		_, err := tx.CreateBucketIfNotExists(e.k)
		return err
	}
	b, err := tx.CreateBucketIfNotExists([]byte(e.path[0]))
	if err != nil {
		return fmt.Errorf("bucket %s: %w", e.path[0], err)
	}
	for _, name := range e.path[1:] {
		if b, err = b.CreateBucketIfNotExists([]byte(name)); err != nil {
			return fmt.Errorf("bucket %s: %w", strings.Join(e.path, "/"), err)
		}
	}
	if e.v == nil {
		_, err := b.CreateBucketIfNotExists(e.k)
		return err
	}
	if e.alert == nil {
		return b.Put(e.k, e.v)
	}
	a, id := e.alert, string(e.k)
	if old := b.Get(e.k); old != nil {
		s, ok := c.salvaged[id]
		if !e.loose || !ok || a.Count < s.count || a.Count == s.count && !a.LastSeen.After(s.last) {
			return nil // the tree's copy, or the better loose one, stays
		}
		// A better loose copy: replace it and its index keys.
		if prev, err := decodeAlert(old); err == nil {
			if err := tx.Bucket(bucketByRule).Delete(indexKey(prev.Rule.ID, id)); err != nil {
				return err
			}
			if err := tx.Bucket(bucketByStatus).Delete(indexKey(prev.Status, id)); err != nil {
				return err
			}
		}
	} else {
		c.rep.Alerts++
		if e.loose {
			c.rep.Salvaged++
		}
	}
	if e.loose {
		c.salvaged[id] = salvagedAlert{count: a.Count, last: a.LastSeen}
	}
	if err := b.Put(e.k, e.v); err != nil {
		return err
	}
	if err := tx.Bucket(bucketByRule).Put(indexKey(a.Rule.ID, id), []byte{}); err != nil {
		return err
	}
	return tx.Bucket(bucketByStatus).Put(indexKey(a.Status, id), []byte{})
}
