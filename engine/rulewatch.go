package engine

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/raywatch/raywatch/rules"
)

// LoadRules returns the built-in rules with those of the folder dir on top
// (a rule with a built-in's id replaces it); dir "" means the built-ins
// alone. Broken files of dir are returned as problems and left out; the
// error is for a folder that cannot be read.
func LoadRules(dir string) ([]rules.Rule, []*rules.LoadError, error) {
	f, err := LoadRuleFolder(dir)
	return f.Rules, f.Problems, err
}

// LoadRuleFolder is [LoadRules] with the rules of dir that were read but
// not loaded (deprecated and unsupported ones) in Skipped: its Rules are
// the built-ins with the rules of dir on top.
func LoadRuleFolder(dir string) (rules.Folder, error) {
	rs, err := rules.Builtin()
	if err != nil {
		return rules.Folder{}, err
	}
	if dir == "" {
		return rules.Folder{Rules: rs}, nil
	}
	f, err := rules.LoadFolder(dir)
	if err != nil {
		return rules.Folder{}, fmt.Errorf("rules folder %s: %w", dir, err)
	}
	f.Rules = rules.Merge(rs, f.Rules)
	return f, nil
}

// DefaultRuleDebounce is how long a rules folder must be quiet before a
// reload, when [RuleWatcherOptions.Debounce] is 0.
const DefaultRuleDebounce = 300 * time.Millisecond

// RuleWatcherOptions configure a [RuleWatcher]. The zero value is ready to
// use.
type RuleWatcherOptions struct {
	// Logger receives the reloads and the broken files (file, line,
	// reason); nil discards them.
	Logger *slog.Logger
	// Debounce is the quiet time before a reload.
	Debounce time.Duration
	// OnReload, if set, is called after each reload with the files (and
	// rules) that failed, from Run's goroutine.
	OnReload func(problems []*rules.LoadError)
	// OnSkipped, if set, is called after each reload, before OnReload,
	// with the rules of the folder that were read but not loaded
	// (deprecated and unsupported ones), from Run's goroutine.
	OnSkipped func(skipped []rules.Skip)
}

// RuleWatcher keeps an [Engine]'s rules in step with a rules folder, the
// way ioc.Watcher keeps an IOC set: after a change below the folder and a
// quiet time, it loads the built-ins and the folder again and swaps the
// compiled set into the engine atomically ([Engine.Reload]). A broken file
// is reported and left out while the rest runs; a folder that cannot be
// read keeps the rules in use. Problems is safe for concurrent use.
type RuleWatcher struct {
	dir  string
	eng  *Engine
	opts RuleWatcherOptions
	w    *fsnotify.Watcher

	mu       sync.Mutex
	problems []*rules.LoadError
}

// NewRuleWatcher starts watching dir (and its subfolders) for eng: changes
// made after it returns are seen by [RuleWatcher.Run]. The caller closes
// the watcher.
func NewRuleWatcher(dir string, eng *Engine, opts RuleWatcherOptions) (*RuleWatcher, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultRuleDebounce
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch rules folder %s: %w", dir, err)
	}
	rw := &RuleWatcher{dir: dir, eng: eng, opts: opts, w: w}
	rw.watchTree()
	return rw, nil
}

// Close stops watching; it is safe to call twice, and after Run returns.
func (rw *RuleWatcher) Close() error {
	return rw.w.Close()
}

// Problems returns the files (and rules) that failed at the last reload.
func (rw *RuleWatcher) Problems() []*rules.LoadError {
	rw.mu.Lock()
	defer rw.mu.Unlock()
	return append([]*rules.LoadError(nil), rw.problems...)
}

// watchTree adds the folder and its subfolders to the watch.
func (rw *RuleWatcher) watchTree() {
	_ = filepath.WalkDir(rw.dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			if err := rw.w.Add(path); err != nil {
				rw.opts.Logger.Warn("cannot watch rules folder", "path", path, "err", err)
			}
		}
		return nil
	})
}

// Run reloads the rules after each change below the folder, once it has
// been quiet for the debounce time, until ctx is done or the watcher is
// closed. Run must not be called twice at once.
func (rw *RuleWatcher) Run(ctx context.Context) {
	var timer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-rw.w.Events:
			if !ok {
				return
			}
			if ev.Has(fsnotify.Create) {
				rw.watchTree() // a new subfolder
			}
			timer = time.After(rw.opts.Debounce)
		case err, ok := <-rw.w.Errors:
			if !ok {
				return
			}
			rw.opts.Logger.Warn("rules folder watch", "err", err)
		case <-timer:
			timer = nil
			rw.Reload()
		}
	}
}

// Reload loads the folder again now and swaps the compiled set into the
// engine. When the folder cannot be read, the rules in use stay.
func (rw *RuleWatcher) Reload() {
	log := rw.opts.Logger
	f, err := LoadRuleFolder(rw.dir)
	if err != nil {
		log.Error("rules reload failed; keeping the rules in use", "dir", rw.dir, "err", err)
		return
	}
	bad := append(f.Problems, rw.eng.Reload(f.Rules)...)
	rw.mu.Lock()
	rw.problems = bad
	rw.mu.Unlock()
	for _, p := range bad {
		log.Error("rule skipped", "file", p.File, "line", p.Line, "err", p.Err)
	}
	log.Info("rules reloaded", "dir", rw.dir, "rules", len(rw.eng.Rules()), "errors", len(bad))
	if rw.opts.OnSkipped != nil {
		rw.opts.OnSkipped(f.Skipped)
	}
	if rw.opts.OnReload != nil {
		rw.opts.OnReload(bad)
	}
}
