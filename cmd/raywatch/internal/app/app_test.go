package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/raywatch/raywatch/cmd/raywatch/internal/traffic"
	"github.com/raywatch/raywatch/store"
)

// testConfig is serve's default configuration on 127.0.0.1:0 with a
// fresh data folder and a fixed intake key.
func testConfig(t *testing.T) Config {
	t.Helper()
	var cfg Config
	cfg.ServeFlags(flag.NewFlagSet("serve", flag.ContinueOnError), func(string) string { return "" })
	cfg.Listen, cfg.DataDir = "127.0.0.1:0", filepath.Join(t.TempDir(), "data")
	cfg.IntakeKeys = map[string]string{"default": "app-test-intake-key-0123456789"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestAppInProcess runs serve in-process: a batch posted to the intake
// becomes alerts on the API; Run returns nil when its context ends and
// Close is safe twice after it.
func TestAppInProcess(t *testing.T) {
	cfg := testConfig(t)
	a, err := New(cfg, quiet, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	base := "http://" + a.Addr().String()
	poll(t, func() bool {
		resp, err := http.Get(base + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, "healthz")
	req, _ := http.NewRequest("POST", base+"/plain/batch", bytes.NewReader(traffic.SequenceBatch(0, 14, 0)))
	req.Header.Set("X-SEKOIAIO-INTAKE-KEY", cfg.IntakeKeys["default"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST = %v, %v", resp, err)
	}
	resp.Body.Close()
	var page struct {
		Alerts []struct{ Rule struct{ Title string } } `json:"alerts"`
	}
	poll(t, func() bool {
		resp, err := http.Get(base + "/api/v1/alerts")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return json.NewDecoder(resp.Body).Decode(&page) == nil && len(page.Alerts) > 0
	}, "alerts on the API")
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v; want nil after its context ends", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("Close after Run = %v", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// TestNewChecksTheListenerFirst checks that a taken port fails New before
// the data folder (or anything in it) is created.
func TestNewChecksTheListenerFirst(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := testConfig(t)
	cfg.Listen = ln.Addr().String()
	cfg.IntakeKeys = nil // New would generate a key and print the banner
	var banner bytes.Buffer
	if _, err := New(cfg, quiet, Options{Banner: &banner}); err == nil || !strings.Contains(err.Error(), "listen on "+cfg.Listen) {
		t.Fatalf("New on a taken port = %v; want a listen error", err)
	}
	if _, err := os.Stat(cfg.DataDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the data folder exists after a failed New (stat: %v)", err)
	}
	if banner.Len() > 0 {
		t.Errorf("New printed the key banner: %s", banner.String())
	}
}

// TestNewLockedDataDir checks that a second App on the same data folder
// fails at once with store.ErrLocked, without a key banner.
func TestNewLockedDataDir(t *testing.T) {
	cfg := testConfig(t)
	first, err := New(cfg, quiet, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	cfg.IntakeKeys = nil
	var banner bytes.Buffer
	_, err = New(cfg, quiet, Options{Banner: &banner})
	if !errors.Is(err, store.ErrLocked) || !strings.Contains(err.Error(), filepath.Join(cfg.DataDir, "alerts.db")) {
		t.Errorf("second New = %v; want store.ErrLocked naming the database", err)
	}
	if banner.Len() > 0 {
		t.Errorf("the second New printed a key banner: %s", banner.String())
	}
}

// poll waits for cond, failing the test after 30 seconds.
func poll(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

// TestFieldErrorsServed posts records with a field of the wrong type
// through the intake: their alerts are stored, the field is counted in
// raywatch_records_field_errors_total{dataset,field} and kept in
// /api/v1/rejects as "field dropped", and no record counts as malformed.
func TestFieldErrorsServed(t *testing.T) {
	cfg := testConfig(t)
	a, err := New(cfg, quiet, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	base := "http://" + a.Addr().String()
	get := func(path string) string {
		resp, err := http.Get(base + path)
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	poll(t, func() bool { return strings.Contains(get("/healthz"), "ok") }, "healthz")
	var batch bytes.Buffer
	for i, line := range bytes.Split(bytes.TrimSpace(traffic.SequenceBatch(0, 14, 0)), []byte("\n")) {
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatal(err)
		}
		if i%2 == 1 {
			rec["EdgeResponseBytes"] = "69045x"
		}
		b, _ := json.Marshal(rec)
		batch.Write(append(b, '\n'))
	}
	req, _ := http.NewRequest("POST", base+"/plain/batch", &batch)
	req.Header.Set("X-SEKOIAIO-INTAKE-KEY", cfg.IntakeKeys["default"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST = %v, %v", resp, err)
	}
	resp.Body.Close()
	const metric = `raywatch_records_field_errors_total{dataset="http_requests",field="EdgeResponseBytes"} 7`
	poll(t, func() bool { return strings.Contains(get("/metrics"), metric) }, metric)
	if m := get("/metrics"); !strings.Contains(m, "raywatch_records_rejected_total 0") {
		t.Errorf("records with a field error counted as malformed:\n%s", grepLines(m, "raywatch_records_"))
	}
	if rejects := get("/api/v1/rejects"); strings.Count(rejects, `field dropped: field \"EdgeResponseBytes\"`) != 7 {
		t.Errorf("rejects = %s; want 7 field dropped", rejects)
	}
	var page struct {
		Alerts []json.RawMessage `json:"alerts"`
	}
	if err := json.Unmarshal([]byte(get("/api/v1/alerts")), &page); err != nil || len(page.Alerts) == 0 {
		t.Errorf("alerts = %d (%v); want the records' alerts stored", len(page.Alerts), err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
