// Package store keeps raywatch's state on disk: the alerts in a bbolt
// database ([Store]) and the batches received but not yet processed in a
// folder of fsync'd files ([Spool]).
package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/raywatch/raywatch/rules/alert"
)

// Errors returned by the Store.
var (
	// ErrNotFound is returned for an alert id that is not in the store.
	ErrNotFound = errors.New("alert not found")
	// ErrBadStatus is returned by [Store.SetStatus] for an unknown status.
	ErrBadStatus = errors.New("unknown status")
	// ErrLocked is returned by [Open] when another process (another
	// raywatch on the same data folder) holds the database file's lock
	// beyond Options.Timeout.
	ErrLocked = errors.New("another raywatch holds the database")
)

// Buckets. Keys of alerts are alert IDs, which start with 12 hex digits of
// milliseconds, so that byte order is time order.
var (
	bucketAlerts   = []byte("alerts")    // id -> alert JSON
	bucketByRule   = []byte("by_rule")   // rule id 0x00 alert id -> empty
	bucketByStatus = []byte("by_status") // status 0x00 alert id -> empty
	bucketSeen     = []byte("seen")      // alert id 0x00 record key -> empty: records counted
	bucketBatches  = []byte("batches")   // batch id -> commit time (unix ns, big endian)
	bucketRejects  = []byte("rejects")   // sequence (big endian) -> reject JSON
	bucketRules    = []byte("rules")     // rule id -> ruleCounters JSON
	bucketMeta     = []byte("meta")      // name -> value
	// bucketExceptions: exception id -> exception JSON (exceptions.go).
	bucketExceptions = []byte("exceptions")
	// bucketBudget: minute (unix minutes, big endian) then rule id -> new
	// alerts created and dropped in that minute (budget.go).
	bucketBudget = []byte("budget")
	// bucketOutbox: delivery jobs of the notification outputs (outbox.go).
	bucketOutbox = []byte("outbox")
	// bucketBlocks: the edge block list's entries, holds and audit trail
	// (blocks.go).
	bucketBlocks = []byte("blocks")
	allBuckets   = [][]byte{bucketAlerts, bucketByRule, bucketByStatus, bucketSeen, bucketBatches, bucketRejects, bucketRules, bucketMeta, bucketExceptions, bucketBudget, bucketOutbox, bucketBlocks}

	metaAlerts = []byte("alerts") // number of alerts, uint64 big endian
)

// Options configures [Open]. The zero value works.
type Options struct {
	// Timeout bounds the wait for the database file lock (another raywatch
	// using the same data folder). Zero means 5 seconds.
	Timeout time.Duration
	// GroupWindow is the width of the time slots in which alerts of one rule
	// on one entity (intake, source IP, host) are grouped into one alert.
	// Slots are aligned on multiples of the window since the Unix epoch, so
	// that grouping does not depend on the order records arrive in. Zero
	// means no grouping: one alert per rule and record.
	GroupWindow time.Duration
	// Samples bounds the events kept in an alert's Samples; 0 means 10.
	Samples int
	// MaxAge and MaxAlerts drive [Store.Prune]: alerts whose last event is
	// older than MaxAge go, then the oldest alerts beyond MaxAlerts. Zero
	// means no limit.
	MaxAge    time.Duration
	MaxAlerts int
	// MaxRejects bounds the malformed records kept for inspection; 0 means
	// 1000.
	MaxRejects int
	// BatchMemory is how long the ids of processed batches are remembered
	// to recognise a retried batch; 0 means 48 hours.
	BatchMemory time.Duration
	// RuleAlertBudget bounds the new alerts one rule may create in one
	// minute (of event time): beyond it, records that would create a new
	// alert of the rule are dropped until the minute ends, while records
	// of its existing alerts are still counted into them. Dropped records
	// are counted ([Store.Throttled]). 0 or less means no bound.
	RuleAlertBudget int
	// OnThrottle, if set, is called once per rule and minute, after the
	// commit in which the rule first exceeded RuleAlertBudget in that
	// minute, with Dropped = 1. It runs on the committing goroutine and
	// must not block.
	OnThrottle func(Throttle)

	// Outputs names the enabled notification outputs. Every alert that a
	// commit creates or changes, and every status change, queues a delivery
	// job for each of them in the same transaction (see [Outbox]).
	Outputs []string
	// OutboxFilter, when set, decides whether alert a is for output; a job
	// it rejects is not queued. It must be safe for concurrent use and must
	// not call the Store.
	OutboxFilter func(output string, a *alert.Alert) bool
	// OutboxMax bounds the jobs queued for all outputs together; beyond it
	// the oldest are dropped and counted. 0 means 1,000,000.
	OutboxMax int
}

// Store is the alert store. Its methods are safe for concurrent use. A
// method that meets a damaged page fails with an error wrapping
// [ErrDamaged] that names the file; it does not crash the process.
type Store struct {
	db        *guardedDB
	opts      Options
	hot       hotAlerts
	docs      docCache
	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) the bbolt database at path. Before bbolt
// maps an existing file, Open reads its page structure (meta pages, the
// pages of every bucket, the freelist) with plain reads: a truncated or
// overwritten file fails with a [*DamagedError] (matching [ErrDamaged])
// that names the file and the commands that check and recover it.
func Open(path string, opts Options) (*Store, error) {
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Samples <= 0 {
		opts.Samples = 10
	}
	if opts.MaxRejects <= 0 {
		opts.MaxRejects = 1000
	}
	if opts.BatchMemory <= 0 {
		opts.BatchMemory = 48 * time.Hour
	}
	if opts.OutboxMax <= 0 {
		opts.OutboxMax = defaultOutboxMax
	}
	if err := inspectBeforeOpen(path, opts.Timeout); err != nil {
		return nil, err
	}
	var bdb *bolt.DB
	err := guard(path, func() (err error) {
		bdb, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.Timeout})
		return err
	})
	if isTimeout(err) {
		return nil, lockError(path, err)
	}
	if err != nil {
		if errors.Is(err, ErrDamaged) {
			return nil, err
		}
		return nil, fmt.Errorf("open store %q: %w", path, err)
	}
	db := &guardedDB{DB: bdb, path: path}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init store %q: %w", path, err)
	}
	return &Store{db: db, opts: opts, hot: hotAlerts{m: map[string]hotAlert{}}}, nil
}

// inspectBeforeOpen reads the structure of the existing database at path
// (see [inspect]) under a shared lock, so that a running raywatch's file
// is not read while it changes. A new or empty file has nothing to read.
func inspectBeforeOpen(path string, timeout time.Duration) error {
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) || err == nil && st.Size() == 0 {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open store %q: %w", path, err)
	}
	lock, lockErr := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: timeout})
	if isTimeout(lockErr) {
		return lockError(path, lockErr)
	}
	if lockErr == nil {
		defer lock.Close()
	}
	if err := inspect(path); err != nil {
		return err
	}
	if lockErr != nil {
		return fmt.Errorf("open store %q: %w", path, lockErr)
	}
	return nil
}

// guardedDB is the store's bbolt database. Its View, Update and Batch
// (which shadow bbolt's) run transactions with runtime/debug's
// SetPanicOnFault and turn a panic, the sign of a bad page, into a
// [*DamagedError] naming the file: the caller's request fails, the process
// stays up. A panic in a transaction's function leaves the database as it
// was (bbolt rolls back); one in bbolt's commit may not, so after it every
// write fails with that error, and reads go on.
//
// A function given to Batch may run in bbolt's own goroutine; it is
// guarded there, but bbolt's commit of the batch is not.
type guardedDB struct {
	*bolt.DB
	path   string
	broken atomic.Pointer[DamagedError]
}

// guard runs fn with SetPanicOnFault, recovering a panic as a
// *DamagedError of path.
func guard(path string, fn func() error) error { return guardIn(path, false, fn) }

// guardIn is guard; inFunc says fn is a transaction's function.
func guardIn(path string, inFunc bool, fn func() error) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			err = &DamagedError{Path: path, Panic: r, inFunc: inFunc}
		}
	}()
	return fn()
}

// View is bolt.DB.View, guarded.
func (g *guardedDB) View(fn func(*bolt.Tx) error) error {
	return guard(g.path, func() error { return g.DB.View(fn) })
}

// Update is bolt.DB.Update, guarded.
func (g *guardedDB) Update(fn func(*bolt.Tx) error) error {
	if e := g.broken.Load(); e != nil {
		return e
	}
	err := guard(g.path, func() error {
		return g.DB.Update(func(tx *bolt.Tx) error {
			return guardIn(g.path, true, func() error { return fn(tx) })
		})
	})
	g.breakOn(err)
	return err
}

// Batch is bolt.DB.Batch, with fn guarded.
func (g *guardedDB) Batch(fn func(*bolt.Tx) error) error {
	if e := g.broken.Load(); e != nil {
		return e
	}
	return g.DB.Batch(func(tx *bolt.Tx) error {
		return guardIn(g.path, true, func() error { return fn(tx) })
	})
}

// breakOn marks the database broken when err is a panic outside a
// transaction's function (in bbolt's commit or rollback).
func (g *guardedDB) breakOn(err error) {
	var de *DamagedError
	if errors.As(err, &de) && de.Panic != nil && !de.inFunc {
		g.broken.CompareAndSwap(nil, de)
	}
}

// Close closes the database. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.db.Close() })
	return s.closeErr
}

// Size returns the size of the database file in bytes.
func (s *Store) Size() int64 {
	var n int64
	_ = s.db.View(func(tx *bolt.Tx) error { n = tx.Size(); return nil })
	return n
}

func u64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func u64bytes(n uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, n)
	return b
}

// addMeta adds delta to the counter name of the meta bucket.
func addMeta(tx *bolt.Tx, name []byte, delta int64) error {
	b := tx.Bucket(bucketMeta)
	n := int64(u64(b.Get(name))) + delta
	if n < 0 {
		n = 0
	}
	return b.Put(name, u64bytes(uint64(n)))
}

// maxHotAlerts and maxHotBytes bound the decoded alerts kept by
// [hotAlerts]: their number, and the size of their JSON (each entry holds
// a few times that in maps and strings, its samples' events included).
const (
	maxHotAlerts = 512
	maxHotBytes  = 8 << 20
)

// hotAlerts keeps the alerts that Commit wrote last, decoded, with the
// bytes they were written as. Grouping folds records into the same few
// alerts batch after batch; decoding each from JSON every time was most of
// the cost of a commit. An entry is used only when the bytes in the
// database are still the ones it was made from, so a change by anything
// else (a status change, retention, a rolled-back transaction) simply
// misses.
type hotAlerts struct {
	mu    sync.Mutex
	m     map[string]hotAlert
	bytes int // of the JSON of the entries
}

type hotAlert struct {
	enc []byte
	a   alert.Alert
}

// get returns a copy of the alert id if stored is what it was cached as.
// The copy's Samples may be changed freely; the maps it holds (events,
// groups) are shared and must not be modified.
func (h *hotAlerts) get(id string, stored []byte) (alert.Alert, bool) {
	h.mu.Lock()
	e, ok := h.m[id]
	h.mu.Unlock()
	if !ok || !bytes.Equal(e.enc, stored) {
		return alert.Alert{}, false
	}
	a := e.a
	a.Samples = slices.Clone(a.Samples)
	a.Matches = slices.Clone(a.Matches)
	a.StatusHistory = slices.Clone(a.StatusHistory)
	return a, true
}

// put records that alert id was written as enc.
func (h *hotAlerts) put(id string, enc []byte, a *alert.Alert) {
	c := *a
	c.Samples = slices.Clone(a.Samples)
	c.Matches = slices.Clone(a.Matches)
	c.StatusHistory = slices.Clone(a.StatusHistory)
	h.mu.Lock()
	if old, ok := h.m[id]; ok {
		h.bytes -= len(old.enc)
		delete(h.m, id)
	}
	for k, e := range h.m { // evict at random
		if len(h.m) < maxHotAlerts && h.bytes+len(enc) <= maxHotBytes {
			break
		}
		delete(h.m, k)
		h.bytes -= len(e.enc)
	}
	h.m[id] = hotAlert{enc: enc, a: c}
	h.bytes += len(enc)
	h.mu.Unlock()
}
