package ioc

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// waitFor waits until cond holds, checking it every few milliseconds, and
// fails the test if it does not within limit.
func waitFor(tb testing.TB, limit time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline.C:
			tb.Fatalf("%s: not within %v", what, limit)
		case <-tick.C:
		}
	}
}

func writeFile(tb testing.TB, dir, name, data string) {
	tb.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// replaceFile writes a file the way feed downloaders do: a temporary file
// renamed over the old one.
func replaceFile(tb testing.TB, dir, name, data string) {
	tb.Helper()
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		tb.Fatal(err)
	}
}

// startWatcher runs a Watcher on dir until the test ends.
func startWatcher(tb testing.TB, dir string, opts Options) *Watcher {
	tb.Helper()
	if opts.Debounce == 0 {
		opts.Debounce = 50 * time.Millisecond
	}
	w, err := NewWatcher(dir, opts)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Run: %v", err)
		}
	})
	return w
}

// matches reports whether the watcher's current set has a hit for the
// client IP ip.
func matches(w *Watcher, ip string) bool {
	return len(w.Current().match("http_requests", time.Time{}, fakeEvent{"source.ip": ip}, nil)) > 0
}

func fileStatus(w *Watcher, name string) (FileStatus, bool) {
	for _, fs := range w.Status() {
		if fs.File == name {
			return fs, true
		}
	}
	return FileStatus{}, false
}

func TestWatcherLiveChanges(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.txt", "10.0.0.1\n")
	w := startWatcher(t, dir, Options{})
	if !matches(w, "10.0.0.1") {
		t.Fatal("initial load: 10.0.0.1 does not match")
	}
	const limit = 2 * time.Second

	writeFile(t, dir, "a.txt", "10.0.0.2\n") // in place
	waitFor(t, limit, "in-place write", func() bool { return matches(w, "10.0.0.2") && !matches(w, "10.0.0.1") })

	replaceFile(t, dir, "a.txt", "10.0.0.3\n")
	waitFor(t, limit, "rename over", func() bool { return matches(w, "10.0.0.3") && !matches(w, "10.0.0.2") })

	writeFile(t, dir, "b.csv", "value,type\n10.0.0.4,ip-dst\n")
	waitFor(t, limit, "new file", func() bool { return matches(w, "10.0.0.4") && matches(w, "10.0.0.3") })

	if err := os.Remove(filepath.Join(dir, "a.txt")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, limit, "removed file", func() bool { return !matches(w, "10.0.0.3") && matches(w, "10.0.0.4") })
	if _, ok := fileStatus(w, "a.txt"); ok {
		t.Error("Status still lists the removed a.txt")
	}

	if err := os.Rename(filepath.Join(dir, "b.csv"), filepath.Join(dir, "c.csv")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, limit, "renamed file", func() bool {
		_, b := fileStatus(w, "b.csv")
		_, c := fileStatus(w, "c.csv")
		return !b && c && matches(w, "10.0.0.4")
	})

	writeFile(t, dir, "ignored~", "10.0.0.5\n")
	writeFile(t, dir, "d.txt", "10.0.0.6\n")
	waitFor(t, limit, "file after an ignored one", func() bool { return matches(w, "10.0.0.6") })
	if matches(w, "10.0.0.5") {
		t.Error("an editor backup file (name~) was loaded")
	}
}

func TestWatcherBrokenFileKeepsIndicators(t *testing.T) {
	dir := t.TempDir()
	bundle := func(ip string) string {
		return `{"type":"bundle","objects":[{"type":"indicator","id":"indicator--1","pattern":"[ipv4-addr:value = '` + ip + `']","pattern_type":"stix","valid_from":"2024-01-01T00:00:00Z"}]}`
	}
	writeFile(t, dir, "feed.json", bundle("10.1.0.1"))
	writeFile(t, dir, "other.txt", "10.2.0.1\n")
	w := startWatcher(t, dir, Options{})
	reg := prometheus.NewRegistry()
	reg.MustRegister(w.Collectors()...)

	writeFile(t, dir, "feed.json", "{\"type\":\"bundle\",\n\"objects\":[{\"type\":")
	// The watcher may catch the file half-written first: wait for the
	// error of the whole of it.
	want := filepath.Join(dir, "feed.json") + ": JSON line 2: unexpected EOF"
	waitFor(t, 2*time.Second, "error reported", func() bool {
		fs, _ := fileStatus(w, "feed.json")
		return fs.LastError == want
	})
	fs, _ := fileStatus(w, "feed.json")
	if fs.Total != 1 || fs.LastLoad.IsZero() {
		t.Errorf("broken file: Total %d, LastLoad %v; want its previous indicator and load time", fs.Total, fs.LastLoad)
	}
	if !matches(w, "10.1.0.1") || !matches(w, "10.2.0.1") {
		t.Error("a broken file dropped indicators")
	}
	if got := metricValue(t, reg, "raywatch_ioc_reload_failures_total", ""); got < 1 {
		t.Errorf("raywatch_ioc_reload_failures_total = %v; want >= 1", got)
	}
	if got := metricValue(t, reg, "raywatch_ioc_indicators", "ipv4"); got != 2 {
		t.Errorf("raywatch_ioc_indicators{type=ipv4} = %v; want 2", got)
	}

	// A dangling symlink is no file: it is skipped, not an error.
	if err := os.Symlink(filepath.Join(dir, "nowhere"), filepath.Join(dir, "dangling.txt")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "feed.json", bundle("10.1.0.9"))
	waitFor(t, 2*time.Second, "fixed file", func() bool { return matches(w, "10.1.0.9") && !matches(w, "10.1.0.1") })
	fs, _ = fileStatus(w, "feed.json")
	if fs.LastError != "" {
		t.Errorf("fixed file: LastError = %q; want none", fs.LastError)
	}
	if !matches(w, "10.2.0.1") {
		t.Error("other.txt lost its indicators")
	}
}

func TestWatcherExpiry(t *testing.T) {
	dir := t.TempDir()
	until := time.Now().Add(300 * time.Millisecond).UTC().Format(time.RFC3339Nano)
	writeFile(t, dir, "f.csv", "value,valid_until\n10.3.0.1,"+until+"\n10.3.0.2,\n")
	w := startWatcher(t, dir, Options{})
	if got := w.Current().Len(); got != 2 {
		t.Fatalf("Len = %d; want 2", got)
	}
	waitFor(t, 2*time.Second, "expiry", func() bool { return w.Current().Len() == 1 })
	fs, _ := fileStatus(w, "f.csv")
	if fs.Expired != 1 || fs.Total != 1 {
		t.Errorf("status after expiry: Expired %d, Total %d; want 1, 1", fs.Expired, fs.Total)
	}
}

func TestNewWatcherMissingFolder(t *testing.T) {
	if _, err := NewWatcher(filepath.Join(t.TempDir(), "none"), Options{}); err == nil {
		t.Error("NewWatcher on a missing folder: no error")
	}
	if _, _, err := LoadDir(filepath.Join(t.TempDir(), "none"), time.Now()); err == nil {
		t.Error("LoadDir on a missing folder: no error")
	}
}

// TestConcurrentMatchDuringReload matches from several goroutines while
// the folder is rewritten and reloaded; run it with -race. 10.9.0.1 is in
// every version of the folder, so every lookup must hit it.
func TestConcurrentMatchDuringReload(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "stable.txt", "10.9.0.1\n")
	writeFile(t, dir, "moving.txt", "10.9.1.0\n")
	w, err := NewWatcher(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var lookups atomic.Int64
	for range 4 {
		wg.Go(func() {
			ev := fakeEvent{"source.ip": "10.9.0.1", "destination.address": "x.moving.example"}
			var dst []Hit
			for !stop.Load() {
				dst = w.Current().match("http_requests", time.Time{}, ev, dst[:0])
				if len(dst) == 0 {
					t.Error("10.9.0.1 did not match during a reload")
					return
				}
				_ = w.Status()
				lookups.Add(1)
			}
		})
	}
	for i := range 30 {
		var b strings.Builder
		for j := range 200 {
			b.WriteString("10.9.")
			b.WriteString(itoa(i))
			b.WriteString(".")
			b.WriteString(itoa(j))
			b.WriteString("\nmoving.example\n")
		}
		replaceFile(t, dir, "moving.txt", b.String())
		if err := w.Reload(); err != nil {
			t.Fatal(err)
		}
		if !matches(w, "10.9."+itoa(i)+".7") {
			t.Fatalf("reload %d not visible", i)
		}
	}
	stop.Store(true)
	wg.Wait()
	if lookups.Load() == 0 {
		t.Error("no lookups ran")
	}
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

// metricValue returns the value of a gauge or counter from reg; label is
// the value of its only label, or "" for none.
func metricValue(tb testing.TB, reg *prometheus.Registry, name, label string) float64 {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && (len(m.GetLabel()) != 1 || m.GetLabel()[0].GetValue() != label) {
				continue
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	tb.Fatalf("metric %s{%s} not found", name, label)
	return 0
}
