package main

import (
	"bytes"
	"context"
	"fmt"
	"github.com/raywatch/raywatch/rules"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
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

func TestRulesFolderReload(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{RulesDir: dir, MaxGroups: 100}
	eng, problems, err := newEngine(cfg)
	if err != nil || len(problems) != 0 {
		t.Fatalf("newEngine = %v, %v", problems, err)
	}
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	stop := startRuleWatcher(ctx, cfg, eng, log)
	defer func() { cancel(); stop() }()

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
	// A removed file's rule goes away.
	os.Remove(filepath.Join(dir, "a.yml"))
	waitFor(t, 10*time.Second, func() bool { return !has("drop-a") }, "drop-a to be unloaded")
}

func TestRulesCheckSigmaHQ(t *testing.T) {
	dir := "../../../shared/testdata/sigmahq/rules"
	if _, err := os.Stat(dir); err != nil {
		t.Skipf("SigmaHQ rules not present at %s (shared test data): %v", dir, err)
	}
	out, err := exec.Command(binPath, "rules", "check", "--rules-dir", dir).CombinedOutput()
	builtin, berr := rules.Builtin()
	if berr != nil {
		t.Fatal(berr)
	}
	want := fmt.Sprintf("%d rules loaded, 0 errors", 145+len(builtin))
	if err != nil || !strings.Contains(string(out), want) {
		t.Errorf("rules check --rules-dir %s = %v\n%s; want %s (the 145 SigmaHQ rules and the built-ins)", dir, err, out, want)
	}
	out, err = exec.Command(binPath, "rules", "list", "--json", "--disable-rules", "c0ba0fe2-2266-4916-b42e-54dff94d5ff4").Output()
	if err != nil || !strings.Contains(string(out), `"enabled": false`) {
		t.Errorf("rules list --disable-rules = %v\n%s; want the TrevorC2 rule disabled", err, out)
	}
}
