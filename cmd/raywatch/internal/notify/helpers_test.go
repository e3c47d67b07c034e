package notify

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/raywatch/raywatch/rules/alert"
	"github.com/raywatch/raywatch/store"

	"github.com/prometheus/client_golang/prometheus"
)

// window is the grouping window of the tests' stores.
const window = time.Hour

func openStore(tb testing.TB, path string, o *Options) *store.Store {
	tb.Helper()
	st, err := store.Open(path, store.Options{
		Timeout: time.Second, GroupWindow: window,
		Outputs: o.Outputs(), OutboxFilter: o.Accepts,
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

func tempStore(tb testing.TB, o *Options) *store.Store {
	tb.Helper()
	return openStore(tb, filepath.Join(tb.TempDir(), "alerts.db"), o)
}

// hit is a per-record alert of rule at t on a request from ip.
func hit(t time.Time, rule, key, ip string) alert.Alert {
	return alert.Alert{
		ID:        alert.AlertID(t, rule, key),
		Rule:      alert.RuleRef{ID: rule, Title: "Title of " + rule, Level: "high", Description: "What " + rule + " finds."},
		Count:     1,
		FirstSeen: t,
		LastSeen:  t,
		Status:    alert.StatusNew,
		Intake:    "zone-a",
		RecordKey: key,
		Matches:   []alert.Match{{Field: "url.original", Value: "/x"}},
		Event: map[string]any{
			"source":      map[string]any{"ip": ip},
			"destination": map[string]any{"address": "shop.example"},
			"url":         map[string]any{"original": "/login?user=a"},
			"http":        map[string]any{"request": map[string]any{"method": "POST"}},
			"user_agent":  map[string]any{"original": "curl/8.0"},
		},
	}
}

// commit commits alerts as one batch and returns the stored alerts.
func commit(tb testing.TB, st *store.Store, alerts ...alert.Alert) []alert.Alert {
	tb.Helper()
	out, err := st.Commit(context.Background(), store.Batch{Alerts: alerts})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// logBuffer collects log output safely across goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testOptions sets the options' fast timings, logger and registry.
func testOptions(o Options, logs *logBuffer) Options {
	o.MinBackoff, o.MaxBackoff = 5*time.Millisecond, 50*time.Millisecond
	o.PollInterval = 20 * time.Millisecond
	o.GroupWindow = window
	o.Version = "1.2.3"
	o.Hostname = "rw-test"
	o.Registerer = prometheus.NewRegistry()
	if logs != nil {
		o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return o
}

// start makes a dispatcher over st and runs it until the test ends.
func start(tb testing.TB, o Options, st *store.Store) *Dispatcher {
	tb.Helper()
	d, err := New(o, st.Outbox(), st)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Run = %v", err)
		}
	})
	return d
}

// waitFor polls cond until it holds, failing the test after a deadline.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not a guess
	}
}

func outputStatus(tb testing.TB, d *Dispatcher, name string) OutputStatus {
	tb.Helper()
	rep, err := d.Report(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	for _, s := range rep.Outputs {
		if s.Name == name {
			return s
		}
	}
	tb.Fatalf("no output %s in %+v", name, rep)
	return OutputStatus{}
}

func idsOf(as []alert.Alert) []string {
	var ids []string
	for _, a := range as {
		ids = append(ids, a.ID)
	}
	return ids
}

// base is a time on a window boundary, recent enough to be inside the
// open slot when the tests need it to be.
func slotStart() time.Time {
	return time.Now().UTC().Truncate(window)
}

func keyN(i int) string { return fmt.Sprintf("k%04d", i) }

func ipN(prefix string, i int) string { return fmt.Sprintf("%s.%d", prefix, i) }
