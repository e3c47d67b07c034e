package engine

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/raywatch/raywatch/rules"
)

// syncBuffer is a log sink safe for the watcher goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, limit time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not a guess
	}
}

func TestRulesFolderReload(t *testing.T) {
	dir := t.TempDir()
	rs, problems, err := LoadRules(dir)
	if err != nil || len(problems) != 0 {
		t.Fatalf("LoadRules = %v, %v", problems, err)
	}
	eng, err := NewWithOptions(rs, Options{MaxGroups: 100})
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	var reloads sync.Map
	rw, err := NewRuleWatcher(dir, eng, RuleWatcherOptions{
		Logger:   slog.New(slog.NewTextHandler(&logs, nil)),
		OnReload: func(p []*rules.LoadError) { reloads.Store("last", len(p)) },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { rw.Run(ctx); close(done) }()
	defer func() { cancel(); <-done; rw.Close(); rw.Close() }()

	has := func(id string) bool {
		for _, r := range eng.Rules() {
			if r.ID == id {
				return true
			}
		}
		return false
	}
	rule := func(id string) []byte {
		return []byte("title: Drop-in " + id + "\nid: " + id + "\nlogsource: {category: webserver}\ndetection:\n  sel:\n    cs-uri-stem: /x\n  condition: sel\n")
	}
	os.WriteFile(filepath.Join(dir, "a.yml"), rule("drop-a"), 0o600)
	waitFor(t, 10*time.Second, func() bool { return has("drop-a") }, "the new rule file to be loaded")

	// A broken file is reported with file and line and skipped; the rest
	// keeps running.
	os.WriteFile(filepath.Join(dir, "broken.yml"), []byte("title: x\nid: b\ndetection:\n  sel:\n    a: [\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "b.yml"), rule("drop-b"), 0o600)
	waitFor(t, 10*time.Second, func() bool { return has("drop-b") && strings.Contains(logs.String(), "broken.yml") }, "b.yml loaded and broken.yml reported")
	builtin, err := rules.Builtin()
	if err != nil {
		t.Fatal(err)
	}
	if !has("drop-a") || len(eng.Rules()) != len(builtin)+2 {
		t.Errorf("after the broken file: %d rules; want the %d built-ins, drop-a and drop-b", len(eng.Rules()), len(builtin))
	}
	if !strings.Contains(logs.String(), "line=5") {
		t.Errorf("log does not give the broken file's line: %s", logs.String())
	}
	if p := rw.Problems(); len(p) != 1 || !strings.HasSuffix(p[0].File, "broken.yml") {
		t.Errorf("Problems() = %v; want broken.yml", p)
	}
	if n, _ := reloads.Load("last"); n != 1 {
		t.Errorf("OnReload saw %v problems; want 1", n)
	}
	// A removed file's rule goes away.
	os.Remove(filepath.Join(dir, "a.yml"))
	waitFor(t, 10*time.Second, func() bool { return !has("drop-a") }, "drop-a to be unloaded")
}
