package main

import (
	"context"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/raywatch/raywatch/engine"
	"github.com/raywatch/raywatch/rules"
)

// ruleDebounce is how long the rules folder must be quiet before a reload.
const ruleDebounce = 300 * time.Millisecond

// engineOptions builds the engine options of the configuration.
func (c *Config) engineOptions() (engine.Options, error) {
	opts := engine.Options{MaxGroups: c.MaxGroups, IOC: c.iocSet}
	for _, id := range strings.Split(c.DisableRules, ",") {
		if id = strings.TrimSpace(id); id != "" {
			opts.Disabled = append(opts.Disabled, id)
		}
	}
	if c.FieldMapping != "" {
		m, err := rules.LoadMapping(c.FieldMapping)
		if err != nil {
			return opts, err
		}
		opts.Mapping = m
	}
	return opts, nil
}

// newEngine compiles the built-in rules plus those of the rules folder.
// Broken drop-in rules are returned as problems and left out.
func newEngine(cfg Config) (*engine.Engine, []*rules.LoadError, error) {
	opts, err := cfg.engineOptions()
	if err != nil {
		return nil, nil, err
	}
	rs, problems, err := loadRules(cfg.RulesDir)
	if err != nil {
		return nil, nil, err
	}
	e, err := engine.NewWithOptions(nil, opts)
	if err != nil {
		return nil, nil, err
	}
	problems = append(problems, e.Reload(rs)...)
	return e, problems, nil
}

// watchTree adds dir and its subfolders to w.
func watchTree(w *fsnotify.Watcher, dir string, log *slog.Logger) {
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			if err := w.Add(path); err != nil {
				log.Warn("cannot watch rules folder", "path", path, "err", err)
			}
		}
		return nil
	})
}

// watchRules reloads the rules of dir into eng whenever a file below dir
// changes, after ruleDebounce of quiet. A broken file is logged with its
// file, line and reason and left out; when the folder cannot be read at
// all, the rules in use stay. It returns when ctx is done.
func watchRules(ctx context.Context, w *fsnotify.Watcher, dir string, eng *engine.Engine, problems *ruleProblems, log *slog.Logger) {
	var timer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if ev.Has(fsnotify.Create) {
				watchTree(w, dir, log) // a new subfolder
			}
			timer = time.After(ruleDebounce)
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			log.Warn("rules folder watch", "err", err)
		case <-timer:
			timer = nil
			reloadRules(dir, eng, problems, log)
		}
	}
}

// reloadRules loads dir again and swaps the compiled set into eng; the
// broken files replace those kept in problems (which may be nil).
func reloadRules(dir string, eng *engine.Engine, problems *ruleProblems, log *slog.Logger) {
	rs, bad, err := loadRules(dir)
	if err != nil {
		log.Error("rules reload failed; keeping the rules in use", "dir", dir, "err", err)
		return
	}
	bad = append(bad, eng.Reload(rs)...)
	problems.set(bad)
	for _, p := range bad {
		log.Error("rule skipped", "file", p.File, "line", p.Line, "err", p.Err)
	}
	log.Info("rules reloaded", "dir", dir, "rules", len(eng.Rules()), "errors", len(bad))
}

// startRuleWatcher watches cfg.RulesDir, when set, until ctx is done or the
// returned stop is called; stop waits for the watcher to end. Changes made
// after it returns are seen.
func startRuleWatcher(ctx context.Context, cfg Config, eng *engine.Engine, log *slog.Logger) (stop func()) {
	if cfg.RulesDir == "" {
		return func() {}
	}
	log = log.With("component", "rules")
	w, err := fsnotify.NewWatcher()
	if err != nil {
		log.Error("rules folder not watched; restart to load changes", "err", err)
		return func() {}
	}
	watchTree(w, cfg.RulesDir, log)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer w.Close()
		watchRules(ctx, w, cfg.RulesDir, eng, cfg.ruleErrs, log)
	}()
	return func() { cancel(); <-done }
}
