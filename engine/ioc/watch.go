package ioc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configure a [Watcher]. The zero value is ready to use.
type Options struct {
	// Debounce is how long the folder must be quiet after a change before
	// it is reloaded; default 200ms. A folder that keeps changing is still
	// reloaded at least every 5 × Debounce.
	Debounce time.Duration
	// Logger receives a line per reload and per failing file; default none.
	Logger *slog.Logger
	// Now tells the time, for expiry; default time.Now.
	Now func() time.Time
}

// Watcher keeps a [Set] of the indicators of one folder current. It loads
// the folder in [NewWatcher]; [Watcher.Run] then watches the folder and, a
// short quiet time after files are added, written, replaced (renamed over)
// or removed, re-reads the changed files, builds a new Set off to the side
// (rebuilding only the parts of the index whose files changed) and swaps
// it in. A file that fails to load keeps its previous indicators; so does
// a file that had indicators and now yields none without saying it is
// empty, or whose entries are mostly not indicators (see
// [FileStatus.Warning]).
// [Watcher.Current], [Watcher.Status], [Watcher.Reload] and
// [Watcher.Collectors] are safe for concurrent use.
type Watcher struct {
	dir  string
	opts Options
	log  *slog.Logger

	mu     sync.Mutex // serialises reloads and guards l
	l      *loader
	cur    atomic.Pointer[Set]
	status atomic.Pointer[[]FileStatus]
	expiry atomic.Int64 // l.nextExpiry in Unix nanoseconds, 0 for none

	indicators *prometheus.GaugeVec
	files      prometheus.Gauge
	duration   prometheus.Histogram
	failures   prometheus.Counter
	lastOK     prometheus.Gauge
}

// NewWatcher loads every indicator file of dir (see [LoadDir]) and returns a
// Watcher whose Current set holds them. It fails only when dir cannot be
// listed; broken files are reported by Status.
func NewWatcher(dir string, opts Options) (*Watcher, error) {
	if opts.Debounce <= 0 {
		opts.Debounce = 200 * time.Millisecond
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	w := &Watcher{dir: dir, opts: opts, log: opts.Logger, l: newLoader(dir)}
	if w.log == nil {
		w.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	w.indicators = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "raywatch_ioc_indicators", Help: "Indicators in the current IOC set, by type.",
	}, []string{"type"})
	w.files = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "raywatch_ioc_files", Help: "Files in the IOC folder.",
	})
	w.duration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "raywatch_ioc_reload_duration_seconds", Help: "Time to re-read changed IOC files and build a new set.",
		Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
	})
	w.failures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "raywatch_ioc_reload_failures_total", Help: "IOC files (or folder listings) that failed to load or were set aside as suspect (emptied, mostly not indicators); the previous indicators were kept.",
	})
	w.lastOK = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "raywatch_ioc_last_reload_timestamp_seconds", Help: "When the IOC set was last rebuilt.",
	})
	if err := w.reload(nil, false, true); err != nil {
		return nil, err
	}
	return w, nil
}

// Current returns the current set. It never returns nil.
func (w *Watcher) Current() *Set { return w.cur.Load() }

// Status returns the status of each file of the folder, sorted by name.
// The caller must not modify the returned values.
func (w *Watcher) Status() []FileStatus {
	return append([]FileStatus(nil), *w.status.Load()...)
}

// Collectors returns the Watcher's metrics, for the caller to register:
// raywatch_ioc_indicators{type}, raywatch_ioc_files,
// raywatch_ioc_reload_duration_seconds, raywatch_ioc_reload_failures_total
// and raywatch_ioc_last_reload_timestamp_seconds.
func (w *Watcher) Collectors() []prometheus.Collector {
	return []prometheus.Collector{w.indicators, w.files, w.duration, w.failures, w.lastOK}
}

// Reload re-reads every file of the folder and swaps in a new set. Run
// reloads on its own; Reload is for callers that want a reload now (on
// SIGHUP, say). It returns an error only when the folder cannot be listed,
// in which case the current set stays.
func (w *Watcher) Reload() error { return w.reload(nil, true, true) }

// reload scans the folder, re-reading the files in force (all files if
// all) whatever their fingerprint, and rebuilds the set when something
// changed or rebuild is set.
func (w *Watcher) reload(force map[string]bool, all, rebuild bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	start := time.Now()
	now := w.opts.Now()
	r, err := w.l.scan(now, force, all)
	if err != nil {
		w.failures.Inc()
		if w.cur.Load() == nil {
			return err
		}
		w.log.Error("IOC folder not reloaded; keeping the current indicators", "dir", w.dir, "err", err)
		return err
	}
	w.failures.Add(float64(len(r.failed) + len(r.kept)))
	for _, name := range r.failed {
		w.log.Warn("IOC file not loaded; keeping its previous indicators", "file", name, "err", w.l.files[name].lastErr)
	}
	for _, name := range r.kept {
		w.log.Warn("IOC file set aside; keeping its previous indicators", "file", name, "reason", w.l.files[name].warning)
	}
	for _, name := range r.parsed {
		st := w.l.files[name]
		if st.warning != "" {
			w.log.Warn("IOC file looks wrong", "file", name, "reason", st.warning)
		} else if res := st.res; res.badLines > 0 {
			w.log.Warn("IOC file has lines that are not indicators", "file", name, "bad_lines", res.badLines, "first", res.errs[0].Error())
		}
	}
	if !rebuild && !r.changed() {
		if len(r.failed)+len(r.kept) > 0 {
			status := w.l.status()
			w.status.Store(&status)
		}
		return nil
	}
	set := w.l.build(now)
	status := w.l.status()
	w.cur.Store(set)
	w.status.Store(&status)
	var exp int64
	if !w.l.nextExpiry.IsZero() {
		exp = w.l.nextExpiry.UnixNano()
	}
	w.expiry.Store(exp)
	for t, n := range set.Counts() {
		w.indicators.WithLabelValues(string(t)).Set(float64(n))
	}
	w.files.Set(float64(len(status)))
	d := time.Since(start)
	w.duration.Observe(d.Seconds())
	w.lastOK.Set(float64(time.Now().UnixNano()) / 1e9)
	w.log.Info("IOC set loaded", "dir", w.dir, "indicators", set.Len(), "files", len(status),
		"changed", len(r.parsed), "removed", len(r.gone), "failed", len(r.failed), "duration", d)
	return nil
}

// Run watches the folder until ctx is done, reloading after changes and
// when an indicator expires. It returns nil when ctx is done, or an error
// if the folder cannot be watched. Run must not be called twice at once.
func (w *Watcher) Run(ctx context.Context) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch IOC folder: %w", err)
	}
	defer fw.Close()
	if err := fw.Add(w.dir); err != nil {
		return fmt.Errorf("watch IOC folder %q: %w", w.dir, err)
	}
	// Catch up with changes made between NewWatcher and the watch.
	_ = w.reload(nil, false, false)

	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	expiry := time.NewTimer(time.Hour)
	expiry.Stop()
	armExpiry := func() {
		expiry.Stop()
		if e := w.expiry.Load(); e != 0 {
			expiry.Reset(max(time.Until(time.Unix(0, e)), 0) + time.Millisecond)
		}
	}
	armExpiry()
	pending := make(map[string]bool)
	rescanAll := false  // after a watch error: events may have been lost
	var first time.Time // of the first pending change
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return errors.New("watch IOC folder: watcher closed")
			}
			name := filepath.Base(ev.Name)
			if filepath.Clean(ev.Name) == filepath.Clean(w.dir) || ignored(name) || ev.Op == fsnotify.Chmod {
				continue
			}
			if len(pending) == 0 {
				first = time.Now()
			}
			pending[name] = true
			wait := min(w.opts.Debounce, time.Until(first.Add(5*w.opts.Debounce)))
			debounce.Reset(max(wait, 0))
		case err, ok := <-fw.Errors:
			if !ok {
				return errors.New("watch IOC folder: watcher closed")
			}
			w.log.Warn("IOC folder watch error; rescanning", "dir", w.dir, "err", err)
			rescanAll = true
			debounce.Reset(w.opts.Debounce)
		case <-debounce.C:
			force, all := pending, rescanAll
			pending, rescanAll = make(map[string]bool), false
			_ = w.reload(force, all, false)
			armExpiry()
		case <-expiry.C:
			_ = w.reload(nil, false, true)
			armExpiry()
		}
	}
}
